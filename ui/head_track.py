"""How it works, second track: inside a trained head of MiniLM (a sentence) or DINOv2-small (a photo). UI only:
every number comes from attnviz.trace, every sentence and matrix layout from attnviz.explain, every figure from
attnviz.figures.

``head_input`` picks the input ("text" or "image"). The photo track keeps its own state under ``head_img_*``
(``head_img_layer``, ``head_img_head``, ``head_img_view``, ``head_img_step``, ``head_img_token``: a row of the
window), ``head_patch`` (the patch the 4 x 4 window holds) and ``head_patch_chart`` (a click on the photo's grid); its
overview (``head_img_overview_chart``: 12 layers x 6 heads of [CLS] -> patch maps) and q/k picture
(``head_img_qk_chart``: the window's queries) work as the sentence's do.

Session state: ``head_text``, ``head_layer``, ``head_head``, ``head_view`` (a key of HEAD_VIEWS), ``head_step``,
``head_token`` (the selected query row, shared by every view: each matrix follows it). Clicks: ``head_overview_chart`` (a thumbnail opens
that head step by step), ``head_qk_chart`` (a query becomes the selected token), ``head_m_<name>_chart``
(a cell of a step's matrix, read by ``ui.classroom.clickable_matrix``).
"""

from __future__ import annotations

import streamlit as st

import numpy as np

from attnviz.explain import (
    DEFAULT_IMAGE_HEAD,
    HEAD_INPUTS,
    HEAD_MATCH_TOLERANCE,
    HEAD_VIEWS,
    HEADS_PER_ROW,
    diagonal_sentence,
    head_match_sentence,
    head_matrix,
    head_steps,
)
from attnviz.figures import diagonal_share_figure, heads_overview_figure, matrix_figure, patch_window_figure, qk_figure
from attnviz.image import load_upload, thumbnail
from attnviz.loaders.dinov2 import NUM_HEADS, NUM_LAYERS
from attnviz.trace import (
    IMAGE_THUMBNAIL_REASON,
    head_trace,
    head_trace_image,
    heads_overview,
    heads_overview_image,
    qk_projection,
    swap_head_similarity,
    swap_head_similarity_image,
)
from ui.cache import memo_data
from ui.classroom import clickable_matrix, md_escape, photo_picker, style_figure
from ui.clicks import parse_clicked_cell, parse_clicked_point
from ui.widgets import current_device, show_error, similarity_picker

DEFAULT_TEXT = "The kitten sat on the mat because it was warm."
DEFAULT_HEAD = (2, 5)


@memo_data("Reading every head of the model…", shipped=(DEFAULT_TEXT,))
def _overview(text: str, device: str):
    return heads_overview(text, device=device)


@memo_data("Recomputing the head from its weights…", shipped=(DEFAULT_TEXT,))
def _trace(text: str, layer: int, head: int, device: str):
    return head_trace(text, layer, head, device=device)


@memo_data("Running the model with the new similarity…", shipped=(DEFAULT_TEXT,))
def _swap(text: str, layer: int, head, similarity: str, temperature: float, device: str):
    return swap_head_similarity(text, layer, head, similarity, temperature, device=device)


@memo_data("Recomputing DINOv2's head from its weights…")
def _trace_image(source, layer: int, head: int, device: str):
    return head_trace_image(load_upload(source), layer, head, device=device)


@memo_data("Running DINOv2 with the new similarity…")
def _swap_image(source, layer: int, head, similarity: str, temperature: float, device: str):
    return swap_head_similarity_image(load_upload(source), layer, head, similarity, temperature, device=device)


@memo_data()
def _picture(source):
    return np.asarray(thumbnail(load_upload(source), 480))


@memo_data("Reading every head of DINOv2…")
def _overview_image(source, device: str):
    return heads_overview_image(load_upload(source), device=device)


def _read_overview_click(n_layers: int, n_heads: int, prefix: str = "head") -> None:
    """Apply a new click on the overview before the layer and head pickers it changes are drawn."""
    cell = parse_clicked_cell(st.session_state.get(f"{prefix}_overview_chart"), n_layers, n_heads)
    if cell is not None and cell != st.session_state.get(f"{prefix}_overview_seen"):
        st.session_state[f"{prefix}_layer"], st.session_state[f"{prefix}_head"] = cell
        st.session_state[f"{prefix}_view"], st.session_state[f"{prefix}_step"] = "steps", 0
    st.session_state[f"{prefix}_overview_seen"] = cell


def _read_qk_click(n: int, rows=None, prefix: str = "head") -> None:
    """A new click on a query of the q/k picture (its token position) becomes the selected token (``rows``: the
    positions the matrices show, a photo's window; the selected token is a row of it)."""
    q = parse_clicked_point(st.session_state.get(f"{prefix}_qk_chart"), curve=0, size=n)
    if q is not None and q != st.session_state.get(f"{prefix}_qk_seen"):
        row = q if rows is None else (list(rows).index(q) if q in rows else None)
        if row is not None:
            st.session_state[f"{prefix}_token"] = row  # every matrix of the step track follows it
    st.session_state[f"{prefix}_qk_seen"] = q


def _go(delta: int, prefix: str = "head") -> None:
    key = f"{prefix}_step"
    st.session_state[key] = min(max(int(st.session_state.get(key, 0)) + delta, 0), len(head_steps()) - 1)


def _explained(trace, name: str, key: str | None = None, tokens=None, prefix: str = "head") -> None:
    """A step's matrix (only ``tokens``' rows, and columns when square), clickable, and its explanation."""
    m = head_matrix(trace, name, tokens)
    key = key or name
    token = min(int(st.session_state.get(f"{prefix}_token", 0)), m.z.shape[0] - 1)
    if st.session_state.get(f"{prefix}_m_{key}_synced") != token:  # another view selected a token: follow it
        st.session_state[f"{prefix}_m_{key}_row"] = token
    i, j = clickable_matrix(m.z, list(m.col_labels), list(m.row_labels), key=f"{prefix}_m_{key}", title=m.title,
                            x_title=m.col_title, y_title=m.row_title, colorbar_title=m.colorbar, caption=m.caption,
                            default=(token, 1 if m.z.shape[1] > 1 else 0))
    st.session_state[f"{prefix}_token"] = st.session_state[f"{prefix}_m_{key}_synced"] = i
    with st.container(border=True, key=f"{prefix}_explain_{key}"):
        st.markdown(f"**This number:** {md_escape(trace.explain(m.name, *m.cell(i, j)))}")


def _steps(trace, tokens=None, prefix: str = "head") -> None:
    _step_body(trace, _step_header(trace, prefix), tokens, prefix)


def _step_header(trace, prefix: str = "head"):
    """Back, Next and the step's title in one row, its sentence under it. Returns the step."""
    steps = head_steps(trace.kind)
    step = min(max(int(st.session_state.get(f"{prefix}_step", 0)), 0), len(steps) - 1)
    st.session_state[f"{prefix}_step"] = step
    nav = st.columns([1, 1, 7], vertical_alignment="center")  # one row: the first matrix stays on the first screen
    nav[0].button("◀ Back", key=f"{prefix}_back", on_click=_go, args=(-1, prefix), disabled=step == 0, width="stretch")
    nav[1].button("Next ▶", key=f"{prefix}_next", on_click=_go, args=(1, prefix), disabled=step == len(steps) - 1,
                  width="stretch")
    cur = steps[step]
    nav[2].subheader(f"Layer {trace.layer}, head {trace.head} · step {step + 1}. {cur.title} ({step + 1} / {len(steps)})")
    st.markdown(cur.sentence)
    return cur


def _step_body(trace, cur, tokens=None, prefix: str = "head") -> None:
    """The step's formula, matrix (only ``tokens``' rows and columns when given) and explanation."""
    if cur.key == "qkv":
        st.latex(r"q = h W_Q^\top + b_Q,\quad k = h W_K^\top + b_K,\quad v = h W_V^\top + b_V"
                 rf"\qquad (d_{{head}} = {trace.d_head})")
        which = st.radio("Projection", ["q", "k", "v"], key=f"{prefix}_qkv", horizontal=True)
        _explained(trace, which, tokens=tokens, prefix=prefix)
    elif cur.key == "weights":
        st.latex(r"a_{ij} = \mathrm{softmax}_j\big(q_i\cdot k_j/\sqrt{d_{head}}\big)")
        st.metric("Largest |difference| from output_attentions", f"{trace.max_abs_diff:.2e}",
                  help=f"Within {HEAD_MATCH_TOLERANCE:.0e} means the recomputation is the model's own attention.")
        st.markdown(head_match_sentence(trace))
        left, right = st.columns(2)
        with left:
            _explained(trace, "weights", tokens=tokens, prefix=prefix)
        with right:
            _explained(trace, "seed_weights", tokens=tokens, prefix=prefix)
        ds = trace.diagonal_share(per_row=True)
        rows = list(range(trace.n)) if tokens is None else list(tokens)
        st.plotly_chart(style_figure(diagonal_share_figure([trace.tokens[r] for r in rows], ds["model"][rows],
                                                           ds["seed"][rows])), key=f"{prefix}_diagonal", width="stretch")
        st.markdown(diagonal_sentence(trace))
    else:
        formulas = {"scores": r"s_{ij} = \frac{q_i \cdot k_j}{\sqrt{d_{head}}}",
                    "mask": r"s_{ij} + m_j,\quad m_j = 0 \text{ (real key)},\ -\infty \text{ (padding)}",
                    "context": r"\mathrm{context}_i = \sum_j a_{ij}\, v_j",
                    "output": r"\mathrm{output} = [\mathrm{context}^{(0)} \cdots \mathrm{context}^{("
                              + str(trace.num_heads - 1) + r")}]\, W_O^\top + b_O"}
        if trace.kind == "image":
            formulas["h"] = r"h = \mathrm{norm1}(\mathrm{hidden\_states}[\ell])"  # short: it fits a phone
        if cur.key in formulas:
            st.latex(formulas[cur.key])
        _explained(trace, cur.matrix, key=cur.matrix if cur.key != "mask" else "masked", tokens=tokens, prefix=prefix)


def _swap_view(text, layer: int, head: int, device: str, tokens=None, prefix: str = "head") -> None:
    every = st.toggle("Swap every head of the layer", key=f"{prefix}_swap_all")
    similarity, temperature = similarity_picker(f"{prefix}_swap", default="cosine", explain=False)
    run = _swap if tokens is None else _swap_image
    try:
        res = run(text, layer, None if every else head, similarity, temperature, device)
    except Exception as err:  # typed errors become one friendly sentence
        show_error(err)
        return
    for note in res.notes:
        st.caption(md_escape(note))
    a, b = st.columns(2)
    a.metric("Overlap with the original pattern", f"{res.overlap:.4f}", help="1 = the same weights")
    what = "[CLS] embeddings" if res.kind == "image" else "sentence embeddings"
    b.metric(f"Drift: cosine of the {what}", f"{res.drift:.6f}", help="1 = the input's embedding did not move")
    left, right = st.columns(2)
    idx = list(range(len(res.tokens))) if tokens is None else list(tokens)  # a photo: its window only
    labels = [res.tokens[i] for i in idx]
    sub = np.ix_(idx, idx)
    left.plotly_chart(style_figure(matrix_figure(res.original_weights[head][sub], labels,
                                                 title=f"original, head {head}")),
                      key=f"{prefix}_swap_before", width="stretch")
    right.plotly_chart(style_figure(matrix_figure(res.swapped_weights[head][sub], labels,
                                                  title=f"{similarity}, T = {temperature:g}, head {head}")),
                       key=f"{prefix}_swap_after", width="stretch")
    st.markdown("**Tokens whose final vectors moved most** (1 − cosine): " + ", ".join(
        f"{i}·{md_escape(t)} {d:.2e}" for i, t, d in res.moved_tokens[:5]))


def _qk_view(trace, tokens=None, prefix: str = "head") -> None:
    """The q/k plane: every query shown (a photo: its window's) with faint lines to its top 3 keys, the selected
    query's bold; a click on a query selects it."""
    qs, ks, note = qk_projection(trace)
    rows = list(range(trace.n)) if tokens is None else list(tokens)
    row = min(int(st.session_state.get(f"{prefix}_token", 0)), len(rows) - 1)
    token = rows[row]
    fig = qk_figure(qs, ks, trace.tokens, trace.weights, selected=token, shown=None if tokens is None else rows)
    st.plotly_chart(style_figure(fig), key=f"{prefix}_qk_chart", on_select="rerun", selection_mode="points",
                    width="stretch")
    which = "every query" if tokens is None else f"[CLS] and the {len(rows) - 1} patches of the window"
    st.caption(md_escape(note) + f" Queries shown: {which}; keys: all {trace.n}. Faint lines join each query to its "
               "3 heaviest keys, the selected query's are bold (width by weight); hover a query to read its top 3 "
               "keys with their weights, click it to make it the selected token of every step.")
    j = int(trace.weights[token].argmax())
    st.markdown(f"**Selected query {token} ({md_escape(trace.tokens[token])}):** "
                f"{md_escape(trace.explain('weights', token, j))}")


def _overview_view(ov, prefix: str = "head") -> None:
    labels, definitions = ov.labels, ov.definitions
    left, mid, right = st.columns([3, 1, 1], vertical_alignment="bottom")
    by = left.selectbox("Sort the heads by", [None, *definitions], key=f"{prefix}_sort",
                        format_func=lambda m: "layer by layer" if m is None else labels[m])
    st.session_state.setdefault(f"{prefix}_sort_desc", True)
    desc = mid.toggle("Largest first", key=f"{prefix}_sort_desc", disabled=by is None)
    per_row = right.selectbox("Heads per row", [n for n in HEADS_PER_ROW if n <= ov.num_heads] or [ov.num_heads],
                              key=f"{prefix}_per_row", help="Fewer per row: bigger thumbnails on a phone.")
    metric = by or "entropy"
    sel = (int(st.session_state.get(f"{prefix}_layer", 0)), int(st.session_state.get(f"{prefix}_head", 0)))
    photo = ov.kind == "image"
    fig = heads_overview_figure(ov.pictures, ov.order(by, desc), ov.metrics[metric], labels[metric],
                                cols=int(per_row), selected=sel)
    st.plotly_chart(style_figure(fig), key=f"{prefix}_overview_chart", on_select="rerun", selection_mode="points",
                    width="stretch")
    what = f"{IMAGE_THUMBNAIL_REASON} " if photo else ""
    st.caption(f"{what}{ov.num_layers} layers × {ov.num_heads} heads ({ov.num_layers * ov.num_heads}); above each "
               f"thumbnail L = layer, H = head and its {labels[metric]}. Click a thumbnail to open that head step by step.")
    for name, definition in definitions.items():
        st.markdown(f"- **{labels[name]}**: {md_escape(definition)}")


def _window_picker(trace, source, name: str) -> tuple[int, ...]:
    """The photo's patch grid, clickable: a click centres the 4 x 4 window on that patch. Returns its tokens."""
    rows, cols = trace.grid
    clicked = parse_clicked_cell(st.session_state.get("head_patch_chart"), rows, cols)
    if clicked is not None and clicked != st.session_state.get("head_patch_seen"):
        st.session_state["head_patch"] = clicked
    st.session_state["head_patch_seen"] = clicked
    patch = st.session_state.get("head_patch")
    if not (isinstance(patch, tuple) and 0 <= patch[0] < rows and 0 <= patch[1] < cols):
        patch = st.session_state["head_patch"] = (rows // 2, cols // 2)
    tokens = trace.window(*patch)
    r = [(t - 1) // cols for t in tokens[1:]]
    c = [(t - 1) % cols for t in tokens[1:]]
    fig = patch_window_figure(_picture(source), trace.grid, (min(r), min(c), max(r), max(c)), patch)
    st.plotly_chart(style_figure(fig), key="head_patch_chart", on_select="rerun", selection_mode="points",
                    width="stretch")
    st.caption(f"{name}: {rows} × {cols} patches of 14 pixels at DINOv2's input size. Click a patch: the matrices "
               f"show [CLS] and the {len(tokens) - 1} patches in the orange window around it.")
    return tokens


def _photo_track(top) -> None:
    """The photo's half of the track; ``top``: the row of pickers (its first column holds Sentence / Photo)."""
    _read_overview_click(NUM_LAYERS, NUM_HEADS, prefix="head_img")
    source, name = photo_picker("head_photo", container=top[1])
    st.session_state.setdefault("head_img_layer", DEFAULT_IMAGE_HEAD[0])
    st.session_state.setdefault("head_img_head", DEFAULT_IMAGE_HEAD[1])
    layer = int(top[2].selectbox("Layer", list(range(NUM_LAYERS)), key="head_img_layer"))
    head = int(top[3].selectbox("Head", list(range(NUM_HEADS)), key="head_img_head"))
    st.session_state.setdefault("head_img_view", "steps")
    view = st.segmented_control("View", list(HEAD_VIEWS), key="head_img_view", format_func=HEAD_VIEWS.get,
                                label_visibility="collapsed") or "steps"
    device = current_device()
    try:
        if view == "overview":
            ov = _overview_image(source, device)
        else:
            trace = _trace_image(source, layer, head, device)
    except Exception as err:  # typed errors become one friendly sentence
        show_error(err)
        return
    if view == "overview":
        for note in ov.notes:
            st.caption(md_escape(note))
        with st.container(key="head_img_view_overview"):
            _overview_view(ov, prefix="head_img")
        return
    for note in trace.notes:
        st.caption(md_escape(note))
    cur = _step_header(trace, prefix="head_img") if view == "steps" else None
    pic, main = st.columns([2, 3])  # the photo beside the step: the first matrix stays on a projector's screen
    with pic:
        tokens = _window_picker(trace, source, name)
    _read_qk_click(trace.n, tokens, prefix="head_img")
    with main, st.container(key=f"head_img_view_{view}"):
        if view == "swap":
            _swap_view(source, layer, head, device, tokens=tokens, prefix="head_img")
        elif view == "qk":
            _qk_view(trace, tokens, prefix="head_img")
        else:
            _step_body(trace, cur, tokens=tokens, prefix="head_img")


def head_track() -> None:
    """The whole trained-head track (call it from pages/how_it_works.py): one row of pickers (input, sentence or
    photo, layer, head), the views under it."""
    top = st.columns([1.3, 3.5, 1, 1], vertical_alignment="bottom")
    kind = top[0].radio("Look inside", list(HEAD_INPUTS), key="head_input", format_func=HEAD_INPUTS.get,
                        help="A sentence through MiniLM, or a photo through DINOv2-small.")
    if kind == "image":
        _photo_track(top)
    else:
        _text_track(top)


def _text_track(top) -> None:
    st.session_state.setdefault("head_text", DEFAULT_TEXT)
    text = top[1].text_input("Your sentence (up to 64 word pieces are traced)", key="head_text", max_chars=3000)
    device = current_device()
    try:
        ov = _overview(text, device)
    except Exception as err:  # typed errors become one friendly sentence
        show_error(err)
        return
    if ov.notice:
        st.info(md_escape(ov.notice))
    n = len(ov.tokens)
    _read_overview_click(ov.num_layers, ov.num_heads)
    _read_qk_click(n)
    st.session_state.setdefault("head_layer", DEFAULT_HEAD[0])
    st.session_state.setdefault("head_head", DEFAULT_HEAD[1])
    layer = top[2].selectbox("Layer", list(range(ov.num_layers)), key="head_layer")
    head = top[3].selectbox("Head", list(range(ov.num_heads)), key="head_head")
    st.session_state.setdefault("head_view", "steps")
    view = st.segmented_control("View", list(HEAD_VIEWS), key="head_view", format_func=HEAD_VIEWS.get,
                                label_visibility="collapsed") or "steps"
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
