"""attnviz.lab: the comparison against independent numbers, and the two findings shown on real data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz import InvalidParameter, get_similarity
from attnviz.lab import (
    SWEEP_TEMPERATURES,
    compare,
    cosine_needs_temperature,
    euclidean_as_dot,
    temperature_sweep,
)
from attnviz.figures import effective_figure, sweep_figure
from attnviz.similarity import SIMILARITIES

RNG = np.random.default_rng(3)
X = RNG.normal(size=(7, 5)) * RNG.uniform(0.2, 3.0, size=(7, 1))  # keys of very different lengths


def entropy(w: np.ndarray) -> np.ndarray:
    return np.array([-sum(p * math.log(p) for p in row if p > 0) for row in w])


@pytest.fixture(scope="module")
def sentence_vectors():
    from attnviz.text import encode_text

    text = ("The little kitten chased a red ball across the garden, while the car in the driveway stayed cold "
            "and silent.")
    return encode_text(text, "contextual").vectors.double().numpy()


def test_compare_matches_softmax_entropy_and_effective_tokens():
    cols = compare(X, ["dot", "cosine", "rbf"], {"cosine": 0.1})
    assert [c.temperature for c in cols] == [1.0, 0.1, get_similarity("rbf").default_temperature]
    for col in cols:
        s = get_similarity(col.similarity)(torch.from_numpy(X), torch.from_numpy(X)).numpy()
        e = np.exp(s / col.temperature - (s / col.temperature).max(1, keepdims=True))
        w = e / e.sum(1, keepdims=True)
        np.testing.assert_allclose(col.weights, w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(col.entropy, entropy(w), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(col.effective, np.exp(entropy(w)), rtol=1e-10)
        assert col.mean_effective == pytest.approx(float(np.exp(entropy(w)).mean()))
        assert col.use == get_similarity(col.similarity).use and col.source and col.url.startswith("https://")


@pytest.mark.parametrize("name", list(SIMILARITIES))
def test_every_registered_function_can_be_compared(name):
    col = compare(X, [name])[0]
    sim = SIMILARITIES[name]
    assert col.label == sim.label and col.use == sim.use and col.temperature == sim.default_temperature
    np.testing.assert_allclose(col.weights.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all((col.effective >= 1.0 - 1e-12) & (col.effective <= X.shape[0] + 1e-9))


def test_compare_takes_one_to_four_functions():
    with pytest.raises(InvalidParameter, match="between 1 and 4"):
        compare(X, ["dot", "cosine", "rbf", "euclidean", "scaled_dot"])
    cols = compare(X, ["dot", "dot"], [0.5, 2.0])
    assert cols[0].mean_effective < cols[1].mean_effective  # a higher temperature spreads attention


def test_temperature_sweep_spreads_attention_as_t_grows():
    sw = temperature_sweep(X, "cosine")
    assert list(sw.temperatures) == list(SWEEP_TEMPERATURES)
    assert np.all(np.diff(sw.mean_effective) >= -1e-12)  # entropy of a softmax never falls as T grows
    assert 1.0 <= sw.mean_effective[0] < sw.mean_effective[-1] <= X.shape[0]
    assert np.all(np.diff(sw.mean_max_weight) <= 1e-12)


def test_euclidean_attention_is_dot_attention_with_a_key_norm_penalty():
    demo = euclidean_as_dot(X)
    q2 = (X * X).sum(1)
    np.testing.assert_allclose(demo.rbf_scores, -((X[:, None] - X[None]) ** 2).sum(-1) / 2, atol=1e-12)
    np.testing.assert_allclose(demo.penalised_scores, X @ X.T - q2[None, :] / 2, atol=1e-12)
    np.testing.assert_allclose(demo.rbf_scores - demo.penalised_scores, np.repeat((-q2 / 2)[:, None], 7, 1),
                               atol=1e-12)  # the difference is the query term, constant along each row
    assert demo.max_weight_diff < 1e-14
    assert demo.max_weight_diff_float32 < 1e-5
    assert demo.max_weight_diff_plain_dot > 0.1  # without the penalty the weights are different
    np.testing.assert_allclose(demo.key_norms, np.sqrt(q2))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 9), d=st.integers(1, 12), scale=st.floats(0.1, 4.0), sigma=st.floats(0.5, 3.0),
       t=st.sampled_from([0.1, 1.0, 5.0]), seed=st.integers(0, 2**16))
def test_the_identity_holds_for_any_vectors(n, d, scale, sigma, t, seed):
    x = np.random.default_rng(seed).normal(size=(n, d)) * scale
    demo = euclidean_as_dot(x, sigma=sigma, temperature=t)
    assert demo.max_weight_diff < 1e-12
    assert demo.max_score_gap < 1e-9 * max(1.0, float((x * x).sum()))


def test_plain_cosine_is_near_uniform_at_t1_on_a_real_sentence(sentence_vectors):
    x = sentence_vectors
    n = x.shape[0]
    demo = cosine_needs_temperature(x, (1.0, 0.1))
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cos = xn @ xn.T
    for t, eff, mx in zip((1.0, 0.1), demo.mean_effective, demo.mean_max_weight):
        w = np.exp(cos / t) / np.exp(cos / t).sum(1, keepdims=True)
        assert eff == pytest.approx(float(np.exp(entropy(w)).mean()), rel=1e-9)
        assert mx == pytest.approx(float(w.max(1).mean()), rel=1e-9)
    assert demo.mean_effective[0] > 0.9 * n  # T = 1: close to n, i.e. near-uniform
    assert demo.mean_effective[1] < 0.5 * demo.mean_effective[0]  # T = 0.1: decisive
    assert demo.ratio_bound[0] == pytest.approx(math.e ** 2)
    assert -1.0 - 1e-9 <= demo.score_min and demo.score_max <= 1.0 + 1e-9


def test_figures_have_axis_titles():
    cols = compare(X, ["dot", "cosine"])
    for fig in (effective_figure(cols, list("abcdefg")), sweep_figure([temperature_sweep(X, "dot")])):
        assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text and fig.layout.title.text


def test_the_photo_input_pools_dinov2_tokens_into_the_grid_by_default():
    from attnviz.image import load_image, sample_path
    from attnviz.image.vit_features import cached_vit, dinov2_features
    from attnviz.lab import image_input

    ex = image_input(sample_path("china.jpg"), long_side=8)
    img = load_image(sample_path("china.jpg"))
    vit = cached_vit(img.convert("RGB"))
    z = dinov2_features(vit).astype(np.float64)
    rows, cols = vit.grid
    g = ex.grid
    assert (g.rows, g.cols) == (5, 8)  # 427 x 640: 8 along the long side
    # independent: a token's centre (r + 0.5) / rows of the height falls in cell floor(that * g.rows)
    cell = np.array([int((r + 0.5) * g.rows // rows) * g.cols + int((c + 0.5) * g.cols // cols)
                     for r in range(rows) for c in range(cols)])
    expected = np.stack([z[cell == k].mean(0) for k in range(g.n)])
    np.testing.assert_allclose(ex.vectors, expected, rtol=1e-6, atol=1e-7)
    hand = image_input(sample_path("china.jpg"), long_side=8, features="handcrafted")
    assert hand.vectors.shape == (40, 13) and hand.grid.shape == g.shape


# ------------------------------------------------------------------ the page-update bench (issue 15 finding 6)


@pytest.mark.parametrize("plan", ["lab_text", "lab_photo"])
def test_the_update_bench_reaches_every_lab_widget(plan, small_photo):
    """bench/page_update.py's plans drive the real page: every step finds its widget and no update raises, so
    the CPU table in docs/limits.md cannot lose a row when a widget key changes (a small photo here)."""
    from bench.page_update import PLANS, measure

    rows = measure(plan, small_photo)
    assert [r.get("error") for r in rows if "error" in r] == []
    assert [r["step"] for r in rows] == [label for label, *_ in PLANS[plan][1] if label is not None]
    assert all(r["problems"] == [] and r["cpu_s"] > 0 for r in rows)


def test_the_longest_text_the_lab_accepts_is_compared_on_48_pieces():
    """The lab's bound: whatever the box holds (2,000 characters, 2,000 pieces of '!'), the matrices are 48 x 48."""
    from attnviz.lab import MAX_TEXT_TOKENS, compare, text_input

    ex = text_input("!" * 2000, "static")
    assert MAX_TEXT_TOKENS == 48 and len(ex.labels) == 48 and ex.vectors.shape[0] == 48
    assert ex.notes[0] == "The text has 2000 tokens; the lab compares the first 48."
    cols = compare(ex.vectors, ["scaled_dot", "cosine", "rbf", "euclidean"], {})
    assert all(c.weights.shape == (48, 48) for c in cols)
