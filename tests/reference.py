"""Independent float64 reference implementations, written the slow, obvious way (one pair at a time) so that
they share nothing with attnviz's optimised code paths.

The score of one pair is each registry entry's own ``reference`` (``Similarity.reference``: the textbook
formula in float64 Python, written apart from the fast ``fn``); this file only loops over the pairs."""

from __future__ import annotations

import math

import numpy as np

from attnviz.similarity import get_similarity


def ref_scores(q: np.ndarray, k: np.ndarray, name: str, params: dict | None = None) -> np.ndarray:
    """(n, d_q) x (m, d_k) -> (n, m), float64, one ``Similarity.reference`` call per pair."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    pair = get_similarity(name).reference
    params = params or {}
    out = np.zeros((q.shape[0], k.shape[0]))
    for i in range(q.shape[0]):
        for j in range(k.shape[0]):
            out[i, j] = pair(q[i], k[j], **params)
    return out


def ref_softmax_rows(s: np.ndarray, temperature: float, key_mask: np.ndarray | None = None) -> np.ndarray:
    """Row softmax over the valid keys, the textbook way: exp(x - max) / sum."""
    n, m = s.shape
    w = np.zeros((n, m))
    valid = np.ones(m, bool) if key_mask is None else np.asarray(key_mask, bool)
    for i in range(n):
        idx = [j for j in range(m) if valid[j]]
        if not idx:
            continue
        vals = [s[i, j] / temperature for j in idx]
        mx = max(vals)
        e = [math.exp(v - mx) for v in vals]
        tot = sum(e)
        for j, ej in zip(idx, e):
            w[i, j] = ej / tot
    return w
