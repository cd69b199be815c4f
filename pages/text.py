"""Text attention: your own text, its real tokens, and where attention goes under any similarity.

A thin page: widgets -> attnviz.text -> show. Limits (docs/text.md):

* ``ATTNVIZ_PAGE_MAX_CHARS`` (default 50,000, ``attnviz.settings``): longer text is cut here, with a
  notice (the library and CLI take up to ``attnviz.text.MAX_TEXT_CHARS``); the model folder is
  ``ATTNVIZ_MODEL_PATH`` (default: the bundled all-MiniLM-L6-v2), never a link's parameter;
* ``HEATMAP_TOKENS``: the matrix heatmap shows a window of at most 512 tokens (a slider moves it);
* ``URL_MAX_TEXT_CHARS``: the shareable link keeps the text up to this size (the settings always);
* ``BATCH_MAX_LINES``: one-text-per-line batches hold at most this many lines.

Caching: the model is loaded once per process (attnviz.text's lock + cache); the encoding of a text
is ``st.cache_data`` (keyed by text, encoder, merge, device), so switching similarity, temperature,
query, token or view never runs the encoder again.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import streamlit as st
import torch

from attnviz import SIMILARITIES, effective_tokens, top_pairs
from attnviz import text as tx
from attnviz.highlight import highlight_html, highlight_many
from attnviz.render import escape_label, matrix_figure, matrix_png, to_json, weights_csv
from attnviz.settings import load_settings
from attnviz.walkthrough import parse_clicked_cell
from ui.classroom import md_escape, style_figure
from ui.shell import require_shell
from ui.widgets import TEMPERATURES, current_device, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

URL_MAX_INDEX = 1_000_000  # token / window indices in a link above this are refused
HEATMAP_TOKENS = 512
URL_MAX_TEXT_CHARS = 2_000
BATCH_MAX_LINES = 16
URL_MAX_QUERY_CHARS = 100
TOP_K = 10
CLICK_MAX_TOKENS = 128  # heatmap cells are clickable up to this many tokens (one marker per cell)
GRID_TOKENS = 96  # the all-heads overview shows at most this many tokens per head

ASSETS = Path(tx.__file__).resolve().parent / "assets"
SAMPLES = {
    "kitten": ("Kitten and car (English)", "text_en_kitten.txt"),
    "bank": ("River bank or money bank? (English)", "text_en_bank.txt"),
    "zh": ("注意力机制: the seed article (Chinese)", "text_zh_attention.txt"),
    "batch": ("Four sentences, one per line (batch)", "text_en_batch.txt"),
    "long": ("A short history of attention (English, ~1,800 tokens)", "text_en_long.txt"),
    "long5": ("The same essay five times (~8,900 tokens)", "text_en_long.txt"),
}
VIEWS = {
    "query": "Query attention",
    "row": "One token's row",
    "matrix": "Self-attention matrix",
    "model": "MiniLM's own heads",
}
HEADS_SPECIAL = ("average", "rollout")


# ------------------------------------------------------------------------------------------ caches


@st.cache_data(max_entries=8, show_spinner=False)
def sample_text(key: str) -> str:
    text = (ASSETS / SAMPLES[key][1]).read_text(encoding="utf-8")
    return "\n\n".join([text.strip()] * 5) + "\n" if key == "long5" else text


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
    # ``key`` identifies the encoding (text, encoder, merge, device, model); the encoding itself is not hashed.
    # cache_resource: the (n, n) matrix (up to 16 MiB) is shared read-only, not unpickled on every rerun
    analysis = tx.analyze_encoding(_enc, similarity, temperature, device=device)
    for array in (analysis.weights, analysis.scores, analysis.entropy):  # shared by every session: never written
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
    return analysis


@st.cache_resource(max_entries=8, ttl=3600, show_spinner="Running MiniLM with output_attentions…")
def cached_model_attention(_enc: tx.Encoding, key: tuple, start: int, device: str) -> tx.ModelAttention:
    # cache_resource: the (layers, heads, 512, 512) array is shared read-only, never copied per rerun
    return tx.model_attentions(_enc, start, device)


# ---------------------------------------------------------------------------------- URL parameters


def _valid_float_temperature(v: str) -> float | None:
    try:
        t = float(v)
    except ValueError:
        return None
    return t if math.isfinite(t) and t in TEMPERATURES else None


def _index(v: str, limit: int) -> int | None:
    """A non-negative integer below ``limit`` written in ASCII digits, else None."""
    return int(v) if v.isascii() and v.isdigit() and len(v) <= 6 and int(v) < limit else None


def _url_to_state() -> None:
    """Once per session: settings from the link into the widgets' state, every value validated."""
    if st.session_state.get("_txt_url_read"):
        return
    st.session_state["_txt_url_read"] = True
    qp = st.query_params
    ignored = []
    checks = {
        "sample": ("sample", lambda v: v if v in SAMPLES else None),
        "s": ("txt_sim", lambda v: v if v in SIMILARITIES else None),
        "t": ("txt_temp", _valid_float_temperature),
        "e": ("encoder", lambda v: v if v in tx.ENCODERS else None),
        "v": ("view", lambda v: v if v in VIEWS else None),
        "m": ("merge", lambda v: {"1": True, "0": False}.get(v)),
        "b": ("batch", lambda v: {"1": True, "0": False}.get(v)),
        "q": ("query", lambda v: v if len(v) <= URL_MAX_QUERY_CHARS and v.isprintable() else None),
        "k": ("token", lambda v: _index(v, URL_MAX_INDEX)),
        "l": ("layer", lambda v: _index(v, 64)),
        "h": ("head", lambda v: v if v in HEADS_SPECIAL else _index(v, 64)),
        "w": ("win", lambda v: _index(v, URL_MAX_INDEX)),
        "text": ("text", lambda v: v if 0 < len(v) <= URL_MAX_TEXT_CHARS else None),
    }
    for param, (key, check) in checks.items():
        if param not in qp:
            continue
        value = check(qp.get(param, ""))
        if value is None:
            ignored.append(param)
        else:
            st.session_state[key] = value
    if "text" not in qp and "sample" in st.session_state:
        st.session_state["text"] = sample_text(st.session_state["sample"])
    if ignored:
        st.session_state["_txt_url_ignored"] = ignored


def _state_to_url(text: str) -> None:
    """The settings (and the text up to URL_MAX_TEXT_CHARS) into the address bar, for sharing."""
    ss = st.session_state
    params = {"s": ss.get("txt_sim"), "t": f"{ss.get('txt_temp')}", "e": ss.get("encoder"), "v": ss.get("view"),
              "m": "1" if ss.get("merge") else "0", "b": "1" if ss.get("batch") else "0", "sample": ss.get("sample")}
    if ss.get("view") == "query" and ss.get("query") and len(ss["query"]) <= URL_MAX_QUERY_CHARS:
        params["q"] = ss["query"]
    if ss.get("view") in ("row", "matrix", "model"):
        params["k"] = str(ss.get("token", 0))
    if ss.get("view") == "model":
        params["l"], params["h"] = str(ss.get("layer", 0)), str(ss.get("head", "average"))
    if ss.get("win"):
        params["w"] = str(ss["win"])
    if text != sample_text(ss.get("sample", "kitten")) and len(text) <= URL_MAX_TEXT_CHARS:
        params["text"] = text
    for key in list(st.query_params):
        if key not in params and key in ("q", "k", "l", "h", "w", "text"):
            del st.query_params[key]
    st.query_params.update({k: v for k, v in params.items() if v is not None})


# --------------------------------------------------------------------------------------- helpers


def _load_sample() -> None:
    key = st.session_state["sample"]
    st.session_state["text"] = sample_text(key)
    st.session_state["batch"] = key == "batch"
    st.session_state["win"] = 0


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    """At most ``limit`` characters, cut at a space near the limit when there is one."""
    if len(text) <= limit:
        return text, False
    cut = text.rfind(" ", max(0, limit - 200), limit)
    return text[:cut if cut > 0 else limit], True


def _token_label(enc: tx.Encoding, i: int) -> str:
    return f"{i} · {enc.tokens[i]}"


def _show_notes(notes, already=()) -> None:
    for note in dict.fromkeys(notes):  # unique, in order
        if note not in already:
            st.caption(f"ℹ️ {note}")


def _heatmap(weights: np.ndarray, labels: list[str], first: int, title: str, key: str, selectable: bool = False):
    fig = matrix_figure(weights, labels, title=title, colorbar_title="weight")
    ticks = [f"{first + i}·{escape_label(t)}" for i, t in enumerate(labels)]  # absolute token indices
    fig.update_traces(x=ticks, y=ticks)
    style_figure(fig)  # bigger labels in classroom mode
    kwargs = {}
    if selectable and len(labels) <= CLICK_MAX_TOKENS:
        # plotly heatmaps report no clicks to Streamlit: an invisible marker on each cell does (as in
        # ui.classroom.clickable_matrix), carrying customdata = [row, col, weight]
        import plotly.graph_objects as go

        n = len(labels)
        rows, cols = np.divmod(np.arange(n * n), n)
        fig.update_traces(hoverinfo="skip", hovertemplate=None, selector=dict(type="heatmap"))
        fig.add_trace(go.Scatter(
            x=[ticks[j] for j in cols], y=[ticks[i] for i in rows], mode="markers", showlegend=False,
            marker=dict(symbol="square", size=max(6, min(30, 600 // n)), color="rgba(0,0,0,0)"),
            customdata=np.stack([rows, cols, np.asarray(weights, dtype=np.float64).ravel()], axis=1),
            hovertemplate="query %{y}<br>key %{x}<br>weight %{customdata[2]:.4f}<extra></extra>",
            selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
        ))
        fig.update_layout(clickmode="event+select", hovermode="closest")
        fig.update_xaxes(range=[-0.5, n - 0.5])  # the markers must not pad the axes
        fig.update_yaxes(autorange=False, range=[n - 0.5, -0.5])
        kwargs = dict(on_select="rerun", selection_mode="points")
    return st.plotly_chart(fig, key=key, config={"scrollZoom": True, "displaylogo": False}, **kwargs)


def _apply_heatmap_click(first: int, rows: int, cols: int) -> None:
    """A clicked heatmap cell picks its row's token, once per click (the chart's state arrives before
    the widgets, so the picker below can still be used afterwards)."""
    cell = parse_clicked_cell(st.session_state.get("heat"), rows, cols)
    if cell is not None and cell != st.session_state.get("_heat_seen"):
        st.session_state["token"] = first + cell[0]
    st.session_state["_heat_seen"] = cell


def _token_picker(enc: tx.Encoding, label: str = "Token (click a heatmap row or pick one)") -> int:
    n = len(enc.tokens)
    if not isinstance(st.session_state.get("token"), int) or not (0 <= st.session_state["token"] < n):
        st.session_state["token"] = 0
    if n <= tx.MATRIX_MAX_TOKENS:
        return st.selectbox(label, list(range(n)), key="token", format_func=lambda i: _token_label(enc, i))
    return int(st.number_input(f"{label} (index 0–{n - 1})", 0, n - 1, key="token", step=1))


def _row_metrics(weights: np.ndarray, what: str) -> None:
    w = torch.from_numpy(np.asarray(weights, dtype=np.float64))
    eff = float(effective_tokens(w))
    c1, c2, c3 = st.columns(3)
    c1.metric(f"Effective tokens ({what})", f"{eff:.1f}", help="exp(entropy): 1 = all weight on one token, "
              "n = spread evenly over all n tokens.")
    c2.metric("Entropy", f"{math.log(max(eff, 1e-12)):.2f} nats")
    c3.metric("Largest weight", f"{float(w.max()):.3f}")


def _top_table(analysis: tx.TextAnalysis) -> None:
    rows = [{"rank": r, "index": i, "token": tok, "text": analysis.text[slice(*analysis.offsets[i])],
             "weight": round(w, 5)} for r, (i, tok, w) in enumerate(analysis.top_tokens(TOP_K), 1)]
    st.dataframe(rows, hide_index=True, width="stretch")


def _downloads(analysis: tx.TextAnalysis | None, matrix: np.ndarray | None, labels: list[str] | None,
               name: str) -> None:
    """CSV / JSON / standalone HTML / PNG; each file is built only when its button is clicked."""
    cols = st.columns(4)
    if matrix is not None and labels is not None:
        cols[0].download_button("Weights (CSV)", lambda: weights_csv(matrix, labels, labels), f"{name}.csv",
                                "text/csv", on_click="ignore", key=f"dl_csv_{name}")
    elif analysis is not None:
        cols[0].download_button("Weights (CSV)", analysis.to_csv, f"{name}.csv", "text/csv",
                                on_click="ignore", key=f"dl_csv_{name}")
    if analysis is not None:
        cols[1].download_button("Weights (JSON)", analysis.to_json, f"{name}.json", "application/json",
                                on_click="ignore", key=f"dl_json_{name}")
        cols[2].download_button("Highlighted text (HTML)", analysis.to_html, f"{name}.html",
                                "text/html", on_click="ignore", key=f"dl_html_{name}")
    if matrix is not None:
        cols[3].download_button("Matrix (PNG)", lambda: matrix_png(matrix), f"{name}.png", "image/png",
                                on_click="ignore", key=f"dl_png_{name}")


def _window(n: int, size: int) -> tuple[int, int]:
    """The heatmap window [start, stop): a slider when the text is longer than the window."""
    if n <= size:
        st.session_state["win"] = 0
        return 0, n
    start = min(int(st.session_state.get("win", 0) or 0), n - size)
    st.session_state["win"] = start
    start = st.slider(f"Window: the text has {n:,} tokens; the heatmap shows {size} of them, starting at token",
                      0, n - size, key="win", step=1)
    return start, start + size


def _model_window_start(enc: tx.Encoding, max_pieces: int) -> int:
    """First token of the model's window: a slider whose last position reaches the end of the text."""
    groups = enc.groups
    if groups[-1][1] - groups[0][0] <= max_pieces:
        st.session_state["win"] = 0
        return 0
    last = len(groups) - 1  # the smallest start whose window still ends at the text's last piece
    while last > 0 and groups[-1][1] - groups[last - 1][0] <= max_pieces:
        last -= 1
    st.session_state["win"] = min(int(st.session_state.get("win", 0) or 0), last)
    return st.slider(f"Window: the model reads {max_pieces} word pieces at a time and the text has "
                     f"{len(groups):,} tokens; the window starts at token", 0, last, key="win", step=1)


# ------------------------------------------------------------------------------------------- views


def view_query(enc: tx.Encoding, sim: str, temp: float, device: str, model_path: str | None) -> None:
    query = st.session_state.get("query", "").strip()
    if not query:
        st.info("Type a word or phrase above: its vector (the mean of its tokens' vectors, same encoder) becomes "
                "the query, and each token of your text gets softmax(sim(query, token) / T).")
        return
    qv = cached_query(query, enc.encoder, device, model_path)
    a = tx.analyze_encoding(enc, sim, temp, query, include_matrix=False, row_stats=False, device=device, query_vector=qv)
    st.html(a.highlight())
    _row_metrics(a.scores, "query row")
    _top_table(a)
    _show_notes(a.notes, enc.notes)
    _downloads(a, None, None, "query_attention")


def view_row(enc: tx.Encoding, sim: str, temp: float, device: str) -> None:
    k = _token_picker(enc, "Token whose row to show")
    a = tx.analyze_encoding(enc, sim, temp, token=k, include_matrix=False, row_stats=False, device=device)
    st.html(a.highlight())
    _row_metrics(a.scores, f"row of token {k}")
    _top_table(a)
    _show_notes(a.notes, enc.notes)
    _downloads(a, None, None, f"row_{k}")


def view_matrix(enc: tx.Encoding, key: tuple, sim: str, temp: float, device: str) -> None:
    n = len(enc.tokens)
    a0, a1 = _window(n, HEATMAP_TOKENS)
    _apply_heatmap_click(a0, a1 - a0, a1 - a0)
    received = cached_analysis(enc, key, sim, temp, device)
    # (window, n), rows summing to 1 over all n: the cached matrix has them up to MATRIX_MAX_TOKENS
    rows = (received.weights[a0:a1] if received.weights is not None
            else tx.self_attention_rows(enc, sim, temp, a0, a1, device))
    sub = rows[:, a0:a1]
    labels = list(enc.tokens[a0:a1])
    st.markdown("**Attention received** by each token (mean over all rows):")
    st.html(received.highlight())
    left, right = st.columns([3, 2])
    with left:
        title = f"{SIMILARITIES[sim].label}, T = {temp:g}" + (f", tokens {a0}–{a1 - 1} of {n}" if n > a1 - a0 else "")
        _heatmap(sub, labels, a0, title, "heat", selectable=True)
        if n > a1 - a0:
            st.caption(f"Rows sum to 1 over all {n:,} tokens; the keys in this window hold "
                       f"{float(sub.sum(1).mean()):.0%} of the shown rows' weight on average.")
    with right:
        st.markdown(f"**Top {TOP_K} pairs** (query → key, diagonal left out)")
        pairs = top_pairs(torch.tensor(sub), TOP_K, exclude_diagonal=True)  # a copy: sub is read-only
        st.dataframe([{"query": f"{a0 + i} · {labels[i]}", "key": f"{a0 + j} · {labels[j]}", "weight": round(w, 5)}
                      for i, j, w in pairs], hide_index=True, width="stretch")
        st.markdown("**Entropy per row** (effective tokens = exp(entropy))")
        ent = received.entropy[a0:a1] if received.entropy is not None else None
        if ent is not None:
            eff = np.exp(ent)
            st.caption(f"Mean {float(eff.mean()):.1f} effective tokens per row (of {n:,}); "
                       f"most focused: {md_escape(_token_label(enc, a0 + int(eff.argmin())))} ({float(eff.min()):.1f}), "
                       f"most spread: {md_escape(_token_label(enc, a0 + int(eff.argmax())))} ({float(eff.max()):.1f}).")
            st.dataframe([{"index": a0 + i, "token": labels[i], "entropy (nats)": round(float(ent[i]), 3),
                           "effective tokens": round(float(eff[i]), 2), "strongest key": enc.tokens[int(rows[i].argmax())],
                           "its weight": round(float(rows[i].max()), 4)} for i in range(len(labels))],
                         hide_index=True, width="stretch", height=300)
    k = _token_picker(enc)
    row = tx.analyze_encoding(enc, sim, temp, token=k, include_matrix=False, row_stats=False, device=device)
    st.markdown(f"**What token {k} attends to:**")
    st.html(row.highlight())
    _show_notes(received.notes, enc.notes)
    _downloads(received, sub, [f"{a0 + i}:{t}" for i, t in enumerate(labels)], "self_attention")


def view_model(enc: tx.Encoding, key: tuple, sim: str, temp: float, device: str) -> None:
    start = _model_window_start(enc, tx.load_model(enc.model_path, "cpu").content_length)
    ma = cached_model_attention(enc, key, start, device)
    c1, c2, c3 = st.columns(3)
    heads = list(HEADS_SPECIAL) + list(range(ma.num_heads))
    if st.session_state.get("head") not in heads:
        st.session_state["head"] = "average"
    if st.session_state.get("layer") not in range(ma.num_layers):
        st.session_state["layer"] = ma.num_layers - 1
    head = c2.selectbox("Head", heads, key="head", format_func=lambda h: {
        "average": f"average of {ma.num_heads} heads", "rollout": "rollout (all layers)"}[h] if isinstance(h, str) else f"head {h + 1}")
    layer = c1.selectbox("Layer", list(range(ma.num_layers)), key="layer", format_func=lambda i: f"layer {i + 1}",
                         disabled=head == "rollout")
    has_special = len(ma.labels(include_special=True)) != len(ma.labels(include_special=False))
    special = has_special and c3.toggle(
        "Show [CLS]/[SEP]", key="special",
        help="Trained models park much attention on separators; hidden, rows are renormalised over the text.")
    m = ma.matrix(layer, head, include_special=special)
    labels = ma.labels(include_special=special)
    s0, s1 = ma.unit_start, ma.unit_end
    sim_rows = tx.renormalise_rows(tx.self_attention_rows(enc, sim, temp, s0, s1, device)[:, s0:s1])
    what = "rollout (Abnar & Zuidema 2020)" if head == "rollout" else (
        f"layer {layer + 1}, " + ("average of heads" if head == "average" else f"head {head + 1}"))
    left, right = st.columns(2)
    with left:
        _heatmap(sim_rows, list(ma.tokens), s0, f"Attention as similarity: {sim}, T = {temp:g}", "heat_sim")
    with right:
        _heatmap(m, labels, 0 if special else s0, f"{ma.model_name}: {what}", "heat_model")
    overlap_msg = (f"The two matrices share {tx.attention_overlap(sim_rows, m):.0%} of each row's weight on "
                   "average (Σ min over keys).") if not special else ""
    if has_special:  # encoders wrap the text in [CLS] ... [SEP]; decoders such as GPT-2 add nothing
        share = ma.special_share(None if head == "rollout" else layer, head)
        msg = f"[CLS]/[SEP] take {share:.0%} of this view's attention from the text's tokens"
        msg += f"; shown without them, rows renormalised. {overlap_msg}" if not special else ""
    else:
        msg = overlap_msg
    st.caption(msg)
    k = _token_picker(enc, "Token whose rows to compare")
    if s0 <= k < s1:
        text0, text1 = ma.offsets[0][0], ma.offsets[-1][1]
        offsets = [(a - text0, b - text0) for a, b in ma.offsets]
        inner = ma.matrix(layer, head) if special else m  # rows over the text's tokens only
        c_left, c_right = st.columns(2)
        c_left.html(highlight_html(enc.text[text0:text1], offsets, sim_rows[k - s0], list(ma.tokens),
                                   legend_label=f"similarity attention from token {k}"))
        c_right.html(highlight_html(enc.text[text0:text1], offsets, inner[k - s0], list(ma.tokens),
                                    legend_label=f"{ma.model_name} attention from token {k} ({what})"))
    else:
        st.caption(f"Token {k} is outside the model's window ({s0}–{s1 - 1}); move the window or pick another token.")
    if st.toggle(f"All {ma.num_layers * ma.num_heads} heads at a glance", key="grid"):
        grid = ma.head_grid(special, max_tokens=GRID_TOKENS)
        k = min(GRID_TOKENS, m.shape[0])
        st.image(matrix_png(np.nan_to_num(grid, nan=0.0), cell=max(1, 1200 // grid.shape[1])),
                 caption=f"Rows: layers 1–{ma.num_layers} (top to bottom); columns: heads 1–{ma.num_heads}. "
                         f"Each square is one head over the first {k} tokens of the window, scaled to its own maximum.",
                 output_format="PNG")
    _show_notes(ma.notes)
    _downloads(None, m, [f"{i}:{t}" for i, t in enumerate(labels)], "model_attention")


@st.fragment
def show_view(enc: tx.Encoding, key: tuple, view: str, sim: str, temp: float, device: str, model_path: str | None) -> None:
    """Views rerun alone when their own widgets (token, window, layer, head) change."""
    try:
        if view == "query":
            view_query(enc, sim, temp, device, model_path)
        elif view == "row":
            view_row(enc, sim, temp, device)
        elif view == "matrix":
            view_matrix(enc, key, sim, temp, device)
        else:
            view_model(enc, key, sim, temp, device)
    except Exception as err:  # noqa: BLE001 - typed errors become one sentence, others are logged
        show_error(err)
    _state_to_url(st.session_state.get("_txt_text", ""))


# -------------------------------------------------------------------------------------------- page


def main() -> None:
    _url_to_state()
    ss = st.session_state
    ss.setdefault("sample", "kitten")
    if not isinstance(ss.get("text"), str):
        ss["text"] = sample_text(ss["sample"])
    ss.setdefault("encoder", "contextual")
    ss.setdefault("view", "query")
    ss.setdefault("query", "cat")
    ss.setdefault("merge", False)
    ss.setdefault("batch", ss["sample"] == "batch")

    st.title("📝 Text attention")
    st.markdown(
        "Each token of your text gets a vector; attention scores pairs with a **similarity** "
        "$s(i,j)=\\mathrm{sim}(x_i,x_j)$, turns each row into **weights** $a_{ij}=\\mathrm{softmax}_j(s(i,j)/T)$ "
        "and mixes the vectors $y_i=\\sum_j a_{ij}x_j$ (the standard row-softmax form of the seed article's "
        "sequential attention). Switch the similarity and watch the colours move; compare with what the "
        "trained MiniLM learned."
    )
    if ss.get("_txt_url_ignored"):
        st.caption(f"⚠️ The link's {', '.join(ss.pop('_txt_url_ignored'))} parameter(s) were not valid and were ignored.")

    left, right = st.columns([3, 2], gap="large")
    with left:
        st.selectbox("Sample text", list(SAMPLES), key="sample", format_func=lambda k: SAMPLES[k][0],
                     on_change=_load_sample)
        st.text_area("Your text (Ctrl+Enter to apply)", key="text", height=200,
                     help="Any language; very long text is cut with a notice (see the docs for the limits).")
        c1, c2 = st.columns(2)
        encoder = c1.selectbox("Encoder", list(tx.ENCODERS), key="encoder", format_func=lambda e: tx.ENCODERS[e].label)
        merge = c2.toggle("Merge word pieces into words", key="merge")
        batch = c2.toggle("One text per line (batch)", key="batch",
                          help=f"Each line is its own text; all are padded into one batch with a mask (up to {BATCH_MAX_LINES}).")
        st.caption(tx.ENCODERS[encoder].sentence)
        if not tx.ENCODERS[encoder].trained:
            st.warning("Untrained vectors: nothing here was learned, so only identical word pieces look alike. "
                       "Compare with a trained encoder to see why learned embeddings matter.", icon="🎲")
    with right:
        sim, temp = similarity_picker("txt", container=right)
    view = st.radio("View", list(VIEWS), key="view", format_func=VIEWS.get, horizontal=True)
    if view == "query":
        st.text_input("Query word or phrase", key="query", max_chars=URL_MAX_QUERY_CHARS * 10,
                      placeholder="e.g. cat, money, 学习")

    device = current_device()
    try:
        settings = load_settings()  # ATTNVIZ_MODEL_PATH / ATTNVIZ_PAGE_MAX_CHARS: the server's, never a link's
    except Exception as err:  # noqa: BLE001
        show_error(err)
        return
    model_path, limit = settings.model_path, settings.page_max_chars
    text, truncated = _truncate(ss["text"], limit)
    ss["_txt_text"] = ss["text"]
    if truncated:
        st.warning(f"Your text has {len(ss['text']):,} characters; this page analyses the first {len(text):,} "
                   f"(the limit is {limit:,}). For longer text use the library or `attnviz text`.", icon="✂️")
    try:
        if batch:
            lines = tx.split_lines(text, BATCH_MAX_LINES)
            encs = cached_batch(tuple(lines), encoder, merge, device, model_path)
            query = ss.get("query", "").strip() if view == "query" else None
            analyses = tx.analyze_encodings(encs, sim, temp, query or None, device)
            what = f"attention from the query {query!r}" if query else "attention received (mean over each text's rows)"
            st.markdown(f"**{len(lines)} texts, batched** (padded to {max(len(e.tokens) for e in encs)} tokens, "
                        "padding masked out): " + md_escape(what))  # the query is user text: never Markdown
            blocks = [(a.text, a.offsets, a.scores, a.tokens) for a in analyses]
            body = highlight_many(blocks, legend_label=what, captions=[f"line {i + 1}" for i in range(len(lines))])
            st.html(body)
            st.download_button("All lines (JSON)", lambda: to_json([a.to_dict(include_matrix=False) for a in analyses]),
                               "batch.json", "application/json", on_click="ignore", key="dl_batch_json")
            line = st.selectbox("Line to inspect below", list(range(len(lines))), key="line",
                                format_func=lambda i: f"line {i + 1}: {lines[i][:60]}")
            enc, key_text = encs[min(line, len(encs) - 1)], lines[min(line, len(encs) - 1)]
        else:
            enc = cached_encoding(text, encoder, merge, device, model_path)
            key_text = text
        _show_notes(enc.notes)
        key = (key_text, encoder, merge, device, model_path)
    except Exception as err:  # noqa: BLE001
        show_error(err)
        _state_to_url(ss["text"])
        return
    show_view(enc, key, view, sim, temp, device, model_path)


main()
