"""Attention as the seed article describes it, in the standard row-softmax form.

    s(i, j) = sim(x_i, x_j)                 raw scores                  (..., n, m)
    a(i, :) = softmax(s(i, :) / T)          over the valid keys j       (..., n, m)
    y_i     = sum_j a(i, j) v_j             weighted sum                (..., n, d_v)

Masks are boolean with True = a real element. Masked keys get exactly 0 weight; a query row with no
valid key (or a padded query) is all 0 and its output is 0 — never NaN.

Causal attention (``attend(..., causal=True)``, :func:`causal_rows`) is what a decoder computes: query
i sees only the keys ``j <= i`` (combined with any key mask), so every weight above the diagonal is
exactly 0. With ``m`` keys for ``n <= m`` queries the queries are the *last* n positions (a decoder
reading on after m - n cached ones): query i sees keys ``j <= i + (m - n)``.

Temperature: one rule for every entry point here (:func:`attend`, :func:`attend_blocked`,
:func:`attention_row`, :func:`attention_received`, :func:`causal_rows`, :func:`row_stats_blocked`) and in
``attnviz.text`` / ``attnviz.image``: ``temperature=None`` (the default) means the similarity's own
``default_temperature`` (``get_similarity(name).default_temperature``: 0.1 for cosine and rbf, 10 for
manhattan, 1 for the rest), because at T = 1 cosine weights are nearly uniform. Pass a number to
override it; :func:`resolve_temperature` applies the rule.

Arrays: every function takes torch tensors or numpy arrays, with any number of leading batch
dimensions (``(n, d)``, ``(b, n, d)``, multi-head ``(b, h, n, d)``, ...). What comes back follows the
input: torch in -> torch out, numpy in -> numpy out (float32 stays float32, float64 stays float64).

Long inputs: :func:`attend_blocked`, :func:`attention_row` and :func:`attention_received` never hold
more than one block of ``block_size x m`` scores. With the default budget of
``BLOCK_ELEMENTS = 2**24`` scores per block, the extra memory of a call is at most about
``3 x 2**24 x itemsize`` (~192 MiB in float32) on top of the inputs and the ``(n, d_v)`` output,
whatever n is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch

from .errors import InvalidParameter, ShapeMismatch
from .similarity import Similarity, block_scorer, get_similarity

#: scores held at once by the blocked paths (see the module docstring for the memory bound).
BLOCK_ELEMENTS = 1 << 24
#: the temperatures accepted (far beyond what changes a picture; outside, scores / T overflows float32)
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-4, 1e4


@dataclass
class AttentionResult:
    """Scores, weights and output of one attention call; shapes in the docstring of :func:`attend`.
    Tensors when the input was a tensor, numpy arrays when it was a numpy array."""

    scores: torch.Tensor
    weights: torch.Tensor
    output: torch.Tensor
    similarity: str
    temperature: float


@dataclass
class BlockedResult:
    """What the blocked path returns: outputs ``(..., n, d_v)`` and attention received ``(..., m)``."""

    output: torch.Tensor | None
    received: torch.Tensor | None
    similarity: str
    temperature: float
    block_size: int


def _as_bool_mask(mask, shape: tuple[int, ...], what: str, device) -> torch.Tensor | None:
    if mask is None:
        return None
    mask = torch.as_tensor(mask, device=device)
    if mask.dtype != torch.bool:
        raise InvalidParameter(f"{what} must be a bool tensor (True = real element), got {mask.dtype}.")
    if tuple(mask.shape) != tuple(shape):
        raise ShapeMismatch(f"{what} must have shape {tuple(shape)}, got {tuple(mask.shape)}.")
    return mask


def resolve_temperature(similarity: str | Similarity, temperature: float | None = None) -> float:
    """The module's one temperature rule: ``None`` -> the similarity's own ``default_temperature``,
    else ``temperature`` checked by :func:`check_temperature`."""
    if temperature is None:
        return float(get_similarity(similarity).default_temperature)
    return check_temperature(temperature)


def _is_numpy(a) -> bool:
    return isinstance(a, np.ndarray)


def _as_tensor(a, what: str):
    """numpy -> torch (no copy); torch unchanged; anything else is a typed error."""
    if a is None or isinstance(a, torch.Tensor):
        return a
    if _is_numpy(a):
        if a.dtype == object or a.dtype.kind not in "biuf":
            raise InvalidParameter(f"{what} must hold numbers, got a numpy array of dtype {a.dtype}.")
        return torch.from_numpy(np.ascontiguousarray(a))
    raise InvalidParameter(f"{what} must be a torch tensor or a numpy array, got {type(a).__name__}.")


def _to_numpy(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t


def _numpy_result(res):
    """A result dataclass with every tensor field turned into a numpy array (numpy in -> numpy out)."""
    for f in fields(res):
        setattr(res, f.name, _to_numpy(getattr(res, f.name)))
    return res


def check_temperature(temperature) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise InvalidParameter(f"The temperature must be a number, got {temperature!r}.") from None
    if not (t > 0 and math.isfinite(t)):
        raise InvalidParameter(f"The temperature must be a positive number, got {temperature!r}.")
    if not MIN_TEMPERATURE <= t <= MAX_TEMPERATURE:
        raise InvalidParameter(f"The temperature must be between {MIN_TEMPERATURE:g} and {MAX_TEMPERATURE:g}, got "
                               f"{temperature!r} (outside that range the picture no longer changes).")
    return t


def check_weights(w: torch.Tensor) -> None:
    """Scores too large for the temperature overflow the softmax (inf - inf = NaN): say so, never return NaN."""
    if not bool(torch.isfinite(w.sum())):
        raise InvalidParameter("The attention weights overflowed: the similarity scores are too large for this "
                               "temperature. Raise the temperature, scale the vectors down, or use cosine.")


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not t.is_floating_point():
        return
    # one reduction, no n x d mask: NaN and inf propagate through a sum, so a finite sum proves every
    # element finite; only a non-finite sum (NaN, inf, or an overflow of large values) looks closer
    if bool(torch.isfinite(t.sum())):
        return
    if not bool(torch.isfinite(t).all()):
        raise InvalidParameter(f"The {what} contain NaN or infinite values; clean the input first.")


def scores(q: torch.Tensor, k: torch.Tensor, similarity: str | Similarity = "cosine", **params) -> torch.Tensor:
    """Raw similarity scores: ``(..., n, d) x (..., m, d) -> (..., n, m)``."""
    return get_similarity(similarity)(q, k, **params)


def masked_softmax(s: torch.Tensor, key_mask: torch.Tensor | None = None, dim: int = -1) -> torch.Tensor:
    """Stable softmax over ``dim`` (max-subtracted, as torch.softmax does).

    ``key_mask`` (``(..., m)``, True = valid, broadcast over queries) gives masked keys exactly 0;
    a row without a valid key becomes all 0 instead of NaN.
    """
    if key_mask is None:
        return torch.softmax(s, dim=dim)
    if dim not in (-1, s.dim() - 1):
        raise InvalidParameter("masked_softmax masks the last axis; move the key axis last.")
    return _softmax_rows(s, key_mask, inplace=False)


def _can_write(t: torch.Tensor) -> bool:
    """In-place work on ``t`` is safe: nothing records it for a backward pass."""
    return not (torch.is_grad_enabled() and t.requires_grad)


def causal_mask(n: int, m: int | None = None, device=None) -> torch.Tensor:
    """Bool ``(n, m)``: True where query i may see key j, ``j <= i + (m - n)`` (``m`` defaults to ``n``)."""
    m = n if m is None else m
    return torch.arange(m, device=device) <= torch.arange(m - n, m, device=device).unsqueeze(-1)


def _softmax_rows(z: torch.Tensor, key_mask: torch.Tensor | None, inplace: bool,
                  pair_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``masked_softmax(z, key_mask)`` over the last axis; ``inplace``: ``z`` is a private buffer that
    may be overwritten (one ``n x m`` buffer instead of three). ``pair_mask`` ``(n, m)`` (e.g. causal)
    is combined with the key mask."""
    inplace = inplace and _can_write(z)
    allowed = None if key_mask is None else key_mask.unsqueeze(-2)
    if pair_mask is not None:
        allowed = pair_mask if allowed is None else allowed & pair_mask
    if allowed is not None:
        z = z.masked_fill_(~allowed, float("-inf")) if inplace else z.masked_fill(~allowed, float("-inf"))
        inplace = _can_write(z)  # a fresh copy now, unless autograd records it
    if inplace and z.device.type == "cpu" and z.is_contiguous():
        w = torch.softmax(z, dim=-1, out=z)  # the CPU kernel reads each row before it writes it
    else:
        w = torch.softmax(z, dim=-1)
    if allowed is not None:
        empty = ~allowed.any(dim=-1, keepdim=True)  # rows without a valid key: NaN -> 0
        if bool(empty.any()):
            w = w.masked_fill_(empty, 0.0) if _can_write(w) else w.masked_fill(empty, 0.0)
    return w


def _prepare(x, keys, values, mask, key_mask):
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise InvalidParameter("x must be a torch tensor or numpy array of shape (..., n, d).")
    x, keys, values = _as_tensor(x, "x"), _as_tensor(keys, "keys"), _as_tensor(values, "values")
    if x.dim() < 2:
        raise ShapeMismatch(f"x must be (n, d) or batched (..., n, d), got shape {tuple(x.shape)}.")
    if not x.is_floating_point():
        x = x.float()
    self_attention = keys is None
    k = x if keys is None else keys.to(device=x.device, dtype=x.dtype)
    v = k if values is None else values.to(device=x.device, dtype=x.dtype)
    if k.dim() != x.dim() or v.dim() != x.dim():
        raise ShapeMismatch(f"x, keys and values must have the same number of dimensions (..., n, d): got "
                            f"{tuple(x.shape)}, {tuple(k.shape)} and {tuple(v.shape)}.")
    if v.shape[-2] != k.shape[-2]:
        raise ShapeMismatch(f"values must have one row per key: {v.shape[-2]} values for {k.shape[-2]} keys.")
    _check_finite(x, "inputs")
    if k is not x:
        _check_finite(k, "keys")
    if v is not k and v is not x:
        _check_finite(v, "values")
    qmask = _as_bool_mask(mask, x.shape[:-1], "mask", x.device)
    if key_mask is None and self_attention:
        kmask = qmask
    else:
        kmask = _as_bool_mask(key_mask, k.shape[:-1], "key_mask", x.device)
    return x, k, v, qmask, kmask


def attend(x, similarity: str | Similarity = "cosine", temperature: float | None = None,
           mask=None, keys=None, values=None, key_mask=None, causal: bool = False,
           **params) -> AttentionResult:
    """Attend from every element of ``x`` to every key.

    x: ``(n, d)`` or with any leading batch dimensions ``(..., n, d)`` (e.g. multi-head
    ``(batch, heads, n, d)``), torch or numpy; mask: bool ``x.shape[:-1]`` (``(n,)``, ``(b, n)``, ...),
    True = real element (ragged batches). ``temperature=None``: the similarity's own default. ``keys``/``values`` default to ``x`` (self-attention); given, it is cross-attention and
    ``key_mask`` masks the keys (in self-attention ``mask`` masks both).
    ``causal``: query i sees only keys ``j <= i`` (with ``m > n`` keys, ``j <= i + (m - n)``: the
    queries are the last n positions), on top of any mask; the weights above that diagonal are exactly 0.
    Returns an :class:`AttentionResult`: scores and weights ``(..., n, m)`` and output ``(..., n, d_v)``,
    torch tensors for a tensor ``x``, numpy arrays for a numpy ``x``.
    """
    sim = get_similarity(similarity)
    t = resolve_temperature(sim, temperature)
    as_numpy = _is_numpy(x)
    x, k, v, qmask, kmask = _prepare(x, keys, values, mask, key_mask)
    pair = None
    if causal:
        n, m = x.shape[-2], k.shape[-2]
        if m < n:
            raise InvalidParameter(f"causal attention needs at least as many keys as queries (the queries are the "
                                   f"last positions), got {n} queries and {m} keys.")
        pair = causal_mask(n, m, x.device)
    s = sim(x, k, **params)
    # the scores are returned as they are, so the weights need one buffer of their own: s / T when
    # T != 1, a masked copy, or the softmax's output; the softmax then runs in place in it
    w = _softmax_rows(s if t == 1.0 else s / t, kmask, inplace=t != 1.0, pair_mask=pair)
    check_weights(w)
    if qmask is not None:  # padded queries attend to nothing
        pad = ~qmask.unsqueeze(-1)
        w = w.masked_fill_(pad, 0.0) if _can_write(w) else w.masked_fill(pad, 0.0)
    res = AttentionResult(scores=s, weights=w, output=w @ v, similarity=sim.name, temperature=t)
    return _numpy_result(res) if as_numpy else res


def block_size_for(m: int, batch: int = 1, budget: int = BLOCK_ELEMENTS) -> int:
    """Queries per block so that one block holds at most ``budget`` scores."""
    return max(1, budget // max(1, m * batch))


def attend_blocked(x, similarity: str | Similarity = "cosine", temperature: float | None = None,
                   mask=None, keys=None, values=None, key_mask=None,
                   block_size: int | None = None, need_output: bool = True, need_received: bool = True,
                   **params) -> BlockedResult:
    """Outputs and attention received, computed ``block_size`` queries at a time (never ``n x m``).

    Shapes as :func:`attend` (any leading batch dimensions); ``temperature=None``: the similarity's
    own default. Returns a :class:`BlockedResult`: ``output (..., n, d_v)`` and ``received (..., m)``
    (``received[..., j]`` is the weight key j receives, averaged over the valid queries), torch for a
    tensor ``x``, numpy for a numpy ``x``.
    """
    sim = get_similarity(similarity)
    t = resolve_temperature(sim, temperature)
    as_numpy = _is_numpy(x)
    x, k, v, qmask, kmask = _prepare(x, keys, values, mask, key_mask)
    n, m = x.shape[-2], k.shape[-2]
    batch = math.prod(x.shape[:-2])
    bs = block_size or block_size_for(m, batch)
    if bs < 1:
        raise InvalidParameter(f"block_size must be at least 1, got {bs}.")
    out = torch.zeros(*x.shape[:-1], v.shape[-1], device=x.device, dtype=x.dtype) if need_output else None
    received = torch.zeros(*k.shape[:-1], device=x.device, dtype=x.dtype) if need_received else None
    score = block_scorer(sim, k, 1.0 / t, **params)  # per-key work once; 1 / T inside the GEMM
    for i in range(0, n, bs):
        w = _softmax_rows(score(x[..., i:i + bs, :]), kmask, inplace=True)  # one block buffer
        check_weights(w)
        if qmask is not None:
            w.masked_fill_(~qmask[..., i:i + bs].unsqueeze(-1), 0.0)
        if out is not None:
            out[..., i:i + bs, :] = w @ v
        if received is not None:
            received += w.sum(dim=-2)
        del w
    if received is not None:
        nq = qmask.sum(dim=-1, keepdim=True).clamp_min(1).to(x.dtype) if qmask is not None else n
        received = received / nq
    res = BlockedResult(output=out, received=received, similarity=sim.name, temperature=t, block_size=bs)
    return _numpy_result(res) if as_numpy else res


def attention_row(query, keys, similarity: str | Similarity = "cosine",
                  temperature: float | None = None, key_mask=None, **params):
    """Weights of one query (``(d,) -> (m,)``) or a few (``(r, d) -> (r, m)``) over ``keys (m, d)``.

    ``temperature=None``: the similarity's own default. Apart from the ``(r, m)`` result it returns, it
    holds one block of scores at a time. Torch in -> torch out, numpy in -> numpy out.
    """
    if _is_numpy(query):
        return _to_numpy(attention_row(_as_tensor(query, "query"), _as_tensor(keys, "keys"), similarity,
                                       temperature, _as_tensor(key_mask, "key_mask"), **params))
    keys = _as_tensor(keys, "keys")
    single = query.dim() == 1
    q = query.unsqueeze(0) if single else query
    bs = block_size_for(keys.shape[-2])
    rows = [attend(q[i:i + bs], similarity, temperature, keys=keys, values=keys[..., :1], key_mask=key_mask,
                   **params).weights for i in range(0, max(1, q.shape[0]), bs)]
    w = rows[0] if len(rows) == 1 else torch.cat(rows, dim=0)
    return w[0] if single else w


def attention_received(x, similarity: str | Similarity = "cosine", temperature: float | None = None,
                       mask=None, keys=None, key_mask=None, block_size: int | None = None, **params):
    """Attention each key receives, averaged over the valid queries: ``(..., n, d) -> (..., m)``, blocked.
    ``temperature=None``: the similarity's own default. Torch in -> torch out, numpy in -> numpy out."""
    return attend_blocked(x, similarity, temperature, mask=mask, keys=keys, key_mask=key_mask,
                          block_size=block_size, need_output=False, **params).received


def causal_rows(x: torch.Tensor, similarity: str | Similarity = "cosine", temperature: float | None = None,
                start: int = 0, stop: int | None = None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Rows ``start:stop`` of *causal* self-attention, as a decoder computes it: row i is
    ``softmax_j(sim(x_i, x_j) / T)`` over the keys ``j <= i`` only, every weight above the diagonal
    exactly 0. ``(n, d) -> (stop - start, n)``, or ``(b, n, d)`` with a padding ``mask (b, n)`` ->
    ``(b, stop - start, n)`` (padded rows and columns 0). Memory O((stop - start) x n).
    ``temperature=None``: the similarity's own default. Torch in -> torch out, numpy in -> numpy out."""
    if _is_numpy(x):
        return _to_numpy(causal_rows(_as_tensor(x, "x"), similarity, temperature, start, stop,
                                     _as_tensor(mask, "mask")))
    n = x.shape[-2]
    stop = n if stop is None else stop
    if not (0 <= start < stop <= n):
        raise InvalidParameter(f"rows {start}:{stop} are outside the {n} positions.")
    keys = x[..., :stop, :]  # later keys never matter
    w = attend(x[..., start:stop, :], similarity, temperature, keys=keys, values=keys[..., :1],
               mask=None if mask is None else mask[..., start:stop],
               key_mask=None if mask is None else mask[..., :stop], causal=True).weights
    return torch.nn.functional.pad(w, (0, n - stop)) if stop < n else w


def row_stats_blocked(x: torch.Tensor, similarity: str | Similarity = "cosine", temperature: float | None = None,
                      causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy of every self-attention row and the attention each token receives, ``(n, d) -> (n,), (n,)``,
    in one pass over blocks of rows (never n x n): the same numbers as ``row_entropy(W)`` and ``W.mean(0)``
    where ``W`` is ``attend(x, ..., causal=causal).weights``. ``temperature=None``: the similarity's own
    default. Torch in -> torch out, numpy in -> numpy out."""
    if _is_numpy(x):
        e, r = row_stats_blocked(_as_tensor(x, "x"), similarity, temperature, causal)
        return _to_numpy(e), _to_numpy(r)
    n = x.shape[0]
    bs = block_size_for(n)
    entropy = torch.empty(n, dtype=x.dtype, device=x.device)
    received = torch.zeros(n, dtype=x.dtype, device=x.device)
    for i in range(0, n, bs):
        if causal:
            w = causal_rows(x, similarity, temperature, i, min(n, i + bs))
        else:
            w = attention_row(x[i:i + bs], x, similarity, temperature)
        entropy[i:i + bs] = row_entropy(w)
        received += w.sum(0)
    return entropy, received / n


def row_entropy(weights):
    """Shannon entropy of each row in nats, ``(..., n, m) -> (..., n)``; 0·log 0 = 0.
    Torch in -> torch out, numpy in -> numpy out."""
    if _is_numpy(weights):
        return _to_numpy(row_entropy(_as_tensor(weights, "weights")))
    return -torch.special.xlogy(weights, weights).sum(dim=-1)


def effective_tokens(weights):
    """exp(entropy): how many keys a row attends to 'in effect' (1 = one key, m = uniform), ``(..., n, m) -> (..., n)``.
    Torch in -> torch out, numpy in -> numpy out."""
    e = row_entropy(weights)
    return np.exp(e) if _is_numpy(e) else e.exp()


def top_pairs(weights: torch.Tensor, k: int = 10, exclude_diagonal: bool = False) -> list[tuple[int, int, float]]:
    """The ``k`` strongest (query, key, weight) pairs of an ``(n, m)`` weight matrix, strongest first."""
    if weights.dim() != 2:
        raise ShapeMismatch(f"top_pairs takes an (n, m) matrix, got {tuple(weights.shape)}.")
    w = weights
    if exclude_diagonal:
        w = w.clone()
        d = min(w.shape)
        w[torch.arange(d), torch.arange(d)] = float("-inf")
    k = max(0, min(int(k), w.numel()))
    vals, idx = torch.topk(w.reshape(-1), k)
    m = w.shape[1]
    return [(int(i) // m, int(i) % m, float(v)) for v, i in zip(vals.tolist(), idx.tolist()) if math.isfinite(v)]
