"""The text page's settings, their link form, its policies (limits, truncation, windows) and the numbers its
views show (tables, the matrix window, the comparison with a trained model), so the page only places them.

``TextPageState`` is everything the text page lets a student set, as one frozen, validated value:
``TextPageState.from_query(st.query_params)`` reads a shared link (every value checked: it is user input;
a bad one falls back to the default and is named in ``ignored``), ``state.to_query()`` writes the link
back. Round trip: ``TextPageState.from_query(s.to_query()) == s`` for every state whose text and query fit
in a link (a text equal to the sample's is stored as ``None``). No Streamlit here: the page maps fields to its widgets.

Limits (docs/limits.md quotes them):

* ``HEATMAP_TOKENS``: the matrix heatmap shows a window of at most this many tokens (a slider moves it);
* ``URL_MAX_TEXT_CHARS`` / ``URL_MAX_QUERY_CHARS``: a link keeps the text / query up to this size;
* ``BATCH_MAX_LINES``: one-text-per-line batches hold at most this many lines;
* ``URL_MAX_INDEX``: token and window indices in a link at or above this are refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..attention import effective_tokens, row_entropy, top_pairs
from ..errors import InvalidParameter
from ..render import matrix_png, weights_csv
from ..similarity import SIMILARITIES, get_similarity
from ..text import ENCODERS, attention_overlap, renormalise_rows, self_attention_rows
from . import TEMPERATURES, nearest_temperature, parse_flag, parse_index, parse_temperature

URL_MAX_INDEX = 1_000_000
HEATMAP_TOKENS = 512
URL_MAX_TEXT_CHARS = 2_000
URL_MAX_QUERY_CHARS = 100
BATCH_MAX_LINES = 16
MAX_LAYERS = 64  # a link's layer / head index must be below this (no model here has more)
TOP_K = 10  # rows of the top-tokens and top-pairs tables
CLICK_MAX_TOKENS = 128  # heatmap cells are clickable up to this many tokens (one marker per cell)
GRID_TOKENS = 96  # the all-heads overview shows at most this many tokens per head

ASSETS = Path(__file__).resolve().parents[1] / "assets"
#: sample key -> (label, asset file, times repeated)
SAMPLES: dict[str, tuple[str, str, int]] = {
    "kitten": ("Kitten and car (English)", "text_en_kitten.txt", 1),
    "bank": ("River bank or money bank? (English)", "text_en_bank.txt", 1),
    "zh": ("注意力机制: the seed article (Chinese)", "text_zh_attention.txt", 1),
    "batch": ("Four sentences, one per line (batch)", "text_en_batch.txt", 1),
    "long": ("A short history of attention (English, ~1,800 tokens)", "text_en_long.txt", 1),
    "long5": ("The same essay five times (~8,900 tokens)", "text_en_long.txt", 5),
}
VIEWS: dict[str, str] = {
    "query": "Query attention",
    "row": "One token's row",
    "matrix": "Self-attention matrix",
    "model": "MiniLM's own heads",
}
HEADS_SPECIAL = ("average", "rollout")

#: link parameter -> TextPageState field (short names keep links short)
QUERY_PARAMS: dict[str, str] = {
    "sample": "sample", "s": "similarity", "t": "temperature", "e": "encoder", "v": "view", "m": "merge",
    "b": "batch", "q": "query", "k": "token", "l": "layer", "h": "head", "w": "window", "text": "text",
}


@functools.lru_cache(maxsize=None)
def sample_text(key: str) -> str:
    """The text of sample ``key`` (one of :data:`SAMPLES`)."""
    if key not in SAMPLES:
        raise InvalidParameter(f"Unknown sample {key!r}: choose one of {', '.join(SAMPLES)}.")
    _, name, times = SAMPLES[key]
    text = (ASSETS / name).read_text(encoding="utf-8")
    return "\n\n".join([text.strip()] * times) + "\n" if times > 1 else text


def _head(value: str) -> int | str | None:
    return value if value in HEADS_SPECIAL else parse_index(value, MAX_LAYERS)


#: link parameter -> its parser (a valid value, or None)
_PARSERS = {
    "sample": lambda v: v if v in SAMPLES else None,
    "s": lambda v: v if v in SIMILARITIES else None,
    "t": parse_temperature,
    "e": lambda v: v if v in ENCODERS else None,
    "v": lambda v: v if v in VIEWS else None,
    "m": parse_flag,
    "b": parse_flag,
    "q": lambda v: v if len(v) <= URL_MAX_QUERY_CHARS and v.isprintable() else None,
    "k": lambda v: parse_index(v, URL_MAX_INDEX),
    "l": lambda v: parse_index(v, MAX_LAYERS),
    "h": _head,
    "w": lambda v: parse_index(v, URL_MAX_INDEX),
    "text": lambda v: v if 0 < len(v) <= URL_MAX_TEXT_CHARS else None,
}


def _is_index(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


@dataclass(frozen=True)
class TextPageState:
    """The text page's settings. ``text=None`` means the sample's own text; ``temperature=None`` and
    ``batch=None`` are resolved on construction (the similarity's default temperature, rounded to an offered
    one; batch on for the batch sample); ``layer=None`` means the model's last layer."""

    sample: str = "kitten"
    text: str | None = None
    similarity: str = "cosine"
    temperature: float | None = None
    encoder: str = "contextual"
    view: str = "query"
    merge: bool = False
    batch: bool | None = None
    query: str = "cat"
    token: int = 0
    layer: int | None = None
    head: int | str = "average"
    window: int = 0
    #: the link's parameters that were not valid and were ignored (what the page tells the student)
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.similarity not in SIMILARITIES:
            raise InvalidParameter(f"Unknown similarity {self.similarity!r}: choose one of {', '.join(SIMILARITIES)}.")
        if self.temperature is None:
            t = nearest_temperature(get_similarity(self.similarity).default_temperature)
            object.__setattr__(self, "temperature", t)
        if self.batch is None:
            object.__setattr__(self, "batch", self.sample == "batch")
        if self.sample in SAMPLES and self.text == sample_text(self.sample):
            object.__setattr__(self, "text", None)  # one form for "the sample's text"
        checks = {
            "sample": self.sample in SAMPLES,
            "text": self.text is None or isinstance(self.text, str),
            "temperature": self.temperature in TEMPERATURES,
            "encoder": self.encoder in ENCODERS,
            "view": self.view in VIEWS,
            "merge": isinstance(self.merge, bool),
            "batch": isinstance(self.batch, bool),
            "query": isinstance(self.query, str),
            "token": _is_index(self.token),
            "layer": self.layer is None or _is_index(self.layer),
            "head": self.head in HEADS_SPECIAL or _is_index(self.head),
            "window": _is_index(self.window),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidParameter(f"Invalid text page settings: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}.")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> TextPageState:
        """The settings a link carries; invalid values fall back to the defaults and are listed in ``ignored``.

        ``params`` maps parameter names to strings (``st.query_params`` gives the last of repeated values);
        names this page does not use are left alone (they belong to someone else)."""
        values, ignored = {}, []
        for param, parse in _PARSERS.items():
            if param not in params:
                continue
            raw = params[param]
            value = parse(raw) if isinstance(raw, str) else None
            if value is None:
                ignored.append(param)
            else:
                values[QUERY_PARAMS[param]] = value
        return cls(**values, ignored=tuple(ignored))

    @property
    def shown_text(self) -> str:
        """The text the page analyses (before truncation): the typed text, else the sample's."""
        return sample_text(self.sample) if self.text is None else self.text

    def to_query(self) -> dict[str, str]:
        """The link's parameters: the similarity, temperature, encoder, view, toggles and sample always; the
        query, token, layer, head, window and text when they differ from the defaults and fit in a link."""
        q = {"s": self.similarity, "t": f"{self.temperature}", "e": self.encoder, "v": self.view,
             "m": "1" if self.merge else "0", "b": "1" if self.batch else "0", "sample": self.sample}
        optional = {"q": self.query, "k": self.token, "l": self.layer, "h": self.head, "w": self.window, "text": self.text}
        defaults = TextPageState(sample=self.sample)
        for param, value in optional.items():
            if value != getattr(defaults, QUERY_PARAMS[param]) and _PARSERS[param](str(value)) is not None:
                q[param] = str(value)  # only what from_query takes back: the link reopens this very state
        return q

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings' names (``ignored`` is not a setting)."""
        return tuple(f.name for f in fields(cls) if f.name != "ignored")


# ------------------------------------------------------------------------------------------ policies


def truncate_text(text: str, limit: int) -> tuple[str, bool]:
    """``(at most limit characters, whether it was cut)``; cut at a space within 200 characters of the
    limit when there is one, so no word is split."""
    if limit < 1:
        raise InvalidParameter(f"The character limit must be at least 1, got {limit}.")
    if len(text) <= limit:
        return text, False
    cut = text.rfind(" ", max(0, limit - 200), limit)
    return text[:cut if cut > 0 else limit], True


def heatmap_last_start(n: int, size: int = HEATMAP_TOKENS) -> int:
    """The last start of a ``size``-token heatmap window over ``n`` tokens (0: everything fits)."""
    return max(0, n - size)


def model_last_start(groups: Sequence[tuple[int, int]], max_pieces: int) -> int:
    """The smallest token whose model window (at most ``max_pieces`` word pieces, tokens ``groups[i] =
    (first piece, end piece)``) still reaches the text's last piece; 0 when the whole text fits.

    A window slider over ``0..model_last_start`` reaches the end of the text and never shows a shorter
    window than it has to."""
    if not groups or groups[-1][1] - groups[0][0] <= max_pieces:
        return 0
    last = len(groups) - 1
    while last > 0 and groups[-1][1] - groups[last - 1][0] <= max_pieces:
        last -= 1
    return last


def clamp_start(start: int, last: int) -> int:
    """A window start kept inside ``0..last`` (a stale one from a longer text is pulled back)."""
    return min(max(0, int(start or 0)), max(0, last))


def window_share(rows: np.ndarray, start: int, stop: int) -> float:
    """Mean weight the rows ``(r, n)`` put on keys ``[start, stop)``: how much of the attention a window shows."""
    rows = np.asarray(rows, dtype=np.float64)
    return float(rows[:, start:stop].sum(axis=1).mean()) if rows.size else 0.0


def window_text(text: str, offsets: Sequence[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """The part of ``text`` that tokens with character ``offsets`` cover, and their offsets within it."""
    if not offsets:
        return "", []
    first, last = offsets[0][0], offsets[-1][1]
    return text[first:last], [(a - first, b - first) for a, b in offsets]


# --------------------------------------------------------------------------- what the views show


def row_summary(weights) -> tuple[float, float, float]:
    """One attention row (n,) -> (effective tokens = exp(entropy), entropy in nats, largest weight)."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    return float(effective_tokens(w)), float(row_entropy(w)), float(w.max())


def model_selection(layer, head, num_layers: int, num_heads: int) -> tuple[int, int | str]:
    """A (layer, head) this model has: a missing or out-of-range layer becomes the last, a head "average"."""
    layer = layer if _is_index(layer) and layer < num_layers else num_layers - 1
    head = head if head in HEADS_SPECIAL or (_is_index(head) and head < num_heads) else "average"
    return layer, head


def downloads(analysis=None, matrix: np.ndarray | None = None, labels: Sequence[str] | None = None,
              name: str = "attention") -> list[tuple[str, Callable[[], str | bytes], str, str]]:
    """The files a view offers, ``(label, build, file name, MIME type)``: the matrix (``matrix`` with ``labels``)
    as CSV and PNG, else the analysis's scores as CSV; the analysis as JSON and standalone HTML. ``build``
    makes the file when called (only when its button is clicked)."""
    files = []
    if matrix is not None:
        files.append(("Weights (CSV)", lambda: weights_csv(matrix, list(labels), list(labels)), f"{name}.csv", "text/csv"))
    elif analysis is not None:
        files.append(("Weights (CSV)", analysis.to_csv, f"{name}.csv", "text/csv"))
    if analysis is not None:
        files.append(("Weights (JSON)", analysis.to_json, f"{name}.json", "application/json"))
        files.append(("Highlighted text (HTML)", analysis.to_html, f"{name}.html", "text/html"))
    if matrix is not None:
        files.append(("Matrix (PNG)", lambda: matrix_png(matrix), f"{name}.png", "image/png"))
    return files


def top_token_rows(analysis, k: int = TOP_K) -> list[dict]:
    """The ``k`` strongest tokens of a ``TextAnalysis``'s scores as table rows (rank, index, token, text, weight)."""
    return [{"rank": r, "index": i, "token": tok, "text": analysis.text[slice(*analysis.offsets[i])], "weight": round(w, 5)}
            for r, (i, tok, w) in enumerate(analysis.top_tokens(k), 1)]


def top_pair_rows(window: np.ndarray, labels: Sequence[str], first: int = 0, k: int = TOP_K) -> list[dict]:
    """The ``k`` strongest off-diagonal (query, key) pairs of a square window of the matrix, as table rows
    labelled ``"index · token"`` with absolute indices (the window starts at token ``first``)."""
    pairs = top_pairs(torch.tensor(np.array(window, dtype=np.float64)), k, exclude_diagonal=True)
    return [{"query": f"{first + i} · {labels[i]}", "key": f"{first + j} · {labels[j]}", "weight": round(w, 5)}
            for i, j, w in pairs]


def entropy_rows(rows: np.ndarray, entropy: np.ndarray, tokens: Sequence[str], first: int = 0) -> list[dict]:
    """Per row of a window (``rows`` (r, n) over all n keys, ``entropy`` (r,) nats): its entropy, effective
    tokens = exp(entropy), strongest key and that key's weight."""
    eff = np.exp(entropy)
    best = rows.argmax(axis=1)
    return [{"index": first + i, "token": tokens[first + i], "entropy (nats)": round(float(entropy[i]), 3),
             "effective tokens": round(float(eff[i]), 2), "strongest key": tokens[int(best[i])],
             "its weight": round(float(rows[i, best[i]]), 4)} for i in range(len(entropy))]


def entropy_summary(entropy: np.ndarray) -> tuple[float, tuple[int, float], tuple[int, float]]:
    """Rows' entropy (r,) -> (mean effective tokens, (row, effective tokens) of the most focused row,
    the same of the most spread row); rows count from 0 within the window."""
    eff = np.exp(np.asarray(entropy, dtype=np.float64))
    lo, hi = int(eff.argmin()), int(eff.argmax())
    return float(eff.mean()), (lo, float(eff[lo])), (hi, float(eff[hi]))


def head_view_label(layer: int, head: int | str) -> str:
    """"layer 3, head 5", "layer 6, average of heads" or the rollout's name (layers and heads count from 1)."""
    if head == "rollout":
        return "rollout (Abnar & Zuidema 2020)"
    return f"layer {layer + 1}, " + ("average of heads" if head == "average" else f"head {head + 1}")


@dataclass(frozen=True)
class MatrixWindow:
    """The matrix view's window: tokens ``[start, stop)`` of ``n``; ``rows`` (stop - start, n) sum to 1 over all n."""

    start: int
    stop: int
    n: int
    rows: np.ndarray
    labels: list[str]

    @property
    def square(self) -> np.ndarray:
        """(w, w): the window's rows over the window's own keys (what the heatmap shows)."""
        return self.rows[:, self.start:self.stop]

    @property
    def share(self) -> float:
        """Mean weight the window's rows put on the window's keys."""
        return window_share(self.rows, self.start, self.stop)

    @property
    def partial(self) -> bool:
        return self.stop - self.start < self.n


def matrix_window(enc, analysis, similarity: str, temperature: float, start: int, device=None,
                  size: int = HEATMAP_TOKENS) -> MatrixWindow:
    """Rows ``[start, start + size)`` of a text's self-attention: from the analysis's cached (n, n) matrix when
    it has one (up to ``MATRIX_MAX_TOKENS``), else computed for the window alone."""
    n = len(enc.tokens)
    start = clamp_start(start, heatmap_last_start(n, size))
    stop = min(n, start + size)
    rows = (analysis.weights[start:stop] if analysis.weights is not None
            else self_attention_rows(enc, similarity, temperature, start, stop, device))
    return MatrixWindow(start, stop, n, rows, list(enc.tokens[start:stop]))


@dataclass(frozen=True)
class ModelComparison:
    """The model view's numbers: similarity attention beside a trained model's over the model's window."""

    similarity_rows: np.ndarray  # (w, w) over the window's tokens, renormalised
    matrix: np.ndarray  # the model's rows, with [CLS]/[SEP] when ``special``
    labels: list[str]  # the matrix's tokens
    first: int  # absolute index of the matrix's first row
    text_rows: np.ndarray  # (w, w) the model's rows over the text's tokens only
    what: str  # "layer 3, head 5", ...
    note: str  # the sentence under the two matrices
    snippet: str  # the window's text, and its tokens' offsets within it
    offsets: list[tuple[int, int]]


def compare_with_model(enc, ma, similarity: str, temperature: float, layer: int, head: int | str,
                       special: bool, device=None) -> ModelComparison:
    """Similarity attention over the tokens a ``ModelAttention`` ``ma`` covers, beside that model's
    ``layer`` / ``head`` (with its separators when ``special``)."""
    s0, s1 = ma.unit_start, ma.unit_end
    sim_rows = renormalise_rows(self_attention_rows(enc, similarity, temperature, s0, s1, device)[:, s0:s1])
    matrix = ma.matrix(layer, head, include_special=special)
    snippet, offsets = window_text(enc.text, ma.offsets)
    return ModelComparison(sim_rows, matrix, ma.labels(include_special=special), 0 if special else s0,
                           ma.matrix(layer, head) if special else matrix, head_view_label(layer, head),
                           model_comparison_note(ma, layer, head, special, sim_rows, matrix), snippet, offsets)


def has_special(ma) -> bool:
    """Whether a ``ModelAttention`` has separator tokens ([CLS]/[SEP]; decoders such as GPT-2 add none)."""
    return len(ma.labels(include_special=True)) != len(ma.labels(include_special=False))


def model_comparison_note(ma, layer: int, head: int | str, special: bool, sim_rows: np.ndarray,
                          model_rows: np.ndarray) -> str:
    """One sentence under the two matrices: the separators' share of the view's attention (when the model
    has them) and, with them hidden, how much of each row's weight the similarity rows and the model's share."""
    msg = "" if special else (f"The two matrices share {attention_overlap(sim_rows, model_rows):.0%} of each row's "
                              "weight on average (Σ min over keys).")
    if not has_special(ma):
        return msg
    share = ma.special_share(None if head == "rollout" else layer, head)
    return (f"[CLS]/[SEP] take {share:.0%} of this view's attention from the text's tokens"
            + ("" if special else f"; shown without them, rows renormalised. {msg}"))


__all__ = [
    "BATCH_MAX_LINES", "CLICK_MAX_TOKENS", "GRID_TOKENS", "HEADS_SPECIAL", "HEATMAP_TOKENS", "MAX_LAYERS",
    "QUERY_PARAMS", "SAMPLES", "TOP_K", "URL_MAX_INDEX", "URL_MAX_QUERY_CHARS", "URL_MAX_TEXT_CHARS", "VIEWS",
    "TextPageState", "clamp_start", "heatmap_last_start", "model_last_start", "sample_text", "truncate_text",
    "window_share", "window_text", "top_token_rows", "top_pair_rows", "entropy_rows", "entropy_summary",
    "has_special", "head_view_label", "row_summary", "model_selection", "downloads",
    "MatrixWindow", "matrix_window", "ModelComparison", "compare_with_model", "model_comparison_note",
]
