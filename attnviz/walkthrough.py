"""The step-by-step maths of attention on a small example, with every intermediate number.

    ex = text_example("The cat sat on the mat", encoder="contextual")   # or image_example(photo)
    wt = walk(ex.vectors, ex.labels, similarity="cosine", temperature=0.1)
    wt.scores, wt.scaled, wt.row_max, wt.exp, wt.row_sums, wt.weights, wt.outputs   # numpy float64
    explain_cell(wt, "weights", 0, 2).latex   # the formula of that one number, filled in with the numbers

The steps (:data:`STEPS`), in the standard row-softmax form (what :func:`attnviz.attend` computes):

    1. vectors      x_i (n, d), drawn in 2-D by PCA (a singular value decomposition, torch.linalg.svd)
    2. scores       s_ij = sim(x_i, x_j)
    3. temperature  s_ij / T
    4. exp          e_ij = exp(s_ij/T - max_k s_ik/T)      (max-subtracted: see :data:`WHY_MAX_SUBTRACTED`)
    5. row sums     Z_i = sum_j e_ij
    6. weights      a_ij = e_ij / Z_i                       (each row sums to 1)
    7. output       y_i = sum_j a_ij x_j
    8. notation     the seed article's looser formulas beside the standard ones (:func:`article_literal`)

Everything is computed in float64 so the displayed numbers are exact to the digits shown.
Pure library code: no streamlit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .attention import check_temperature
from .errors import InvalidParameter, ShapeMismatch
from .similarity import ADDITIVE_HIDDEN, UNTRAINED_SEED, get_similarity, untrained_parameter

#: the walkthrough shows every number, so it keeps to a handful of tokens
MIN_TOKENS = 2
MAX_TOKENS = 8
#: the image example: a 3 x 3 grid of patches
IMAGE_GRID = 3
#: coordinates of a vector shown in the tables (the rest are summarised)
SHOWN_COORDS = 12

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


@dataclass(frozen=True)
class Example:
    """A small input for the walkthrough: ``labels`` (n) and ``vectors`` ``(n, d)`` float64."""

    labels: tuple[str, ...]
    vectors: np.ndarray
    kind: str  # "text" or "image"
    source: str  # what the vectors are, one sentence
    notes: tuple[str, ...] = ()
    grid: object | None = None  # the PatchGrid for an image example
    offsets: tuple[tuple[int, int], ...] = ()
    text: str = ""


@dataclass
class Projection:
    """PCA to 2-D: ``coords = (x - mean) @ components.T``."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (2, d) unit rows
    explained: np.ndarray  # (2,) share of the total variance per axis
    coords: np.ndarray  # (n, 2)

    def project(self, x) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.components.T


@dataclass
class Walkthrough:
    """Every intermediate number of self-attention over ``vectors`` (all float64 numpy arrays)."""

    labels: tuple[str, ...]
    vectors: np.ndarray  # (n, d)
    similarity: str
    temperature: float
    params: dict
    projection: Projection
    scores: np.ndarray  # (n, n)
    scaled: np.ndarray  # scores / T
    row_max: np.ndarray  # (n,) max of each row of scaled
    shifted: np.ndarray  # scaled - row_max
    exp: np.ndarray  # exp(shifted)
    row_sums: np.ndarray  # (n,)
    weights: np.ndarray  # (n, n)
    outputs: np.ndarray  # (n, d)
    output_coords: np.ndarray  # (n, 2) outputs in the same 2-D view as the inputs
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def d(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def sums(self) -> np.ndarray:
        """The exps with the row sums appended as a last column: ``(n, n + 1)``."""
        return np.concatenate([self.exp, self.row_sums[:, None]], axis=1)

    @property
    def unshifted_max(self) -> float:
        """The largest exp the softmax would need without the max-subtraction (may be inf)."""
        with np.errstate(over="ignore"):
            return float(np.exp(self.scaled.max()))

    def matrix(self, name: str) -> np.ndarray:
        """A matrix by name (see :data:`MATRICES`); ``vectors``/``outputs`` are cut to :data:`SHOWN_COORDS` columns."""
        if name == "vectors":
            return self.vectors[:, :SHOWN_COORDS]
        if name == "outputs":
            return self.outputs[:, :SHOWN_COORDS]
        if name == "sums":
            return self.sums
        if name in ("scores", "scaled", "exp", "shifted", "weights"):
            return getattr(self, name)
        raise InvalidParameter(f"Unknown matrix {name!r}: choose one of {', '.join(MATRICES)}.")

    def column_labels(self, name: str) -> list[str]:
        if name in ("vectors", "outputs"):
            return [f"c{c}" for c in range(self.matrix(name).shape[1])]
        if name == "sums":
            return list(self.labels) + ["Σ"]
        return list(self.labels)


# ----------------------------------------------------------------------------------------- examples


def text_example(text: str, encoder: str = "contextual", device=None, max_tokens: int = MAX_TOKENS,
                 model_path=None) -> Example:
    """A short sentence's word pieces and their vectors (the first ``max_tokens`` pieces)."""
    from .text import ENCODERS, encode_text

    enc = encode_text(text, encoder, device, model_path)
    n = len(enc.tokens)
    if n < MIN_TOKENS:
        raise InvalidParameter(f"The walkthrough needs at least {MIN_TOKENS} tokens; this text has {n}. "
                               "Type a short sentence of 4 to 8 words.")
    notes = list(enc.notes)
    if n > max_tokens:
        notes.insert(0, f"The text has {n} tokens; the walkthrough shows every number, so it uses the first "
                        f"{max_tokens}.")
    k = min(n, max_tokens)
    info = ENCODERS[encoder]
    d = int(enc.vectors.shape[1])
    source = f"{info.label}: {info.sentence} {d} numbers per token, from {enc.model_name}."
    return Example(tuple(enc.tokens[:k]), enc.vectors[:k].double().numpy(), "text", source, tuple(notes),
                   offsets=tuple(enc.offsets[:k]), text=text)


def image_example(image, grid: int = IMAGE_GRID) -> Example:
    """A photo cut into ``grid x grid`` patches and each patch's features (attnviz.image's extractor)."""
    from .image import HANDCRAFTED_FEATURES, compute_features, load_image

    from PIL import Image as _Image

    img = image if isinstance(image, _Image.Image) else load_image(image)
    feats = compute_features(img, grid=(grid, grid))
    g = feats.grid
    labels = tuple(f"r{r}c{c}" for r in range(g.rows) for c in range(g.cols))
    d = feats.features.shape[1]
    source = (f"Handcrafted patch features ({d} numbers per patch: mean colour in CIELAB, colour spread, edge "
              f"strength and a {len(HANDCRAFTED_FEATURES) - 7}-bin edge-direction histogram), each standardised "
              "over the photo's patches.")
    return Example(labels, feats.features.astype(np.float64), "image", source, grid=g)


# -------------------------------------------------------------------------------------------- maths


def reduce_2d(vectors) -> Projection:
    """PCA to two axes with ``torch.linalg.svd`` of the centred vectors; signs fixed so the largest
    entry of each axis is positive (the picture does not flip between runs)."""
    x = torch.as_tensor(np.asarray(vectors, dtype=np.float64))
    if x.dim() != 2 or x.shape[0] < 1:
        raise ShapeMismatch(f"reduce_2d takes (n, d) vectors, got shape {tuple(x.shape)}.")
    mean = x.mean(dim=0)
    xc = x - mean
    _, s, vh = torch.linalg.svd(xc, full_matrices=False)
    comps = torch.zeros(2, x.shape[1], dtype=torch.float64)
    k = min(2, vh.shape[0])
    comps[:k] = vh[:k]
    for r in range(k):
        big = int(torch.argmax(comps[r].abs()))
        if comps[r, big] < 0:
            comps[r] = -comps[r]
    var = s * s
    total = float(var.sum())
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = (var[:k] / total).numpy()
    coords = (xc @ comps.T).numpy()
    return Projection(mean.numpy(), comps.numpy(), explained, coords)


def walk(vectors, labels: Sequence[str], similarity: str = "cosine", temperature: float = 1.0, *,
         source: str = "", **params) -> Walkthrough:
    """All the intermediate numbers of self-attention over ``vectors (n, d)``, in float64."""
    sim = get_similarity(similarity)
    t = check_temperature(temperature)
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2:
        raise ShapeMismatch(f"The walkthrough takes (n, d) vectors, got shape {x.shape}.")
    if len(labels) != x.shape[0]:
        raise ShapeMismatch(f"{len(labels)} labels for {x.shape[0]} vectors: give one label per vector.")
    if x.shape[0] < 1:
        raise InvalidParameter("The walkthrough needs at least one vector.")
    if not np.isfinite(x).all():
        raise InvalidParameter("The vectors contain NaN or infinite values.")
    xt = torch.from_numpy(x)
    s = sim(xt, xt, **params).numpy()
    scaled = s / t
    row_max = scaled.max(axis=1)
    shifted = scaled - row_max[:, None]
    e = np.exp(shifted)
    z = e.sum(axis=1)
    w = e / z[:, None]
    y = w @ x
    proj = reduce_2d(x)
    return Walkthrough(tuple(str(v) for v in labels), x, sim.name, t, dict(params), proj, s, scaled, row_max,
                       shifted, e, z, w, y, proj.project(y), source)


def walk_example(example: Example, similarity: str = "cosine", temperature: float = 1.0, **params) -> Walkthrough:
    return walk(example.vectors, example.labels, similarity, temperature, source=example.source, **params)


# ---------------------------------------------------------------------------------- number formats


def _fixed(x: float, digits: int) -> str:
    if abs(x) >= 10 ** (digits - 1):  # 22026.47 -> "22026", not "2.203e+04"
        return f"{x:.0f}"
    out = f"{x:.{digits}g}"
    # 1.00034 must not print as "1": a sum that only looks like a whole number gets more digits
    while "." not in out and "e" not in out and x != round(x) and digits < 10:
        digits += 2
        out = f"{x:.{digits}g}"
    return out


def fmt(x: float, digits: int = 4) -> str:
    """A number for people: 4 significant digits, scientific only when very large or small."""
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return "∞" if x > 0 else ("−∞" if x < 0 else "NaN")
    if 1e-4 <= abs(x) < 1e6:
        return _fixed(x, digits).replace("-", "−")
    m, e = f"{x:.{digits - 1}e}".split("e")
    return f"{m}×10^{int(e)}".replace("-", "−")


def tex(x: float, digits: int = 4) -> str:
    """The same number as LaTeX (``1.2\\times10^{-5}``)."""
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return r"\infty" if x > 0 else (r"-\infty" if x < 0 else r"\mathrm{NaN}")
    if 1e-4 <= abs(x) < 1e6:
        return _fixed(x, digits)
    m, e = f"{x:.{digits - 1}e}".split("e")
    return rf"{m}\times10^{{{int(e)}}}"


def _p(x: float) -> str:
    """A factor in a product: negative numbers in parentheses."""
    s = tex(x)
    return f"({s})" if float(x) < 0 else s


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


def _sum_terms(a: np.ndarray, b: np.ndarray, shown: int = 3) -> str:
    terms = [f"{_p(a[k])} \\cdot {_p(b[k])}" for k in range(min(shown, len(a)))]
    body = " + ".join(terms)
    if len(a) > shown:
        body += rf" + \dots\ ({len(a)}\text{{ terms}})"
    return body


def _score_explanation(wt: Walkthrough, i: int, j: int) -> tuple[float, str, str]:
    """The score s_ij recomputed from x_i and x_j by its formula, with the numbers filled in."""
    xi, xj = wt.vectors[i], wt.vectors[j]
    d = wt.d
    name = wt.similarity
    head = rf"s_{{{i}{j}}} = s(x_{{{i}}}, x_{{{j}}})"
    li, lj = wt.labels[i], wt.labels[j]
    if name == "dot":
        v = float(xi @ xj)
        latex = (rf"{head} = x_{{{i}}}^\top x_{{{j}}} = \sum_{{c=1}}^{{{d}}} x_{{{i},c}}\,x_{{{j},c}}"
                 rf" = {_sum_terms(xi, xj)} = {tex(v)}")
        text = (f"The dot product of '{li}' and '{lj}': multiply their {d} coordinates pairwise and add them up, "
                f"giving {fmt(v)}.")
    elif name == "scaled_dot":
        dot = float(xi @ xj)
        v = dot / math.sqrt(d)
        latex = (rf"{head} = \frac{{x_{{{i}}}^\top x_{{{j}}}}}{{\sqrt{{d}}}} = \frac{{{tex(dot)}}}{{\sqrt{{{d}}}}}"
                 rf" = \frac{{{tex(dot)}}}{{{tex(math.sqrt(d))}}} = {tex(v)}")
        text = (f"The dot product of '{li}' and '{lj}' is {fmt(dot)}; divided by the square root of the width "
                f"(√{d} = {fmt(math.sqrt(d))}) it is {fmt(v)}.")
    elif name == "cosine":
        dot, ni, nj = float(xi @ xj), float(np.linalg.norm(xi)), float(np.linalg.norm(xj))
        v = dot / (max(ni, 1e-8) * max(nj, 1e-8))
        latex = (rf"{head} = \frac{{x_{{{i}}}^\top x_{{{j}}}}}{{\lVert x_{{{i}}}\rVert\,\lVert x_{{{j}}}\rVert}}"
                 rf" = \frac{{{tex(dot)}}}{{{tex(ni)} \times {tex(nj)}}} = {tex(v)}")
        text = (f"The dot product of '{li}' and '{lj}' is {fmt(dot)}; their lengths are {fmt(ni)} and {fmt(nj)}; "
                f"{fmt(dot)} divided by ({fmt(ni)} × {fmt(nj)}) is {fmt(v)}, the cosine of the angle between them.")
    elif name in ("euclidean", "rbf"):
        diff = xi - xj
        sq = float(diff @ diff)
        if name == "euclidean":
            v = -math.sqrt(sq)
            latex = (rf"{head} = -\lVert x_{{{i}}} - x_{{{j}}}\rVert = -\sqrt{{\textstyle\sum_{{c=1}}^{{{d}}}"
                     rf" (x_{{{i},c}} - x_{{{j},c}})^2}} = -\sqrt{{{tex(sq)}}} = {tex(v)}")
            text = (f"The squared differences of the {d} coordinates of '{li}' and '{lj}' add up to {fmt(sq)}; "
                    f"the distance is its square root, {fmt(math.sqrt(sq))}, and the score is minus that: {fmt(v)}.")
        else:
            sigma = float(wt.params.get("sigma") or math.sqrt(d))
            v = -sq / (2 * sigma * sigma)
            latex = (rf"{head} = -\frac{{\lVert x_{{{i}}} - x_{{{j}}}\rVert^2}}{{2\sigma^2}}"
                     rf" = -\frac{{{tex(sq)}}}{{2 \times {tex(sigma)}^2}} = {tex(v)}")
            text = (f"The squared distance between '{li}' and '{lj}' is {fmt(sq)}; divided by 2σ² "
                    f"(σ = {fmt(sigma)}) and negated, the score is {fmt(v)}.")
    elif name == "general":
        like = torch.zeros(1, dtype=torch.float64)
        seed = int(wt.params.get("seed", UNTRAINED_SEED))
        if wt.params.get("weight") is not None:
            w = np.asarray(wt.params["weight"], dtype=np.float64)
            v = float(xi @ w @ xj)
            latex = rf"{head} = x_{{{i}}}^\top W x_{{{j}}} = {tex(v)}"
            text = f"'{li}' times the matrix W times '{lj}' gives {fmt(v)}."
        else:
            noise = untrained_parameter((d, d), "general", like, seed).numpy()
            dot, extra = float(xi @ xj), float(xi @ noise @ xj)
            v = dot + extra
            latex = (rf"{head} = x_{{{i}}}^\top W x_{{{j}}},\ W = I + N \;\Rightarrow\; "
                     rf"x_{{{i}}}^\top x_{{{j}}} + x_{{{i}}}^\top N x_{{{j}}} = {tex(dot)} + {_p(extra)} = {tex(v)}")
            text = (f"W is the identity plus seeded random noise N (untrained), so the score is the plain dot "
                    f"product {fmt(dot)} plus the noise term {fmt(extra)}: {fmt(v)}.")
    elif name == "additive":
        like = torch.zeros((1, 1), dtype=torch.float64)
        seed = int(wt.params.get("seed", UNTRAINED_SEED))
        h = ADDITIVE_HIDDEN
        w_q = untrained_parameter((h, d), "additive_wq", like, seed).numpy()
        w_k = untrained_parameter((h, d), "additive_wk", like, seed).numpy()
        vv = untrained_parameter((1, h), "additive_v", like, seed).numpy()[0]
        hid = np.tanh(w_q @ xi + w_k @ xj)
        v = float(vv @ hid)
        latex = (rf"{head} = v^\top \tanh(W_1 x_{{{i}}} + W_2 x_{{{j}}}) = \sum_{{h=1}}^{{{h}}} v_h\,t_h"
                 rf" = {_sum_terms(vv, hid)} = {tex(v)}")
        text = (f"A tiny network with {h} hidden units (untrained, seeded random weights) mixes '{li}' and "
                f"'{lj}', squashes each unit with tanh, and adds the units up with weights v: {fmt(v)}.")
    else:  # a similarity added to the registry later: the number, recomputed by the registry itself
        sim = get_similarity(name)
        v = float(sim(torch.from_numpy(xi[None]), torch.from_numpy(xj[None]), **wt.params)[0, 0])
        latex = rf"{head} = {tex(v)}"
        text = f"The {sim.label} of '{li}' and '{lj}' is {fmt(v)}."
    return v, latex, text


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
                 rf" = \exp({tex(a)} - {_p(mx)}) = \exp({tex(a - mx)}) = {tex(v)}")
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
    terms = " + ".join(f"{_p(w[k])} \\cdot {_p(col[k])}" for k in range(n))
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


@dataclass
class ArticleLiteral:
    """The article's formulas read literally (α_ij = 1, T = 1) on the walkthrough's example."""

    pooled: np.ndarray  # (n,) a_j = softmax_j(sum_k s(j, k))
    coefficients: np.ndarray  # (n, n) c_ij = a_j s(i, j): what multiplies x_j in y_i
    coefficient_sums: np.ndarray  # (n,) sum_j c_ij  (1 in the standard form)
    negative_share: float  # share of the coefficients below 0
    outputs: np.ndarray  # (n, d) y_i = sum_j c_ij x_j
    standard_sums: np.ndarray  # (n,) row sums of the standard weights (all 1)


def article_literal(wt: Walkthrough) -> ArticleLiteral:
    s = wt.scores
    row = s.sum(axis=1)
    e = np.exp(row - row.max())
    pooled = e / e.sum()
    coef = pooled[None, :] * s
    return ArticleLiteral(pooled, coef, coef.sum(axis=1), float((coef < 0).mean()), coef @ wt.vectors,
                          wt.weights.sum(axis=1))


# ------------------------------------------------------------------------------------------ figures

#: Okabe-Ito colours: distinguishable with colour-blindness, readable on light and dark backgrounds
INPUT_COLOUR = "#0072B2"
OUTPUT_COLOUR = "#E69F00"


def cell_figure(z, x_labels: Sequence[str], y_labels: Sequence[str], *, title: str = "", x_title: str = "key j",
                y_title: str = "query i", colorbar_title: str = "value", selected: tuple[int, int] | None = None,
                show_values: bool = True, cmap: str = "cividis", value_format: str = ".3g"):
    """A heatmap whose every cell can be clicked: an invisible marker sits on each cell centre (plotly
    heatmaps themselves report no selection to Streamlit), carrying ``customdata = [row, col, value]``.
    ``selected`` outlines one cell; small matrices print their numbers in the cells."""
    import plotly.graph_objects as go

    from .render import matrix_figure, unique_labels

    z = np.asarray(z, dtype=np.float64)
    n, m = z.shape
    fig = matrix_figure(z, list(x_labels), list(y_labels), title=title, cmap_name=cmap, x_title=x_title,
                        y_title=y_title, colorbar_title=colorbar_title)
    heat = fig.data[0]
    heat.hoverinfo = "skip"
    heat.hovertemplate = None
    if show_values and n * m <= 144:
        heat.texttemplate = "%{z:" + value_format + "}"
        heat.textfont = dict(size=13 if max(n, m) <= 10 else 10)
    xs, ys = unique_labels(list(x_labels)), unique_labels(list(y_labels))
    rows, cols = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    fig.add_trace(go.Scatter(
        x=[xs[j] for j in cols.ravel()], y=[ys[i] for i in rows.ravel()], mode="markers",
        marker=dict(symbol="square", size=max(12, min(40, 320 // max(n, m))), color="rgba(0,0,0,0)"),
        customdata=np.stack([rows.ravel(), cols.ravel(), z.ravel()], axis=1),
        hovertemplate=(f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>{colorbar_title} %{{customdata[2]:.6g}}"
                       "<br>click to explain<extra></extra>"),
        showlegend=False, selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
    ))
    if selected is not None:
        i, j = selected
        for colour, width in (("#000000", 6), ("#ffffff", 2.5)):  # black under white: visible on any cell
            fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, xref="x", yref="y",
                          line=dict(color=colour, width=width))
    if n <= 40:  # every label, not plotly's thinned selection
        fig.update_yaxes(tickmode="array", tickvals=ys, ticktext=ys, tickfont=dict(size=13 if n <= 12 else 10))
    if m <= 40:
        fig.update_xaxes(tickmode="array", tickvals=xs, ticktext=xs, tickfont=dict(size=13 if m <= 12 else 10))
    fig.update_layout(clickmode="event+select", dragmode=False, hovermode="closest")
    return fig


def parse_clicked_cell(event, n_rows: int, n_cols: int) -> tuple[int, int] | None:
    """The (row, col) a click on :func:`cell_figure` selected, from Streamlit's selection state, or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, IndexError):
        return None
    for p in points or ():
        cd = p.get("customdata") if isinstance(p, dict) else None
        cell = None
        if isinstance(cd, (list, tuple)) and len(cd) >= 2:
            cell = (int(round(float(cd[0]))), int(round(float(cd[1]))))
        else:
            idx = p.get("point_index", p.get("point_number")) if isinstance(p, dict) else None
            if isinstance(idx, (list, tuple)) and len(idx) == 2:
                cell = (int(idx[0]), int(idx[1]))
            elif isinstance(idx, int) and p.get("curve_number", 1) == 1:
                cell = divmod(idx, n_cols)
        if cell is not None and 0 <= cell[0] < n_rows and 0 <= cell[1] < n_cols:
            return cell
    return None


def _axis_title(proj: Projection, k: int) -> str:
    return f"PCA axis {k + 1} ({proj.explained[k]:.0%} of the spread)"


def vectors_figure(wt: Walkthrough, title: str = "The vectors, reduced to 2-D by PCA"):
    """Each input vector as a labelled point in the 2-D PCA view."""
    import plotly.graph_objects as go

    from .render import escape_label

    c = wt.projection.coords
    labels = [f"{i}·{escape_label(t)}" for i, t in enumerate(wt.labels)]
    fig = go.Figure(go.Scatter(
        x=c[:, 0], y=c[:, 1], mode="markers+text", text=labels, textposition="top center",
        marker=dict(size=14, color=INPUT_COLOUR, line=dict(width=1, color="#ffffff")), name="input x_i",
        hovertemplate="%{text}<br>(%{x:.3f}, %{y:.3f})<extra></extra>"))
    fig.update_layout(title=dict(text=escape_label(title)), xaxis_title=_axis_title(wt.projection, 0),
                      yaxis_title=_axis_title(wt.projection, 1), height=420, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def outputs_figure(wt: Walkthrough, title: str = "Each output y_i is pulled towards what x_i attends to"):
    """Inputs and outputs in the same 2-D PCA view, an arrow from each x_i to its y_i."""
    import plotly.graph_objects as go

    from .render import escape_label

    c, o = wt.projection.coords, wt.output_coords
    labels = [f"{i}·{escape_label(t)}" for i, t in enumerate(wt.labels)]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=c[:, 0], y=c[:, 1], mode="markers+text", text=labels, textposition="top center",
                             marker=dict(size=13, color=INPUT_COLOUR), name="input x_i",
                             hovertemplate="input %{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=o[:, 0], y=o[:, 1], mode="markers", text=labels,
                             marker=dict(size=13, color=OUTPUT_COLOUR, symbol="diamond"), name="output y_i",
                             hovertemplate="output %{text}<extra></extra>"))
    for i in range(wt.n):
        fig.add_annotation(x=o[i, 0], y=o[i, 1], ax=c[i, 0], ay=c[i, 1], xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=3, arrowwidth=1.5, arrowcolor=OUTPUT_COLOUR, text="")
    fig.update_layout(title=dict(text=escape_label(title)), xaxis_title=_axis_title(wt.projection, 0),
                      yaxis_title=_axis_title(wt.projection, 1), height=440, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.2))
    return fig


__all__ = [
    "MIN_TOKENS", "MAX_TOKENS", "IMAGE_GRID", "SHOWN_COORDS", "WHY_MAX_SUBTRACTED", "PCA_SENTENCE", "Step", "STEPS",
    "STEP_KEYS", "MATRICES", "Example", "Projection", "Walkthrough", "text_example", "image_example", "reduce_2d",
    "walk", "walk_example", "fmt", "tex", "CellExplanation", "explain_cell", "ARTICLE_LATEX", "STANDARD_LATEX",
    "NOTATION_SENTENCES", "ArticleLiteral", "article_literal", "cell_figure", "parse_clicked_cell", "vectors_figure",
    "outputs_figure",
]
