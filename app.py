"""attnviz — the Streamlit entry point: a router plus the sidebar every page shares."""

from pathlib import Path

import streamlit as st

from ui.classroom import classroom_toggle
from ui.shell import shell
from ui.widgets import device_picker

st.set_page_config(page_title="attnviz — see where attention goes", page_icon="🔎", layout="wide")

HERE = Path(__file__).parent
PAGES = [
    ("pages/home.py", "Home", "🏠"),
    ("pages/text.py", "Text attention", "📝"),
    ("pages/image.py", "Image attention", "🖼️"),
    ("pages/how_it_works.py", "How it works", "🧮"),
    ("pages/lab.py", "Similarity lab", "🧪"),
    ("pages/hard_cases.py", "Hard cases", "🧗"),
]

pages = [st.Page(str(HERE / path), title=title, icon=icon, default=(path == "pages/home.py"),
                 url_path=Path(path).stem)
         for path, title, icon in PAGES if (HERE / path).exists()]
nav = st.navigation(pages)
with st.sidebar:
    device_picker(st.sidebar)
    classroom_toggle(st.sidebar)
with shell():
    nav.run()
