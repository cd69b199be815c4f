"""One constant stylesheet for the whole app, mounted once per run in the sidebar: less empty space above each
page's title, so a page's view fits a 1280 x 720 projector. A Custom Components v2 component with
``isolate_styles=False`` (its CSS reaches the page; it has no HTML and no data, so no user text can reach it)."""

from __future__ import annotations

import streamlit as st

from attnviz.explain import NARROW_SCREEN_PX, PHONE_CELL_FONTS
from ui.classroom import cell_box_key


def _phone_cell_rule(px: int) -> str:
    box = f'[class*="{cell_box_key("", px)}"] .heatmap-label text'
    return f"{box} {{ display: none; }}" if px == 0 else f"{box} {{ font-size: {px}px !important; }}"


#: matrix numbers on a narrow screen (ui/classroom.py clickable_matrix): the size its box's key names, and the
#: "too small to print" caption; the breakpoint and the sizes are attnviz.explain's
PHONE_CELL_CSS = (f'[class*="_cellnarrow"] {{ display: none; }} @media (max-width: {NARROW_SCREEN_PX}px) {{ '
                  f'[class*="_cellnarrow"] {{ display: block; }} '
                  + " ".join(_phone_cell_rule(px) for px in PHONE_CELL_FONTS) + " }")

CSS = """
[data-testid="stMainBlockContainer"] { padding-top: 2.6rem; padding-bottom: 2rem; }
.st-key-attnviz_page_style { display: none; }
""" + PHONE_CELL_CSS + """
/* home page cards (st.container(key="card_<page>")): the page link stretches over the whole card */
[class*="st-key-card_"] { position: relative; }
[class*="st-key-card_"] a::after { content: ""; position: absolute; inset: 0; }
[class*="st-key-card_"]:hover { border-color: var(--st-primary-color, #ff4b4b); }
"""

_mount = st.components.v2.component("attnviz_page_style", css=CSS, isolate_styles=False)


def page_style() -> None:
    """Mount the app's stylesheet (call once per run, e.g. in the sidebar)."""
    _mount(key="attnviz_page_style")
