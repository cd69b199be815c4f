"""What the walkthrough says: the steps, the matrices' titles, and the explanation of any one number.

    wt = walk(ex.vectors, ex.labels, "cosine", 0.1)              # attnviz.walkthrough: the numbers
    e = explain_cell(wt, "weights", 0, 2)                        # this module: the words
    e.latex   # a_{02} = e_{02} / Z_{0} as LaTeX, with this example's two numbers and their quotient filled in
    e.text    # the same as one plain sentence ("'The' gives 'sat' the weight ... of its attention.")

A score is explained by its similarity's own registry entry (``Similarity.explain``), so a function
added to the registry brings its explanation with it. Every explanation recomputes the number it
explains from the inputs, by the formula it shows (``recomputed``, checked against ``value`` by the
tests). Pure library code: no streamlit; numbers are written by :mod:`attnviz.fmt`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InvalidParameter
from .fmt import factor, fmt, tex
from .similarity import Pair, Worked, get_similarity
from .walkthrough import ArticleLiteral, Walkthrough

WHY_MAX_SUBTRACTED = (
    "Before taking exp, each row's largest value is subtracted. exp(a - m) / sum exp(b - m) equals "
    "exp(a) / sum exp(b), because the factor exp(-m) cancels above and below the fraction, so the "
    "weights do not change; but the largest term becomes exp(0) = 1, so nothing overflows. Without the "
    "shift, exp of a large score is too big for a computer: float32 overflows to infinity above "
    "exp(88.7) and float64 above exp(709.8), and infinity / infinity is not a number."
)

PCA_SENTENCE = (
    "The vectors have {d} numbers each; to draw them on a flat screen they are reduced to 2-D with "
    "principal component analysis (PCA): centre them on their mean and project onto the two directions "
    "of largest spread, found with a singular value decomposition (torch.linalg.svd). The two axes keep "
    "{kept:.0%} of the spread; the attention maths itself always uses all {d} numbers."
)


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    matrix: str | None  # the clickable matrix this step shows (a key of MATRICES), or None
    sentence: str


STEPS: tuple[Step, ...] = (
    Step("vectors", "The vectors", "vectors",
         "Every token (or patch) is a list of numbers, a vector x_i. Similar things should get similar vectors."),
    Step("scores", "Similarity scores", "scores",
         "Every pair (i, j) gets a score s_ij = sim(x_i, x_j): row i says how much x_i resembles each x_j."),
    Step("scaled", "Divide by the temperature", "scaled",
         "Each score is divided by the temperature T. A small T stretches the differences (sharper attention); "
         "a large T shrinks them (attention spread evenly)."),
    Step("exp", "Exponentiate (after subtracting the row maximum)", "exp",
         "Softmax, part 1: subtract each row's largest value, then take exp. Every number becomes positive, "
         "and the largest in each row is exactly 1."),
    Step("sums", "Add up each row", "sums",
         "Softmax, part 2: add the exps of each row, Z_i = sum_j e_ij."),
    Step("weights", "Divide: the attention weights", "weights",
         "Softmax, part 3: divide each exp by its row's sum. Now every row is a set of weights that add up to 1."),
    Step("output", "The weighted sum: the output", "outputs",
         "Each output y_i is the weighted average of all the vectors, using row i's weights: y_i = sum_j a_ij x_j."),
    Step("notation", "The seed article's notation", None,
         "The article writes the same idea more loosely; here are both forms, and what the article's literal "
         "formulas would compute on this example."),
)
STEP_KEYS = tuple(s.key for s in STEPS)

#: matrix name -> (title, row axis title, column axis title)
MATRICES: dict[str, tuple[str, str, str]] = {
    "vectors": ("input vectors x (first coordinates)", "token i", "coordinate c"),
    "scores": ("scores s_ij", "query i", "key j"),
    "scaled": ("scores / T", "query i", "key j"),
    "exp": ("e_ij = exp(s_ij/T − row max)", "query i", "key j"),
    "sums": ("exps with their row sum Z_i (last column)", "query i", "key j, then Σ"),
    "weights": ("attention weights a_ij", "query i", "key j"),
    "outputs": ("outputs y (first coordinates)", "output i", "coordinate c"),
}


# ---------------------------------------------------------------------------------- explanations


@dataclass(frozen=True)
class CellExplanation:
    """One number of one matrix, explained: ``latex`` (for st.latex) and ``text`` (plain, read aloud)."""

    matrix: str
    row: int
    col: int
    value: float  # the number as stored in the walkthrough's matrix
    recomputed: float  # the same number recomputed from the inputs by the formula shown
    latex: str
    text: str


def _score_explanation(wt: Walkthrough, i: int, j: int) -> Worked:
    """The score s_ij worked out by its similarity's own registry entry (``Similarity.explain``)."""
    pair = Pair(i, j, wt.vectors[i], wt.vectors[j], wt.labels[i], wt.labels[j], dict(wt.params))
    return get_similarity(wt.similarity).explain(pair)


def explain_cell(wt: Walkthrough, matrix: str, row: int, col: int) -> CellExplanation:
    """Explain the number at ``(row, col)`` of ``matrix`` (a key of :data:`MATRICES`).

    The number is recomputed from the inputs by the formula that is shown (``recomputed``), so the
    explanation can be checked against the matrix (``value``).
    """
    if matrix not in MATRICES:
        raise InvalidParameter(f"Unknown matrix {matrix!r}: choose one of {', '.join(MATRICES)}.")
    m = wt.matrix(matrix)
    try:
        i, j = int(row), int(col)
    except (TypeError, ValueError):
        raise InvalidParameter(f"A cell is (row, column) in whole numbers, got ({row!r}, {col!r}).") from None
    if not (0 <= i < m.shape[0] and 0 <= j < m.shape[1]):
        raise InvalidParameter(f"Cell ({i}, {j}) is outside the {m.shape[0]} x {m.shape[1]} matrix.")
    value = float(m[i, j])
    t = wt.temperature
    n = wt.n
    li = wt.labels[i]

    if matrix == "vectors":
        v = float(wt.vectors[i, j])
        latex = rf"x_{{{i},{j}}} = {tex(v)}"
        text = (f"Coordinate {j} of the vector of '{li}' is {fmt(v)} (one of its {wt.d} numbers). {wt.source}")
        return CellExplanation(matrix, i, j, value, v, latex, text)

    if matrix == "scores":
        v, latex, text = _score_explanation(wt, i, j)
        return CellExplanation(matrix, i, j, value, v, latex, text)

    s = float(wt.scores[i, min(j, n - 1)])  # the "sums" matrix has one column more (Z_i)
    if matrix == "scaled":
        v = s / t
        latex = rf"\frac{{s_{{{i}{j}}}}}{{T}} = \frac{{{tex(s)}}}{{{tex(t)}}} = {tex(v)}"
        text = f"The score {fmt(s)} divided by the temperature {fmt(t)} is {fmt(v)}."
        return CellExplanation(matrix, i, j, value, v, latex, text)

    row_scaled = wt.scores[i] / t
    mx = float(row_scaled.max())
    jmax = int(row_scaled.argmax())

    def exp_of(k: int) -> float:
        return math.exp(float(row_scaled[k]) - mx)

    if matrix == "exp" or (matrix == "sums" and j < n):
        a = s / t
        v = exp_of(j)
        latex = (rf"e_{{{i}{j}}} = \exp\!\Big(\frac{{s_{{{i}{j}}}}}{{T}} - \max_k \frac{{s_{{{i}k}}}}{{T}}\Big)"
                 rf" = \exp({tex(a)} - {factor(mx)}) = \exp({tex(a - mx)}) = {tex(v)}")
        text = (f"Row {i}'s largest scaled score is {fmt(mx)} (key {jmax}, '{wt.labels[jmax]}'). "
                f"{fmt(a)} minus {fmt(mx)} is {fmt(a - mx)}, and exp of that is {fmt(v)}.")
        return CellExplanation(matrix, i, j, value, v, latex, text)

    exps = [exp_of(k) for k in range(n)]
    z = math.fsum(exps)
    if matrix == "sums":  # the last column: the row sum
        terms = " + ".join(tex(e) for e in exps)
        latex = rf"Z_{{{i}}} = \sum_{{j}} e_{{{i}j}} = {terms} = {tex(z)}"
        text = f"Adding the {n} exps of row {i} ('{li}') gives Z = {fmt(z)}."
        return CellExplanation(matrix, i, j, value, z, latex, text)

    if matrix == "weights":
        v = exps[j] / z
        latex = (rf"a_{{{i}{j}}} = \frac{{e_{{{i}{j}}}}}{{Z_{{{i}}}}} = \frac{{{tex(exps[j])}}}{{{tex(z)}}} = {tex(v)}")
        text = (f"'{li}' gives '{wt.labels[j]}' the weight {fmt(exps[j])} / {fmt(z)} = {fmt(v)}: "
                f"{v:.1%} of its attention.")
        return CellExplanation(matrix, i, j, value, v, latex, text)

    # outputs: coordinate j of y_i
    w = np.asarray(exps) / z
    col = wt.vectors[:, j]
    v = float(w @ col)
    terms = " + ".join(f"{factor(w[k])} \\cdot {factor(col[k])}" for k in range(n))
    latex = rf"y_{{{i},{j}}} = \sum_{{k}} a_{{{i}k}}\,x_{{k,{j}}} = {terms} = {tex(v)}"
    text = (f"Coordinate {j} of the output for '{li}': each token's coordinate {j} times the weight '{li}' gives "
            f"it, all added up: {fmt(v)}.")
    return CellExplanation(matrix, i, j, value, v, latex, text)


# --------------------------------------------------------------------------- the article's notation

ARTICLE_LATEX = (r"a_i = \mathrm{softmax}\Big(\sum_{j=1}^{n} \alpha_{ij}\, s(i,j)\Big), \qquad "
                 r"y_i = \sum_{j=1}^{n} a_j\, s(i,j)\, x_j")
STANDARD_LATEX = (r"a_{ij} = \mathrm{softmax}_j\Big(\frac{s(i,j)}{T}\Big) = "
                  r"\frac{\exp(s(i,j)/T)}{\sum_{k=1}^{n} \exp(s(i,k)/T)}, \qquad y_i = \sum_{j=1}^{n} a_{ij}\, x_j")
NOTATION_SENTENCES = (
    "The standard form gives every pair (i, j) its own weight a_ij, normalised along row i, so each output "
    "y_i is a weighted average of the vectors: the weights are positive and add up to 1.",
    "The article's a_i has only one index. Its softmax is over a single number per element (the sum of "
    "α_ij s(i,j) over j), and α_ij is never defined apart from being 'the weight of x_i and x_j', which is "
    "what is being computed. Read literally (α_ij = 1), it gives one importance per element — the pooling "
    "weights of the article's SequentialAttention code — not one weight per pair.",
    "Its output formula then multiplies the weight a_j by the raw score s(i,j) again. Those coefficients "
    "are not normalised: they need not add up to 1 and are negative wherever the score is negative (always, "
    "for a negative distance), so y_i is not an average of the vectors.",
    "The two agree once the score goes inside the softmax and keeps both indices: a_ij = softmax_j(s(i,j)/T) "
    "(the article's T is 1), and y_i = Σ_j a_ij x_j (the score is already inside a_ij, so it is not multiplied "
    "in again). That is the form attnviz computes and this walkthrough shows.",
)


# ------------------------------------------------------------------------ sentences about the numbers


def scaled_summary(wt: Walkthrough) -> str:
    """Markdown (numbers only, no user text): the range of the scores before and after dividing by T."""
    lo, hi, t = float(wt.scores.min()), float(wt.scores.max()), wt.temperature
    effect = ("A temperature below 1 stretches the gaps, so the softmax will pick winners more decisively."
              if t < 1 else
              "A temperature of 1 or more leaves the gaps as they are or shrinks them, so the weights spread out.")
    return (f"The scores ran from **{fmt(lo)}** to **{fmt(hi)}**; divided by T = {fmt(t)} they run "
            f"from **{fmt(lo / t)}** to **{fmt(hi / t)}**. " + effect)


#: exp overflows float32 above this (float64 above ~709.78)
FLOAT32_EXP_LIMIT = 88.72


def overflow_summary(wt: Walkthrough) -> str:
    """Markdown (numbers only): what exp of the largest scaled score would be without the max-subtraction."""
    big = float(wt.scaled.max())
    f32 = "infinity in float32" if big > FLOAT32_EXP_LIMIT else "still fits in float32"
    return (f"On this example the largest scaled score is **{fmt(big)}**: without the shift its exp would be "
            f"**{fmt(wt.unshifted_max)}** ({f32}). With the shift the largest exp of every row is exactly 1.")


def notation_table(lit: ArticleLiteral, labels) -> dict[str, list]:
    """The article's literal formulas beside the standard form, one row per token (for a data frame)."""
    return {
        "token": [f"{i}·{t}" for i, t in enumerate(labels)],
        "standard: Σ_j a_ij": [round(float(v), 6) for v in lit.standard_sums],
        "article: a_j (one per element)": [round(float(v), 6) for v in lit.pooled],
        "article: Σ_j a_j s(i,j)": [round(float(v), 6) for v in lit.coefficient_sums],
    }


def notation_caption(lit: ArticleLiteral) -> str:
    return (f"In the standard form every row of weights adds up to 1. Read literally, the article's coefficients "
            f"a_j·s(i,j) add up to between {fmt(lit.coefficient_sums.min())} and {fmt(lit.coefficient_sums.max())}, "
            f"and {lit.negative_share:.0%} of them are negative, so its y_i is not an average of the vectors.")


# ------------------------------------------------------------------------------ inside a trained head

#: the two tracks of How it works
TRACKS: dict[str, str] = {"seed": "Similarity attention (the seed)", "head": "Inside a trained head"}
#: the views of the trained-head track
HEAD_VIEWS: dict[str, str] = {"steps": "A head, step by step", "swap": "Swap the similarity",
                              "qk": "Queries and keys in one picture", "overview": "All heads at a glance"}
#: the recomputed weights must match the model's own output_attentions to this (float32 rounding)
HEAD_MATCH_TOLERANCE = 1e-5
#: thumbnails per row in the heads overview: a whole layer per row on a projector, fewer on a phone
HEADS_PER_ROW = (12, 6, 4)
#: h and the output have 384 features: the step shows this many of them (the explanation reads them all)
HEAD_FEATURE_COLUMNS = 32

HEAD_STEPS: tuple[Step, ...] = (
    Step("h", "The layer input h", "h",
         "Each token arrives at the layer as a vector h_i. MiniLM is a BERT, post-LayerNorm: h is the previous "
         "layer's output as it is (for layer 0, the embeddings)."),
    Step("qkv", "Three projections: q, k, v", "q",
         "The head projects h three ways, q = h W_Qᵀ + b_Q, k = h W_Kᵀ + b_K, v = h W_Vᵀ + b_V, keeping its own "
         "d_head columns of each. The seed skips this: its q and k are h itself."),
    Step("scores", "Scores: q · k / √d_head", "scores",
         "Every query i meets every key j: s_ij = q_i · k_j / √d_head. Dividing by √d_head keeps the scores "
         "from growing with the width of the head."),
    Step("mask", "The padding mask", "masked",
         "In a batch, shorter sentences are padded; padded keys get −∞ before the softmax so they receive weight 0. "
         "One sentence has no padding: every key is real, so the mask changes nothing here."),
    Step("weights", "Softmax, row by row: the head's attention", "weights",
         "Each row of scores goes through the softmax. These weights ARE the model's own attention "
         "(output_attentions), recomputed here from its weights."),
    Step("context", "Weights × v: what the head passes on", "context",
         "Each token's context is the weighted sum of the values: context_i = Σ_j a_ij v_j, d_head numbers."),
    Step("output", "Concatenate the heads, apply W_O", "output",
         "All heads' contexts are laid side by side (12 × 32 = 384 numbers) and mixed by the output matrix: "
         "output = concat(contexts) W_Oᵀ + b_O. The residual connection and LayerNorm follow."),
)
HEAD_STEP_KEYS = tuple(s.key for s in HEAD_STEPS)

#: what the head track reads: a sentence (MiniLM) or a photo (DINOv2-small)
HEAD_INPUTS: dict[str, str] = {"text": "Sentence", "image": "Photo"}
#: the head a photo opens on (layer, head) of DINOv2-small; its matrices show a 4 x 4 window of patches
DEFAULT_IMAGE_HEAD = (9, 2)

_IMAGE_STEP_SENTENCES = {
    "h": "Each patch (and [CLS]) arrives at the layer as a vector in the residual stream. DINOv2 is pre-LayerNorm: "
         "the head reads h = norm1(residual stream), the layer's first LayerNorm of hidden_states[layer] (the "
         "patch embeddings for layer 0); the attention's output is added back to the stream, not to h.",
    "qkv": "The head projects h three ways, q = h W_Qᵀ + b_Q, k = h W_Kᵀ + b_K, v = h W_Vᵀ + b_V (DINOv2's q_proj, "
           "k_proj, v_proj), keeping its own 64 columns of each. The seed skips this: its q and k are h itself.",
    "mask": "In a batch of pictures of one size no key is padding; DINOv2 is run with no mask. One photo: every "
            "patch is a real key, so the mask changes nothing here.",
    "output": "All 6 heads' contexts are laid side by side (6 × 64 = 384 numbers) and mixed by the output matrix "
              "(o_proj): output = concat(contexts) W_Oᵀ + b_O. Then DINOv2 scales it (layer scale) and adds it "
              "to the residual stream.",
}


def head_steps(kind: str = "text") -> tuple[Step, ...]:
    """The trained-head steps for a ``"text"`` (MiniLM, post-LN) or ``"image"`` (DINOv2, pre-LN) trace."""
    if kind == "text":
        return HEAD_STEPS
    if kind != "image":
        raise InvalidParameter(f"Unknown kind {kind!r}: choose text or image.")
    return tuple(Step(s.key, s.title, s.matrix, _IMAGE_STEP_SENTENCES.get(s.key, s.sentence)) for s in HEAD_STEPS)


@dataclass(frozen=True)
class HeadMatrix:
    """One step's matrix of a :class:`attnviz.trace.HeadTrace`, ready to draw and explain."""

    name: str  # the HeadTrace.explain matrix name
    z: np.ndarray  # (rows, cols)
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    title: str
    row_title: str
    col_title: str
    colorbar: str
    caption: str
    row_index: tuple[int, ...] = ()  # the trace's token of each row (a window keeps only some)
    col_index: tuple[int, ...] = ()  # the trace's token (square matrices) or feature of each column

    def cell(self, row: int, col: int) -> tuple[int, int]:
        """The trace's ``(row, col)`` of cell ``(row, col)`` of ``z``, for ``HeadTrace.explain``."""
        return (self.row_index[row] if self.row_index else row, self.col_index[col] if self.col_index else col)


def head_matrix(trace, name: str, tokens=None) -> HeadMatrix:
    """The matrix ``name`` (h, q, k, v, scores, masked, weights, seed_weights, context, output) of a head trace,
    with labels and a caption; wide matrices (h, output) keep their first :data:`HEAD_FEATURE_COLUMNS`.
    ``tokens``: token positions to keep (``HeadTrace.window``): rows, and the columns of the square matrices;
    :meth:`HeadMatrix.cell` maps a shown cell back to the trace's."""
    whole = _head_matrix(trace, name)
    if tokens is None:
        return whole
    idx = tuple(int(t) for t in tokens)
    if not idx or any(not 0 <= t < trace.n for t in idx):
        raise InvalidParameter(f"The tokens to show must be positions 0..{trace.n - 1}.")
    square = name in ("scores", "masked", "weights", "seed_weights")
    cols = idx if square else tuple(range(whole.z.shape[1]))
    z = whole.z[np.ix_(idx, cols)]
    kept = (f" Showing {len(idx)} of the {trace.n} tokens ([CLS] and a window of patches); the explanation reads "
            f"whole rows.")
    return HeadMatrix(whole.name, z, tuple(whole.row_labels[i] for i in idx), tuple(whole.col_labels[j] for j in cols),
                      whole.title, whole.row_title, whole.col_title, whole.colorbar, whole.caption + kept,
                      row_index=idx, col_index=cols if square else ())


def _head_matrix(trace, name: str) -> HeadMatrix:
    toks = tuple(trace.tokens)
    d, f = trace.d_head, HEAD_FEATURE_COLUMNS
    cols_of = lambda k: tuple(f"{k}{c}" for c in range(min(f, trace.h.shape[1])))  # noqa: E731
    dims = tuple(f"d{c}" for c in range(d))
    at = f"layer {trace.layer}, head {trace.head}"
    if name == "h":
        return HeadMatrix("h", trace.h[:, :f], toks, cols_of("c"), f"h: the input of layer {trace.layer}", "token i",
                          "feature c", "value", f"The first {len(cols_of('c'))} of {trace.h.shape[1]} features of "
                          f"each token. {trace.h_source}.")
    if name in ("q", "k", "v"):
        return HeadMatrix(name, getattr(trace, name), toks, dims, f"{name} = h W_{name.upper()}ᵀ + b_{name.upper()} ({at})",
                          "token i", "dimension d", "value", f"{trace.n} tokens × d_head = {d}: this head's columns.")
    if name in ("scores", "masked"):
        cap = (f"q_i · k_j / √{d} = q_i · k_j / {trace.scale:.3f}." if name == "scores" else
               f"Mask: all {trace.n} keys are real (one {'photo' if trace.kind == 'image' else 'sentence'}, no "
               "padding), so no score becomes −∞.")
        return HeadMatrix("scores", trace.scores, toks, toks, f"scores s_ij ({at})", "query i", "key j", "score", cap)
    if name == "weights":
        return HeadMatrix("weights", trace.weights, toks, toks, f"attention weights ({at})", "query i", "key j",
                          "weight", "Each row adds up to 1.")
    if name == "seed_weights":
        return HeadMatrix("seed_weights", trace.seed_weights, toks, toks,
                          f"the seed on the same h: {trace.seed_similarity}, T = {trace.seed_temperature:g}",
                          "query i", "key j", "weight", "No projections: sim(h_i, h_j) / T, then the softmax.")
    if name == "context":
        return HeadMatrix("context", trace.context, toks, dims, f"context = weights × v ({at})", "token i",
                          "dimension d", "value", f"Each row: {d} numbers, a weighted average of the v rows.")
    if name == "output":
        return HeadMatrix("output", trace.output[:, :f], toks, cols_of("c"), f"output = concat(heads) W_Oᵀ + b_O "
                          f"(layer {trace.layer})", "token i", "feature c", "value",
                          f"The first {len(cols_of('c'))} of {trace.output.shape[1]} features, before "
                          + ("the layer scale and the residual connection." if trace.kind == "image" else
                             "the residual connection and LayerNorm."))
    raise InvalidParameter(f"Unknown head matrix {name!r}.")


def head_match_sentence(trace) -> str:
    """Markdown (numbers only): how close the recomputed weights are to the model's own attention."""
    ok = trace.max_abs_diff <= HEAD_MATCH_TOLERANCE
    return (f"Largest difference from the model's own attention (output_attentions): **{trace.max_abs_diff:.2e}** "
            f"({'within' if ok else 'OUTSIDE'} the {HEAD_MATCH_TOLERANCE:.0e} of float32 rounding).")


def diagonal_sentence(trace) -> str:
    """Markdown (numbers only): the mean weight on the token itself, head vs seed, and why."""
    ds = trace.diagonal_share()
    return (f"Mean weight a token puts on itself: **{ds['model']:.3f}** in this head, **{ds['seed']:.3f}** for the "
            f"seed on the same h. Without projections sim(h_i, h_i) is the largest score of its row, so the seed "
            "stares at itself; with W_Q ≠ W_K a query need not point at its own key: that is what projections buy.")


# ------------------------------------------------------------------------------- numbers in the cells
# Plotly prints a heatmap cell's number centred on the cell at a fixed size: too many columns for the width
# and the numbers run into each other ("0.640.91") or past the plot's edge. The size that fits is chosen
# here, from the longest number and the plot width each screen gives a matrix (measured in Chromium:
# tests/browser/test_classroom_browser.py checks the boxes of the printed numbers never overlap).

#: the walkthrough's numbers in the cells: two decimals, short enough for a phone (a click or the hover gives
#: every digit; a tiny positive exp shows as 0.00 there, and its explanation says how small it is)
CELL_FORMAT = ".2f"
#: plot-area widths (px) a walkthrough matrix gets: on a 390 px phone, in classroom mode at 1280 x 720 (the
#: whole width), and beside its explanation at 1280 x 720
PHONE_PLOT_WIDTH = 170
PROJECTOR_PLOT_WIDTH = 540
NORMAL_PLOT_WIDTH = 300
#: screens up to this width (px) are "narrow": the phone sizes apply (ui/components/page_style.py's media query)
NARROW_SCREEN_PX = 640
#: a digit's advance is at most this share of the font size (the app's sans-serif), plus a gap per cell
DIGIT_WIDTH = 0.62
CELL_GAP_PX = 4
#: below this size a cell's number is not printed on that screen (the click explanation and the hover give it)
MIN_CELL_FONT = 7
#: the largest size (px) of a matrix's numbers on a narrow screen
PHONE_MAX_CELL_FONT = 12
#: the sizes (px) the app's stylesheet can give a matrix's numbers on a narrow screen, whole pixels (CSS rules
#: are written per size); 0: not printed there
PHONE_CELL_FONTS: tuple[int, ...] = (0, *range(MIN_CELL_FONT, PHONE_MAX_CELL_FONT + 1))


def cell_text(value: float, value_format: str = CELL_FORMAT) -> str:
    """How plotly (d3-format) prints ``value`` with ``value_format``: ``".Nf"`` (N decimals) or ``".Ng"``
    (JavaScript's toPrecision: trailing zeros kept, exponent form only below 1e-6 or at 10^N and above)."""
    kind = value_format[-1:]
    if kind not in ("f", "g") or not value_format[1:-1].isdigit():
        raise InvalidParameter(f"Cell formats are '.Nf' or '.Ng', got {value_format!r}.")
    p = int(value_format[1:-1])
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if kind == "f":
        return f"{v:.{p}f}"
    if v == 0:
        return "0." + "0" * (p - 1) if p > 1 else "0"
    e = math.floor(math.log10(abs(v)))
    if -7 < e < p:
        return f"{v:.{max(0, p - 1 - e)}f}"
    return f"{v:.{p - 1}e}".replace("e-0", "e-").replace("e+0", "e+")


def cell_font(values, plot_width: float, largest: float, value_format: str = CELL_FORMAT) -> float:
    """The font size (px) at which the longest printed number of ``values (n, m)`` fits its cell of a plot
    ``plot_width`` px wide (at most ``largest``); 0 when even :data:`MIN_CELL_FONT` does not fit."""
    z = np.asarray(values, dtype=np.float64)
    m = z.shape[1] if z.ndim == 2 else max(1, z.size)
    chars = max((len(cell_text(v, value_format)) for v in z.ravel()), default=1)
    size = min(float(largest), (plot_width / m - CELL_GAP_PX) / (DIGIT_WIDTH * chars))
    return float(math.floor(size * 2) / 2) if size >= MIN_CELL_FONT else 0.0


def phone_cell_font(values, largest: float, value_format: str = CELL_FORMAT) -> int:
    """The size (px, one of :data:`PHONE_CELL_FONTS`) of the numbers of ``values (n, m)`` on a narrow screen: the
    whole pixels that fit a cell of a :data:`PHONE_PLOT_WIDTH` plot, at most ``largest`` and
    :data:`PHONE_MAX_CELL_FONT`; 0 when even :data:`MIN_CELL_FONT` does not fit."""
    size = int(cell_font(values, PHONE_PLOT_WIDTH, min(float(largest), PHONE_MAX_CELL_FONT), value_format))
    return size if size in PHONE_CELL_FONTS else 0


__all__ = [
    "CELL_FORMAT", "PHONE_PLOT_WIDTH", "PROJECTOR_PLOT_WIDTH", "NORMAL_PLOT_WIDTH", "NARROW_SCREEN_PX", "DIGIT_WIDTH", "CELL_GAP_PX", "MIN_CELL_FONT",
    "PHONE_MAX_CELL_FONT", "PHONE_CELL_FONTS", "cell_text", "cell_font", "phone_cell_font", "WHY_MAX_SUBTRACTED", "PCA_SENTENCE", "Step", "STEPS", "STEP_KEYS", "MATRICES", "CellExplanation", "explain_cell",
    "ARTICLE_LATEX", "STANDARD_LATEX", "NOTATION_SENTENCES", "scaled_summary", "FLOAT32_EXP_LIMIT",
    "overflow_summary", "notation_table", "notation_caption", "TRACKS", "HEAD_VIEWS", "HEAD_MATCH_TOLERANCE",
    "HEADS_PER_ROW", "HEAD_FEATURE_COLUMNS", "HEAD_STEPS", "HEAD_STEP_KEYS", "HeadMatrix", "head_matrix",
    "head_match_sentence",
    "diagonal_sentence", "HEAD_INPUTS", "DEFAULT_IMAGE_HEAD", "head_steps",
]
