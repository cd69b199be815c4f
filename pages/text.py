"""Text attention: your own text, its real tokens, and where attention goes under any similarity.

Read widgets -> call attnviz -> show. The settings and their link form are ``attnviz.state.text.TextPageState``;
the limits, truncation and windows are that module's too (docs/limits.md). The model folder
(``ATTNVIZ_MODEL_PATH``) and the page's character limit (``ATTNVIZ_PAGE_MAX_CHARS``) are the server's, never a
link's. Caching: the encoding is ``st.cache_data`` (text, encoder, merge, device, model), so switching
similarity, temperature, query, token or view never runs the encoder again.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from attnviz import SIMILARITIES
from attnviz import text as tx
from attnviz.figures import clickable_heatmap, matrix_figure
from attnviz.highlight import highlight_html, highlight_many
from attnviz.pages import page
from attnviz.render import matrix_png, to_json
from attnviz.settings import load_settings
from attnviz.state import text as ts
from attnviz.state.text import TextPageState
from ui.clicks import parse_clicked_cell
from ui.classroom import md_escape, style_figure
from ui.shell import require_shell
from ui.widgets import current_device, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

#: TextPageState field -> the widget key that holds it
WIDGET_KEYS = {"sample": "sample", "text": "text", "similarity": "txt_sim", "temperature": "txt_temp",
               "encoder": "encoder", "view": "view", "merge": "merge", "batch": "batch", "query": "query",
               "token": "token", "layer": "layer", "head": "head", "window": "win"}


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Encoding the text (runs once per text and encoder)…")
def cached_encoding(text: str, encoder: str, merge: bool, device: str, model_path: str | None) -> tx.Encoding:
    return tx.encode_text(text, encoder, device, model_path, merge_words=merge)


@st.cache_data(max_entries=8, ttl=3600, show_spinner="Encoding the lines as one padded batch…")
def cached_batch(lines: tuple[str, ...], encoder: str, merge: bool, device: str, model_path: str | None) -> list[tx.Encoding]:
    return tx.encode_texts(list(lines), encoder, device, model_path, merge_words=merge)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def cached_query(query: str, encoder: str, device: str, model_path: str | None) -> torch.Tensor:
    return tx.embed_query(query, encoder, device if encoder != "random" else "cpu", model_path)


@st.cache_resource(max_entries=16, ttl=3600, show_spinner="Computing attention…")
def cached_analysis(_enc: tx.Encoding, key: tuple, similarity: str, temperature: float, device: str) -> tx.TextAnalysis:
    # ``key`` names the encoding (the encoding itself is not hashed); cache_resource: the (n, n) matrix is
    # shared read-only by every session, never unpickled per rerun
    analysis = tx.analyze_encoding(_enc, similarity, temperature, device=device)
    for array in (analysis.weights, analysis.scores, analysis.entropy):
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
    return analysis


@st.cache_resource(max_entries=8, ttl=3600, show_spinner="Running MiniLM with output_attentions…")
def cached_model_attention(_enc: tx.Encoding, key: tuple, start: int, device: str) -> tx.ModelAttention:
    return tx.model_attentions(_enc, start, device)


def read_link() -> None:
    """The link's settings into the widgets once per session; later runs only refill what Streamlit dropped."""
    ss, first = st.session_state, not st.session_state.get("_txt_url_read")
    ss["_txt_url_read"] = True
    state = TextPageState.from_query(st.query_params) if first else TextPageState(
        sample=ss["sample"] if ss.get("sample") in ts.SAMPLES else "kitten")
    for name, key in WIDGET_KEYS.items():
        if first or key not in ss:
            ss[key] = state.shown_text if name == "text" else getattr(state, name)
    if state.ignored:
        ss["_txt_url_ignored"] = state.ignored


def write_link() -> None:
    """The settings (and the text, when it fits) into the address bar, for sharing."""
    ss = st.session_state
    state = TextPageState(**{name: ss[key] for name, key in WIDGET_KEYS.items() if ss.get(key) is not None})
    params = state.to_query()
    for key in [k for k in st.query_params if k in ts.QUERY_PARAMS and k not in params]:
        del st.query_params[key]
    st.query_params.update(params)


def load_sample() -> None:
    key = st.session_state["sample"]
    st.session_state.update(text=ts.sample_text(key), batch=key == "batch", win=0)


def show_notes(notes, already=()) -> None:
    for note in dict.fromkeys(notes):  # unique, in order
        if note not in already:
            st.caption(f":material/info: {note}")


def heatmap(weights: np.ndarray, labels: list[str], first: int, title: str, key: str, selectable: bool = False):
    clickable = selectable and len(labels) <= ts.CLICK_MAX_TOKENS  # one marker per cell: small windows only
    args = dict(title=title, colorbar_title="weight", first_index=first)
    fig = (clickable_heatmap(weights, labels, x_title="key (attended to)", y_title="query (attending)",
                             show_values=False, hover_hint="", zoomable=True, **args) if clickable
           else matrix_figure(weights, labels, **args))
    style_figure(fig)  # bigger labels in classroom mode
    select = dict(on_select="rerun", selection_mode="points") if clickable else {}
    st.plotly_chart(fig, key=key, config={"scrollZoom": True, "displaylogo": False}, **select)


def apply_heatmap_click(first: int, n: int) -> None:
    """A clicked cell picks its row's token, once per click (the chart's state arrives before the widgets)."""
    cell = parse_clicked_cell(st.session_state.get("heat"), n, n)
    if cell is not None and cell != st.session_state.get("_heat_seen"):
        st.session_state["token"] = first + cell[0]
    st.session_state["_heat_seen"] = cell


def token_picker(enc: tx.Encoding, label: str = "Token (click a heatmap row or pick one)") -> int:
    n = len(enc.tokens)
    if not isinstance(st.session_state.get("token"), int) or not (0 <= st.session_state["token"] < n):
        st.session_state["token"] = 0
    if n <= tx.MATRIX_MAX_TOKENS:
        return st.selectbox(label, list(range(n)), key="token", format_func=lambda i: f"{i} · {enc.tokens[i]}")
    return int(st.number_input(f"{label} (index 0–{n - 1})", 0, n - 1, key="token", step=1))


def window_slider(last: int, label: str) -> int:
    """The window's first token: a slider over 0..last (none when everything fits)."""
    st.session_state["win"] = ts.clamp_start(st.session_state.get("win", 0), last)
    return st.slider(label, 0, last, key="win", step=1) if last else 0


def row_metrics(weights: np.ndarray, what: str) -> None:
    eff, entropy, largest = ts.row_summary(weights)
    c1, c2, c3 = st.columns(3)
    c1.metric(f"Effective tokens ({what})", f"{eff:.1f}", help="exp(entropy): 1 = all weight on one token, n = spread "
              "evenly over all n tokens.")
    c2.metric("Entropy", f"{entropy:.2f} nats")
    c3.metric("Largest weight", f"{largest:.3f}")


def downloads(*args, name: str) -> None:
    """The view's files (``attnviz.state.text.downloads``), each built only when its button is clicked."""
    for col, (label, build, filename, mime) in zip(st.columns(4), ts.downloads(*args, name=name)):
        col.download_button(label, build, filename, mime, on_click="ignore", key=f"dl_{filename}")


def view_row(enc: tx.Encoding, sim: str, temp: float, device: str, model_path: str | None) -> None:
    if st.session_state["view"] == "query":
        query = st.session_state.get("query", "").strip()
        if not query:
            st.info("Type a word or phrase above: its vector (the mean of its tokens' vectors, same encoder) becomes "
                    "the query, and each token of your text gets softmax(sim(query, token) / T).")
            return
        qv, k, what, name = cached_query(query, enc.encoder, device, model_path), None, "query row", "query_attention"
    else:
        query, qv, k = None, None, token_picker(enc, "Token whose row to show")
        what, name = f"row of token {k}", f"row_{k}"
    a = tx.analyze_encoding(enc, sim, temp, query, token=k, include_matrix=False, row_stats=False, device=device,
                            query_vector=qv)
    st.html(a.highlight())
    row_metrics(a.scores, what)
    st.dataframe(ts.top_token_rows(a), hide_index=True, width="stretch")
    show_notes(a.notes, enc.notes)
    downloads(a, name=name)


def view_matrix(enc: tx.Encoding, key: tuple, sim: str, temp: float, device: str) -> None:
    n = len(enc.tokens)
    start = window_slider(ts.heatmap_last_start(n), f"Window: the text has {n:,} tokens; the heatmap shows "
                          f"{ts.HEATMAP_TOKENS} of them, starting at token")
    received = cached_analysis(enc, key, sim, temp, device)
    w = ts.matrix_window(enc, received, sim, temp, start, device)
    apply_heatmap_click(w.start, w.stop - w.start)
    st.markdown("**Attention received** by each token (mean over all rows):")
    st.html(received.highlight())
    left, right = st.columns([3, 2])
    with left:
        part = f", tokens {w.start}–{w.stop - 1} of {n}" if w.partial else ""
        heatmap(w.square, w.labels, w.start, f"{SIMILARITIES[sim].label}, T = {temp:g}{part}", "heat", selectable=True)
        if w.partial:
            st.caption(f"Rows sum to 1 over all {n:,} tokens; the keys in this window hold {w.share:.0%} of the "
                       "shown rows' weight on average.")
    with right:
        st.markdown(f"**Top {ts.TOP_K} pairs** (query → key, diagonal left out)")
        st.dataframe(ts.top_pair_rows(w.square, w.labels, w.start), hide_index=True, width="stretch")
        st.markdown("**Entropy per row** (effective tokens = exp(entropy))")
        if received.entropy is not None:
            entropy = received.entropy[w.start:w.stop]
            mean, (lo, lo_eff), (hi, hi_eff) = ts.entropy_summary(entropy)
            st.caption(f"Mean {mean:.1f} effective tokens per row (of {n:,}); most focused: "
                       f"{md_escape(f'{w.start + lo} · {w.labels[lo]}')} ({lo_eff:.1f}), most spread: "
                       f"{md_escape(f'{w.start + hi} · {w.labels[hi]}')} ({hi_eff:.1f}).")
            st.dataframe(ts.entropy_rows(w.rows, entropy, enc.tokens, w.start), hide_index=True, width="stretch",
                         height=300)
    k = token_picker(enc)
    st.markdown(f"**What token {k} attends to:**")
    st.html(tx.analyze_encoding(enc, sim, temp, token=k, include_matrix=False, row_stats=False, device=device).highlight())
    show_notes(received.notes, enc.notes)
    downloads(received, w.square, [f"{w.start + i}:{t}" for i, t in enumerate(w.labels)], name="self_attention")


def view_model(enc: tx.Encoding, key: tuple, sim: str, temp: float, device: str) -> None:
    pieces = tx.load_model(enc.model_path, "cpu").content_length
    start = window_slider(ts.model_last_start(enc.groups, pieces), f"Window: the model reads {pieces} word pieces "
                          f"at a time and the text has {len(enc.groups):,} tokens; the window starts at token")
    ma = cached_model_attention(enc, key, start, device)
    c1, c2, c3 = st.columns(3)
    st.session_state["layer"], st.session_state["head"] = ts.model_selection(
        st.session_state.get("layer"), st.session_state.get("head"), ma.num_layers, ma.num_heads)
    head = c2.selectbox("Head", list(ts.HEADS_SPECIAL) + list(range(ma.num_heads)), key="head", format_func=lambda h: f"head {h + 1}"
                        if isinstance(h, int) else {"average": f"average of {ma.num_heads} heads"}.get(h, "rollout (all layers)"))
    layer = c1.selectbox("Layer", list(range(ma.num_layers)), key="layer", format_func=lambda i: f"layer {i + 1}",
                         disabled=head == "rollout")
    special = ts.has_special(ma) and c3.toggle("Show [CLS]/[SEP]", key="special", help="Trained models park much "
                                               "attention on separators; hidden, rows are renormalised over the text.")
    c = ts.compare_with_model(enc, ma, sim, temp, layer, head, special, device)
    left, right = st.columns(2)
    with left:
        heatmap(c.similarity_rows, list(ma.tokens), ma.unit_start, f"Attention as similarity: {sim}, T = {temp:g}", "heat_sim")
    with right:
        heatmap(c.matrix, c.labels, c.first, f"{ma.model_name}: {c.what}", "heat_model")
    st.caption(c.note)
    k = token_picker(enc, "Token whose rows to compare")
    if ma.unit_start <= k < ma.unit_end:
        for col, rows, who in zip(st.columns(2), (c.similarity_rows, c.text_rows), ("similarity", f"{ma.model_name}")):
            col.html(highlight_html(c.snippet, c.offsets, rows[k - ma.unit_start], list(ma.tokens), legend_label=f"{who} "
                                    f"attention from token {k}" + ("" if rows is c.similarity_rows else f" ({c.what})")))
    else:
        st.caption(f"Token {k} is outside the model's window ({ma.unit_start}–{ma.unit_end - 1}); move the window or "
                   "pick another token.")
    if st.toggle(f"All {ma.num_layers * ma.num_heads} heads at a glance", key="grid"):
        grid = ma.head_grid(special, max_tokens=ts.GRID_TOKENS)
        st.image(matrix_png(np.nan_to_num(grid, nan=0.0), cell=max(1, 1200 // grid.shape[1])), output_format="PNG",
                 caption=f"Rows: layers 1–{ma.num_layers} (top to bottom); columns: heads 1–{ma.num_heads}. Each square is "
                         f"one head over the first {min(ts.GRID_TOKENS, c.matrix.shape[0])} tokens of the window, scaled "
                         "to its own maximum.")
    show_notes(ma.notes)
    downloads(None, c.matrix, [f"{i}:{t}" for i, t in enumerate(c.labels)], name="model_attention")


@st.fragment
def show_view(enc: tx.Encoding, key: tuple, view: str, sim: str, temp: float, device: str, model_path: str | None) -> None:
    """Views rerun alone when their own widgets (token, window, layer, head) change."""
    try:
        if view in ("query", "row"):
            view_row(enc, sim, temp, device, model_path)
        elif view == "matrix":
            view_matrix(enc, key, sim, temp, device)
        else:
            view_model(enc, key, sim, temp, device)
    except Exception as err:  # noqa: BLE001 - typed errors become one sentence, others are logged
        show_error(err)
    write_link()


def main() -> None:
    read_link()
    ss = st.session_state
    st.title(page("pages/text.py").heading)
    st.markdown(
        "Each token of your text gets a vector; attention scores pairs with a **similarity** "
        "$s(i,j)=\\mathrm{sim}(x_i,x_j)$, turns each row into **weights** $a_{ij}=\\mathrm{softmax}_j(s(i,j)/T)$ "
        "and mixes the vectors $y_i=\\sum_j a_{ij}x_j$ (the standard row-softmax form of the seed article's "
        "sequential attention). Switch the similarity and watch the colours move; compare with what the "
        "trained MiniLM learned.")
    if ss.get("_txt_url_ignored"):
        st.caption(f":material/warning: The link's {', '.join(ss.pop('_txt_url_ignored'))} parameter(s) were not "
                   "valid and were ignored.")
    left, right = st.columns([3, 2], gap="large")
    with left:
        st.selectbox("Sample text", list(ts.SAMPLES), key="sample", format_func=lambda k: ts.SAMPLES[k][0],
                     on_change=load_sample)
        st.text_area("Your text (Ctrl+Enter to apply)", key="text", height=200,
                     help="Any language; very long text is cut with a notice (see the docs for the limits).")
        c1, c2 = st.columns(2)
        encoder = c1.selectbox("Encoder", list(tx.ENCODERS), key="encoder", format_func=lambda e: tx.ENCODERS[e].label)
        merge = c2.toggle("Merge word pieces into words", key="merge")
        batch = c2.toggle("One text per line (batch)", key="batch", help="Each line is its own text; all are padded "
                          f"into one batch with a mask (up to {ts.BATCH_MAX_LINES}).")
        st.caption(tx.ENCODERS[encoder].sentence)
        if not tx.ENCODERS[encoder].trained:
            st.warning("Untrained vectors: nothing here was learned, so only identical word pieces look alike. "
                       "Compare with a trained encoder to see why learned embeddings matter.", icon=":material/casino:")
    with right:
        sim, temp = similarity_picker("txt", container=right)
    view = st.radio("View", list(ts.VIEWS), key="view", format_func=ts.VIEWS.get, horizontal=True)
    if view == "query":
        st.text_input("Query word or phrase", key="query", max_chars=tx.MAX_QUERY_CHARS, placeholder="e.g. cat, money, 学习")
    device = current_device()
    try:
        settings = load_settings()  # ATTNVIZ_MODEL_PATH / ATTNVIZ_PAGE_MAX_CHARS: the server's, never a link's
    except Exception as err:  # noqa: BLE001
        show_error(err)
        return
    model_path, limit = settings.model_path, settings.page_max_chars
    text, truncated = ts.truncate_text(ss["text"], limit)
    if truncated:
        st.warning(f"Your text has {len(ss['text']):,} characters; this page analyses the first {len(text):,} "
                   f"(the limit is {limit:,}). For longer text use the library or `attnviz text`.", icon=":material/content_cut:")
    try:
        if batch:
            lines = tx.split_lines(text, ts.BATCH_MAX_LINES)
            encs = cached_batch(tuple(lines), encoder, merge, device, model_path)
            query = ss.get("query", "").strip() if view == "query" else None
            analyses = tx.analyze_encodings(encs, sim, temp, query or None, device)
            what = f"attention from the query {query!r}" if query else "attention received (mean over each text's rows)"
            st.markdown(f"**{len(lines)} texts, batched** (padded to {max(len(e.tokens) for e in encs)} tokens, "
                        "padding masked out): " + md_escape(what))  # the query is user text: never Markdown
            st.html(highlight_many([(a.text, a.offsets, a.scores, a.tokens) for a in analyses], legend_label=what,
                                   captions=[f"line {i + 1}" for i in range(len(lines))]))
            st.download_button("All lines (JSON)", lambda: to_json([a.to_dict(include_matrix=False) for a in analyses]),
                               "batch.json", "application/json", on_click="ignore", key="dl_batch_json")
            line = min(st.selectbox("Line to inspect below", list(range(len(lines))), key="line",
                                    format_func=lambda i: f"line {i + 1}: {lines[i][:60]}"), len(encs) - 1)
            enc, key_text = encs[line], lines[line]
        else:
            enc, key_text = cached_encoding(text, encoder, merge, device, model_path), text
        show_notes(enc.notes)
    except Exception as err:  # noqa: BLE001
        show_error(err)
        write_link()
        return
    show_view(enc, (key_text, encoder, merge, device, model_path), view, sim, temp, device, model_path)


main()
