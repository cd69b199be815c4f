"""The registry of similarity functions: ``SIMILARITIES[name] -> Similarity``.

Every function maps queries ``q (..., n, d_q)`` and keys ``k (..., m, d_k)`` to raw scores
``(..., n, m)``; attention weights are ``softmax(scores / temperature)`` over the keys. Adding a
function is one ``_register(...)`` call here plus one parametrised test case.

None of them builds an ``(n, m, d)`` intermediate: distance kernels use the expansion
``‖q−k‖² = ‖q‖² + ‖k‖² − 2 q·k`` (after centring on the key mean, which leaves distances unchanged
and keeps float32 cancellation small), and ``additive`` (which needs ``(n, m, h)`` by definition)
is computed in query blocks with a bounded hidden size.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Callable

import torch

from .errors import InvalidParameter, ShapeMismatch, UnknownSimilarity

ScoreFn = Callable[..., torch.Tensor]

#: seed of the untrained parameters of ``general`` and ``additive`` (documented, fixed: same numbers
#: on every machine and device).
UNTRAINED_SEED = 0
#: hidden size of the untrained ``additive`` scorer.
ADDITIVE_HIDDEN = 64
#: at most this many (query, key, hidden) products live at once in ``additive``.
ADDITIVE_BLOCK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class Similarity:
    """One similarity function and everything the UI and the docs say about it."""

    name: str
    label: str
    formula: str  # LaTeX
    sentence: str  # one plain-language sentence
    source: str  # the paper it comes from
    url: str
    default_temperature: float
    fn: ScoreFn = field(repr=False, compare=False)
    untrained: bool = False  # True when it has seeded random (not learned) parameters
    same_dim: bool = True  # False when queries and keys may have different widths
    params_doc: str = ""

    def __call__(self, q: torch.Tensor, k: torch.Tensor, **params) -> torch.Tensor:
        return self.fn(q, k, **params)


SIMILARITIES: dict[str, Similarity] = {}


def _register(sim: Similarity) -> None:
    SIMILARITIES[sim.name] = sim


def get_similarity(name: str | Similarity) -> Similarity:
    """Look a similarity up by name; raises :class:`UnknownSimilarity` with the valid names."""
    if isinstance(name, Similarity):
        return name
    try:
        return SIMILARITIES[name]
    except (KeyError, TypeError):
        raise UnknownSimilarity(str(name), list(SIMILARITIES)) from None


def _check(q: torch.Tensor, k: torch.Tensor, same_dim: bool, name: str) -> None:
    if q.dim() < 2 or k.dim() < 2:
        raise ShapeMismatch(
            f"{name}: queries and keys must be (..., n, d) and (..., m, d); got {tuple(q.shape)} and {tuple(k.shape)}."
        )
    if same_dim and q.shape[-1] != k.shape[-1]:
        raise ShapeMismatch(
            f"{name} needs queries and keys of the same width, got d={q.shape[-1]} and d={k.shape[-1]}; "
            "use 'general' or 'additive' to compare vectors of different widths."
        )


def _dot(q, k):
    _check(q, k, True, "dot")
    return q @ k.transpose(-1, -2)


def _scaled_dot(q, k):
    _check(q, k, True, "scaled_dot")
    return (q @ k.transpose(-1, -2)).mul_(1.0 / math.sqrt(q.shape[-1]))


def _cosine(q, k, eps: float = 1e-8):
    _check(q, k, True, "cosine")
    # a zero vector has no direction: its similarity to everything is 0 (not NaN)
    qn = q / q.norm(dim=-1, keepdim=True).clamp_min(eps)
    kn = k / k.norm(dim=-1, keepdim=True).clamp_min(eps)
    return qn @ kn.transpose(-1, -2)


#: pairs whose expanded squared distance is below this fraction of the largest squared norm are
#: recomputed exactly (the expansion loses them to cancellation, and the square root magnifies it)
REFINE_FRACTION = 1e-3
REFINE_CHUNK = 1 << 16


def _squared_distance(q, k):
    # centring on the key mean leaves every distance unchanged and shrinks the norms that cancel
    centre = k.mean(dim=-2, keepdim=True)
    qc, kc = q - centre, k - centre
    q2 = (qc * qc).sum(-1, keepdim=True)
    k2 = (kc * kc).sum(-1).unsqueeze(-2)
    d2 = (qc @ kc.transpose(-1, -2)).mul_(-2.0).add_(q2).add_(k2)  # in place: one n x m buffer
    d2.clamp_min_(0.0)
    # near-duplicate pairs (the diagonal of self-attention, repeated tokens): exact differences
    limit = REFINE_FRACTION * float(q2.max() + k2.max()) if d2.numel() else 0.0
    close = (d2 < limit).nonzero()
    if close.numel():
        batch = d2.shape[:-2]
        qb = qc.expand(*batch, *qc.shape[-2:]).reshape(-1, *qc.shape[-2:])
        kb = kc.expand(*batch, *kc.shape[-2:]).reshape(-1, *kc.shape[-2:])
        flat = d2.view(-1, *d2.shape[-2:])
        bi = torch.zeros(close.shape[0], dtype=torch.long, device=d2.device)
        for dim, size in enumerate(batch):  # row-major flattening of the batch indices
            bi = bi * size + close[:, dim]
        qi, kj = close[:, -2], close[:, -1]
        for s in range(0, close.shape[0], REFINE_CHUNK):
            sl = slice(s, s + REFINE_CHUNK)
            diff = qb[bi[sl], qi[sl]] - kb[bi[sl], kj[sl]]
            flat[bi[sl], qi[sl], kj[sl]] = (diff * diff).sum(-1)
    return d2


def _euclidean(q, k):
    _check(q, k, True, "euclidean")
    return _squared_distance(q, k).sqrt_().neg_()


def _rbf(q, k, sigma: float | None = None):
    _check(q, k, True, "rbf")
    d = q.shape[-1]
    sigma = math.sqrt(d) if sigma is None else float(sigma)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InvalidParameter(f"rbf: sigma must be a positive number, got {sigma}.")
    return _squared_distance(q, k).mul_(-1.0 / (2.0 * sigma * sigma))


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
    step = max(1, ADDITIVE_BLOCK_ELEMENTS // max(1, m * h * max(1, math.prod(batch))))
    for i in range(0, n, step):
        t = torch.tanh(hq[..., i:i + step, None, :] + hk[..., None, :, :])  # (..., b, m, h)
        out[..., i:i + step, :] = t @ v
    return out


_register(Similarity(
    name="dot", label="Dot product", formula=r"s(q,k) = q^\top k",
    sentence="Multiplies matching coordinates and adds them up: large when the vectors point the same way and are long.",
    source="Luong, Pham & Manning 2015, Effective Approaches to Attention-based Neural Machine Translation",
    url="https://arxiv.org/abs/1508.04025", default_temperature=1.0, fn=_dot,
))
_register(Similarity(
    name="scaled_dot", label="Scaled dot product", formula=r"s(q,k) = \frac{q^\top k}{\sqrt{d}}",
    sentence="The dot product divided by the square root of the width, so scores do not grow with the number of dimensions.",
    source="Vaswani et al. 2017, Attention Is All You Need", url="https://arxiv.org/abs/1706.03762",
    default_temperature=1.0, fn=_scaled_dot,
))
_register(Similarity(
    name="cosine", label="Cosine similarity", formula=r"s(q,k) = \frac{q^\top k}{\lVert q\rVert\,\lVert k\rVert}",
    sentence="Only the angle between the vectors counts, not their length; scores lie in [-1, 1], so it needs a small temperature to be decisive.",
    source="Graves et al. 2014, Neural Turing Machines; used with a learned temperature in Liu et al. 2022, Swin Transformer V2",
    url="https://arxiv.org/abs/2111.09883", default_temperature=0.1, fn=_cosine,
))
_register(Similarity(
    name="euclidean", label="Euclidean (negative distance)", formula=r"s(q,k) = -\lVert q - k\rVert_2",
    sentence="Nearer means more similar: the score is minus the straight-line distance between the two vectors (the seed article's Euclidean distance).",
    source="The seed article (sim = Euclidean distance); cf. Kim, Papamakarios & Mnih 2021, The Lipschitz Constant of Self-Attention (L2 attention)",
    url="https://arxiv.org/abs/2006.04710", default_temperature=1.0, fn=_euclidean,
))
_register(Similarity(
    name="rbf", label="RBF (Gaussian) kernel", formula=r"s(q,k) = -\frac{\lVert q - k\rVert_2^2}{2\sigma^2},\ \sigma=\sqrt{d}",
    sentence="A Gaussian bump around each query: weights fall off with the squared distance, and sigma sets how wide the bump is.",
    source="Tsai et al. 2019, Transformer Dissection: A Unified Understanding of Transformer's Attention via the Lens of Kernel",
    url="https://arxiv.org/abs/1908.11775", default_temperature=0.1, fn=_rbf,
    params_doc="sigma (default sqrt(d))",
))
_register(Similarity(
    name="general", label="General (bilinear)", formula=r"s(q,k) = q^\top W k",
    sentence="A dot product through a matrix W, which can compare vectors of different kinds or widths; here W is identity plus seeded random noise, not learned.",
    source="Luong, Pham & Manning 2015, Effective Approaches to Attention-based Neural Machine Translation",
    url="https://arxiv.org/abs/1508.04025", default_temperature=1.0, fn=_general, untrained=True, same_dim=False,
    params_doc=f"weight (d_q, d_k); default: identity + N(0, 1/d_k) noise, seed {UNTRAINED_SEED} (untrained)",
))
_register(Similarity(
    name="additive", label="Additive (Bahdanau)", formula=r"s(q,k) = v^\top \tanh(W_1 q + W_2 k)",
    sentence="A tiny one-layer network scores each pair; in a real model W1, W2 and v are learned, here they are seeded random numbers, so treat the pattern as untrained.",
    source="Bahdanau, Cho & Bengio 2014, Neural Machine Translation by Jointly Learning to Align and Translate",
    url="https://arxiv.org/abs/1409.0473", default_temperature=1.0, fn=_additive, untrained=True, same_dim=False,
    params_doc=f"w_q (h, d_q), w_k (h, d_k), v (h,), h={ADDITIVE_HIDDEN}; default: N(0, 1/fan_in), seed {UNTRAINED_SEED} (untrained)",
))
