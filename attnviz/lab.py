"""The similarity lab: the same vectors under several similarity functions, and two findings shown on them.

    cols = compare(vectors, ["dot", "cosine", "rbf"], temperatures={"cosine": 0.1})
    cols[0].weights, cols[0].entropy, cols[0].effective        # (n, n), (n,), (n,)
    sweep = temperature_sweep(vectors, "cosine")               # mean effective tokens against T
    demo = euclidean_as_dot(vectors)                           # RBF(sigma=1) == dot with a key-norm penalty
    cos = cosine_needs_temperature(vectors)                    # cosine at T=1 is near-uniform

Finding 1 (Euclidean = dot product with a key-norm penalty). For any q, k:

    -||q - k||^2 / 2  =  q.k - ||k||^2 / 2 - ||q||^2 / 2

The last term depends on the query only: it is the same for every key in a row, so it cancels in the
row softmax. Attention with the squared-distance score (``rbf`` with sigma = 1) therefore gives
*exactly* the weights of dot-product attention whose scores are penalised by half each key's squared
length. Long keys lose: the dot product alone favours long keys, distance does not.

Finding 2 (cosine needs a temperature). Cosine scores lie in [-1, 1], so at T = 1 two weights in a
row differ by a factor of at most e^2 ~ 7.4, and with many tokens every weight stays close to 1/n:
the effective number of tokens attended, exp(entropy), is close to n. Dividing by a small T (0.1)
stretches the scores to [-10, 10] and the weights become decisive.

Pure library code (no streamlit); everything in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from .attention import attend, check_temperature, effective_tokens, masked_softmax, row_entropy
from .errors import InvalidParameter, ShapeMismatch
from .similarity import get_similarity
from .walkthrough import Example, photo_example

#: at most this many similarity functions side by side
MAX_COLUMNS = 4
#: the temperatures of the sweep (log-spaced)
SWEEP_TEMPERATURES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

def _as_float64(vectors) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(vectors, dtype=np.float64))
    if x.dim() != 2 or x.shape[0] < 1:
        raise ShapeMismatch(f"The lab takes (n, d) vectors, got shape {tuple(x.shape)}.")
    if not bool(torch.isfinite(x).all()):
        raise InvalidParameter("The vectors contain NaN or infinite values.")
    return x


@dataclass
class LabColumn:
    """One similarity function on the lab's input (numpy float64)."""

    similarity: str
    label: str
    temperature: float
    scores: np.ndarray  # (n, m)
    weights: np.ndarray  # (n, m)
    entropy: np.ndarray  # (n,) nats
    effective: np.ndarray  # (n,) exp(entropy): 1 = one token, m = all equally
    untrained: bool
    use: str  # when the function is used (its registry entry's ``use``)
    source: str
    url: str

    @property
    def mean_effective(self) -> float:
        return float(self.effective.mean())

    @property
    def mean_max_weight(self) -> float:
        return float(self.weights.max(axis=1).mean())


def compare(vectors, similarities: Sequence[str], temperatures: Mapping[str, float] | Sequence[float] | None = None,
            keys=None) -> list[LabColumn]:
    """Attention over ``vectors (n, d)`` (keys = the same vectors, or ``keys (m, d)``) under each
    similarity; ``temperatures`` per name (a mapping) or per column (a sequence); default: each
    function's registry default."""
    names = list(similarities)
    if not 1 <= len(names) <= MAX_COLUMNS:
        raise InvalidParameter(f"Choose between 1 and {MAX_COLUMNS} similarity functions, got {len(names)}.")
    x = _as_float64(vectors)
    k = None if keys is None else _as_float64(keys)
    out = []
    for c, name in enumerate(names):
        sim = get_similarity(name)
        if temperatures is None:
            t = sim.default_temperature
        elif isinstance(temperatures, Mapping):
            t = temperatures.get(sim.name, sim.default_temperature)
        else:
            t = list(temperatures)[c]
        t = check_temperature(t)
        res = attend(x, sim.name, t, keys=k)
        w = res.weights
        out.append(LabColumn(sim.name, sim.label, t, res.scores.numpy(), w.numpy(), row_entropy(w).numpy(),
                             effective_tokens(w).numpy(), sim.untrained, sim.use,
                             sim.source, sim.url))
    return out


@dataclass
class TemperatureSweep:
    similarity: str
    n: int
    temperatures: np.ndarray  # (k,)
    mean_effective: np.ndarray  # (k,) mean over rows of exp(entropy)
    mean_max_weight: np.ndarray  # (k,) mean over rows of the largest weight


def temperature_sweep(vectors, similarity: str = "cosine",
                      temperatures: Sequence[float] = SWEEP_TEMPERATURES) -> TemperatureSweep:
    """How the temperature changes attention: one attention per T, the scores computed once."""
    x = _as_float64(vectors)
    sim = get_similarity(similarity)
    s = sim(x, x)
    ts = np.array([check_temperature(t) for t in temperatures], dtype=np.float64)
    eff, mx = [], []
    for t in ts:
        w = masked_softmax(s / t)
        eff.append(float(effective_tokens(w).mean()))
        mx.append(float(w.max(dim=-1).values.mean()))
    return TemperatureSweep(sim.name, x.shape[0], ts, np.array(eff), np.array(mx))


@dataclass
class EuclideanDotDemo:
    """RBF (squared distance, sigma) against the dot product with a key-norm penalty, on the same vectors."""

    sigma: float
    temperature: float
    rbf_scores: np.ndarray  # (n, n)  -||q - k||^2 / (2 sigma^2)   (attnviz's 'rbf' similarity)
    penalised_scores: np.ndarray  # (n, n)  (q.k - ||k||^2 / 2) / sigma^2
    query_term: np.ndarray  # (n,)  -||q_i||^2 / (2 sigma^2): the whole difference, constant along each row
    rbf_weights: np.ndarray
    penalised_weights: np.ndarray
    dot_weights: np.ndarray  # plain dot product / sigma^2, without the penalty, for contrast
    key_norms: np.ndarray  # (n,)
    max_score_gap: float  # max over rows of the spread of (rbf - penalised - query_term): ~0
    max_weight_diff: float  # max |rbf_weights - penalised_weights| in float64: ~1e-16
    max_weight_diff_float32: float  # the same in float32 (rounding only)
    max_weight_diff_plain_dot: float  # max |rbf_weights - dot_weights|: NOT small in general


#: temperatures offered for the Euclidean / dot demonstration (squared distances can be large)
DEMO_TEMPERATURES = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)


def suggest_temperature(scores, options: Sequence[float] = DEMO_TEMPERATURES) -> float:
    """A temperature at which ``scores`` give readable weights: the option nearest (on a log scale) to the
    median spread (standard deviation) of a row, so one spread becomes one unit after dividing."""
    s = np.asarray(scores, dtype=np.float64)
    spread = float(np.median(s.std(axis=-1))) if s.size else 1.0
    if not (spread > 0 and math.isfinite(spread)):
        spread = 1.0
    return float(min(options, key=lambda t: abs(math.log(t) - math.log(spread))))


def euclidean_as_dot(vectors, sigma: float = 1.0, temperature: float | None = None) -> EuclideanDotDemo:
    """Show on ``vectors`` that squared-distance attention is dot-product attention minus ||k||^2/2.
    ``temperature=None`` picks a readable one with :func:`suggest_temperature`."""
    x = _as_float64(vectors)
    sigma = float(sigma)
    if not (sigma > 0 and math.isfinite(sigma)):
        raise InvalidParameter(f"sigma must be a positive number, got {sigma}.")
    s2 = sigma * sigma
    rbf = get_similarity("rbf")(x, x, sigma=sigma)
    t = check_temperature(suggest_temperature(rbf.numpy()) if temperature is None else temperature)
    k2 = (x * x).sum(-1)
    dot = x @ x.T
    pen = (dot - 0.5 * k2[None, :]) / s2
    qterm = -0.5 * k2 / s2
    gap = rbf - pen - qterm[:, None]
    w_rbf = torch.softmax(rbf / t, dim=-1)
    w_pen = torch.softmax(pen / t, dim=-1)
    w_dot = torch.softmax(dot / s2 / t, dim=-1)
    x32 = x.float()
    rbf32 = get_similarity("rbf")(x32, x32, sigma=sigma)
    k2_32 = (x32 * x32).sum(-1)
    pen32 = (x32 @ x32.T - 0.5 * k2_32[None, :]) / s2
    d32 = float((torch.softmax(rbf32 / t, -1) - torch.softmax(pen32 / t, -1)).abs().max())
    return EuclideanDotDemo(
        sigma, t, rbf.numpy(), pen.numpy(), qterm.numpy(), w_rbf.numpy(), w_pen.numpy(), w_dot.numpy(),
        k2.sqrt().numpy(), float((gap.max(-1).values - gap.min(-1).values).abs().max()),
        float((w_rbf - w_pen).abs().max()), d32, float((w_rbf - w_dot).abs().max()))


@dataclass
class CosineTemperatureDemo:
    n: int
    score_min: float  # off the diagonal... and on it: all cosine scores
    score_max: float
    temperatures: tuple[float, ...]
    mean_effective: tuple[float, ...]  # per temperature
    min_effective: tuple[float, ...]
    mean_max_weight: tuple[float, ...]
    ratio_bound: tuple[float, ...]  # exp(2 / T): the most two weights of one row can differ by

    @property
    def uniform_weight(self) -> float:
        return 1.0 / self.n


def cosine_needs_temperature(vectors, temperatures: Sequence[float] = (1.0, 0.1)) -> CosineTemperatureDemo:
    """Effective tokens under cosine attention at each temperature (default T = 1 and T = 0.1)."""
    x = _as_float64(vectors)
    s = get_similarity("cosine")(x, x)
    effs, mins, maxw = [], [], []
    for t in temperatures:
        w = masked_softmax(s / check_temperature(t))
        e = effective_tokens(w)
        effs.append(float(e.mean()))
        mins.append(float(e.min()))
        maxw.append(float(w.max(dim=-1).values.mean()))
    return CosineTemperatureDemo(x.shape[0], float(s.min()), float(s.max()), tuple(float(t) for t in temperatures),
                                 tuple(effs), tuple(mins), tuple(maxw), tuple(math.exp(2.0 / t) for t in temperatures))


# ------------------------------------------------------------------------------------------ inputs

#: the lab compares at most this many word pieces of a text
MAX_TEXT_TOKENS = 48


def text_input(text: str, encoder: str = "contextual", device=None, max_tokens: int = MAX_TEXT_TOKENS,
               model_path=None) -> Example:
    """A text's first ``max_tokens`` word pieces and their vectors ``(n, d)`` float64, with a note when cut."""
    from .text import ENCODERS, encode_text

    enc = encode_text(text, encoder, device, model_path)
    k = min(len(enc.tokens), max_tokens)
    notes = list(enc.notes)
    if len(enc.tokens) > k:
        notes.insert(0, f"The text has {len(enc.tokens)} tokens; the lab compares the first {k}.")
    return Example(tuple(enc.tokens[:k]), enc.vectors[:k].double().numpy(), "text", ENCODERS[encoder].label,
                   tuple(notes), offsets=tuple(enc.offsets[:k]), text=text)


def image_input(source, long_side: int = 8, features: str | None = None, device=None) -> Example:
    """A photo cut into patches (``long_side`` along its longer side) and each patch's vector: DINOv2-small's
    patch tokens pooled into each patch by default, or ``features="handcrafted"`` (see
    :func:`attnviz.walkthrough.photo_example`, the one construction both pages use)."""
    return photo_example(source, long_side, features, device)


# ------------------------------------------------------------------------------------------ tables


def entropy_table(columns: Sequence[LabColumn], labels: Sequence[str]) -> dict[str, list]:
    """One row per query: entropy (nats) and effective tokens under each compared function."""
    table: dict[str, list] = {"query": [f"{i}·{t}" for i, t in enumerate(labels)]}
    for col in columns:
        table[f"{col.similarity}: entropy (nats)"] = [round(float(v), 4) for v in col.entropy]
        table[f"{col.similarity}: effective tokens"] = [round(float(v), 3) for v in col.effective]
    return table


def demo_temperature(vectors, sigma: float = 1.0) -> float:
    """The temperature :func:`suggest_temperature` picks for :func:`euclidean_as_dot` on ``vectors``."""
    return suggest_temperature(euclidean_as_dot(vectors, sigma=sigma, temperature=1.0).rbf_scores)


def demo_table(demo: EuclideanDotDemo, labels: Sequence[str], query: int) -> dict[str, list]:
    """One row per key: its length and the weight ``query`` gives it under rbf, dot − ‖k‖²/2 and plain dot."""
    r6 = lambda a: [round(float(v), 6) for v in a]  # noqa: E731
    return {
        "key": [f"{i}·{t}" for i, t in enumerate(labels)],
        "‖k‖": [round(float(v), 4) for v in demo.key_norms],
        f"rbf σ={demo.sigma:g} weight (query {query})": r6(demo.rbf_weights[query]),
        f"dot − ‖k‖²/2 weight (query {query})": r6(demo.penalised_weights[query]),
        f"plain dot weight (query {query})": r6(demo.dot_weights[query]),
    }


__all__ = [
    "MAX_COLUMNS", "SWEEP_TEMPERATURES", "DEMO_TEMPERATURES", "MAX_TEXT_TOKENS", "suggest_temperature", "LabColumn",
    "compare", "TemperatureSweep", "temperature_sweep", "EuclideanDotDemo", "euclidean_as_dot",
    "CosineTemperatureDemo", "cosine_needs_temperature", "text_input", "image_input", "entropy_table",
    "demo_temperature", "demo_table",
]
