"""Text attention: your own text, its real tokens, and where attention goes under any similarity.

Read widgets -> call attnviz -> show: the view first (left; first on a phone), settings in a narrow column, the
maths in an expander; settings, link, limits, scales and figures are ``attnviz.state.text``'s. The encoding is
cached per (text, encoder, merge, device, model): other settings never rerun the encoder."""

from __future__ import annotations

import streamlit as st
import torch

from attnviz import SIMILARITIES
from attnviz import text as tx
from attnviz.figures import clickable_heatmap
from attnviz.pages import MINILM, page
from attnviz.render import to_json
from attnviz.settings import load_settings
from attnviz.state import text as ts
from attnviz.state.text import TextPageState
from ui.cache import memo_data, memo_resource
from ui.classroom import FIGURE_FONT, classroom_on, md_escape, theme_type
from ui.shell import require_shell
from ui.widgets import (clicked_row, current_device, downloads_popover, explain_similarity, index_picker, matrix_chart,
                        model_head_picker, read_link, show_error, show_notes, similarity_picker, start_slider, token_box,
                        wait_for_model, write_link)

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

#: TextPageState field -> the widget key that holds it
WIDGET_KEYS = {"sample": "sample", "text": "text", "similarity": "txt_sim", "temperature": "txt_temp",
               "encoder": "encoder", "view": "view", "merge": "merge", "batch": "batch", "query": "query",
               "token": "token", "layer": "layer", "head": "head", "window": "win", "scale": "scale"}


@memo_data(ts.ENCODING_SPINNER)  # a sample's encoding is the class's; one's own text lives with the session
def cached_encoding(text, encoder: str, merge: bool, device: str, model_path: str | None):
    """One text -> its ``Encoding``; a tuple of lines -> their encodings as one padded batch. A long text's
    windows show a progress bar whose every update is a stop point: a rerun or a closed session ends the job."""
    if isinstance(text, tuple):
        return tx.encode_texts(list(text), encoder, device, model_path, merge_words=merge)
    bar = []  # made at the first window (inside this function, so a cache hit replays it, emptied, harmlessly)

    def progress(done: int, total: int) -> None:
        if not bar:
            bar.append(st.empty())
        if done < total:
            bar[0].progress(*ts.encoding_progress(done, total))
        else:
            bar[0].empty()

    return tx.encode_text(text, encoder, device, model_path, merge_words=merge, progress=progress)


@memo_data()
def cached_cut(text: str, model_path: str | None) -> tuple[str, int, bool]:
    return ts.truncate_tokens(text, model_path)


@memo_data(shipped=(TextPageState().query,))
def cached_query(query: str, encoder: str, device: str, model_path: str | None) -> torch.Tensor:
    return tx.embed_query(query, encoder, device if encoder != "random" else "cpu", model_path)


@memo_resource("Running MiniLM with output_attentions…", inputs=("text",))
def cached_model_attention(_enc: tx.Encoding, text: str, key: tuple, start: int, device: str) -> tx.ModelAttention:
    return tx.model_attentions(_enc, start, device)  # ``text`` + ``key`` name the encoding


def heatmap(weights, labels, first, title, key, lo, hi, n_keys, selectable=False, **kw) -> None:
    if not ts.drawn_in_levels(len(labels), selectable):  # small windows: every cell clickable, full colour
        return matrix_chart(clickable_heatmap(weights, labels, title=title, x_title="key (attended to)", y_title="query "
                            "(attending)", show_values=False, hover_hint="", first_index=first, colorbar_title="weight"),
                            key, clickable=True)
    fig = ts.heatmap_figure(weights, labels, first, title=title, lo=lo, hi=hi, theme=theme_type(), uniform=1 / n_keys,
                            font=FIGURE_FONT[classroom_on()], **kw,
                            height=ts.HEATMAP_HEIGHT + 120 * classroom_on())
    matrix_chart(fig, key)


def tokens_of(toks, gaps, weights, key, **kw) -> None:  # long texts scroll inside a box
    token_box(toks, gaps, weights, key, box_height=ts.token_box_height(len(toks)), **kw)


def token_picker(enc: tx.Encoding, label: str = "Token (click a word or pick one)") -> int:
    return index_picker(label, len(enc.tokens), "token", enc.tokens, tx.MATRIX_MAX_TOKENS)


def view_row(enc, sim, temp, device, model_path) -> None:
    if (query := st.session_state.get("query", "").strip() if st.session_state["view"] == "query" else None) == "":
        st.info("Type a word or phrase in the query box, or click a word of the text.")
        return
    k = None if query else token_picker(enc, "Token whose row to show (or click a word)")
    a = tx.analyze_encoding(enc, sim, temp, query, token=k, include_matrix=False, row_stats=False, device=device,
                            query_vector=cached_query(query, enc.encoder, device, model_path) if query else None)
    pick = dict(target="query", on_pick=lambda i: ts.clicked_query(enc, i), whole_app=True) if query else {"target": "token"}
    tokens_of(*ts.token_pieces(enc), a.scores, "tv_q" if query else "tv_row", selected=k, label=a.score_label(),
              labels=list(enc.tokens), **pick)
    st.caption(ts.row_caption(a.scores))
    with st.expander(f"Top {ts.TOP_K} tokens"):
        st.dataframe(ts.top_token_rows(a), hide_index=True, width="stretch")
    show_notes(a.notes, enc.notes)
    downloads_popover(ts.downloads(a, name="query_attention" if query else f"row_{k}"))


def view_matrix(enc, sim, temp, device) -> None:
    n, view_box = len(enc.tokens), st.container()  # the matrix first, its window slider under it
    start = start_slider(ts.heatmap_last_start(n), f"The text has {n:,} tokens; the matrix shows {ts.HEATMAP_TOKENS} "
                          "of them, starting at token", "win")
    w = ts.matrix_window(enc, None, sim, temp, start, device)  # the window's rows only: O(512 x n), never n x n
    if (row := clicked_row("heat", w.stop - w.start)) is not None:
        st.session_state["token"] = w.start + row  # a clicked cell picks its row
    (lo, hi), = ts.shared_scale([w.square], st.session_state["scale"])
    part = f", tokens {w.start}–{w.stop - 1} of {n}" if w.partial else ""
    with view_box:
        heatmap(w.square, w.labels, w.start, f"{SIMILARITIES[sim].label}, T = {temp:g}{part}", "heat", lo, hi, n, True)
        st.caption(ts.matrix_caption(st.session_state["scale"], lo, hi, w))
    k = token_picker(enc)
    row = tx.analyze_encoding(enc, sim, temp, token=k, include_matrix=False, row_stats=False, device=device)
    j = index_picker("Key token of the cell whose exact weight to show", n, "cell_key", enc.tokens,
                     tx.MATRIX_MAX_TOKENS)
    levels = (lo, hi) if ts.drawn_in_levels(w.stop - w.start) else None  # the 8-bit heatmap's level, if drawn so
    st.caption(md_escape(ts.cell_caption(enc.tokens, k, j, float(row.scores[j]), levels)))  # exact, on demand
    pieces = ts.token_pieces(enc)
    tokens_of(*pieces, row.scores, "tv_mrow", selected=k, target="token", label=row.score_label(), labels=list(enc.tokens))
    with st.expander(ts.received_title(w)):
        tokens_of(*pieces, w.received, "tv_recv", label="attention received", labels=list(enc.tokens))
    with st.expander(f"Top {ts.TOP_K} pairs and entropy per row"):
        st.dataframe(ts.top_pair_rows(w.square, w.labels, w.start), hide_index=True, width="stretch")
        st.dataframe(ts.entropy_rows(w.rows, w.entropy, enc.tokens, w.start), hide_index=True, width="stretch",
                     height=300)
    show_notes(row.notes, enc.notes)
    downloads_popover(ts.matrix_downloads(w, row, k, lo, hi))  # the window shown, then the picked row


def view_model(enc, key, sim, temp, device) -> None:
    pieces, ss, view_box = tx.load_model(enc.model_path, "cpu").content_length, st.session_state, st.container()
    start = start_slider(ts.model_last_start(enc.groups, pieces), f"MiniLM reads {pieces} word pieces at a time; "
                          f"the text has {len(enc.groups):,} tokens. The window starts at token", "win")
    ma = cached_model_attention(enc, key[0], key, start, device)
    ss["layer"], ss["head"] = ts.model_selection(ss.get("layer"), ss.get("head"), ma.num_layers, ma.num_heads)
    with view_box:
        layer, head, special = model_head_picker(ma.num_layers, ma.num_heads, ts.HEADS_SPECIAL, ts.head_label,
                                                 ts.has_special(ma))
    c = ts.compare_with_model(enc, ma, sim, temp, layer, head, special, device)
    scale, shared = ss["scale"], not ss.get("sep_scales", False)
    (l1, h1), (l2, h2) = scales = ts.shared_scale([c.similarity_rows, c.matrix], scale, shared)
    left, right = view_box.columns(2)
    with left:
        heatmap(c.similarity_rows, list(ma.tokens), ma.unit_start, f"Similarity: {sim}, T = {temp:g}", "heat_sim",
                l1, h1, len(ma.tokens), colorbar=not shared, x_ticks=7)  # one scale: one colour bar, on the right
    with right:
        heatmap(c.matrix, c.labels, c.first, f"{ma.model_name}: {c.what}", "heat_model", l2, h2, len(c.labels), x_ticks=7)
    view_box.caption(ts.pair_caption(scale, scales, shared, c.note))
    k = token_picker(enc, "Token whose rows to compare")
    if (cmp := ts.compare_rows(c, ma, k, scale)) is None:
        st.caption(f"Token {k} is outside the model's window ({ma.unit_start}–{ma.unit_end - 1}); move the window.")
    else:
        toks, gaps, rows, lo, hi = cmp
        for col, r, who in zip(st.columns(2), rows, ("similarity", ma.model_name)):
            with col:
                tokens_of(toks, gaps, r, f"tv_cmp_{who}", label=f"{who} attention from token {k}", vmin=lo, vmax=hi)
    if st.toggle(f"All {ma.num_layers * ma.num_heads} heads at a glance", key="grid"):
        st.image((grid := ts.head_grid_png(ma, special))[0], output_format="PNG", caption=grid[1])
    show_notes(ma.notes)
    downloads_popover(ts.downloads(None, c.matrix, [f"{i}:{t}" for i, t in enumerate(c.labels)], name="model_attention"))


@st.fragment
def show_view(enc, key: tuple, view: str, sim: str, temp: float, device: str, model_path: str | None) -> None:
    """Views rerun alone when their own widgets (token, window, layer, head) change."""
    try:
        if view in ("query", "row"):
            view_row(enc, sim, temp, device, model_path)
        else:
            view_matrix(enc, sim, temp, device) if view == "matrix" else view_model(enc, key, sim, temp, device)
    except Exception as err:  # noqa: BLE001 - typed errors become one sentence, others are logged
        show_error(err)
    write_link(TextPageState, WIDGET_KEYS, ts.QUERY_PARAMS)


def settings(side) -> tuple:
    """The settings column: text, similarity, scale; the rest in a popover."""
    with side:
        st.selectbox("Sample text", list(ts.SAMPLE_CHOICES), key="sample", format_func=ts.SAMPLE_CHOICES.get,
                     on_change=lambda: st.session_state.update(ts.sample_update(st.session_state["sample"])))
        st.text_area("Your text", key="text", height=110, help="Any language; Ctrl+Enter or Apply. Very long text "
                     "is cut with a notice.", on_change=lambda: st.session_state.update(
                         sample=ts.sample_of(st.session_state["text"])))
        st.button("Apply", key="apply", icon=":material/check:")
        sim, temp = similarity_picker("txt", container=side, explain=False)
        st.radio("Colour scale", list(ts.SCALES), key="scale", format_func=ts.SCALES.get)
        with st.popover("More settings", icon=":material/tune:", width="stretch"):
            encoder = st.selectbox("Encoder", list(tx.ENCODERS), key="encoder", format_func=lambda e: tx.ENCODERS[e].label)
            st.caption(tx.ENCODERS[encoder].sentence)
            merge = st.toggle("Merge word pieces into words", key="merge")
            batch = st.toggle("One text per line (batch)", key="batch", help="Each line is its own text; all are "
                              f"padded into one batch with a mask (up to {ts.BATCH_MAX_LINES}).")
            st.toggle("Separate colour scales side by side", key="sep_scales")
        if note := ts.link_note(st.session_state["text"]):  # said before the teacher copies the link
            st.warning(note, icon=":material/link_off:")
        else:
            st.caption(ts.SHARE_OK)
    return sim, temp, encoder, merge, batch


def show_batch(text, encoder, merge, device, model_path, sim, temp, view):
    lines = tx.split_lines(text, ts.BATCH_MAX_LINES)
    encs = cached_encoding(tuple(lines), encoder, merge, device, model_path)
    query = st.session_state.get("query", "").strip() if view == "query" else None
    analyses = tx.analyze_encodings(encs, sim, temp, query or None, device)
    what, html = ts.batch_highlight(analyses, query)
    st.markdown(f"**{len(lines)} texts, batched** (padded to {max(len(e.tokens) for e in encs)} tokens, padding "
                "masked out): " + md_escape(what))  # the query is user text: never Markdown
    st.html(html)
    st.download_button("All lines (JSON)", lambda: to_json([a.to_dict(include_matrix=False) for a in analyses]),
                       "batch.json", "application/json", on_click="ignore", key="dl_batch_json")
    line = min(st.selectbox("Line to inspect below", list(range(len(lines))), key="line",
                            format_func=lambda i: f"line {i + 1}: {lines[i][:60]}"), len(encs) - 1)
    return encs[line], lines[line]


def main() -> None:
    ss = st.session_state
    read_link(TextPageState, WIDGET_KEYS, "txt", lambda: TextPageState(
        sample=ss["sample"] if ss.get("sample") in ts.SAMPLES else "kitten"))
    st.title(page("pages/text.py").heading)
    if ignored := ss.pop("_txt_url_ignored", None):
        st.caption(ts.ignored_note(ignored))
        if note := ts.query_note(ignored, st.query_params):
            st.warning(note, icon=":material/content_cut:")
    try:
        cfg = load_settings()  # ATTNVIZ_MODEL_PATH / ATTNVIZ_PAGE_MAX_CHARS: the server's, never a link's
    except Exception as err:  # noqa: BLE001
        return show_error(err)
    main_col, side = st.columns([3, 1], gap="medium")  # a phone stacks them: the view first
    sim, temp, encoder, merge, batch = settings(side)
    device = current_device()
    with main_col:
        view = st.radio("View", list(ts.VIEWS), key="view", format_func=ts.VIEWS.get, horizontal=True,
                        label_visibility="collapsed")
        if view == "query":
            st.text_input("Query word or phrase (or click a word)", key="query", max_chars=tx.MAX_QUERY_CHARS,
                          placeholder="e.g. cat, money, 学习")
        text, truncated = ts.truncate_text(ss["text"], cfg.page_max_chars)
        if truncated:
            st.warning(ts.truncation_note(len(ss["text"]), len(text), cfg.page_max_chars), icon=":material/content_cut:")
        text, pieces, cut = cached_cut(text, cfg.model_path)  # a bounded update: at most PAGE_MAX_TOKENS pieces
        if cut:
            st.warning(ts.token_cut_note(pieces, text), icon=":material/content_cut:")
        if encoder != "random":
            wait_for_model(MINILM, cfg.model_path)
        try:
            enc, key_text = (show_batch(text, encoder, merge, device, cfg.model_path, sim, temp, view) if batch
                             else (cached_encoding(text, encoder, merge, device, cfg.model_path), text))
        except Exception as err:  # noqa: BLE001
            show_error(err)
            return write_link(TextPageState, WIDGET_KEYS, ts.QUERY_PARAMS)
        show_view(enc, (key_text, encoder, merge, device, cfg.model_path), view, sim, temp, device, cfg.model_path)
        show_notes(enc.notes)
        if not tx.ENCODERS[encoder].trained:
            st.warning(ts.UNTRAINED_NOTE, icon=":material/casino:")
        with st.expander("How attention is computed here", icon=":material/function:"):
            explain_similarity(sim, intro=ts.FORMULA_MD)


main()
