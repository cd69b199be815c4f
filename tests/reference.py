"""Independent float64 reference implementations, written the slow, obvious way (loops and (n, m, d)
broadcasts) so that they share nothing with attnviz's optimised code paths."""

from __future__ import annotations

import math

import numpy as np


def ref_scores(q: np.ndarray, k: np.ndarray, name: str, params: dict | None = None) -> np.ndarray:
    """(n, d) x (m, d) -> (n, m), float64."""
    q = np.asarray(q, dtype=np.float64)
    k = np.asarray(k, dtype=np.float64)
    n, m, d = q.shape[0], k.shape[0], q.shape[1]
    params = params or {}
    out = np.zeros((n, m))
    for i in range(n):
        for j in range(m):
            a, b = q[i], k[j]
            if name == "dot":
                out[i, j] = sum(a[t] * b[t] for t in range(d))
            elif name == "scaled_dot":
                out[i, j] = sum(a[t] * b[t] for t in range(d)) / math.sqrt(d)
            elif name == "cosine":
                na, nb = math.sqrt((a * a).sum()), math.sqrt((b * b).sum())
                out[i, j] = 0.0 if na < 1e-8 or nb < 1e-8 else float((a * b).sum()) / (na * nb)
            elif name == "euclidean":
                out[i, j] = -math.sqrt(float(((a - b) ** 2).sum()))
            elif name == "rbf":
                sigma = params.get("sigma", math.sqrt(d))
                out[i, j] = -float(((a - b) ** 2).sum()) / (2 * sigma * sigma)
            elif name == "general":
                w = np.asarray(params["weight"], dtype=np.float64)
                out[i, j] = sum(a[s] * w[s, t] * b[t] for s in range(w.shape[0]) for t in range(w.shape[1]))
            elif name == "additive":
                wq, wk, v = (np.asarray(params[x], dtype=np.float64) for x in ("w_q", "w_k", "v"))
                out[i, j] = sum(v[h] * math.tanh(float(wq[h] @ a + wk[h] @ b)) for h in range(len(v)))
            else:
                raise KeyError(name)
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
