"""The text page's settings, their link form, its policies (limits, truncation, windows) and the numbers its
views show (tables, the matrix window, the comparison with a trained model), so the page only places them.

``TextPageState`` is everything the text page lets a student set, as one frozen, validated value:
``TextPageState.from_query(st.query_params)`` reads a shared link (every value checked: it is user input;
a bad one falls back to the default and is named in ``ignored``), ``state.to_query()`` writes the link
back. Round trip: ``TextPageState.from_query(s.to_query()) == s`` for every state whose text and query fit
in a link (a text equal to the sample's is stored as ``None``). No Streamlit here: the page maps fields to its widgets.

Limits (docs/limits.md quotes them):

* ``PAGE_MAX_TOKENS``: the page reads at most this many word pieces of a text (a longer one is cut with a
  notice): measured so that one page update stays within ~5 s of CPU on the project's 2-core machine
  (``bench/text_update.py``; the contextual encoder's 11 windows of 512 positions are most of it);
* ``HEATMAP_TOKENS``: the matrix heatmap shows a window of at most this many tokens (a slider moves it);
* ``URL_MAX_TEXT_CHARS`` / ``URL_MAX_QUERY_CHARS``: a link keeps the text / query up to this size (the text
  travels zlib-compressed in urlsafe base64, ``encode_text_param``; decoding is bounded, ``decode_text_param``);
* ``BATCH_MAX_LINES``: one-text-per-line batches hold at most this many lines;
* ``URL_MAX_INDEX``: token and window indices in a link at or above this are refused.
"""

from __future__ import annotations

import base64
import binascii
import functools
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..attention import effective_tokens, row_entropy, top_pairs
from ..errors import InvalidParameter
from ..highlight import LEVELS, hex_of, highlight_legend, palette, quantise, scale_for
from ..render import escape_label, format_number, labelled_matrix_png, matrix_png, weights_csv
from ..similarity import SIMILARITIES, get_similarity
from ..text import ENCODERS, MAX_QUERY_CHARS, attention_overlap, renormalise_rows, self_attention_rows
from . import TEMPERATURES, nearest_temperature, parse_flag, parse_index, parse_params, parse_temperature

URL_MAX_INDEX = 1_000_000
PAGE_MAX_TOKENS = 4_096  # word pieces the page reads: 11 contextual windows, ~4.4 s of CPU (bench/text_update.py)
HEATMAP_TOKENS = 512
URL_MAX_TEXT_CHARS = 20_000  # characters of text a link keeps (docs/limits.md)
URL_MAX_TEXT_PARAM = 110_000  # characters of the encoded parameter: 20,000 4-byte characters, compressed or not
URL_MAX_QUERY_CHARS = MAX_QUERY_CHARS  # the query box's own limit: a link keeps every query the box takes
OWN = "own"  # the sample key of the user's own text
SCALES: dict[str, str] = {"absolute": "0 to 1", "view": "0 to this view's maximum"}
BATCH_MAX_LINES = 16
MAX_LAYERS = 64  # a link's layer / head index must be below this (no model here has more)
TOP_K = 10  # rows of the top-tokens and top-pairs tables
CLICK_MAX_TOKENS = 128  # heatmap cells are clickable up to this many tokens (one marker per cell)
GRID_TOKENS = 96  # the all-heads overview shows at most this many tokens per head
TOKEN_BOX_TOKENS = 250  # a highlighted text longer than this scrolls inside a box of TOKEN_BOX_HEIGHT pixels
TOKEN_BOX_HEIGHT = 330
HEATMAP_HEIGHT = 430  # pixels: a matrix is drawn wider than tall (the column is ~650-900 px wide)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
#: sample key -> (label, asset file, times repeated)
SAMPLES: dict[str, tuple[str, str, int]] = {
    "kitten": ("Kitten and car (English)", "text_en_kitten.txt", 1),
    "bank": ("River bank or money bank? (English)", "text_en_bank.txt", 1),
    "zh": ("注意力机制: the seed article (Chinese)", "text_zh_attention.txt", 1),
    "batch": ("Four sentences, one per line (batch)", "text_en_batch.txt", 1),
    "long": ("A short history of attention (English, ~1,800 tokens)", "text_en_long.txt", 1),
    "long2": ("The same essay twice (~3,600 tokens)", "text_en_long.txt", 2),
}
#: what the sample box offers: the samples, and "Your own text" once the text is not a sample's
SAMPLE_CHOICES: dict[str, str] = {**{k: v[0] for k, v in SAMPLES.items()}, OWN: "Your own text"}
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
    "c": "scale",
}


def encode_text_param(text: str) -> str:
    """A text as the link's ``text`` parameter: UTF-8, zlib (level 9), urlsafe base64 without padding."""
    return base64.urlsafe_b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii").rstrip("=")


def decode_text_param(value: str) -> str | None:
    """The text a ``text`` parameter carries, or None when it is not one :func:`encode_text_param` wrote for a
    text of 1..``URL_MAX_TEXT_CHARS`` characters. Bounded: at most ``URL_MAX_TEXT_PARAM`` characters are
    decoded and at most 4 bytes per allowed character are inflated, so a decompression bomb is refused."""
    if not isinstance(value, str) or not 0 < len(value) <= URL_MAX_TEXT_PARAM or not value.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        inflate = zlib.decompressobj()
        data = inflate.decompress(raw, 4 * URL_MAX_TEXT_CHARS + 1)
        if inflate.unconsumed_tail or not inflate.eof or len(data) > 4 * URL_MAX_TEXT_CHARS:
            return None  # more than the limit would come out (or the stream is cut): refused unread
        text = data.decode("utf-8")
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError):
        return None
    return text if 0 < len(text) <= URL_MAX_TEXT_CHARS else None  # any text: the page shows it as data


def link_note(text: str) -> str | None:
    """What the teacher should know before copying the link for ``text`` (None: the link keeps it all)."""
    if len(text) <= URL_MAX_TEXT_CHARS:
        return None
    return (f"This text has {len(text):,} characters; a shared link keeps at most {URL_MAX_TEXT_CHARS:,}, so the "
            "link carries only the settings and opens without your text. Share a shorter text, or the file.")


def query_note(ignored: Sequence[str], given: Mapping[str, str]) -> str | None:
    """A sentence for a link's query that was too long for the query box (None: nothing to say)."""
    q = given.get("q") if "q" in ignored else None
    if isinstance(q, str) and len(q) > URL_MAX_QUERY_CHARS:
        return (f"The link's query has {len(q):,} characters, more than the {URL_MAX_QUERY_CHARS:,} the query box "
                "holds, so it was left out; the default query is shown.")
    return None


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
    "sample": lambda v: v if v in SAMPLE_CHOICES else None,
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
    "text": decode_text_param,
    "c": lambda v: v if v in SCALES else None,
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
    scale: str = "view"
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
        elif isinstance(self.text, str):
            object.__setattr__(self, "sample", OWN)  # typed text is never called a sample
        checks = {
            "sample": self.sample in SAMPLE_CHOICES,
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
            "scale": self.scale in SCALES,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidParameter(f"Invalid text page settings: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}.")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> TextPageState:
        """The settings a link carries; invalid values fall back to the defaults and are listed in ``ignored``.

        ``params`` maps parameter names to strings (``st.query_params`` gives the last of repeated values);
        names this page does not use are left alone (they belong to someone else)."""
        values, ignored = parse_params(params, _PARSERS, QUERY_PARAMS)
        return cls(**values, ignored=ignored)

    @property
    def shown_text(self) -> str:
        """The text the page analyses (before truncation): the typed text, else the sample's."""
        if self.text is not None:
            return self.text
        return "" if self.sample == OWN else sample_text(self.sample)

    def to_query(self) -> dict[str, str]:
        """The link's parameters: the similarity, temperature, encoder, view, toggles and sample always; the
        query, token, layer, head, window and text when they differ from the defaults and fit in a link."""
        q = {"s": self.similarity, "t": f"{self.temperature}", "e": self.encoder, "v": self.view,
             "m": "1" if self.merge else "0", "b": "1" if self.batch else "0"}
        if self.sample != OWN or self.text is None or link_note(self.text) is not None:
            q["sample"] = self.sample  # own text that travels: the text itself, never a sample's name
        optional = {"q": self.query, "k": self.token, "l": self.layer, "h": self.head, "w": self.window,
                    "c": self.scale}
        defaults = TextPageState(sample=self.sample if self.sample in SAMPLES else "kitten")
        for param, value in optional.items():
            if value != getattr(defaults, QUERY_PARAMS[param]) and _PARSERS[param](str(value)) is not None:
                q[param] = str(value)  # only what from_query takes back: the link reopens this very state
        if self.text is not None and link_note(self.text) is None:
            q["text"] = encode_text_param(self.text)
        return q

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The settings' names (``ignored`` is not a setting)."""
        return tuple(f.name for f in fields(cls) if f.name != "ignored")


# ---------------------------------------------------------------------------------- colour scales


def shared_scale(panels: Sequence, scale: str, shared: bool = True) -> list[tuple[float, float]]:
    """``(lo, hi)`` of each panel (arrays of weights): with ``shared``, one scale over all of them (the
    largest maximum for ``"view"``), so the same colour means the same weight side by side."""
    if not shared:
        return [scale_for(p, scale=scale) for p in panels]
    lo, hi = scale_for(np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in panels]), scale=scale)
    return [(lo, hi)] * len(panels)


def scale_words(scale: str, lo: float, hi: float, shared: int = 1) -> str:
    """The scale in force, in a sentence (next to a legend or under matrices shown side by side)."""
    top = format_number(hi)
    if shared > 1:
        which = "0 to 1 (absolute)" if scale == "absolute" else f"0 to the largest weight shown, {top}"
        return f"Colour scale {which}, shared by the {shared} panels: the same colour is the same weight in each."
    if scale == "absolute":
        return "Colour scale 0 to 1 (absolute): the same colour means the same weight in every view."
    return f"Colour scale 0 to this view's maximum, {top}: colours compare cells within this view only."


def tick_labels(tokens: Sequence[str], first: int = 0) -> list[str]:
    """``"i·token"`` axis labels (unique: plotly merges equal categories). Plotly reads ``<``, ``>`` and ``&`` in
    tick text as markup, so those (only) become entities; a quote stays a quote (plotly shows ``&quot;`` as is)."""
    esc = lambda t: str(t).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    return [f"{i}·{esc(t)}" for i, t in enumerate(tokens, first)]


def _ticks(labels: list[str], most: int) -> list[str]:
    """At most ``most`` evenly spaced labels of a categorical axis (every one when they fit)."""
    step = max(1, -(-len(labels) // most))
    return labels[::step]


def heatmap_figure(weights, labels: Sequence[str], first: int = 0, *, title: str = "", lo: float = 0.0,
                   hi: float = 1.0, theme: str = "light", font: int = 13, height: int = HEATMAP_HEIGHT,
                   uniform: float | None = None, colorbar: bool = True, x_ticks: int = 14,
                   x_title: str = "key (attended to)",
                   y_title: str = "query (attending)"):
    """A plotly heatmap of ``weights (r, m)`` that stays light on the wire: the cells travel as 8-bit levels
    of the scale ``[lo, hi]`` (one byte each, error <= 1/510 of the scale; a 512 x 512 window is 256 KiB), in
    the token view's colours (level 0 = the page), with the colour bar labelled in weights and the uniform
    level 1/n marked ("1/n"). Wider than tall; tick labels thinned so they never overlap. Exact values travel
    only on demand: one cell's in :func:`cell_caption`, a row's in its token view, all of them in the CSV."""
    import plotly.graph_objects as go  # lazily: the state module stays importable without plotly

    z = quantise(np.asarray(weights, dtype=np.float64), lo, hi)
    r, m = z.shape
    bg, _ = palette(theme)
    stops = [[i / 10, hex_of(bg[int(round(i / 10 * (LEVELS - 1)))])] for i in range(11)]
    legend = highlight_legend([lo, hi], "view", theme, vmin=lo, vmax=hi, uniform=uniform)
    tickvals = [t.position * (LEVELS - 1) for t in legend.ticks]
    ticktext = [t.text for t in legend.ticks]
    if legend.uniform is not None and legend.uniform.position > 0.08:  # beside 0 it would cover the 0 tick
        tickvals.append(legend.uniform.position * (LEVELS - 1))
        ticktext.append("1/n")
    rows, cols = tick_labels(labels[:r], first), tick_labels(labels[-m:] if m != r else labels, first)
    lines = max(8, (height - 140) // (font + 4))  # y labels that fit without overlapping
    return go.Figure(
        data=[go.Heatmap(
            z=z, x=cols, y=rows, zmin=0, zmax=LEVELS - 1, colorscale=stops, showscale=colorbar,
            colorbar=dict(title=dict(text="weight", font=dict(size=font)), tickvals=tickvals, ticktext=ticktext,
                          tickfont=dict(size=font - 1), thickness=12, len=0.9),
            hovertemplate=("query %{y}<br>key %{x}<br>colour level %{z} of 255<br>"
                           "exact weight: pick its row and key under the matrix<extra></extra>"),
        )],
        layout=dict(
            title=dict(text=escape_label(title), font=dict(size=font + 1)), font=dict(size=font),
            margin=dict(l=10, r=10, t=36 if title else 8, b=10), height=height,
            yaxis=dict(title=dict(text=escape_label(y_title)), autorange="reversed", tickmode="array",
                       tickvals=_ticks(rows, lines), tickfont=dict(size=font - 2)),
            xaxis=dict(title=dict(text=escape_label(x_title)), tickmode="array", tickvals=_ticks(cols, x_ticks),
                       tickangle=-50, tickfont=dict(size=font - 2)),
        ),
    )


# ------------------------------------------------------------------------------------------ policies


def truncate_tokens(text: str, model_path=None, limit: int = PAGE_MAX_TOKENS) -> tuple[str, int, bool]:
    """``(the text up to its first limit word pieces, its word pieces in all, whether it was cut)``: the cut is at
    the start of piece ``limit`` (so no piece is split), then back to a space within 200 characters when there is
    one. A text the tokenizer refuses (empty, invalid Unicode) comes back whole, for the encoder to refuse."""
    from ..errors import AttnvizError
    from ..text import tokenize

    if limit < 1:
        raise InvalidParameter(f"The word-piece limit must be at least 1, got {limit}.")
    try:
        tk = tokenize(text, model_path, max(len(text), 1))
    except AttnvizError:
        return text, 0, False
    n = len(tk.ids)
    if n <= limit:
        return text, n, False
    end = tk.offsets[limit][0]
    cut = text.rfind(" ", max(0, end - 200), end)
    return text[:cut if cut > 0 else end], n, True


def token_cut_note(pieces: int, kept: str, limit: int = PAGE_MAX_TOKENS) -> str:
    """The notice for a text cut to the page's word-piece limit."""
    return (f"Your text has {pieces:,} word pieces; this page reads the first {limit:,} ({len(kept):,} characters), "
            "so that each change answers within a few seconds. For longer text use `attnviz text` or the library.")


def encoding_progress(done: int, total: int) -> tuple[float, str]:
    """(fraction, label) of the progress bar while a long text is encoded window by window."""
    return done / total, f"Encoding window {min(done + 1, total)} of {total} (512 word pieces each)…"


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


def token_box_height(n: int) -> int | None:
    """The height of the scrolling box a highlighted text of ``n`` tokens sits in (None: no box)."""
    return TOKEN_BOX_HEIGHT if n > TOKEN_BOX_TOKENS else None


def token_pieces(enc) -> tuple[list[str], list[str]]:
    """An encoding's tokens as the text shows them and the text between them (``gaps_from_offsets``)."""
    from ..highlight import gaps_from_offsets

    return gaps_from_offsets(enc.text, enc.offsets)


def window_tokens(snippet: str, offsets: Sequence[tuple[int, int]]) -> tuple[list[str], list[str]]:
    """A window's text and its tokens' offsets within it -> (tokens as shown, the text between them)."""
    from ..highlight import gaps_from_offsets

    return gaps_from_offsets(snippet, list(offsets))


def grid_caption(layers: int, heads: int, tokens: int) -> str:
    """The caption of the all-heads picture."""
    return (f"Rows: layers 1–{layers} (top to bottom); columns: heads 1–{heads}. Each square is one head over the "
            f"first {tokens} tokens of the window, scaled to its own maximum.")


FORMULA_MD = ("Each token gets a vector $x_i$; a **similarity** scores pairs, $s(i,j)=\\mathrm{sim}(x_i,x_j)$; each row "
              "becomes **weights** $a_{ij}=\\mathrm{softmax}_j(s(i,j)/T)$ and the output mixes the vectors, "
              "$y_i=\\sum_j a_{ij}x_j$ (the seed article's sequential attention, in its standard row-softmax form).")
ENCODING_SPINNER = "Encoding the text (once per text and encoder; a long text is read in windows of 512 word pieces)…"
UNTRAINED_NOTE = ("Untrained vectors (the random encoder): nothing was learned, so only identical word pieces look "
                  "alike. Compare with a trained encoder to see why learned embeddings matter.")
SHARE_OK = ":material/link: The address bar is this view's link: it keeps the text and the settings."


def head_label(head: int | str, num_heads: int) -> str:
    """How the head picker names ``head``: "head 3", "average of 12 heads", "rollout (all layers)"."""
    if isinstance(head, int):
        return f"head {head + 1}"
    return f"average of {num_heads} heads" if head == "average" else "rollout (all layers)"


def truncation_note(typed: int, kept: int, limit: int) -> str:
    return (f"Your text has {typed:,} characters; this page analyses the first {kept:,} (the limit is {limit:,}). "
            "For longer text use `attnviz text`.")


def ignored_note(params: Sequence[str]) -> str:
    return f":material/warning: The link's {', '.join(params)} parameter(s) were not valid and were ignored."


def sample_of(text: str) -> str:
    """The sample whose text ``text`` is, else :data:`OWN` (what the sample box shows after an edit)."""
    return next((k for k in SAMPLES if sample_text(k) == text), OWN)


def row_caption(scores) -> str:
    """One line under a highlighted row: effective tokens, entropy, largest weight."""
    eff, entropy, largest = row_summary(scores)
    return (f"Effective tokens {eff:.1f} (exp(entropy): 1 = all weight on one token) · entropy {entropy:.2f} nats · "
            f"largest weight {largest:.3f}")


def matrix_caption(scale: str, lo: float, hi: float, w: "MatrixWindow") -> str:
    """The matrix view's scale in words (with the uniform level 1/n), and how much of the rows' weight a
    partial window shows."""
    part = (f" Rows sum to 1 over all {w.n:,} tokens; this window's keys hold {w.share:.0%} of the rows' weight."
            if w.partial else "")
    return f"{scale_words(scale, lo, hi)} Uniform 1/n = 1/{w.n:,} = {format_number(1 / w.n)}.{part}"


def pair_caption(scale: str, scales: Sequence[tuple[float, float]], shared: bool, note: str) -> str:
    """The scale(s) of two panels side by side, in words, then the comparison's own note."""
    if shared:
        return f"{scale_words(scale, *scales[0], shared=len(scales))} {note}"
    return "Separate colour scales: " + " / ".join(scale_words(scale, lo, hi) for lo, hi in scales) + f" {note}"


def head_grid_png(ma, special: bool, width: int = 900) -> tuple[bytes, str]:
    """Every head of a ``ModelAttention`` as one PNG (rows: layers; columns: heads) and its caption."""
    grid = ma.head_grid(special, max_tokens=GRID_TOKENS)
    png = matrix_png(np.nan_to_num(grid, nan=0.0), cell=max(1, width // grid.shape[1]))
    return png, grid_caption(ma.num_layers, ma.num_heads, min(GRID_TOKENS, len(ma.labels(include_special=special))))


def sample_update(key: str) -> dict:
    """The widget values a pick in the sample box sets: the sample's text, batch for the batch sample, window 0
    (nothing for "Your own text": the typed text stays)."""
    return {} if key == OWN else {"text": sample_text(key), "batch": key == "batch", "win": 0}


def frozen(analysis):
    """``analysis`` with its arrays made read-only (one cached copy is shared by every session)."""
    for array in (analysis.weights, analysis.scores, analysis.entropy):
        if isinstance(array, np.ndarray):
            array.setflags(write=False)
    return analysis


def batch_highlight(analyses, query: str | None) -> tuple[str, str]:
    """(what the batch view shows, the lines' highlights as one HTML fragment on one shared scale)."""
    from ..highlight import highlight_many

    what = f"attention from the query {query!r}" if query else "attention received (mean over each text's rows)"
    return what, highlight_many([(a.text, a.offsets, a.scores, a.tokens) for a in analyses], legend_label=what,
                                captions=[f"line {i + 1}" for i in range(len(analyses))])


def clicked_query(enc, i: int) -> str:
    """The query a click on token ``i`` asks for: that token's own characters in the text."""
    a, b = enc.offsets[i]
    return enc.text[a:b].strip()[:URL_MAX_QUERY_CHARS]


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


def matrix_downloads(w: MatrixWindow, row, k: int, lo: float, hi: float) -> list[tuple[str, Callable[[], str | bytes], str, str]]:
    """The matrix view's files, each named for what it holds: the shown window's matrix ``w.square`` (w, w) as
    CSV (rows and columns labelled ``"index:token"``, absolute indices) and as a PNG with those labels and a
    colour bar on the view's scale ``[lo, hi]``; then the selected token ``k``'s row (``row``, a
    ``TextAnalysis`` of that one query) as JSON and as highlighted text."""
    labels = [f"{w.start + i}:{t}" for i, t in enumerate(w.labels)]
    name, span = f"self_attention_{w.start}-{w.stop - 1}", f"tokens {w.start}–{w.stop - 1}"
    return [
        (f"Matrix shown, {span} (CSV)", lambda: weights_csv(w.square, labels, labels), f"{name}.csv", "text/csv"),
        (f"Matrix shown, {span} (PNG)", lambda: labelled_matrix_png(w.square, labels, labels, vmin=lo, vmax=hi,
                                                                     title=f"Self-attention, {span}"),
         f"{name}.png", "image/png"),
        (f"Row of token {k} (JSON)", row.to_json, f"row_{k}.json", "application/json"),
        (f"Row of token {k}, highlighted text (HTML)", row.to_html, f"row_{k}.html", "text/html"),
    ]


def drawn_in_levels(n: int, clickable: bool = True) -> bool:
    """Whether a heatmap of ``n`` tokens is drawn as 8-bit colour levels (:func:`heatmap_figure`) rather than
    in full colour with every cell clickable: a clickable one (the matrix view's) only up to
    :data:`CLICK_MAX_TOKENS` tokens; any other always in levels."""
    return not clickable or n > CLICK_MAX_TOKENS


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

    @property
    def entropy(self) -> np.ndarray:
        """(w,) nats: the entropy of each of the window's rows (over all n keys)."""
        return np.asarray(row_entropy(torch.as_tensor(np.asarray(self.rows, dtype=np.float64))))

    @property
    def received(self) -> np.ndarray:
        """(n,): the attention each token receives from the window's rows (their mean); all rows when the
        window is the whole text. Per-row statistics go over the shown window, so an update stays O(w x n)."""
        return np.asarray(self.rows, dtype=np.float64).mean(axis=0)


def cell_caption(tokens: Sequence[str], query: int, key: int, weight: float,
                 levels: tuple[float, float] | None = None) -> str:
    """The exact weight of one cell of the matrix (query row ``query``, key ``key``), both tokens quoted with
    ``repr`` (plain text: the page escapes it for Markdown); with ``levels = (lo, hi)``, the 8-bit colour level
    :func:`heatmap_figure` draws it with on that scale (small matrices are drawn in full colour: no level)."""
    level = "" if levels is None else (
        f"; colour level {int(quantise(np.array([[weight]], dtype=np.float64), *levels)[0, 0])} of {LEVELS - 1}")
    return (f"Query {query} · {tokens[query]!r} → key {key} · {tokens[key]!r}: weight "
            f"{weight:.7g} (exact, of the row's total 1{level}).")


def received_title(w: MatrixWindow) -> str:
    """The title of the matrix view's "attention received" expander: which rows it averages."""
    if not w.partial:
        return "Attention received by each token (mean over all rows)"
    return f"Attention received by each token (mean over the window's rows {w.start}–{w.stop - 1})"


def matrix_window(enc, analysis, similarity: str, temperature: float, start: int, device=None,
                  size: int = HEATMAP_TOKENS) -> MatrixWindow:
    """Rows ``[start, start + size)`` of a text's self-attention: from the analysis's (n, n) matrix when one is
    given and has it, else computed for the window alone (``analysis=None``: always; O(size x n))."""
    n = len(enc.tokens)
    start = clamp_start(start, heatmap_last_start(n, size))
    stop = min(n, start + size)
    rows = (analysis.weights[start:stop] if analysis is not None and analysis.weights is not None
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


def compare_rows(c: ModelComparison, ma, k: int, scale: str):
    """Token ``k``'s two rows (similarity, model) over the model's window as ``(tokens, gaps, rows, lo, hi)`` on
    one shared scale, or None when ``k`` is outside the window."""
    if not ma.unit_start <= k < ma.unit_end:
        return None
    rows = [c.similarity_rows[k - ma.unit_start], c.text_rows[k - ma.unit_start]]
    toks, gaps = window_tokens(c.snippet, c.offsets)
    return (toks, gaps, rows, *shared_scale(rows, scale)[0])


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
    "TextPageState", "PAGE_MAX_TOKENS", "truncate_tokens", "token_cut_note", "encoding_progress", "clamp_start", "heatmap_last_start", "model_last_start", "sample_text", "truncate_text",
    "window_share", "window_text", "top_token_rows", "top_pair_rows", "entropy_rows", "entropy_summary",
    "has_special", "head_view_label", "row_summary", "model_selection", "downloads", "matrix_downloads",
    "drawn_in_levels",
    "MatrixWindow", "matrix_window", "received_title", "cell_caption", "OWN", "SAMPLE_CHOICES", "SCALES", "URL_MAX_TEXT_PARAM", "encode_text_param",
    "decode_text_param", "link_note", "query_note", "shared_scale", "scale_words", "heatmap_figure",
    "tick_labels", "TOKEN_BOX_TOKENS", "TOKEN_BOX_HEIGHT", "HEATMAP_HEIGHT", "token_box_height", "token_pieces", "clicked_query",
    "window_tokens", "grid_caption", "FORMULA_MD", "SHARE_OK", "UNTRAINED_NOTE", "ENCODING_SPINNER",
    "head_label", "compare_rows", "sample_update", "frozen", "batch_highlight", "row_caption", "matrix_caption", "pair_caption", "head_grid_png", "truncation_note", "ignored_note", "sample_of", "ModelComparison", "compare_with_model", "model_comparison_note",
]
