"""attnviz.walkthrough: every intermediate number against an independent computation, and every cell
explanation against the matrix it explains."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from attnviz import SIMILARITIES, InvalidParameter, ShapeMismatch
from attnviz.explain import MATRICES, STEP_KEYS, STEPS, explain_cell
from attnviz.figures import clickable_heatmap
from attnviz.fmt import fmt, plain, tex
from attnviz.image import patch_label
from attnviz.walkthrough import (
    MATRIX_NAMES,
    MAX_TOKENS,
    SHOWN_COORDS,
    article_literal,
    image_example,
    reduce_2d,
    text_example,
    walk,
)
from reference import ref_scores
from ui.clicks import parse_clicked_cell

RNG = np.random.default_rng(7)
X = RNG.normal(size=(5, 6))
LABELS = ["the", "cat", "sat", "on", "mat"]


@pytest.mark.parametrize("name", list(SIMILARITIES))
@pytest.mark.parametrize("temperature", [0.1, 1.0, 3.0])
def test_every_step_matches_an_independent_computation(name, temperature):
    wt = walk(X, LABELS, name, temperature)
    # every function, the untrained ones included: the registry's own float64 formula, pair by pair
    np.testing.assert_allclose(wt.scores, ref_scores(X, X, name), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.scaled, wt.scores / temperature, rtol=1e-15)
    np.testing.assert_allclose(wt.row_max, wt.scaled.max(axis=1))
    assert np.all(wt.exp <= 1.0) and np.allclose(wt.exp.max(axis=1), 1.0)  # the largest exp of a row is exp(0)
    np.testing.assert_allclose(wt.row_sums, wt.exp.sum(axis=1))
    soft = torch.softmax(torch.from_numpy(wt.scores) / temperature, dim=-1).numpy()  # torch's own softmax
    np.testing.assert_allclose(wt.weights, soft, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(wt.weights.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(wt.outputs, soft @ X, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(wt.sums[:, -1], wt.row_sums)


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_every_cell_explanation_recomputes_the_number_it_explains(name):
    wt = walk(X, LABELS, name, 0.5)
    for matrix in MATRICES:
        m = wt.matrix(matrix)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                e = explain_cell(wt, matrix, i, j)
                assert e.value == pytest.approx(float(m[i, j]), rel=1e-12, abs=1e-15)
                assert e.recomputed == pytest.approx(e.value, rel=1e-9, abs=1e-12), (matrix, i, j)
                # the formula ends with the number itself, as shown
                assert e.latex.rstrip().endswith("= " + tex(e.recomputed)), e.latex
                assert e.text
                if matrix == "scores":  # the registry's own worked example: the labels and the number, in words
                    assert f"'{LABELS[i]}'" in e.text and f"'{LABELS[j]}'" in e.text, e.text
                    assert fmt(e.recomputed) in e.text, e.text
                    assert e.latex.startswith(f"s_{{{i}{j}}} = s(x_{{{i}}}, x_{{{j}}}) = "), e.latex


def test_cosine_explanation_shows_the_actual_numbers():
    wt = walk(X, LABELS, "cosine", 0.1)
    e = explain_cell(wt, "scores", 1, 3)
    dot, n1, n3 = X[1] @ X[3], np.linalg.norm(X[1]), np.linalg.norm(X[3])
    assert f"\\frac{{{tex(dot)}}}{{{tex(n1)} \\times {tex(n3)}}}" in e.latex
    assert e.recomputed == pytest.approx(dot / (n1 * n3))
    w = explain_cell(wt, "weights", 1, 3)
    e13 = math.exp(wt.scores[1, 3] / 0.1 - (wt.scores[1] / 0.1).max())
    z = sum(math.exp(s / 0.1 - (wt.scores[1] / 0.1).max()) for s in wt.scores[1])
    assert f"\\frac{{{tex(e13)}}}{{{tex(z)}}}" in w.latex
    assert w.recomputed == pytest.approx(e13 / z, rel=1e-12)
    y = explain_cell(wt, "outputs", 2, 4)
    assert y.recomputed == pytest.approx(float(wt.weights[2] @ X[:, 4]), rel=1e-12)
    assert y.latex.count("\\cdot") == len(LABELS)  # every term of the weighted sum is written out


def test_the_sum_column_explains_the_row_sum():
    wt = walk(X, LABELS, "dot", 1.0)
    e = explain_cell(wt, "sums", 2, len(LABELS))
    assert e.latex.startswith("Z_{2}")
    assert e.recomputed == pytest.approx(float(wt.row_sums[2]), rel=1e-12)


def test_max_subtraction_keeps_huge_scores_finite():
    big = X * 100
    wt = walk(big, LABELS, "dot", 0.01)  # scores / T in the hundreds of thousands
    assert wt.unshifted_max == math.inf  # exp without the shift overflows even float64
    assert np.isfinite(wt.weights).all()
    np.testing.assert_allclose(wt.weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(wt.weights, torch.softmax(torch.from_numpy(wt.scaled), -1).numpy(), atol=1e-15)


def test_pca_is_the_svd_of_the_centred_vectors():
    # three points on a plane inside 5-D: two axes keep all the spread
    basis = RNG.normal(size=(2, 5))
    pts = RNG.normal(size=(6, 2)) @ basis + 3.0
    proj = reduce_2d(pts)
    assert proj.explained.sum() == pytest.approx(1.0)
    assert proj.explained[0] >= proj.explained[1]
    np.testing.assert_allclose(proj.components @ proj.components.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(proj.coords @ proj.components + proj.mean, pts, atol=1e-10)  # lossless here
    for r in range(2):  # sign convention: the largest entry of each axis is positive
        assert proj.components[r, np.argmax(np.abs(proj.components[r]))] > 0
    u, s, vt = np.linalg.svd(pts - pts.mean(0), full_matrices=False)  # numpy's SVD agrees up to sign
    np.testing.assert_allclose(np.abs(proj.components), np.abs(vt[:2]), atol=1e-10)


def test_outputs_are_drawn_in_the_inputs_2d_view():
    wt = walk(X, LABELS, "cosine", 0.1)
    np.testing.assert_allclose(wt.output_coords, (wt.outputs - wt.projection.mean) @ wt.projection.components.T)


def test_the_articles_literal_formulas_are_not_a_weighted_average():
    wt = walk(X, LABELS, "euclidean", 1.0)
    lit = article_literal(wt)
    row = wt.scores.sum(axis=1)
    pooled = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
    np.testing.assert_allclose(lit.pooled, pooled)
    np.testing.assert_allclose(lit.coefficients, pooled[None, :] * wt.scores)
    np.testing.assert_allclose(lit.standard_sums, 1.0)
    assert np.all(lit.coefficient_sums < 0)  # negative distances: every coefficient is <= 0
    assert lit.negative_share > 0.7


def test_steps_cover_the_whole_computation():
    assert STEP_KEYS == ("vectors", "scores", "scaled", "exp", "sums", "weights", "output", "notation")
    assert all(s.matrix is None or s.matrix in MATRICES for s in STEPS)
    assert tuple(MATRICES) == MATRIX_NAMES  # a title for every matrix the computation can show


@pytest.mark.parametrize("value,text,latex", [
    (0.5, "0.5", "0.5"), (-0.25, "−0.25", "-0.25"), (22026.47, "22026", "22026"),
    (1.00034, "1.00034", "1.00034"), (3.2e-7, "3.200×10^−7", r"3.200\times10^{-7}"), (math.inf, "∞", r"\infty"),
])
def test_number_formats(value, text, latex):
    assert fmt(value) == text and tex(value) == latex
    assert plain(value, 4) == text.replace("−", "-").replace("×10^-7", "e-07").replace("∞", "inf")


def test_bad_input_is_refused_with_a_sentence():
    with pytest.raises(ShapeMismatch, match="one label per vector"):
        walk(X, LABELS[:3])
    with pytest.raises(InvalidParameter, match="NaN"):
        walk(np.full((2, 2), np.nan), ["a", "b"])
    wt = walk(X, LABELS)
    with pytest.raises(InvalidParameter, match="outside"):
        explain_cell(wt, "weights", 9, 0)
    with pytest.raises(InvalidParameter, match="Unknown matrix"):
        explain_cell(wt, "nope", 0, 0)


def test_clicks_are_read_from_the_invisible_markers():
    fig = clickable_heatmap(np.arange(6.0).reshape(2, 3), ["a", "b", "c"], ["x", "y"], selected=(1, 2))
    heat, dots = fig.data
    assert heat.type == "heatmap" and dots.type == "scatter"
    assert dots.customdata.tolist()[5] == [1, 2, 5.0]  # row, column, value of the last cell
    assert len(fig.layout.shapes) == 2  # the selected cell is outlined (black under white)
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    event = {"selection": {"points": [{"curve_number": 1, "point_index": 5, "customdata": [1, 2, 5.0]}]}}
    assert parse_clicked_cell(event, 2, 3) == (1, 2)
    assert parse_clicked_cell({"selection": {"points": [{"curve_number": 1, "point_index": 4}]}}, 2, 3) == (1, 1)
    assert parse_clicked_cell({"selection": {"points": []}}, 2, 3) is None
    assert parse_clicked_cell(None, 2, 3) is None
    assert parse_clicked_cell({"selection": {"points": [{"customdata": [7, 7, 0]}]}}, 2, 3) is None


def test_a_real_sentence_is_cut_to_eight_tokens_with_a_note():
    ex = text_example("one two three four five six seven eight nine ten", "static")
    assert len(ex.labels) == MAX_TOKENS and ex.vectors.shape == (MAX_TOKENS, 384)
    assert "first 8" in ex.notes[0]
    assert ex.labels[:3] == ("one", "two", "three")
    with pytest.raises(InvalidParameter, match="at least 2 tokens"):
        text_example("hello", "static")
    wt = walk(ex.vectors, ex.labels, "cosine", 0.1)
    assert wt.matrix("vectors").shape == (MAX_TOKENS, SHOWN_COORDS)


def test_a_photo_becomes_nine_patches():
    from attnviz.image import sample_path

    ex = image_example(sample_path("china.jpg"))
    assert ex.labels == tuple(patch_label(r, c) for r in range(3) for c in range(3))
    assert ex.labels[5] == "r1c2"  # row-major: patch 5 of a 3 x 3 grid is row 1, column 2
    assert ex.vectors.shape[0] == 9 and ex.grid.shape == (3, 3)
    assert re.search(r"\d+ numbers per patch", ex.source)
