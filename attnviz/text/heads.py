"""The trained model's own attention: every layer and head over one window of a text, and rollout.

    model_attentions(enc)        -> ModelAttention: (layers, heads, N, N) with the special tokens,
                                    read with ``output_attentions=True`` (no hooks)
    model_attentions_batch(encs) the first window of several texts, one padded batch
    attention_rollout(A)         Abnar & Zuidema's rollout over all layers
    merge_attention(W, groups)   piece-level attention -> word level
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import InvalidParameter, ModelHasNoAttentions
from ..export import html_page
from ..export import save as save_result
from ..highlight import highlight_html
from ..render import TABLE_MAX_TOKENS, labelled_matrix_png, legend_html, matrix_table_html, png_data_uri, weights_csv
from ..loaders.hf import LoadedModel, model_key, model_source, run_model
from .encoders import CAUSAL_NOTE, Encoding, _run_padded, encode_text


def attention_rollout(attentions, residual: float = 0.5) -> np.ndarray:
    """Attention rollout (Abnar & Zuidema 2020): ``(L, H, n, n)`` or ``(L, n, n)`` -> ``(n, n)``.

    Per layer: average the heads, add the residual connection ``residual*A + (1-residual)*I``
    (0.5/0.5 as in the paper), renormalise rows; then multiply layers: ``R = Â_L ... Â_2 Â_1``.
    Row i of R says how much of token i's final state flows from each input token.
    """
    a = np.asarray(attentions, dtype=np.float64)
    if a.ndim == 4:
        a = a.mean(axis=1)
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise InvalidParameter(f"attention_rollout takes (layers, heads, n, n) or (layers, n, n), got {a.shape}.")
    eye = np.eye(a.shape[1])
    rollout = eye
    for layer in a:
        aug = residual * layer + (1.0 - residual) * eye
        aug = aug / aug.sum(axis=-1, keepdims=True)
        rollout = aug @ rollout
    return rollout.astype(np.float32)


def merge_attention(weights: np.ndarray, groups: Sequence[tuple[int, int]]) -> np.ndarray:
    """Piece-level attention ``(..., n, n)`` -> word level ``(..., u, u)``: attention *to* a word is the
    sum over its pieces, attention *from* a word the mean over its pieces (rows keep summing to 1)."""
    w = np.asarray(weights)
    cols = np.stack([w[..., s:e].sum(-1) for s, e in groups], axis=-1)
    return np.stack([cols[..., s:e, :].mean(-2) for s, e in groups], axis=-2)


def renormalise_rows(w: np.ndarray) -> np.ndarray:
    s = w.sum(-1, keepdims=True)
    return np.divide(w, s, out=np.zeros_like(w), where=s > 0)


#: what the head grid's colour bar measures: each block is scaled to its own maximum
GRID_BAR_LABEL = "share of the head's maximum"


@dataclass(frozen=True, eq=False)
class ModelAttention:
    """The trained model's own attention over one window of a text (or attention you brought:
    :func:`attnviz.from_attention`).

    ``attentions`` is ``(layers, heads, N, N)`` over the window *with* its special tokens
    (``n_prefix`` before, ``n_suffix`` after the ``unit_end - unit_start`` text units it covers).
    Layers and heads count from 0; negative indices count from the end (``-1`` = the last); a
    ``layer`` of ``None`` is the last layer.

    Views, all self-contained outside Streamlit: :meth:`to_html` (one page: the highlighted text, the
    matrix with its token labels and colour bar, rollout and the grid of every head), ``_repr_html_``
    (the same as a fragment for Jupyter), :meth:`to_png` (``view="matrix" | "rollout" | "grid"``),
    :meth:`to_json`, :meth:`to_csv`, :meth:`save` (by suffix, :func:`attnviz.export.save`).
    """

    attentions: np.ndarray
    tokens: tuple[str, ...]  # the text units in the window (words when merged)
    offsets: tuple[tuple[int, int], ...]
    unit_start: int
    unit_end: int
    piece_groups: tuple[tuple[int, int], ...]  # units -> pieces, relative to the window's first piece
    special_before: tuple[str, ...]
    special_after: tuple[str, ...]
    model_name: str
    device: str
    notes: tuple[str, ...]
    causal: bool = False  # a decoder: every matrix is exactly 0 above the diagonal (CAUSAL_NOTE)
    text: str = ""  # the text ``offsets`` point into (the highlighted view needs it)
    sinks: tuple[int, ...] | None = None  # positions in raw() that sink_share counts (None: the special tokens)

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    def layer_index(self, layer: int | None) -> int:
        """``layer`` as 0..L-1: negative counts from the end, ``None`` is the last layer."""
        if layer is None:
            return self.num_layers - 1
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not (
                -self.num_layers <= int(layer) < self.num_layers):
            raise InvalidParameter(f"layer must be 0..{self.num_layers - 1} (or -1 for the last), got {layer!r}.")
        return int(layer) % self.num_layers

    def head_index(self, head: int | str) -> int | str:
        """``head`` as 0..H-1 (negative counts from the end), or ``"average"`` / ``"rollout"``."""
        if head in ("average", "rollout"):
            return head
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or not (
                -self.num_heads <= int(head) < self.num_heads):
            raise InvalidParameter(f"head must be 0..{self.num_heads - 1} (or -1 for the last), 'average' or "
                                   f"'rollout', got {head!r}.")
        return int(head) % self.num_heads

    def raw(self, layer: int | None = None, head: int | str = "average") -> np.ndarray:
        """``(N, N)`` over the whole window incl. special tokens.

        ``head``: an index, ``"average"`` (mean over heads) or ``"rollout"`` (all layers, ``layer`` ignored).
        """
        head = self.head_index(head)
        if head == "rollout":
            return attention_rollout(self.attentions)
        a = self.attentions[self.layer_index(layer)]
        return a.mean(0) if head == "average" else a[head]

    def labels(self, include_special: bool = False) -> list[str]:
        return (list(self.special_before) + list(self.tokens) + list(self.special_after)) if include_special else list(self.tokens)

    def matrix(self, layer: int | None = None, head: int | str = "average", include_special: bool = False) -> np.ndarray:
        """The view the page shows: over the text units only (rows renormalised over them) unless
        ``include_special``; word pieces merged into words when the encoding was merged."""
        full = self.raw(layer, head)
        p, q = len(self.special_before), len(self.special_after)
        pieces = full.shape[0] - p - q
        text_groups = [(p + s, p + e) for s, e in self.piece_groups]
        if include_special:
            groups = [(i, i + 1) for i in range(p)] + text_groups + [(p + pieces + i, p + pieces + i + 1) for i in range(q)]
            return merge_attention(full, groups).astype(np.float32)
        inner = renormalise_rows(full[p:p + pieces, p:p + pieces])
        return merge_attention(inner, [(s - p, e - p) for s, e in text_groups]).astype(np.float32)

    def head_grid(self, include_special: bool = False, max_tokens: int = 96, gap: int = 2) -> np.ndarray:
        """Every layer x head at once: a ``(layers, heads)`` grid of the first ``max_tokens`` units'
        matrices, each scaled to its own maximum (a pattern overview), separated by ``gap`` NaN cells
        (draw them in the background colour: :func:`attnviz.render.matrix_png` does; :meth:`head_grid_png`
        adds the layer and head labels)."""
        mats = [[self.matrix(layer, head, include_special) for head in range(self.num_heads)]
                for layer in range(self.num_layers)]
        k = min(max_tokens, mats[0][0].shape[0])
        cell = k + gap
        grid = np.full((self.num_layers * cell - gap, self.num_heads * cell - gap), np.nan, dtype=np.float32)
        for li, row in enumerate(mats):
            for hi, m in enumerate(row):
                block = m[:k, :k]
                top = float(block.max())
                grid[li * cell:li * cell + k, hi * cell:hi * cell + k] = block / top if top > 0 else block
        return grid

    def grid_labels(self, include_special: bool = False, max_tokens: int = 96, gap: int = 2) -> tuple[list[str], list[str]]:
        """Row and column labels of :meth:`head_grid`: ``"layer i"`` / ``"head j"`` at each block's middle."""
        k = min(max_tokens, len(self.labels(include_special)))
        cell = k + gap
        rows, cols = [""] * (self.num_layers * cell - gap), [""] * (self.num_heads * cell - gap)
        for li in range(self.num_layers):
            rows[li * cell + k // 2] = f"layer {li}"
        for hi in range(self.num_heads):
            cols[hi * cell + k // 2] = f"head {hi}"
        return rows, cols

    def head_grid_png(self, include_special: bool = False, max_tokens: int = 96, gap: int = 2,
                      cmap: str = "cividis", cell: int | None = None) -> bytes:
        """:meth:`head_grid` as a PNG: layer labels on the left, head labels on top, a 0..1 colour bar,
        the gaps in the background colour (not the colour of 0)."""
        grid = self.head_grid(include_special, max_tokens, gap)
        rows, cols = self.grid_labels(include_special, max_tokens, gap)
        return labelled_matrix_png(grid, rows, cols, title=f"{self.model_name}: every layer x head",
                                   cmap_name=cmap, vmin=0.0, vmax=1.0, cell=cell or max(1, 1200 // grid.shape[1]),
                                   bar_label=GRID_BAR_LABEL)

    def special_share(self, layer: int | None = None, head: int | str = "average") -> float:
        """Mean weight the text's tokens give to the special tokens ([CLS], [SEP]) in this view."""
        full = self.raw(layer, head)
        p, q = len(self.special_before), len(self.special_after)
        rows = full[p:full.shape[0] - q]
        return float(rows[:, :p].sum(-1).mean() + rows[:, full.shape[0] - q:].sum(-1).mean()) if len(rows) else 0.0

    def sink_positions(self) -> tuple[int, ...]:
        """Positions in :meth:`raw` that :meth:`sink_share` counts: the special tokens, else ``sinks``."""
        if self.sinks is not None:
            return tuple(self.sinks)
        n = self.attentions.shape[-1]
        p, q = len(self.special_before), len(self.special_after)
        return tuple(range(p)) + tuple(range(n - q, n))

    def sink_share(self, layer: int | None = None, head: int | str = "average") -> float:
        """Mean over all rows of the weight on the attention sinks (:meth:`sink_positions`: the special
        tokens, or for attention you brought the special-looking tokens, else the first token)."""
        full = self.raw(layer, head)
        sinks = list(self.sink_positions())
        return float(full[:, sinks].sum(-1).mean()) if sinks and len(full) else 0.0

    # ------------------------------------------------------------------------------------- views

    def view_title(self, view: str = "matrix", layer: int | None = None, head: int | str = "average") -> str:
        if view == "grid":
            return f"{self.model_name}: every layer x head"
        head = self.head_index("rollout" if view == "rollout" else head)
        if head == "rollout":
            return f"{self.model_name}: attention rollout over all {self.num_layers} layers"
        which = "mean of the heads" if head == "average" else f"head {head}"
        return f"{self.model_name}: layer {self.layer_index(layer)}, {which}"

    def to_png(self, view: str = "matrix", layer: int | None = None, head: int | str = "average", *,
               include_special: bool = False, cmap: str = "cividis", cell: int | None = None) -> bytes:
        """A PNG with token labels and a colour bar. ``view``: ``"matrix"`` (``layer`` x ``head``),
        ``"rollout"`` (all layers) or ``"grid"`` (every layer x head, :meth:`head_grid_png`)."""
        if view == "grid":
            return self.head_grid_png(include_special, cmap=cmap, cell=cell)
        if view not in ("matrix", "rollout"):
            raise InvalidParameter(f"to_png draws 'matrix', 'rollout' or 'grid', not {view!r}.")
        h = "rollout" if view == "rollout" else head
        m = self.matrix(layer, h, include_special)
        labels = self.labels(include_special)
        return labelled_matrix_png(m, labels, labels, title=self.view_title(view, layer, head), cmap_name=cmap,
                                   cell=cell, bar_label="attention weight")

    def to_dict(self, decimals: int = 6) -> dict:
        """Every layer x head's ``(N, N)`` weights (special tokens included) and what they cover."""
        return {
            "model": self.model_name, "tokens": self.labels(True), "text_tokens": list(self.tokens),
            "offsets": [list(o) for o in self.offsets], "special_before": list(self.special_before),
            "special_after": list(self.special_after), "layers": self.num_layers, "heads": self.num_heads,
            "causal": self.causal, "device": self.device, "notes": list(self.notes),
            "attentions": np.round(self.attentions.astype(np.float64), decimals).tolist(),
            "rollout": np.round(self.raw(None, "rollout").astype(np.float64), decimals).tolist(),
        }

    def to_json(self, decimals: int = 6, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(decimals), ensure_ascii=False, allow_nan=False, indent=indent)

    def to_csv(self, layer: int | None = None, head: int | str = "average", include_special: bool = False) -> str:
        """One view's matrix as a labelled CSV (labels guarded against spreadsheet formulas)."""
        labels = self.labels(include_special)
        return weights_csv(self.matrix(layer, head, include_special), labels, labels)

    def _matrix_html(self, m: np.ndarray, labels: list[str], title: str, cmap: str) -> str:
        bar = legend_html(float(m.min()), float(m.max()), cmap, "attention weight")
        if len(labels) <= TABLE_MAX_TOKENS:
            body = matrix_table_html(m, labels, labels, cmap_name=cmap, caption=title)
        else:  # a table of n^2 cells is too heavy: the labelled picture (its labels also in the alt text)
            alt = f"{title}; tokens: " + " ".join(labels[:200])
            body = (f'<p style="font-size:0.9em">{html.escape(title)}</p>'
                    f'<img alt="{html.escape(alt, quote=True)}" style="max-width:100%;height:auto" '
                    f'src="{png_data_uri(labelled_matrix_png(m, labels, labels, title=title, cmap_name=cmap))}">')
        return f'<figure style="margin:1em 0;overflow-x:auto">{body}{bar}</figure>'

    def html_fragment(self, layer: int | None = None, head: int | str = "average", cmap: str = "cividis",
                      grid: bool = True) -> str:
        """The settings, the text highlighted by the attention each token receives in this view, the
        matrix (labels as text, colour bar), the rollout, the grid of every head (a labelled PNG) and the
        notes; every string escaped, inline styles only, no script, no remote resource."""
        layer, head = self.layer_index(layer), self.head_index(head)
        labels = self.labels()
        m = self.matrix(layer, head)
        title = self.view_title("matrix", layer, head)
        parts = [f'<p style="color:#444;font-size:0.9em">{html.escape(self.caption())}</p>']
        if self.text and len(self.offsets) == len(self.tokens):
            received = m.mean(0)
            parts.append(highlight_html(self.text, self.offsets, received, labels=labels, cmap=cmap, legend=True,
                                        legend_label=f"attention received ({title})"))
        parts.append(self._matrix_html(m, labels, title, cmap))
        if head != "rollout":
            parts.append(self._matrix_html(self.matrix(None, "rollout"), labels, self.view_title("rollout"), cmap))
        if grid:
            parts.append(f'<figure style="margin:1em 0"><img alt="{html.escape(self.view_title("grid"), quote=True)}: '
                         f'layers top to bottom, heads left to right" style="max-width:100%;height:auto" '
                         f'src="{png_data_uri(self.head_grid_png(cmap=cmap))}"></figure>')
        if self.notes:
            parts.append('<ul style="color:#555;font-size:0.85em">'
                         + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        return "".join(parts)

    def caption(self) -> str:
        return (f"{self.model_name}: {self.num_layers} layers x {self.num_heads} heads over {len(self.tokens)} tokens"
                + (" (causal)" if self.causal else "") + f", sink share {self.sink_share():.2f} (last layer)")

    def to_html(self, title: str | None = None, layer: int | None = None, head: int | str = "average",
                cmap: str = "cividis") -> str:
        """One standalone page (:func:`attnviz.export.html_page`): see :meth:`html_fragment`."""
        return html_page(self.html_fragment(layer, head, cmap), title or f"attnviz: {self.model_name}'s attention")

    def _repr_html_(self) -> str:
        return f'<div class="attnviz-result">{self.html_fragment()}</div>'

    def save(self, path: str | os.PathLike, **style) -> Path:
        """Write ``.png`` (:meth:`to_png`), ``.html`` (:meth:`to_html`), ``.json`` or ``.csv`` by the suffix;
        ``style`` (``layer``, ``head``, ``cmap``; ``view`` and ``include_special`` for a PNG) goes to the
        pictures, ``layer`` / ``head`` / ``include_special`` to the CSV."""
        png = {k: style.pop(k) for k in ("view", "include_special") if k in style}
        view = {k: v for k, v in {**style, **png}.items() if k in ("layer", "head", "include_special")}
        return save_result(self, path, png=png, csv_options=view, **style)


def _window_units(enc: Encoding, unit_start: int, max_pieces: int) -> tuple[int, int]:
    """Units [unit_start, unit_end) whose pieces fit in one model window (at least one unit)."""
    n = len(enc.tokens)
    if not (0 <= unit_start < n):
        raise InvalidParameter(f"The window start must be a token index 0..{n - 1}, got {unit_start}.")
    first = enc.groups[unit_start][0]
    end = unit_start + 1
    while end < n and enc.groups[end][1] - first <= max_pieces:
        end += 1
    return unit_start, end


def _run_attentions(m: LoadedModel, rows: list[list[int]]) -> list[np.ndarray]:
    """Every layer's and head's attention for each row of text ids, padded into one batch:
    ``(layers, heads, N_i, N_i)`` per row, the specials included."""
    out, full = _run_padded(m, rows, attentions=True)
    if not out.attentions:
        raise ModelHasNoAttentions("The model returned no attention weights.")
    stacked = torch.stack([a.float() for a in out.attentions], dim=1).cpu().numpy()  # (b, L, H, W, W)
    if m.causal:  # the mask's exp(-inf) is 0 already; make it exact whatever the attention kernel did
        stacked = np.tril(stacked)
    return [stacked[i, :, :, :len(f), :len(f)] for i, f in enumerate(full)]


def _model_attention_from(enc: Encoding, m: LoadedModel, used: str, arr: np.ndarray, start: int, end: int,
                          warning: str | None) -> ModelAttention:
    first = enc.groups[start][0]
    notes = []
    n = len(enc.tokens)
    if start > 0 or end < n:
        notes.append(f"{m.name}'s own attention reads at most {m.content_length} word pieces at once: "
                     f"shown for tokens {start}-{end - 1} of {n}")
    if m.causal:
        notes.append(CAUSAL_NOTE)
    if warning:
        notes.append(warning)
    return ModelAttention(
        attentions=arr, tokens=enc.tokens[start:end], offsets=enc.offsets[start:end], unit_start=start,
        unit_end=end, piece_groups=tuple((s - first, e - first) for s, e in enc.groups[start:end]),
        special_before=m.prefix_tokens, special_after=m.suffix_tokens, model_name=m.name, device=used,
        notes=tuple(notes), causal=m.causal, text=enc.text,
    )


def _window_attention(m: LoadedModel, enc: Encoding, start: int) -> tuple[tuple[int, int], np.ndarray]:
    """The window of units from ``start`` that fits the model, and its attentions."""
    s, e = _window_units(enc, start, m.content_length)
    first, last = enc.groups[s][0], min(enc.groups[e - 1][1], enc.groups[s][0] + m.content_length)
    return (s, e), _run_attentions(m, [list(enc.ids[first:last])])[0]


def _first_windows(m: LoadedModel, encs: Sequence[Encoding]) -> tuple[list[tuple[int, int]], list[np.ndarray]]:
    """The first window of each encoding and their attentions, one padded batch."""
    spans = [_window_units(e, 0, m.content_length) for e in encs]
    rows = [list(e.ids[e.groups[s][0]:min(e.groups[t - 1][1], m.content_length)]) for e, (s, t) in zip(encs, spans)]
    return spans, _run_attentions(m, rows)


def model_attentions(enc: Encoding | str, start: int = 0, device: str | torch.device | None = None,
                     model_path: str | os.PathLike | None = None, *, model=None, tokenizer=None) -> ModelAttention:
    """The trained model's attentions (all layers x heads, ``output_attentions``, no hooks) over the
    window of text units starting at ``start`` (the first window by default). ``enc``: an
    :class:`Encoding` or a text. ``model=`` + ``tokenizer=``: an in-memory transformers model and its
    tokenizer instead of the folder ``model_path``."""
    model_path = model_source(model_path, model, tokenizer)
    if isinstance(enc, str):
        enc = encode_text(enc, "static", "cpu", model_path)
    key = enc.model_path if model_path is None else model_key(model_path)
    m, ((s, e), arr), used, warning = run_model(key, device, _window_attention, enc, start)
    return _model_attention_from(enc, m, used, arr, s, e, warning)


def model_attentions_batch(encs: Sequence[Encoding], device: str | torch.device | None = None) -> list[ModelAttention]:
    """The first window of each encoding, run as one padded batch with an attention mask."""
    if not encs:
        return []
    m, (spans, arrs), used, warning = run_model(encs[0].model_path, device, _first_windows, encs)
    return [_model_attention_from(e, m, used, a, s, t, warning) for e, (s, t), a in zip(encs, spans, arrs)]
