"""One constant stylesheet for the whole app, mounted once per run in the sidebar: less empty space above each
page's title, so a page's view fits a 1280 x 720 projector. A Custom Components v2 component with
``isolate_styles=False`` (its CSS reaches the page; it has no HTML and no data, so no user text can reach it)."""

from __future__ import annotations

import streamlit as st

CSS = """
[data-testid="stMainBlockContainer"] { padding-top: 2.6rem; padding-bottom: 2rem; }
.st-key-attnviz_page_style { display: none; }
[class*="_cellnarrow"] { display: none; } @media (max-width: 640px) { [class*="_cellnarrow"] { display: block; } [class*="_cellpx0"] .heatmap-label text { display: none; } [class*="_cellpx7"] .heatmap-label text { font-size: 7px !important; } [class*="_cellpx8"] .heatmap-label text { font-size: 8px !important; } [class*="_cellpx9"] .heatmap-label text { font-size: 9px !important; } [class*="_cellpx10"] .heatmap-label text { font-size: 10px !important; } [class*="_cellpx11"] .heatmap-label text { font-size: 11px !important; } [class*="_cellpx12"] .heatmap-label text { font-size: 12px !important; } }  /* matrix numbers on a phone: ui/classroom.py clickable_matrix */
/* home page cards (st.container(key="card_<page>")): the page link stretches over the whole card */
[class*="st-key-card_"] { position: relative; }
[class*="st-key-card_"] a::after { content: ""; position: absolute; inset: 0; }
[class*="st-key-card_"]:hover { border-color: var(--st-primary-color, #ff4b4b); }
"""

_mount = st.components.v2.component("attnviz_page_style", css=CSS, isolate_styles=False)


def page_style() -> None:
    """Mount the app's stylesheet (call once per run, e.g. in the sidebar)."""
    _mount(key="attnviz_page_style")
