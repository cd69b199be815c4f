"""The seed article's two example models, made correct.

The article's versions do not run (see docs/seed.md): SequentialAttention normalised over a size-1
axis, ParallelAttention put features on the wrong axis, and both used a raw ``exp`` without a mask.
Here:

* inputs are ``(batch, n, d)`` (an unbatched ``(n, d)`` is accepted), features on the last axis;
* weights are a masked, max-subtracted softmax over the **sequence** axis (padding gets exactly 0);
* both return their weights, so they can be drawn.

Both keep the article's layers — ``h = tanh(Linear1(x))``, a scorer, ``y = Linear2(pooled)`` — when
``hidden_dim`` is given (a trainable model). With ``hidden_dim=None`` they are projection-free
(``h = x``): that is what the app draws, because untrained random projections would only add noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import attend, check_temperature, check_weights, masked_softmax
from .errors import ShapeMismatch
from .similarity import get_similarity


def _batched(x: torch.Tensor, mask: torch.Tensor | None):
    if x.dim() == 2:
        return x.unsqueeze(0), (None if mask is None else mask.unsqueeze(0)), True
    if x.dim() != 3:
        raise ShapeMismatch(f"expected (batch, n, d) or (n, d), got {tuple(x.shape)}")
    return x, mask, False


@dataclass
class SequentialOutput:
    output: torch.Tensor  # (b, output_dim) pooled and projected
    pooled: torch.Tensor  # (b, hidden) the weighted sum of hidden states
    weights: torch.Tensor  # (b, n) one weight per element, rows sum to 1 over valid elements
    scores: torch.Tensor  # (b, n) the softmax's input: the scorer's output, or sim(query, h_j) / T


class SequentialAttention(nn.Module):
    """Attention pooling over a sequence: ``(b, n, d) -> (b, output_dim)`` plus weights ``(b, n)``.

    Without a query, each element is scored by the seed's learned scorer ``w·h_j`` (Bahdanau-style
    attention pooling). With ``query`` (``(b, d)`` or ``(d,)``), the score is ``sim(query, h_j) / T``
    under any registry similarity: the app's "query attention" (type a word, see the text light up).
    """

    def __init__(self, input_dim: int, hidden_dim: int | None = None, output_dim: int | None = None,
                 similarity: str = "cosine", temperature: float | None = None):
        super().__init__()
        self.similarity = get_similarity(similarity).name
        self.temperature = check_temperature(temperature if temperature is not None
                                             else get_similarity(similarity).default_temperature)
        self.proj = nn.Linear(input_dim, hidden_dim) if hidden_dim else None
        width = hidden_dim or input_dim
        self.scorer = nn.Linear(width, 1, bias=False)
        self.out = nn.Linear(width, output_dim) if output_dim else None

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.proj(x)) if self.proj is not None else x

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                query: torch.Tensor | None = None) -> SequentialOutput:
        x, mask, single = _batched(x, mask)
        h = self.hidden(x)
        if query is None:
            s = self.scorer(h).squeeze(-1)  # (b, n)
        else:
            q = query.unsqueeze(0) if query.dim() == 1 else query
            if q.shape[0] not in (1, h.shape[0]):
                raise ShapeMismatch("query must be (d,), (1, d) or (batch, d).")
            s = get_similarity(self.similarity)(self.hidden(q).unsqueeze(1), h).squeeze(1) / self.temperature  # (b, n)
        w = masked_softmax(s.unsqueeze(1), mask).squeeze(1)  # over the sequence axis
        check_weights(w)  # NaN/inf inputs or overflowing scores: a typed error, never NaN weights
        pooled = (w.unsqueeze(-1) * h).sum(dim=1)
        y = self.out(pooled) if self.out is not None else pooled
        if single:
            return SequentialOutput(y[0], pooled[0], w[0], s[0])
        return SequentialOutput(y, pooled, w, s)


@dataclass
class ParallelOutput:
    output: torch.Tensor  # (b, p, width) every patch's weighted sum over all patches
    weights: torch.Tensor  # (b, p, p) all pairs at once: row i = what patch i attends to
    received: torch.Tensor  # (b, p) attention each patch receives, mean over valid queries
    pooled: torch.Tensor  # (b, width) attention-pooled image vector
    pool_weights: torch.Tensor  # (b, p) the pooling weights


class ParallelAttention(nn.Module):
    """All patches of an image attend to all patches at once, under a registry similarity.

    ``x`` is ``(b, p, d)`` patch features or a grid ``(b, rows, cols, d)`` (flattened row-major).
    The pooling weights score each patch against the image's mean feature (the "gist" query) with
    the same similarity — a parameter-free stand-in for the seed's learned scorer — unless
    ``learned_pool=True``, which uses the seed's ``w·tanh(W x)`` scorer (trainable).
    """

    def __init__(self, input_dim: int, hidden_dim: int | None = None, output_dim: int | None = None,
                 similarity: str = "cosine", temperature: float | None = None, learned_pool: bool = False):
        super().__init__()
        self.similarity = get_similarity(similarity).name
        self.temperature = check_temperature(temperature if temperature is not None
                                             else get_similarity(similarity).default_temperature)
        self.proj = nn.Linear(input_dim, hidden_dim) if hidden_dim else None
        width = hidden_dim or input_dim
        self.scorer = nn.Linear(width, 1, bias=False) if learned_pool else None
        self.out = nn.Linear(width, output_dim) if output_dim else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> ParallelOutput:
        if x.dim() == 4:
            b, r, c, d = x.shape
            x = x.reshape(b, r * c, d)
            mask = None if mask is None else mask.reshape(b, r * c)
        elif x.dim() == 3 and mask is not None and mask.dim() == 2 and x.shape[:2] != mask.shape:
            raise ShapeMismatch("mask must be (b, p) for x (b, p, d).")
        x, mask, single = _batched(x, mask)
        h = torch.tanh(self.proj(x)) if self.proj is not None else x
        res = attend(h, self.similarity, self.temperature, mask=mask)
        out = self.out(res.output) if self.out is not None else res.output
        valid = mask if mask is not None else torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
        counts = valid.sum(-1, keepdim=True).clamp_min(1)
        received = res.weights.sum(dim=1) / counts
        if self.scorer is not None:
            ps = self.scorer(h).squeeze(-1)
        else:
            gist = (h * valid.unsqueeze(-1)).sum(1, keepdim=True) / counts.unsqueeze(-1)
            ps = get_similarity(self.similarity)(gist, h).squeeze(1) / self.temperature
        pool_w = masked_softmax(ps.unsqueeze(1), valid).squeeze(1)
        check_weights(pool_w)
        pooled = (pool_w.unsqueeze(-1) * h).sum(1)
        if self.out is not None:
            pooled = self.out(pooled)
        if single:
            return ParallelOutput(out[0], res.weights[0], received[0], pooled[0], pool_w[0])
        return ParallelOutput(out, res.weights, received, pooled, pool_w)


__all__ = ["SequentialAttention", "SequentialOutput", "ParallelAttention", "ParallelOutput"]
