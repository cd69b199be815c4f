"""The registry of similarity functions: ``SIMILARITIES[name] -> Similarity``.

Every function maps queries ``q (..., n, d_q)`` and keys ``k (..., m, d_k)`` to raw scores
``(..., n, m)``; attention weights are ``softmax(scores / temperature)`` over the keys.

Adding a function is one ``_register(Similarity(...))`` entry here, and nothing else: the entry
carries everything the rest of attnviz reads from it —

- ``fn``: the fast score, ``(..., n, d_q) x (..., m, d_k) -> (..., n, m)``;
- ``reference``: the same score of one pair, ``(d_q,) x (d_k,) -> float``, written out the slow,
  obvious way in float64 (the tests check ``fn`` against it);
- ``explain``: that one score with the actual numbers filled in (the walkthrough's cell
  explanation, :class:`Worked`);
- ``use``: when the function is used (the lab), beside ``sentence`` / ``source`` / ``url`` (docs,
  pages, ``attnviz similarities``);
- ``prepare_keys`` (optional): per-key work done once for many query blocks (blocked attention);
- ``benchmark``: how ``bench/run.py`` measures it.

None of the fast functions builds an ``(n, m, d)`` intermediate: distance kernels use the expansion
``‖q−k‖² = ‖q‖² + ‖k‖² − 2 q·k`` (after centring on the key mean, which leaves distances unchanged
and keeps float32 cancellation small), ``manhattan`` uses ``torch.cdist`` (a pairwise kernel), and
``additive`` (which needs ``(n, m, h)`` by definition) is computed in query blocks with a bounded
hidden size.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np
import torch

from .errors import InvalidParameter, ShapeMismatch, UnknownSimilarity
from .fmt import factor, fmt, tex

ScoreFn = Callable[..., torch.Tensor]

#: seed of the untrained parameters of ``general`` and ``additive`` (documented, fixed: same numbers
#: on every machine and device).
UNTRAINED_SEED = 0
#: hidden size of the untrained ``additive`` scorer.
ADDITIVE_HIDDEN = 64
#: at most this many (query, key, hidden) products live at once in ``additive``.
ADDITIVE_BLOCK_ELEMENTS = 1 << 24
#: on the CPU, blocks of at most this many (they fit in a cache: speed, not memory)
ADDITIVE_CACHE_ELEMENTS = 1 << 18
#: how bench/run.py measures a function: against a kernel target, reported only, or with fewer repeats
BENCHMARK_KINDS = ("targeted", "reported", "slow")


@dataclass(frozen=True)
class Pair:
    """One (query, key) pair of a walkthrough, for :attr:`Similarity.explain`: ``x_i (d,)``, ``x_j (d,)`` float64."""

    i: int
    j: int
    x_i: np.ndarray
    x_j: np.ndarray
    label_i: str
    label_j: str
    params: dict = field(default_factory=dict)

    @property
    def head(self) -> str:
        """The left-hand side every explanation starts with: ``s_ij = s(x_i, x_j)`` in LaTeX."""
        return rf"s_{{{self.i}{self.j}}} = s(x_{{{self.i}}}, x_{{{self.j}}})"

    @property
    def d(self) -> int:
        return int(self.x_i.shape[0])


class Worked(NamedTuple):
    """One score worked out: the number recomputed by the formula shown, the formula with the numbers
    filled in (LaTeX, ending ``= <value>``), and a plain sentence (read aloud)."""

    value: float
    latex: str
    text: str


@dataclass(frozen=True)
class Similarity:
    """One similarity function and everything attnviz computes, checks, explains and says about it."""

    name: str
    label: str
    formula: str  # LaTeX
    sentence: str  # one plain-language sentence
    source: str  # the paper it comes from
    url: str
    default_temperature: float
    use: str  # when it is used, in one sentence (the lab's "When it is used")
    fn: ScoreFn = field(repr=False, compare=False)
    #: ``(a (d_q,), b (d_k,), **params) -> float``: the score of one pair in float64, written independently of ``fn``
    reference: Callable[..., float] = field(repr=False, compare=False)
    #: ``Pair -> Worked``: one score with its actual numbers, for the walkthrough
    explain: Callable[[Pair], Worked] = field(repr=False, compare=False)
    #: ``(k, scale, **params) -> (q -> scale * sim(q, k))``, or None when those params are not handled:
    #: per-key work done once for many query blocks (see :func:`block_scorer`)
    prepare_keys: Callable[..., ScoreFn | None] | None = field(default=None, repr=False, compare=False)
    untrained: bool = False  # True when it has seeded random (not learned) parameters
    same_dim: bool = True  # False when queries and keys may have different widths
    params_doc: str = ""
    benchmark: str = "reported"  # one of BENCHMARK_KINDS

    def __call__(self, q: torch.Tensor, k: torch.Tensor, **params) -> torch.Tensor:
        return self.fn(q, k, **params)


SIMILARITIES: dict[str, Similarity] = {}


def _register(sim: Similarity) -> None:
    if sim.benchmark not in BENCHMARK_KINDS:
        raise ValueError(f"{sim.name}: benchmark must be one of {BENCHMARK_KINDS}, got {sim.benchmark!r}")
    SIMILARITIES[sim.name] = sim


def get_similarity(name: str | Similarity) -> Similarity:
    """Look a similarity up by name; raises :class:`UnknownSimilarity` with the valid names."""
    if isinstance(name, Similarity):
        return name
    try:
        return SIMILARITIES[name]
    except (KeyError, TypeError):
        raise UnknownSimilarity(str(name), list(SIMILARITIES)) from None


def _sum_terms(a, b, shown: int = 3, op: str = r"\cdot") -> str:
    """``a_1 · b_1 + a_2 · b_2 + … (d terms)`` in LaTeX: the first ``shown`` products, then the count."""
    terms = [f"{factor(a[c])} {op} {factor(b[c])}" for c in range(min(shown, len(a)))]
    body = " + ".join(terms)
    if len(a) > shown:
        body += rf" + \dots\ ({len(a)}\text{{ terms}})"
    return body


def _check(q: torch.Tensor, k: torch.Tensor, same_dim: bool, name: str) -> None:
    if q.dim() < 2 or k.dim() < 2:
        raise ShapeMismatch(
            f"{name}: queries and keys must be (..., n, d) and (..., m, d); got {tuple(q.shape)} and {tuple(k.shape)}."
        )
    if same_dim and q.shape[-1] != k.shape[-1]:
        raise ShapeMismatch(
            f"{name} needs queries and keys of the same width, got d={q.shape[-1]} and d={k.shape[-1]}; "
            f"use {' or '.join(repr(n) for n, s in SIMILARITIES.items() if not s.same_dim)} to compare vectors of "
            "different widths."
        )


def _mm(q, k, alpha: float = 1.0):
    """``alpha * q @ k^T``, ``(..., n, d) x (..., m, d) -> (..., n, m)``, with ``alpha`` applied inside the
    GEMM (BLAS ``alpha``), so scaling costs no extra pass over the ``n x m`` result."""
    kt = k.transpose(-1, -2)
    if alpha == 1.0:
        return q @ kt
    if q.dim() == 2 and k.dim() == 2:
        return torch.addmm(q.new_zeros(()), q, kt, beta=0, alpha=alpha)
    if q.dim() == 3 and k.dim() == 3 and q.shape[0] == k.shape[0]:
        return torch.baddbmm(q.new_zeros(()), q, kt, beta=0, alpha=alpha)
    return (q @ kt).mul_(alpha)


def _dot(q, k):
    _check(q, k, True, "dot")
    return q @ k.transpose(-1, -2)


def _scaled_dot(q, k):
    _check(q, k, True, "scaled_dot")
    return _mm(q, k, 1.0 / math.sqrt(q.shape[-1]))


def _unit(x, eps: float):
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


def _cosine(q, k, eps: float = 1e-8):
    _check(q, k, True, "cosine")
    # a zero vector has no direction: its similarity to everything is 0 (not NaN)
    kn = _unit(k, eps)
    qn = kn if q is k else _unit(q, eps)  # self-attention: normalise once
    return qn @ kn.transpose(-1, -2)


#: pairs whose expanded squared distance is below this fraction of the largest squared norm are
#: recomputed exactly (the expansion loses them to cancellation, and the square root magnifies it)
REFINE_FRACTION = 1e-3
REFINE_CHUNK = 1 << 16


def _expansion(qc, kc, q2, k2, scale: float):
    """``scale * (|q|^2 + |k|^2 - 2 q.k)``, ``(..., n, m)``: the key norms ride in the GEMM's input
    (``beta``), the factor in its ``alpha``; one more pass adds the query norms."""
    kt = kc.transpose(-1, -2)
    k2s, q2s = (k2 * scale).unsqueeze(-2), (q2 * scale).unsqueeze(-1)
    if qc.dim() == 2 and kc.dim() == 2:
        d2 = torch.addmm(k2s, qc, kt, beta=1, alpha=-2.0 * scale)
    elif qc.dim() == 3 and kc.dim() == 3 and qc.shape[0] == kc.shape[0]:
        d2 = torch.baddbmm(k2s, qc, kt, beta=1, alpha=-2.0 * scale)
    else:  # broadcast batch shapes
        d2 = (qc @ kt).mul_(-2.0 * scale).add_(k2s)
    return d2.add_(q2s)


@dataclass(frozen=True)
class _CentredKeys:
    centre: torch.Tensor  # (..., 1, d) key mean
    kc: torch.Tensor  # (..., m, d) centred keys
    k2: torch.Tensor  # (..., m) their squared norms


def _centre_keys(k) -> _CentredKeys:
    centre = k.mean(dim=-2, keepdim=True)
    kc = k - centre
    return _CentredKeys(centre, kc, (kc * kc).sum(-1))


def _squared_distance(q, k, scale: float = 1.0):
    """``scale * ||q_i - k_j||^2``, ``(..., n, m)``, in one GEMM and a couple of passes over the result.

    The expansion ``|q|^2 + |k|^2 - 2 q.k`` is taken after centring on the key mean (which leaves every
    distance unchanged and keeps float32 cancellation small). Pairs it loses to cancellation (below
    ``REFINE_FRACTION`` of the largest squared norm: duplicates, repeated tokens) are recomputed
    exactly, which also leaves no negative value to clamp. In self-attention the diagonal is exactly 0.
    """
    keys = _centre_keys(k)
    if q is k:
        return _distance_to_centred(keys.kc, keys.k2, keys, scale, self_attention=True)
    qc = q - keys.centre
    return _distance_to_centred(qc, (qc * qc).sum(-1), keys, scale)


def _distance_to_centred(qc, q2, keys: _CentredKeys, scale: float, self_attention: bool = False):
    """:func:`_squared_distance` from centred queries ``qc`` (their squared norms ``q2``) and keys."""
    kc, k2 = keys.kc, keys.k2
    d2 = _expansion(qc, kc, q2, k2, scale)
    if not d2.numel():
        return d2
    limit = REFINE_FRACTION * float((q2.max() + k2.max()).detach())
    if limit <= 0.0:  # every centred vector is zero: all distances are exactly 0 already
        return d2.clamp_min_(0.0) if scale > 0 else d2.clamp_max_(0.0)
    n, m = d2.shape[-2], d2.shape[-1]
    lim = scale * limit
    far = float("inf") if scale > 0 else float("-inf")
    diag = d2.diagonal(dim1=-2, dim2=-1) if self_attention else None
    if diag is not None:
        diag.fill_(far)  # a vector and itself: set to exactly 0 below, never refined
    rows = d2.view(-1, m)  # (B * n, m), one row per query of every batch element
    # one reduction finds the rows with a close pair; only those rows are searched for them
    extreme = rows.amin(-1) if scale > 0 else rows.amax(-1)
    hit = ((extreme < lim) if scale > 0 else (extreme > lim)).nonzero().squeeze(-1)
    if hit.numel():
        if hit.numel() * 4 < rows.shape[0]:
            sub = rows[hit]
            pos = ((sub < lim) if scale > 0 else (sub > lim)).nonzero()
            ri, kj = hit[pos[:, 0]], pos[:, 1]
        else:
            pos = ((rows < lim) if scale > 0 else (rows > lim)).nonzero()
            ri, kj = pos[:, 0], pos[:, 1]
        batch = d2.shape[:-2]
        qf = qc.expand(*batch, n, qc.shape[-1]).reshape(-1, qc.shape[-1])  # (B * n, d)
        kf = kc.expand(*batch, m, kc.shape[-1]).reshape(-1, kc.shape[-1])  # (B * m, d)
        kr = torch.div(ri, n, rounding_mode="floor") * m + kj  # row of the key in kf
        for s in range(0, ri.shape[0], REFINE_CHUNK):
            sl = slice(s, s + REFINE_CHUNK)
            diff = qf[ri[sl]] - kf[kr[sl]]
            rows[ri[sl], kj[sl]] = (diff * diff).sum(-1).mul_(scale)
    if diag is not None:
        diag.fill_(0.0)
    return d2


def _neg_sqrt(d2, scale: float = 1.0):
    """``-scale * sqrt(d2)``, in place unless autograd needs sqrt's output."""
    if torch.is_grad_enabled() and d2.requires_grad:
        return torch.sqrt(d2) * -scale
    return d2.sqrt_().mul_(-scale) if scale != 1.0 else d2.sqrt_().neg_()


def _euclidean(q, k):
    _check(q, k, True, "euclidean")
    return _neg_sqrt(_squared_distance(q, k))


def _rbf_sigma(d: int, sigma) -> float:
    sigma = math.sqrt(d) if sigma is None else float(sigma)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InvalidParameter(f"rbf: sigma must be a positive number, got {sigma}.")
    return sigma


def _rbf(q, k, sigma: float | None = None):
    _check(q, k, True, "rbf")
    sigma = _rbf_sigma(q.shape[-1], sigma)
    return _squared_distance(q, k, -1.0 / (2.0 * sigma * sigma))


def _manhattan(q, k):
    _check(q, k, True, "manhattan")
    d = torch.cdist(q, k, p=1.0)  # cdist's p=1 kernel works pair by pair: no (n, m, d) intermediate
    return -d if (torch.is_grad_enabled() and d.requires_grad) else d.neg_()


_param_cache: dict[tuple, torch.Tensor] = {}
_param_lock = threading.Lock()


def untrained_parameter(shape: tuple[int, ...], tag: str, like: torch.Tensor, seed: int = UNTRAINED_SEED) -> torch.Tensor:
    """Seeded N(0, 1/fan_in) parameters, drawn on the CPU in float64 so every device gets the same numbers."""
    key = (tuple(shape), tag, seed, like.device, like.dtype)
    with _param_lock:
        p = _param_cache.get(key)
        if p is None:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + sum(map(ord, tag)) * 7919 + sum(shape))
            p = torch.randn(*shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[-1])
            p = p.to(device=like.device, dtype=like.dtype)
            _param_cache[key] = p
    return p


def _general(q, k, weight: torch.Tensor | None = None, seed: int = UNTRAINED_SEED):
    _check(q, k, False, "general")
    dq, dk = q.shape[-1], k.shape[-1]
    if weight is None:
        weight = untrained_parameter((dq, dk), "general", q, seed)
        if dq == dk:  # identity plus seeded noise: starts near the plain dot product
            weight = weight + torch.eye(dq, device=q.device, dtype=q.dtype)
    if tuple(weight.shape) != (dq, dk):
        raise ShapeMismatch(f"general: weight must be ({dq}, {dk}), got {tuple(weight.shape)}.")
    return (q @ weight.to(q)) @ k.transpose(-1, -2)


def _additive(q, k, w_q: torch.Tensor | None = None, w_k: torch.Tensor | None = None, v: torch.Tensor | None = None,
              hidden: int = ADDITIVE_HIDDEN, seed: int = UNTRAINED_SEED):
    _check(q, k, False, "additive")
    dq, dk = q.shape[-1], k.shape[-1]
    w_q = untrained_parameter((hidden, dq), "additive_wq", q, seed) if w_q is None else w_q.to(q)
    w_k = untrained_parameter((hidden, dk), "additive_wk", q, seed) if w_k is None else w_k.to(q)
    v = untrained_parameter((1, w_q.shape[0]), "additive_v", q, seed)[0] if v is None else v.to(q)
    if w_q.shape[0] != w_k.shape[0] or v.shape[-1] != w_q.shape[0]:
        raise ShapeMismatch("additive: w_q, w_k and v must share the hidden size.")
    hq = q @ w_q.T  # (..., n, h)
    hk = k @ w_k.T  # (..., m, h)
    n, m, h = hq.shape[-2], hk.shape[-2], hq.shape[-1]
    batch = torch.broadcast_shapes(hq.shape[:-2], hk.shape[:-2])
    out = torch.empty(*batch, n, m, device=q.device, dtype=q.dtype)
    # on the CPU, blocks that stay in the cache (a few times faster than one large block); a GPU
    # wants few large launches
    budget = min(ADDITIVE_BLOCK_ELEMENTS, ADDITIVE_CACHE_ELEMENTS) if q.device.type == "cpu" else ADDITIVE_BLOCK_ELEMENTS
    step = max(1, budget // max(1, m * h * max(1, math.prod(batch))))
    grad = torch.is_grad_enabled() and (hq.requires_grad or hk.requires_grad)
    for i in range(0, n, step):
        t = hq[..., i:i + step, None, :] + hk[..., None, :, :]  # (..., b, m, h)
        t = torch.tanh(t) if grad else t.tanh_()
        out[..., i:i + step, :] = t @ v
    return out


# --------------------------------------------------------------------------------- key precompute


def _prepare_dot(k, scale: float, **params):
    if params:
        return None

    def score(q):
        _check(q, k, True, "dot")
        return _mm(q, k, scale)
    return score


def _prepare_scaled_dot(k, scale: float, **params):
    if params:
        return None

    def score(q):
        _check(q, k, True, "scaled_dot")
        return _mm(q, k, scale / math.sqrt(q.shape[-1]))
    return score


def _prepare_cosine(k, scale: float, **params):
    if not set(params) <= {"eps"}:
        return None
    eps = params.get("eps", 1e-8)
    kn = _unit(k, eps)  # normalised once, not once per block

    def score(q):
        _check(q, k, True, "cosine")
        return _mm(_unit(q, eps), kn, scale)
    return score


def _prepare_euclidean(k, scale: float, **params):
    if params:
        return None
    keys = _centre_keys(k)  # centred once, not once per block

    def score(q):
        _check(q, k, True, "euclidean")
        qc = q - keys.centre
        return _neg_sqrt(_distance_to_centred(qc, (qc * qc).sum(-1), keys, 1.0), scale)
    return score


def _prepare_rbf(k, scale: float, **params):
    if not set(params) <= {"sigma"}:
        return None
    keys = _centre_keys(k)
    sigma = _rbf_sigma(k.shape[-1], params.get("sigma"))
    factor_ = -scale / (2.0 * sigma * sigma)

    def score(q):
        _check(q, k, True, "rbf")
        qc = q - keys.centre
        return _distance_to_centred(qc, (qc * qc).sum(-1), keys, factor_)
    return score


def block_scorer(similarity: str | Similarity, k: torch.Tensor, scale: float = 1.0, **params) -> ScoreFn:
    """``q -> scale * sim(q, k)`` for many query blocks against the same keys ``k (..., m, d)``.

    What the blocked attention paths call once per block of queries: the entry's ``prepare_keys`` does
    the per-key work (normalising for cosine, centring for the distances) once, not once per block, and
    ``scale`` (``1 / temperature``) rides in the GEMM where it can instead of costing a pass over the
    block. An entry without ``prepare_keys`` (or with params it does not handle) is scored whole per block.
    """
    sim = get_similarity(similarity)
    if sim.prepare_keys is not None:
        prepared = sim.prepare_keys(k, scale, **params)
        if prepared is not None:
            return prepared

    def score(q):
        s = sim(q, k, **params)
        if scale == 1.0:
            return s
        return s * scale if (torch.is_grad_enabled() and s.requires_grad) else s.mul_(scale)
    return score


# ------------------------------------------------------------------ references and worked examples
# Each reference is the textbook formula of ONE pair in float64 Python, sharing nothing with the fast
# kernels above; each explanation recomputes the score by the formula it shows.


def _untrained_general_weight(dq: int, dk: int, seed: int = UNTRAINED_SEED) -> np.ndarray:
    w = untrained_parameter((dq, dk), "general", torch.zeros((), dtype=torch.float64), seed).numpy()
    return w + np.eye(dq) if dq == dk else w


def _untrained_additive(dq: int, dk: int, hidden: int = ADDITIVE_HIDDEN, seed: int = UNTRAINED_SEED):
    like = torch.zeros((), dtype=torch.float64)
    return (untrained_parameter((hidden, dq), "additive_wq", like, seed).numpy(),
            untrained_parameter((hidden, dk), "additive_wk", like, seed).numpy(),
            untrained_parameter((1, hidden), "additive_v", like, seed).numpy()[0])


def _ref_dot(a, b):
    return math.fsum(float(a[t]) * float(b[t]) for t in range(len(a)))


def _explain_dot(p: Pair) -> Worked:
    i, j, d = p.i, p.j, p.d
    v = _ref_dot(p.x_i, p.x_j)
    return Worked(v, rf"{p.head} = x_{{{i}}}^\top x_{{{j}}} = \sum_{{c=1}}^{{{d}}} x_{{{i},c}}\,x_{{{j},c}}"
                     rf" = {_sum_terms(p.x_i, p.x_j)} = {tex(v)}",
                  f"The dot product of '{p.label_i}' and '{p.label_j}': multiply their {d} coordinates pairwise "
                  f"and add them up, giving {fmt(v)}.")


def _ref_scaled_dot(a, b):
    return _ref_dot(a, b) / math.sqrt(len(a))


def _explain_scaled_dot(p: Pair) -> Worked:
    i, j, d = p.i, p.j, p.d
    dot = _ref_dot(p.x_i, p.x_j)
    v = dot / math.sqrt(d)
    return Worked(v, rf"{p.head} = \frac{{x_{{{i}}}^\top x_{{{j}}}}}{{\sqrt{{d}}}} = \frac{{{tex(dot)}}}{{\sqrt{{{d}}}}}"
                     rf" = \frac{{{tex(dot)}}}{{{tex(math.sqrt(d))}}} = {tex(v)}",
                  f"The dot product of '{p.label_i}' and '{p.label_j}' is {fmt(dot)}; divided by the square root "
                  f"of the width (√{d} = {fmt(math.sqrt(d))}) it is {fmt(v)}.")


def _ref_cosine(a, b, eps: float = 1e-8):
    na, nb = math.sqrt(_ref_dot(a, a)), math.sqrt(_ref_dot(b, b))
    return _ref_dot(a, b) / (max(na, eps) * max(nb, eps))  # a zero vector scores 0 with everything


def _explain_cosine(p: Pair) -> Worked:
    i, j = p.i, p.j
    dot, ni, nj = _ref_dot(p.x_i, p.x_j), math.sqrt(_ref_dot(p.x_i, p.x_i)), math.sqrt(_ref_dot(p.x_j, p.x_j))
    v = _ref_cosine(p.x_i, p.x_j)
    return Worked(v, rf"{p.head} = \frac{{x_{{{i}}}^\top x_{{{j}}}}}{{\lVert x_{{{i}}}\rVert\,\lVert x_{{{j}}}\rVert}}"
                     rf" = \frac{{{tex(dot)}}}{{{tex(ni)} \times {tex(nj)}}} = {tex(v)}",
                  f"The dot product of '{p.label_i}' and '{p.label_j}' is {fmt(dot)}; their lengths are {fmt(ni)} "
                  f"and {fmt(nj)}; {fmt(dot)} divided by ({fmt(ni)} × {fmt(nj)}) is {fmt(v)}, the cosine of the "
                  "angle between them.")


def _squared_gap(a, b) -> float:
    return math.fsum((float(a[t]) - float(b[t])) ** 2 for t in range(len(a)))


def _ref_euclidean(a, b):
    return -math.sqrt(_squared_gap(a, b))


def _explain_euclidean(p: Pair) -> Worked:
    i, j, d = p.i, p.j, p.d
    sq = _squared_gap(p.x_i, p.x_j)
    v = -math.sqrt(sq)
    return Worked(v, rf"{p.head} = -\lVert x_{{{i}}} - x_{{{j}}}\rVert = -\sqrt{{\textstyle\sum_{{c=1}}^{{{d}}}"
                     rf" (x_{{{i},c}} - x_{{{j},c}})^2}} = -\sqrt{{{tex(sq)}}} = {tex(v)}",
                  f"The squared differences of the {d} coordinates of '{p.label_i}' and '{p.label_j}' add up to "
                  f"{fmt(sq)}; the distance is its square root, {fmt(math.sqrt(sq))}, and the score is minus that: "
                  f"{fmt(v)}.")


def _ref_rbf(a, b, sigma: float | None = None):
    sigma = math.sqrt(len(a)) if sigma is None else float(sigma)
    return -_squared_gap(a, b) / (2 * sigma * sigma)


def _explain_rbf(p: Pair) -> Worked:
    i, j = p.i, p.j
    sq = _squared_gap(p.x_i, p.x_j)
    sigma = float(p.params.get("sigma") or math.sqrt(p.d))
    v = -sq / (2 * sigma * sigma)
    return Worked(v, rf"{p.head} = -\frac{{\lVert x_{{{i}}} - x_{{{j}}}\rVert^2}}{{2\sigma^2}}"
                     rf" = -\frac{{{tex(sq)}}}{{2 \times {tex(sigma)}^2}} = {tex(v)}",
                  f"The squared distance between '{p.label_i}' and '{p.label_j}' is {fmt(sq)}; divided by 2σ² "
                  f"(σ = {fmt(sigma)}) and negated, the score is {fmt(v)}.")


def _ref_manhattan(a, b):
    return -math.fsum(abs(float(a[t]) - float(b[t])) for t in range(len(a)))


def _explain_manhattan(p: Pair) -> Worked:
    i, j, d = p.i, p.j, p.d
    gaps = np.abs(p.x_i - p.x_j)
    shown = " + ".join(tex(g) for g in gaps[:3]) + (rf" + \dots\ ({d}\text{{ terms}})" if d > 3 else "")
    total = math.fsum(float(g) for g in gaps)
    v = -total
    return Worked(v, rf"{p.head} = -\lVert x_{{{i}}} - x_{{{j}}}\rVert_1 = -\sum_{{c=1}}^{{{d}}}"
                     rf" \lvert x_{{{i},c}} - x_{{{j},c}}\rvert = -({shown}) = {tex(v)}",
                  f"The differences of the {d} coordinates of '{p.label_i}' and '{p.label_j}', each taken without "
                  f"its sign, add up to {fmt(total)} (the city-block distance); the score is minus that: {fmt(v)}.")


def _ref_general(a, b, weight=None, seed: int = UNTRAINED_SEED):
    w = _untrained_general_weight(len(a), len(b), seed) if weight is None else np.asarray(weight, dtype=np.float64)
    return math.fsum(float(a[s]) * float(w[s, t]) * float(b[t]) for s in range(w.shape[0]) for t in range(w.shape[1]))


def _explain_general(p: Pair) -> Worked:
    i, j = p.i, p.j
    if p.params.get("weight") is not None:
        w = np.asarray(p.params["weight"], dtype=np.float64)
        wx = w @ p.x_j
        v = _ref_dot(p.x_i, wx)
        return Worked(v, rf"{p.head} = x_{{{i}}}^\top (W x_{{{j}}}) = {_sum_terms(p.x_i, wx)} = {tex(v)}",
                      f"The matrix W turns '{p.label_j}' into a new vector; its dot product with '{p.label_i}' "
                      f"is {fmt(v)}.")
    noise = _untrained_general_weight(p.d, p.d, int(p.params.get("seed", UNTRAINED_SEED))) - np.eye(p.d)
    dot, extra = _ref_dot(p.x_i, p.x_j), _ref_dot(p.x_i, noise @ p.x_j)
    v = dot + extra
    return Worked(v, rf"{p.head} = x_{{{i}}}^\top W x_{{{j}}},\ W = I + N \;\Rightarrow\; "
                     rf"x_{{{i}}}^\top x_{{{j}}} + x_{{{i}}}^\top N x_{{{j}}} = {tex(dot)} + {factor(extra)} = {tex(v)}",
                  f"W is the identity plus seeded random noise N (untrained), so the score of '{p.label_i}' and "
                  f"'{p.label_j}' is their plain dot product {fmt(dot)} plus the noise term {fmt(extra)}: {fmt(v)}.")


def _ref_additive(a, b, w_q=None, w_k=None, v=None, hidden: int = ADDITIVE_HIDDEN, seed: int = UNTRAINED_SEED):
    dq_, dk_, dv_ = _untrained_additive(len(a), len(b), hidden, seed)
    wq = dq_ if w_q is None else np.asarray(w_q, dtype=np.float64)
    wk = dk_ if w_k is None else np.asarray(w_k, dtype=np.float64)
    vv = dv_ if v is None else np.asarray(v, dtype=np.float64)
    return math.fsum(float(vv[h]) * math.tanh(_ref_dot(wq[h], a) + _ref_dot(wk[h], b)) for h in range(len(vv)))


def _explain_additive(p: Pair) -> Worked:
    i, j = p.i, p.j
    h = int(p.params.get("hidden", ADDITIVE_HIDDEN))
    wq, wk, vv = _untrained_additive(p.d, p.d, h, int(p.params.get("seed", UNTRAINED_SEED)))
    wq = wq if p.params.get("w_q") is None else np.asarray(p.params["w_q"], dtype=np.float64)
    wk = wk if p.params.get("w_k") is None else np.asarray(p.params["w_k"], dtype=np.float64)
    vv = vv if p.params.get("v") is None else np.asarray(p.params["v"], dtype=np.float64)
    hid = np.tanh(wq @ p.x_i + wk @ p.x_j)
    v = math.fsum(float(a) * float(b) for a, b in zip(vv, hid))
    return Worked(v, rf"{p.head} = v^\top \tanh(W_1 x_{{{i}}} + W_2 x_{{{j}}}) = \sum_{{h=1}}^{{{len(vv)}}} v_h\,t_h"
                     rf" = {_sum_terms(vv, hid)} = {tex(v)}",
                  f"A tiny network with {len(vv)} hidden units (untrained, seeded random weights) mixes "
                  f"'{p.label_i}' and '{p.label_j}', squashes each unit t_h with tanh, and adds the units up with "
                  f"weights v: {fmt(v)}.")


# ----------------------------------------------------------------------------------------- registry

_register(Similarity(
    name="dot", label="Dot product", formula=r"s(q,k) = q^\top k",
    sentence="Multiplies matching coordinates and adds them up: large when the vectors point the same way and are long.",
    source="Luong, Pham & Manning 2015, Effective Approaches to Attention-based Neural Machine Translation",
    url="https://arxiv.org/abs/1508.04025", default_temperature=1.0,
    use="Luong-style attention in sequence-to-sequence translation; cheap, but long vectors win regardless of direction.",
    fn=_dot, reference=_ref_dot, explain=_explain_dot, prepare_keys=_prepare_dot, benchmark="targeted",
))
_register(Similarity(
    name="scaled_dot", label="Scaled dot product", formula=r"s(q,k) = \frac{q^\top k}{\sqrt{d}}",
    sentence="The dot product divided by the square root of the width, so scores do not grow with the number of dimensions.",
    source="Vaswani et al. 2017, Attention Is All You Need", url="https://arxiv.org/abs/1706.03762",
    default_temperature=1.0,
    use="The default inside transformers (BERT, GPT, ViT): the dot product kept at a sensible size as the width grows.",
    fn=_scaled_dot, reference=_ref_scaled_dot, explain=_explain_scaled_dot, prepare_keys=_prepare_scaled_dot,
    benchmark="targeted",
))
_register(Similarity(
    name="cosine", label="Cosine similarity", formula=r"s(q,k) = \frac{q^\top k}{\lVert q\rVert\,\lVert k\rVert}",
    sentence="Only the angle between the vectors counts, not their length; scores lie in [-1, 1], so it needs a small temperature to be decisive.",
    source="Graves et al. 2014, Neural Turing Machines; used with a learned temperature in Liu et al. 2022, Swin Transformer V2",
    url="https://arxiv.org/abs/2111.09883", default_temperature=0.1,
    use="Comparing embeddings by direction only: memory look-ups, retrieval, and Swin Transformer V2's attention, always with a small (often learned) temperature.",
    fn=_cosine, reference=_ref_cosine, explain=_explain_cosine, prepare_keys=_prepare_cosine, benchmark="targeted",
))
_register(Similarity(
    name="euclidean", label="Euclidean (negative distance)", formula=r"s(q,k) = -\lVert q - k\rVert_2",
    sentence="Nearer means more similar: the score is minus the straight-line distance between the two vectors (the seed article's Euclidean distance).",
    source="The seed article (sim = Euclidean distance); cf. Kim, Papamakarios & Mnih 2021, The Lipschitz Constant of Self-Attention (L2 attention)",
    url="https://arxiv.org/abs/2006.04710", default_temperature=1.0,
    use="Distance-based attention, e.g. L2 self-attention, which keeps attention Lipschitz-continuous; the seed article's 'Euclidean distance'.",
    fn=_euclidean, reference=_ref_euclidean, explain=_explain_euclidean, prepare_keys=_prepare_euclidean,
    benchmark="targeted",
))
_register(Similarity(
    name="rbf", label="RBF (Gaussian) kernel", formula=r"s(q,k) = -\frac{\lVert q - k\rVert_2^2}{2\sigma^2},\ \sigma=\sqrt{d}",
    sentence="A Gaussian bump around each query: weights fall off with the squared distance, and sigma sets how wide the bump is.",
    source="Tsai et al. 2019, Transformer Dissection: A Unified Understanding of Transformer's Attention via the Lens of Kernel",
    url="https://arxiv.org/abs/1908.11775", default_temperature=0.1,
    use="The kernel view of attention: a Gaussian bump around each query; with sigma = 1 it is dot-product attention with a key-length penalty (see below).",
    fn=_rbf, reference=_ref_rbf, explain=_explain_rbf, prepare_keys=_prepare_rbf,
    params_doc="sigma (default sqrt(d))",
))
_register(Similarity(
    name="manhattan", label="Manhattan (negative L1 distance)", formula=r"s(q,k) = -\lVert q - k\rVert_1",
    sentence="Nearer means more similar, measured along the axes: the score is minus the sum of the absolute coordinate differences (the city-block distance).",
    source="Chen et al. 2020, AdderNet: Do We Really Need Multiplications in Deep Learning? (the negative L1 distance in place of products)",
    url="https://arxiv.org/abs/1912.13200", default_temperature=10.0,
    use="Multiplication-free networks (AdderNet and adder attention for vision transformers): additions and absolute values only; the L1 distance grows with the width, hence a large default temperature.",
    fn=_manhattan, reference=_ref_manhattan, explain=_explain_manhattan,
))
_register(Similarity(
    name="general", label="General (bilinear)", formula=r"s(q,k) = q^\top W k",
    sentence="A dot product through a matrix W, which can compare vectors of different kinds or widths; here W is identity plus seeded random noise, not learned.",
    source="Luong, Pham & Manning 2015, Effective Approaches to Attention-based Neural Machine Translation",
    url="https://arxiv.org/abs/1508.04025", default_temperature=1.0,
    use="Luong's 'general' score: a learned matrix lets queries and keys of different kinds or widths be compared (untrained here).",
    fn=_general, reference=_ref_general, explain=_explain_general, untrained=True, same_dim=False,
    params_doc=f"weight (d_q, d_k); default: identity + N(0, 1/d_k) noise, seed {UNTRAINED_SEED} (untrained)",
))
_register(Similarity(
    name="additive", label="Additive (Bahdanau)", formula=r"s(q,k) = v^\top \tanh(W_1 q + W_2 k)",
    sentence="A tiny one-layer network scores each pair; in a real model W1, W2 and v are learned, here they are seeded random numbers, so treat the pattern as untrained.",
    source="Bahdanau, Cho & Bengio 2014, Neural Machine Translation by Jointly Learning to Align and Translate",
    url="https://arxiv.org/abs/1409.0473", default_temperature=1.0,
    use="Bahdanau's original attention for translation: a small learned network scores each pair (untrained here).",
    fn=_additive, reference=_ref_additive, explain=_explain_additive, untrained=True, same_dim=False,
    params_doc=f"w_q (h, d_q), w_k (h, d_k), v (h,), h={ADDITIVE_HIDDEN}; default: N(0, 1/fan_in), seed {UNTRAINED_SEED} (untrained)",
    benchmark="slow",
))
