"""Bring your own attention: weights from any model, shown with attnviz's views.

    ma = attnviz.from_attention(outputs.attentions, tokens)          # transformers, output_attentions=True
    ma = attnviz.from_attention(cache, tokens)                       # TransformerLens: blocks.{L}.attn.hook_pattern
    ma = attnviz.from_attention(weights, tokens, text=text, offsets=offsets)   # (layers, heads, n, n) array
    ma.matrix(-1, 3); ma.head_grid(); ma.raw(None, "rollout"); ma.sink_share(); ma.save("heads.html")

What is accepted (torch tensors or numpy arrays, any float dtype):

* a tuple / list with one entry per layer, each ``(batch, heads, n, n)`` (transformers' ``attentions``,
  TransformerLens' per-layer ``pattern``) or ``(heads, n, n)``;
* a dict-like cache with ``blocks.{L}.attn.hook_pattern`` keys (TransformerLens' ``ActivationCache``),
  layers in the order of ``L``;
* one array ``(layers, heads, n, n)``, ``(layers, batch, heads, n, n)``, ``(heads, n, n)`` (one layer) or
  ``(n, n)`` (one head).

A batch of one is read as it is; a larger batch needs ``batch=`` (an index, negative from the end).
The weights are checked: square ``n x n`` with ``n == len(tokens)``, finite, not negative, every row
summing to 1 within ``ROW_TOLERANCE``; with ``causal=True`` everything above the diagonal 0
(``causal=None`` detects it: causal when the upper triangle is all 0). A failure is a typed error
(:class:`ShapeMismatch` for shapes, :class:`InvalidParameter` for values) naming the layer, head and row.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from .errors import InvalidParameter, ShapeMismatch
from .text.encoders import CAUSAL_NOTE
from .text.heads import ModelAttention

#: how far a row's sum may be from 1 (float16 / bfloat16 softmax outputs land within ~1e-3)
ROW_TOLERANCE = 1e-3
#: a weight above the diagonal at most this large still counts as 0 when detecting a causal pattern
CAUSAL_ZERO = 1e-6
#: TransformerLens' name for a layer's attention pattern
PATTERN_KEY = re.compile(r"^blocks\.(\d+)\.attn\.hook_pattern$")
#: tokens that look like special tokens ([CLS], <s>, <|endoftext|>): the attention sinks sink_share counts
SPECIAL_TOKEN = re.compile(r"^(\[[A-Z_]+\]|<\|?[^<>\s]+\|?>)$")
#: word-piece markers stripped when finding a token in the text (WordPiece ##, GPT-2 Ġ/Ċ, SentencePiece ▁)
PIECE_MARKERS = ("##", "Ġ", "Ċ", "▁")


def _array(a, what: str) -> np.ndarray:
    """torch or numpy -> float32 numpy (a copy never shared with the caller; the checks sum in float64)."""
    if hasattr(a, "detach"):  # a torch tensor, on any device, any dtype
        a = a.detach().float().cpu().numpy()
    try:
        arr = np.array(a, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{what} must be a torch tensor or a numpy array of numbers, "
                               f"got {type(a).__name__}.") from None
    return arr


def _pick_batch(a: np.ndarray, batch: int | None, what: str) -> np.ndarray:
    """``(batch, ...)`` -> ``(...)``: batch 1 as it is, else the ``batch=`` index."""
    b = a.shape[0]
    if batch is None:
        if b != 1:
            raise InvalidParameter(f"{what} holds a batch of {b}: say which with batch=0..{b - 1}.")
        return a[0]
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not -b <= int(batch) < b:
        raise InvalidParameter(f"batch must be 0..{b - 1} for {what}, got {batch!r}.")
    return a[int(batch)]


def _layer(a, index: int, batch: int | None) -> np.ndarray:
    """One layer's entry -> ``(heads, n, n)``."""
    what = f"layer {index}"
    arr = _array(a, what)
    if arr.ndim == 4:
        arr = _pick_batch(arr, batch, what)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ShapeMismatch(f"Layer {index}'s attention must be (batch, heads, n, n) or (heads, n, n), "
                            f"got shape {arr.shape}.")
    return arr


def _cache_layers(cache) -> list:
    """A TransformerLens cache's ``blocks.{L}.attn.hook_pattern`` values, ordered by ``L``."""
    found = []
    for key in cache.keys():
        hit = PATTERN_KEY.match(str(key))
        if hit:
            found.append((int(hit.group(1)), key))
    if not found:
        raise InvalidParameter("The cache has no blocks.{L}.attn.hook_pattern entries: run the model with "
                               "run_with_cache (TransformerLens) or pass the attention tensors themselves.")
    found.sort()
    layers = [n for n, _ in found]
    if layers != list(range(len(layers))):
        raise ShapeMismatch(f"The cache's attention patterns are for layers {layers}: every layer from 0 is needed.")
    return [cache[key] for _, key in found]


def stack_attention(attention, batch: int | None = None) -> np.ndarray:
    """Any accepted input (see the module docstring) -> ``(layers, heads, n, n)`` float32, unchecked."""
    if hasattr(attention, "keys") and callable(attention.keys) and not hasattr(attention, "shape"):
        attention = _cache_layers(attention)
    if isinstance(attention, (list, tuple)):
        if not attention:
            raise ShapeMismatch("No attention given: the sequence of layers is empty.")
        if any(a is None for a in attention):
            raise InvalidParameter("Some layers' attention is None: run the model with output_attentions=True "
                                   "(and attn_implementation='eager').")
        layers = [_layer(a, i, batch) for i, a in enumerate(attention)]
        shapes = {a.shape for a in layers}
        if len(shapes) > 1:
            raise ShapeMismatch(f"The layers' attention shapes differ: {sorted(shapes)}.")
        return np.stack(layers)
    arr = _array(attention, "attention")
    if arr.ndim == 5:
        arr = _pick_batch(np.moveaxis(arr, 1, 0), batch, "attention (layers, batch, heads, n, n)")
    elif arr.ndim == 3:
        arr = arr[None]
    elif arr.ndim == 2:
        arr = arr[None, None]
    if arr.ndim != 4:
        raise ShapeMismatch(f"attention must be (layers, heads, n, n), (layers, batch, heads, n, n), "
                            f"(heads, n, n) or (n, n), got shape {arr.shape}.")
    return arr


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in np.argwhere(mask)[0])


def check_attention(a: np.ndarray, causal: bool | None = None, tolerance: float = ROW_TOLERANCE) -> bool:
    """Check ``(layers, heads, n, n)`` weights (see the module docstring); returns whether they are causal."""
    if a.shape[-1] != a.shape[-2]:
        raise ShapeMismatch(f"Each head's attention must be square (n queries x n keys), got {a.shape[-2]} x "
                            f"{a.shape[-1]}: pass the attention of one full forward pass.")
    if a.shape[-1] == 0:
        raise ShapeMismatch("The attention covers no positions.")
    bad = ~np.isfinite(a)
    if bad.any():
        l, h, i, j = _first(bad)
        raise InvalidParameter(f"Layer {l}, head {h}, row {i} holds a NaN or infinite weight (column {j}).")
    neg = a < -tolerance
    if neg.any():
        l, h, i, j = _first(neg)
        raise InvalidParameter(f"Layer {l}, head {h}, row {i} has a negative weight ({a[l, h, i, j]:.4g} at column "
                               f"{j}): pass attention probabilities (after the softmax), not scores.")
    sums = a.sum(-1, dtype=np.float64)
    off = np.abs(sums - 1.0) > tolerance
    if off.any():
        l, h, i = _first(off)
        raise InvalidParameter(f"Layer {l}, head {h}, row {i} sums to {sums[l, h, i]:.6g}, not 1 (tolerance "
                               f"{tolerance:g}): pass attention probabilities (after the softmax), not scores.")
    upper = np.triu(np.ones(a.shape[-2:], dtype=bool), 1)
    above = (np.abs(a) > CAUSAL_ZERO) & upper
    if causal is None:
        return not above.any()
    if causal and above.any():
        l, h, i, j = _first(above)
        raise InvalidParameter(f"causal=True, but layer {l}, head {h}, row {i} gives {a[l, h, i, j]:.4g} to the later "
                               f"position {j}: a causal pattern is 0 above the diagonal.")
    return bool(causal)


def _clean(token: str) -> str:
    for marker in PIECE_MARKERS:
        token = token.replace(marker, "")
    return token.strip()


def locate_tokens(text: str, tokens: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) of each token in ``text``, searched left to right (case-insensitive, word-piece markers
    stripped); a token not found there (e.g. ``[CLS]``) gets an empty span at the current position."""
    low, cursor, spans = text.lower(), 0, []
    for tok in tokens:
        piece = _clean(str(tok)).lower()
        at = low.find(piece, cursor) if piece else -1
        if at < 0:
            spans.append((cursor, cursor))
            continue
        spans.append((at, at + len(piece)))
        cursor = at + len(piece)
    return spans


def _check_tokens(tokens, n: int) -> tuple[str, ...]:
    advice = "tokens must be a list of strings, one per position (e.g. tokenizer.convert_ids_to_tokens(ids))"
    if isinstance(tokens, str):
        raise InvalidParameter(f"{advice}, not one string.")
    try:
        toks = tuple(tokens)
    except TypeError:
        raise InvalidParameter(f"{advice}, got {type(tokens).__name__}.") from None
    if not all(isinstance(t, str) for t in toks):
        raise InvalidParameter("tokens must be strings (e.g. tokenizer.convert_ids_to_tokens(ids)).")
    if len(toks) != n:
        raise ShapeMismatch(f"The attention covers {n} positions but {len(toks)} tokens were given: one token per "
                            "position, special tokens included.")
    return toks


def _check_offsets(offsets, text: str, n: int) -> tuple[tuple[int, int], ...]:
    try:
        spans = tuple((int(s), int(e)) for s, e in offsets)
    except (TypeError, ValueError):
        raise InvalidParameter("offsets must be (start, end) character pairs, one per token.") from None
    if len(spans) != n:
        raise ShapeMismatch(f"{len(spans)} offsets for {n} tokens: one (start, end) pair per token.")
    for i, (s, e) in enumerate(spans):
        if not 0 <= s <= e <= len(text):
            raise InvalidParameter(f"Offset {i} ({s}, {e}) is outside the text's {len(text)} characters.")
    return spans


def from_attention(attention, tokens: Sequence[str], *, text: str | None = None,
                   offsets: Sequence[tuple[int, int]] | None = None, causal: bool | None = None,
                   batch: int | None = None, name: str = "your model",
                   tolerance: float = ROW_TOLERANCE) -> ModelAttention:
    """Attention weights you computed -> :class:`attnviz.text.ModelAttention` (the app's heads view).

    ``attention``: see the module docstring. ``tokens``: one string per position (special tokens
    included). ``text`` + ``offsets`` (character spans, e.g. a fast tokenizer's ``offset_mapping``) place
    the tokens in the text for the highlighted view; ``text`` alone finds them left to right; neither:
    the text is the tokens joined by spaces. ``causal``: ``None`` detects it, ``True`` checks it,
    ``False`` shows the weights as they are. Nothing is renormalised: ``matrix(l, h)`` is your weights.
    """
    a = stack_attention(attention, batch)
    is_causal = check_attention(a, causal, tolerance)
    n = a.shape[-1]
    toks = _check_tokens(tokens, n)
    if offsets is not None and text is None:
        raise InvalidParameter("offsets point into a text: pass text= too.")
    if text is None:
        text = " ".join(toks)
        spans, cursor = [], 0
        for t in toks:
            spans.append((cursor, cursor + len(t)))
            cursor += len(t) + 1
        spans = tuple(spans)
    elif not isinstance(text, str):
        raise InvalidParameter(f"text must be a string, got {type(text).__name__}.")
    else:
        spans = _check_offsets(offsets, text, n) if offsets is not None else tuple(locate_tokens(text, toks))
    if is_causal:
        a = np.tril(a)  # exactly 0 above the diagonal, as the model's own causal views are
    sinks = tuple(i for i, t in enumerate(toks) if SPECIAL_TOKEN.match(t)) or (0,)
    layers, heads = a.shape[:2]
    notes = [f"attention given by the caller: {layers} layer{'s' if layers != 1 else ''} x {heads} "
             f"head{'s' if heads != 1 else ''} over {n} tokens"]
    if is_causal:
        notes.append(CAUSAL_NOTE)
    return ModelAttention(
        attentions=a.astype(np.float32), tokens=toks, offsets=spans, unit_start=0, unit_end=n,
        piece_groups=tuple((i, i + 1) for i in range(n)), special_before=(), special_after=(), model_name=str(name),
        device="cpu", notes=tuple(notes), causal=is_causal, text=text, sinks=sinks,
    )


__all__ = ["CAUSAL_ZERO", "PATTERN_KEY", "ROW_TOLERANCE", "check_attention", "from_attention", "locate_tokens",
           "stack_attention"]
