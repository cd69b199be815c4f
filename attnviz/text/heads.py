"""The trained model's own attention: every layer and head over one window of a text, and rollout.

    model_attentions(enc)        -> ModelAttention: (layers, heads, N, N) with the special tokens,
                                    read with ``output_attentions=True`` (no hooks)
    model_attentions_batch(encs) the first window of several texts, one padded batch
    attention_rollout(A)         Abnar & Zuidema's rollout over all layers
    merge_attention(W, groups)   piece-level attention -> word level
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..errors import InvalidParameter, ModelHasNoAttentions
from ..loaders.hf import LoadedModel, model_key, run_model
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


@dataclass(frozen=True, eq=False)
class ModelAttention:
    """The trained model's own attention over one window of a text.

    ``attentions`` is ``(layers, heads, N, N)`` over the window *with* its special tokens
    (``n_prefix`` before, ``n_suffix`` after the ``unit_end - unit_start`` text units it covers).
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

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    def raw(self, layer: int | None = None, head: int | str = "average") -> np.ndarray:
        """``(N, N)`` over the whole window incl. special tokens.

        ``head``: an index, ``"average"`` (mean over heads) or ``"rollout"`` (all layers, ``layer`` ignored).
        """
        if head == "rollout":
            return attention_rollout(self.attentions)
        if layer is None or not (0 <= int(layer) < self.num_layers):
            raise InvalidParameter(f"layer must be 0..{self.num_layers - 1}, got {layer!r}.")
        a = self.attentions[int(layer)]
        if head == "average":
            return a.mean(0)
        if isinstance(head, (int, np.integer)) and 0 <= int(head) < self.num_heads:
            return a[int(head)]
        raise InvalidParameter(f"head must be 0..{self.num_heads - 1}, 'average' or 'rollout', got {head!r}.")

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
        matrices, each scaled to its own maximum (a pattern overview), separated by ``gap`` NaN cells."""
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

    def special_share(self, layer: int | None = None, head: int | str = "average") -> float:
        """Mean weight the text's tokens give to the special tokens ([CLS], [SEP]) in this view."""
        full = self.raw(layer, head)
        p, q = len(self.special_before), len(self.special_after)
        rows = full[p:full.shape[0] - q]
        return float(rows[:, :p].sum(-1).mean() + rows[:, full.shape[0] - q:].sum(-1).mean()) if len(rows) else 0.0


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
        notes=tuple(notes), causal=m.causal,
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
                     model_path: str | os.PathLike | None = None) -> ModelAttention:
    """The trained model's attentions (all layers x heads, ``output_attentions``, no hooks) over the
    window of text units starting at ``start`` (the first window by default)."""
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
