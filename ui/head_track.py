"""How it works, second track: inside a trained head of MiniLM (UI only: every number comes from attnviz.trace,
every sentence and matrix layout from attnviz.explain, every figure from attnviz.figures).

Session state: ``head_text``, ``head_layer``, ``head_head``, ``head_view`` (a key of HEAD_VIEWS), ``head_step``,
``head_token`` (the selected query row, shared by every view: each matrix follows it). Clicks: ``head_overview_chart`` (a thumbnail opens
that head step by step), ``head_qk_chart`` (a query becomes the selected token), ``head_m_<name>_chart``
(a cell of a step's matrix, read by ``ui.classroom.clickable_matrix``).
"""

from __future__ import annotations

import streamlit as st

from attnviz.explain import (
    HEAD_MATCH_TOLERANCE,
    HEAD_STEPS,
    HEAD_VIEWS,
    HEADS_PER_ROW,
    diagonal_sentence,
    head_match_sentence,
    head_matrix,
)
from attnviz.figures import diagonal_share_figure, heads_overview_figure, matrix_figure, qk_figure
from attnviz.trace import (
    METRIC_DEFINITIONS,
    METRIC_LABELS,
    head_trace,
    heads_overview,
    qk_projection,
    swap_head_similarity,
)
from ui.classroom import clickable_matrix, md_escape, style_figure
from ui.clicks import parse_clicked_cell, parse_clicked_point
from ui.widgets import current_device, show_error, similarity_picker

DEFAULT_TEXT = "The kitten sat on the mat because it was warm."
DEFAULT_HEAD = (2, 5)


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Reading every head of the model…")
def _overview(text: str, device: str):
    return heads_overview(text, device=device)


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Recomputing the head from its weights…")
def _trace(text: str, layer: int, head: int, device: str):
    return head_trace(text, layer, head, device=device)


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Running the model with the new similarity…")
def _swap(text: str, layer: int, head, similarity: str, temperature: float, device: str):
    return swap_head_similarity(text, layer, head, similarity, temperature, device=device)


def _read_clicks(n_layers: int, n_heads: int, n: int) -> None:
    """Apply a new click on the overview or the q/k picture before the widgets it changes are drawn."""
    cell = parse_clicked_cell(st.session_state.get("head_overview_chart"), n_layers, n_heads)
    if cell is not None and cell != st.session_state.get("head_overview_seen"):
        st.session_state["head_layer"], st.session_state["head_head"] = cell
        st.session_state["head_view"], st.session_state["head_step"] = "steps", 0
    st.session_state["head_overview_seen"] = cell
    q = parse_clicked_point(st.session_state.get("head_qk_chart"), curve=0, size=n)
    if q is not None and q != st.session_state.get("head_qk_seen"):
        st.session_state["head_token"] = q  # every matrix of the step track follows it
    st.session_state["head_qk_seen"] = q


def _go(delta: int) -> None:
    st.session_state["head_step"] = min(max(int(st.session_state.get("head_step", 0)) + delta, 0), len(HEAD_STEPS) - 1)


def _explained(trace, name: str, key: str | None = None) -> None:
    m = head_matrix(trace, name)
    key = key or name
    token = min(int(st.session_state.get("head_token", 0)), trace.n - 1)
    if st.session_state.get(f"head_m_{key}_synced") != token:  # another view selected a token: follow it
        st.session_state[f"head_m_{key}_row"] = token
    i, j = clickable_matrix(m.z, list(m.col_labels), list(m.row_labels), key=f"head_m_{key}", title=m.title,
                            x_title=m.col_title, y_title=m.row_title, colorbar_title=m.colorbar, caption=m.caption,
                            default=(min(token, trace.n - 1), 1 if m.z.shape[1] > 1 else 0))
    st.session_state["head_token"] = st.session_state[f"head_m_{key}_synced"] = i
    with st.container(border=True, key=f"head_explain_{key}"):
        st.markdown(f"**This number:** {md_escape(trace.explain(m.name, i, j))}")


def _steps(trace) -> None:
    step = min(max(int(st.session_state.get("head_step", 0)), 0), len(HEAD_STEPS) - 1)
    st.session_state["head_step"] = step
    nav = st.columns([1, 1, 5], vertical_alignment="center")
    nav[0].button("◀ Back", key="head_back", on_click=_go, args=(-1,), disabled=step == 0, width="stretch")
    nav[1].button("Next ▶", key="head_next", on_click=_go, args=(1,), disabled=step == len(HEAD_STEPS) - 1,
                  width="stretch")
    cur = HEAD_STEPS[step]
    nav[2].progress((step + 1) / len(HEAD_STEPS), text=f"Head step {step + 1} of {len(HEAD_STEPS)}: {cur.title}")
    st.subheader(f"Layer {trace.layer}, head {trace.head} · step {step + 1}. {cur.title}")
    st.markdown(cur.sentence)
    if cur.key == "qkv":
        st.latex(r"q = h W_Q^\top + b_Q,\quad k = h W_K^\top + b_K,\quad v = h W_V^\top + b_V"
                 rf"\qquad (d_{{head}} = {trace.d_head})")
        which = st.radio("Projection", ["q", "k", "v"], key="head_qkv", horizontal=True)
        _explained(trace, which)
    elif cur.key == "weights":
        st.latex(r"a_{ij} = \mathrm{softmax}_j\big(q_i\cdot k_j/\sqrt{d_{head}}\big)")
        st.metric("Largest |difference| from output_attentions", f"{trace.max_abs_diff:.2e}",
                  help=f"Within {HEAD_MATCH_TOLERANCE:.0e} means the recomputation is the model's own attention.")
        st.markdown(head_match_sentence(trace))
        left, right = st.columns(2)
        with left:
            _explained(trace, "weights")
        with right:
            _explained(trace, "seed_weights")
        ds = trace.diagonal_share(per_row=True)
        st.plotly_chart(style_figure(diagonal_share_figure(trace.tokens, ds["model"], ds["seed"])),
                        key="head_diagonal", width="stretch")
        st.markdown(diagonal_sentence(trace))
    else:
        formulas = {"scores": r"s_{ij} = \frac{q_i \cdot k_j}{\sqrt{d_{head}}}",
                    "mask": r"s_{ij} + m_j,\quad m_j = 0 \text{ (real key)},\ -\infty \text{ (padding)}",
                    "context": r"\mathrm{context}_i = \sum_j a_{ij}\, v_j",
                    "output": r"\mathrm{output} = [\mathrm{context}^{(0)} \cdots \mathrm{context}^{(11)}]\, W_O^\top + b_O"}
        if cur.key in formulas:
            st.latex(formulas[cur.key])
        _explained(trace, cur.matrix, key=cur.matrix if cur.key != "mask" else "masked")


def _swap_view(text: str, layer: int, head: int, device: str) -> None:
    every = st.toggle("Swap every head of the layer", key="head_swap_all")
    similarity, temperature = similarity_picker("head_swap", default="cosine", explain=False)
    try:
        res = _swap(text, layer, None if every else head, similarity, temperature, device)
    except Exception as err:  # typed errors become one friendly sentence
        show_error(err)
        return
    for note in res.notes:
        st.caption(md_escape(note))
    a, b = st.columns(2)
    a.metric("Overlap with the original pattern", f"{res.overlap:.4f}", help="1 = the same weights")
    b.metric("Drift: cosine of the sentence embeddings", f"{res.drift:.6f}", help="1 = the sentence did not move")
    left, right = st.columns(2)
    labels = list(res.tokens)
    left.plotly_chart(style_figure(matrix_figure(res.original_weights[head], labels, title=f"original, head {head}")),
                      key="head_swap_before", width="stretch")
    right.plotly_chart(style_figure(matrix_figure(res.swapped_weights[head], labels,
                                                  title=f"{similarity}, T = {temperature:g}, head {head}")),
                       key="head_swap_after", width="stretch")
    st.markdown("**Tokens whose final vectors moved most** (1 − cosine): " + ", ".join(
        f"{i}·{md_escape(t)} {d:.2e}" for i, t, d in res.moved_tokens[:5]))


def _qk_view(trace) -> None:
    qs, ks, note = qk_projection(trace)
    token = min(int(st.session_state.get("head_token", 0)), trace.n - 1)
    fig = qk_figure(qs, ks, trace.tokens, trace.weights, selected=token)
    st.plotly_chart(style_figure(fig), key="head_qk_chart", on_select="rerun", selection_mode="points",
                    width="stretch")
    st.caption(md_escape(note) + " Hover a query to read its top 3 keys; click one to select it.")
    j = int(trace.weights[token].argmax())
    st.markdown(f"**Selected query {token} ({md_escape(trace.tokens[token])}):** "
                f"{md_escape(trace.explain('weights', token, j))}")


def _overview_view(ov) -> None:
    left, mid, right = st.columns([3, 1, 1], vertical_alignment="bottom")
    by = left.selectbox("Sort the heads by", [None, *METRIC_DEFINITIONS], key="head_sort",
                        format_func=lambda m: "layer by layer" if m is None else METRIC_LABELS[m])
    st.session_state.setdefault("head_sort_desc", True)
    desc = mid.toggle("Largest first", key="head_sort_desc", disabled=by is None)
    per_row = right.selectbox("Heads per row", [n for n in HEADS_PER_ROW if n <= ov.num_heads] or [ov.num_heads],
                              key="head_per_row", help="Fewer per row: bigger thumbnails on a phone.")
    metric = by or "entropy"
    sel = (int(st.session_state.get("head_layer", 0)), int(st.session_state.get("head_head", 0)))
    fig = heads_overview_figure(ov.attentions, ov.order(by, desc), ov.metrics[metric], METRIC_LABELS[metric],
                                cols=int(per_row), selected=sel)
    st.plotly_chart(style_figure(fig), key="head_overview_chart", on_select="rerun", selection_mode="points",
                    width="stretch")
    st.caption(f"{ov.num_layers} layers × {ov.num_heads} heads ({ov.num_layers * ov.num_heads}); above each thumbnail L = layer, H = head and its "
               f"{METRIC_LABELS[metric]}. Click a thumbnail to open that head step by step.")
    for name, definition in METRIC_DEFINITIONS.items():
        st.markdown(f"- **{METRIC_LABELS[name]}**: {md_escape(definition)}")


def head_track() -> None:
    """The whole trained-head track (call it from pages/how_it_works.py)."""
    st.session_state.setdefault("head_text", DEFAULT_TEXT)
    top = st.columns([4, 1, 1], vertical_alignment="bottom")
    text = top[0].text_input("Your sentence (up to 64 word pieces are traced)", key="head_text", max_chars=3000)
    device = current_device()
    try:
        ov = _overview(text, device)
    except Exception as err:  # typed errors become one friendly sentence
        show_error(err)
        return
    if ov.notice:
        st.info(md_escape(ov.notice))
    n = len(ov.tokens)
    _read_clicks(ov.num_layers, ov.num_heads, n)
    st.session_state.setdefault("head_layer", DEFAULT_HEAD[0])
    st.session_state.setdefault("head_head", DEFAULT_HEAD[1])
    layer = top[1].selectbox("Layer", list(range(ov.num_layers)), key="head_layer")
    head = top[2].selectbox("Head", list(range(ov.num_heads)), key="head_head")
    st.session_state.setdefault("head_view", "steps")
    view = st.segmented_control("View", list(HEAD_VIEWS), key="head_view", format_func=HEAD_VIEWS.get) or "steps"
    try:
        trace = _trace(text, int(layer), int(head), device)
    except Exception as err:
        show_error(err)
        return
    for note in trace.notes:
        st.caption(md_escape(note))
    with st.container(key=f"head_view_{view}"):  # a box per view: the browser never reuses one view's widgets
        if view == "steps":
            _steps(trace)
        elif view == "swap":
            _swap_view(text, int(layer), int(head), device)
        elif view == "qk":
            _qk_view(trace)
        else:
            _overview_view(ov)
