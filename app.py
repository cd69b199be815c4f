"""attnviz — the Streamlit entry point: a router plus the sidebar every page shares."""

from pathlib import Path

import streamlit as st

from attnviz.pages import HOME, PAGES, start_preload
from attnviz.settings import load_settings
from ui.cache import start_memory_release
from ui.classroom import classroom_toggle
from ui.components.page_style import page_style
from ui.shell import shell
from ui.widgets import device_picker

st.set_page_config(page_title="attnviz — see where attention goes", page_icon=":material/search:", layout="wide")


def _preload() -> None:
    """MiniLM (and DINOv2) start loading in the background on the server's first script run (once per process)."""
    try:
        start_preload(load_settings().model_path)
    except Exception:  # noqa: BLE001 - a bad setting is reported by the page that needs it
        pass


_preload()
start_memory_release()  # once per process: what closed sessions freed goes back to the OS (ui/cache.py)
HERE = Path(__file__).parent
nav = st.navigation([st.Page(str(HERE / p.path), title=p.title, icon=p.icon, default=p is HOME, url_path=p.url_path)
                     for p in PAGES])
with st.sidebar:
    device_picker(st.sidebar)
    classroom_toggle(st.sidebar)
    page_style()  # less empty space above the titles: each page's view fits a 1280 x 720 projector
with shell():
    nav.run()
