import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attnviz
from attnviz import (SIMILARITIES, attend, attend_blocked, attention_received, attention_row, effective_tokens,
                     masked_softmax, row_entropy, top_pairs)
from attnviz.attention import causal_rows, row_stats_blocked
from attnviz.errors import InvalidParameter, ShapeMismatch

from memory import peak_growth_mib
from reference import ref_scores, ref_softmax_rows

NAMES = list(SIMILARITIES)
FAST = settings(max_examples=25, deadline=None)


@st.composite
def ragged_batch(draw, max_b=3, max_n=7, max_d=6):
    b = draw(st.integers(1, max_b))
    n = draw(st.integers(1, max_n))
    d = draw(st.integers(1, max_d))
    seed = draw(st.integers(0, 2**31 - 1))
    lengths = draw(st.lists(st.integers(0, n), min_size=b, max_size=b))
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, n, d, generator=g, dtype=torch.float64) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    mask = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    return x, mask


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [0.1, 1.0, 3.0])
def test_weights_and_output_match_reference(name, temperature):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 5, generator=g, dtype=torch.float64)
    res = attend(x, name, temperature)
    want_w = ref_softmax_rows(res.scores.numpy(), temperature)
    np.testing.assert_allclose(res.weights.numpy(), want_w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.output.numpy(), want_w @ x.numpy(), rtol=1e-10, atol=1e-12)
    assert res.similarity == name and res.temperature == temperature


def test_masked_reference_and_exact_zeros():
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True, False], [False] * 5])
    res = attend(x, "euclidean", 0.5, mask=mask)
    valid = [0, 1, 3]
    want = ref_softmax_rows(res.scores[0].numpy(), 0.5, mask[0].numpy())
    want[[2, 4]] = 0.0  # padded queries attend nowhere
    np.testing.assert_allclose(res.weights[0].numpy(), want, atol=1e-12)
    assert torch.all(res.weights[0][:, [2, 4]] == 0)
    assert torch.all(res.weights[1] == 0) and torch.all(res.output[1] == 0)
    assert torch.allclose(res.weights[0][valid].sum(-1), torch.ones(3, dtype=torch.float64))


@FAST
@given(ragged_batch(), st.sampled_from(NAMES), st.sampled_from([0.05, 1.0, 10.0]))
def test_rows_sum_to_one_masked_exact_never_nan(batch, name, temperature):
    x, mask = batch
    res = attend(x, name, temperature, mask=mask)
    w = res.weights
    assert not torch.isnan(w).any() and not torch.isnan(res.output).any()
    assert torch.all(w.masked_select(~mask[:, None, :].expand_as(w)) == 0)
    row_ok = mask & mask.any(-1, keepdim=True)
    sums = w.sum(-1)
    assert torch.allclose(sums[row_ok], torch.ones_like(sums[row_ok]), atol=1e-9)
    assert torch.all(sums[~row_ok] == 0)


@FAST
@given(ragged_batch(max_b=1), st.sampled_from(NAMES), st.randoms(use_true_random=False))
def test_permutation_equivariance(batch, name, rnd):
    x = batch[0][0]
    n = x.shape[0]
    perm = list(range(n))
    rnd.shuffle(perm)
    p = torch.tensor(perm)
    a, b = attend(x, name, 0.7), attend(x[p], name, 0.7)
    assert torch.allclose(b.weights, a.weights[p][:, p], atol=1e-10)
    assert torch.allclose(b.output, a.output[p], atol=1e-10)


@FAST
@given(ragged_batch(max_b=1), st.floats(0.01, 100.0))
def test_cosine_unchanged_when_x_scaled(batch, c):
    x = batch[0][0]
    assert torch.allclose(attend(x, "cosine", 0.1).weights, attend(x * c, "cosine", 0.1).weights, atol=1e-9)


@FAST
@given(ragged_batch(), st.sampled_from(NAMES))
def test_batch_equals_loop_of_singles(batch, name):
    x, mask = batch
    res = attend(x, name, 0.5, mask=mask)
    for i in range(x.shape[0]):
        L = int(mask[i].sum())
        if L == 0:
            continue
        single = attend(x[i, :L], name, 0.5)
        assert torch.allclose(res.weights[i, :L, :L], single.weights, atol=1e-10)
        assert torch.allclose(res.output[i, :L], single.output, atol=1e-10)


@FAST
@given(ragged_batch(), st.sampled_from(NAMES), st.integers(1, 8))
def test_blocked_equals_unblocked(batch, name, block):
    x, mask = batch
    full = attend(x, name, 0.5, mask=mask)
    blk = attend_blocked(x, name, 0.5, mask=mask, block_size=block)
    assert torch.allclose(blk.output, full.output, atol=1e-10)
    counts = mask.sum(-1, keepdim=True).clamp_min(1).double()
    assert torch.allclose(blk.received, full.weights.sum(-2) / counts, atol=1e-10)


def test_cross_attention_keys_and_values():
    q = torch.randn(3, 4, dtype=torch.float64)
    k = torch.randn(5, 4, dtype=torch.float64)
    v = torch.randn(5, 2, dtype=torch.float64)
    res = attend(q, "scaled_dot", 1.0, keys=k, values=v)
    w = ref_softmax_rows((q @ k.T / 2.0).numpy(), 1.0)
    np.testing.assert_allclose(res.weights.numpy(), w, atol=1e-12)
    np.testing.assert_allclose(res.output.numpy(), w @ v.numpy(), atol=1e-12)
    km = torch.tensor([True, False, True, True, False])
    res = attend(q, "dot", 1.0, keys=k, values=v, key_mask=km)
    assert torch.all(res.weights[:, ~km] == 0)
    # different widths need a function that compares different kinds of vector
    img = torch.randn(6, 7, dtype=torch.float64)
    assert attend(q, "general", 1.0, keys=img).weights.shape == (3, 6)


def test_attention_row_and_received():
    x = torch.randn(10, 4, dtype=torch.float64)
    full = attend(x, "cosine", 0.2)
    assert torch.allclose(attention_row(x[3], x, "cosine", 0.2), full.weights[3])
    assert torch.allclose(attention_row(x[[1, 2]], x, "cosine", 0.2), full.weights[[1, 2]])
    assert torch.allclose(attention_received(x, "cosine", 0.2, block_size=3), full.weights.mean(0))


def test_long_input_blocked_memory_bounded():
    """n = 32768 through the blocked path: a full matrix would be 4 GiB; the block bound holds."""
    n, d = 32768, 16
    x = torch.randn(n, d)
    res = attend_blocked(x, "scaled_dot", 1.0)
    assert res.block_size == attnviz.BLOCK_ELEMENTS // n
    assert res.output.shape == (n, d) and torch.allclose(res.received.sum(), torch.tensor(1.0), atol=1e-3)
    row = torch.softmax(x[123] @ x.T / d ** 0.5, -1)  # spot-check one row against the direct formula
    assert torch.allclose(res.output[123], row @ x, atol=1e-5)
    grown = peak_growth_mib(f"import attnviz; x = torch.randn({n}, {d})",
                            "attnviz.attend_blocked(x, 'scaled_dot', 1.0)")
    assert grown < 1024, grown
    # the measurement does see a full matrix: n = 16384 unblocked holds 1 GiB of float32 weights
    grown_full = peak_growth_mib("import attnviz; x = torch.randn(16384, 16)", "attnviz.attend(x, 'scaled_dot', 1.0)")
    assert grown_full > 1000, grown_full


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes_preserved(dtype):
    x = torch.randn(5, 3, dtype=dtype)
    res = attend(x, "cosine", 0.1)
    assert res.weights.dtype == dtype and res.output.dtype == dtype


def test_extreme_scores_are_stable():
    x = torch.tensor([[1000.0, 0.0], [999.0, 0.0], [-1000.0, 0.0]])
    res = attend(x, "dot", 1.0)
    assert not torch.isnan(res.weights).any()
    assert torch.allclose(res.weights.sum(-1), torch.ones(3))


def test_masked_softmax_all_masked_row():
    s = torch.randn(2, 3)
    w = masked_softmax(s, torch.zeros(3, dtype=torch.bool))
    assert torch.all(w == 0)


def test_entropy_and_effective_tokens():
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(row_entropy(w), torch.tensor([0.0, np.log(4), np.log(2)], dtype=torch.float64))
    assert torch.allclose(effective_tokens(w), torch.tensor([1.0, 4.0, 2.0], dtype=torch.float64))


def test_top_pairs():
    w = torch.tensor([[0.1, 0.9], [0.6, 0.4]])
    assert top_pairs(w, 2) == [(0, 1, pytest.approx(0.9)), (1, 0, pytest.approx(0.6))]
    assert top_pairs(torch.eye(3), 1, exclude_diagonal=True)[0][2] == 0.0


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "hot"])
def test_bad_temperature_is_a_typed_error(bad):
    with pytest.raises(InvalidParameter, match="temperature"):
        attend(torch.randn(3, 2), "dot", bad)


def test_bad_inputs_are_typed_errors():
    with pytest.raises(ShapeMismatch):
        attend(torch.randn(3), "dot")
    with pytest.raises(InvalidParameter, match="NaN"):
        attend(torch.tensor([[float("nan"), 1.0]]), "dot")
    with pytest.raises(ShapeMismatch):
        attend(torch.randn(2, 3, 4), "dot", mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(InvalidParameter):
        attend(torch.randn(3, 4), "dot", mask=torch.ones(3))
    with pytest.raises(ShapeMismatch):
        attend(torch.randn(3, 4), "dot", keys=torch.randn(5, 4), values=torch.randn(4, 4))


def test_other_devices_match_cpu():
    others = [d for d in attnviz.available_devices() if d != "cpu"]
    if not others:
        pytest.skip("no GPU on this machine (checked on a GPU machine when one is lent)")
    x = torch.randn(2, 64, 32)
    mask = torch.ones(2, 64, dtype=torch.bool)
    mask[1, 40:] = False
    for dev in others:
        for name in NAMES:
            cpu = attend(x, name, 0.5, mask=mask)
            gpu = attend(x.to(dev), name, 0.5, mask=mask.to(dev))
            assert torch.allclose(gpu.weights.cpu(), cpu.weights, atol=1e-5), (dev, name)
            assert torch.allclose(gpu.output.cpu(), cpu.output, atol=1e-5), (dev, name)


@pytest.mark.parametrize("bad", [1e-40, 1e-5, 1e5])
def test_temperature_outside_the_range_is_refused(bad):
    with pytest.raises(InvalidParameter, match="between"):
        attend(torch.randn(3, 2), "cosine", bad)
    with pytest.raises(InvalidParameter, match="between"):
        attend_blocked(torch.randn(3, 2), "cosine", bad)


def test_overflowing_scores_are_a_typed_error_not_nan():
    x = torch.full((3, 4), 1e19)
    with pytest.raises(InvalidParameter, match="overflowed"):
        attend(x, "dot")
    with pytest.raises(InvalidParameter, match="overflowed"):
        attend_blocked(x, "dot", block_size=2)
    # at the smallest temperature a decisive row stays finite: all weight on the best key
    w = attend(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), "cosine", 1e-4).weights
    assert torch.equal(w, torch.eye(2))


# ------------------------------------------------------------------------------------------- causal


def _ref_causal(x: np.ndarray, keys: np.ndarray, name: str, temperature: float,
                key_mask: np.ndarray | None = None) -> np.ndarray:
    """Causal weights the slow way, float64: query i (position i + m - n) softmaxes over keys j <= i + m - n."""
    n, m = x.shape[0], keys.shape[0]
    s = ref_scores(x, keys, name)
    valid = np.ones(m, bool) if key_mask is None else key_mask
    w = np.zeros((n, m))
    for i in range(n):
        idx = [j for j in range(m) if j <= i + m - n and valid[j]]
        if not idx:
            continue
        top = max(s[i, j] / temperature for j in idx)
        e = {j: math.exp(s[i, j] / temperature - top) for j in idx}
        total = sum(e.values())
        for j in idx:
            w[i, j] = e[j] / total
    return w


@pytest.mark.parametrize("name", ["cosine", "euclidean"])
@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_causal_attend_matches_a_float64_loop(name, temperature):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    res = attend(x, name, temperature, causal=True)
    want = _ref_causal(x.numpy(), x.numpy(), name, temperature)
    np.testing.assert_allclose(res.weights.numpy(), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res.output.numpy(), want @ x.numpy(), rtol=1e-10, atol=1e-12)
    upper = torch.ones(7, 7, dtype=torch.bool).triu(1)
    assert bool((res.weights[upper] == 0).all())  # exactly 0, not merely small
    assert res.weights[0, 0] == 1.0  # the first token sees only itself
    np.testing.assert_allclose(res.weights.sum(-1).numpy(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("name", ["cosine", "dot"])
def test_causal_combines_with_a_padding_mask_and_batches(name):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    w = attend(x, name, 0.5, mask=mask, causal=True).weights
    for b in range(2):
        want = _ref_causal(x[b].numpy(), x[b].numpy(), name, 0.5, mask[b].numpy())
        want[~mask[b].numpy()] = 0.0  # padded queries attend to nothing
        np.testing.assert_allclose(w[b].numpy(), want, rtol=1e-10, atol=1e-12)
    assert bool((w[1, :, 4:] == 0).all()) and bool((w[1, 4:] == 0).all())


def test_causal_with_more_keys_treats_the_queries_as_the_last_positions():
    g = torch.Generator().manual_seed(13)
    k = torch.randn(8, 4, generator=g, dtype=torch.float64)
    q = k[5:]  # the last 3 positions, after 5 cached ones
    w = attend(q, "cosine", 0.3, keys=k, causal=True).weights
    np.testing.assert_allclose(w.numpy(), _ref_causal(q.numpy(), k.numpy(), "cosine", 0.3), rtol=1e-10, atol=1e-12)
    # the same rows as the full causal self-attention
    np.testing.assert_allclose(w.numpy(), attend(k, "cosine", 0.3, causal=True).weights[5:].numpy(), rtol=1e-12)
    with pytest.raises(InvalidParameter, match="at least as many keys"):
        attend(k, "cosine", 0.3, keys=q, causal=True)


@pytest.mark.parametrize("name", NAMES)
def test_causal_rows_and_blocked_stats_equal_the_causal_matrix(name):
    g = torch.Generator().manual_seed(14)
    x = torch.randn(9, 6, generator=g)
    full = attend(x, name, 0.7, causal=True).weights
    assert torch.equal(causal_rows(x, name, 0.7), full)
    rows = causal_rows(x, name, 0.7, 3, 6)
    assert rows.shape == (3, 9)
    torch.testing.assert_close(rows, full[3:6])
    entropy, received = row_stats_blocked(x, name, 0.7, causal=True)
    torch.testing.assert_close(entropy, row_entropy(full))
    torch.testing.assert_close(received, full.mean(0))
    with pytest.raises(InvalidParameter):
        causal_rows(x, name, 0.7, 5, 5)


# --------------------------------------------------------- numpy, multi-head batches, one temperature rule


@pytest.mark.parametrize("name", NAMES)
def test_numpy_multi_head_batch_matches_a_float64_loop(name):
    """(batch, heads, n, d) numpy in -> numpy out, every (batch, head) equal to the one-pair-at-a-time reference."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3, 5, 4))
    res = attend(x, name, 0.7)
    assert isinstance(res.weights, np.ndarray) and isinstance(res.output, np.ndarray)
    assert res.weights.shape == (2, 3, 5, 5) and res.output.shape == (2, 3, 5, 4)
    for b in range(2):
        for h in range(3):
            w = ref_softmax_rows(ref_scores(x[b, h], x[b, h], name), 0.7)
            np.testing.assert_allclose(res.weights[b, h], w, atol=1e-10)
            np.testing.assert_allclose(res.output[b, h], w @ x[b, h], atol=1e-10)
    torch_res = attend(torch.from_numpy(x), name, 0.7)  # torch in -> torch out, the same numbers
    assert isinstance(torch_res.weights, torch.Tensor)
    np.testing.assert_array_equal(torch_res.weights.numpy(), res.weights)


def test_numpy_float32_stays_float32_and_masks_take_numpy():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2, 4, 3)).astype(np.float32)
    mask = np.ones((2, 2, 4), dtype=bool)
    mask[1, 0, 2:] = False
    res = attend(x, "scaled_dot", 1.0, mask=mask)
    assert res.weights.dtype == np.float32
    np.testing.assert_array_equal(res.weights[1, 0, :, 2:], 0.0)  # masked keys get nothing
    np.testing.assert_array_equal(res.weights[1, 0, 2:], 0.0)  # padded queries attend to nothing
    valid = x[1, 0, :2].astype(np.float64)
    ref = ref_softmax_rows(ref_scores(valid, valid, "scaled_dot"), 1.0)
    np.testing.assert_allclose(res.weights[1, 0, :2, :2], ref, atol=1e-6)


def test_blocked_and_row_paths_take_numpy_and_leading_dims():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 4))
    full = attend(x, "cosine", 0.2)
    blk = attend_blocked(x, "cosine", 0.2, block_size=4)
    assert isinstance(blk.output, np.ndarray)
    np.testing.assert_allclose(blk.output, full.output, atol=1e-12)
    np.testing.assert_allclose(blk.received, full.weights.mean(-2), atol=1e-12)
    np.testing.assert_allclose(attention_received(x, "cosine", 0.2), full.weights.mean(-2), atol=1e-12)
    flat = x[0, 0]
    row = attention_row(flat[3], flat, "cosine", 0.2)
    assert isinstance(row, np.ndarray)
    np.testing.assert_allclose(row, full.weights[0, 0, 3], atol=1e-12)
    np.testing.assert_allclose(causal_rows(flat, "cosine", 0.2, 2, 5), attend(flat, "cosine", 0.2, causal=True).weights[2:5],
                               atol=1e-12)
    assert isinstance(effective_tokens(full.weights), np.ndarray)
    np.testing.assert_allclose(effective_tokens(full.weights), np.exp(row_entropy(full.weights)))


@pytest.mark.parametrize("name", NAMES)
def test_temperature_none_is_the_similaritys_own_default_everywhere(name):
    default = SIMILARITIES[name].default_temperature
    x = torch.randn(6, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ref = ref_softmax_rows(ref_scores(x.numpy(), x.numpy(), name), default)
    res = attend(x, name)
    assert res.temperature == default
    np.testing.assert_allclose(res.weights.numpy(), ref, atol=1e-10)
    assert attend_blocked(x, name).temperature == default
    np.testing.assert_allclose(attend_blocked(x, name, block_size=2).received.numpy(), ref.mean(0), atol=1e-10)
    np.testing.assert_allclose(attention_row(x[1], x, name).numpy(), ref[1], atol=1e-10)
    np.testing.assert_allclose(attention_received(x, name).numpy(), ref.mean(0), atol=1e-10)
    ent, rec = row_stats_blocked(x, name)
    np.testing.assert_allclose(rec.numpy(), ref.mean(0), atol=1e-10)
    assert attnviz.resolve_temperature(name, None) == default and attnviz.resolve_temperature(name, 2.0) == 2.0


def test_non_numeric_input_is_a_typed_error():
    with pytest.raises(InvalidParameter, match="torch tensor or numpy"):
        attend([[1.0, 2.0], [3.0, 4.0]], "dot")
    with pytest.raises(InvalidParameter, match="numbers"):
        attend(np.array([["a", "b"], ["c", "d"]]), "dot")
