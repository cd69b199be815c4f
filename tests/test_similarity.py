import numpy as np
import pytest
import torch

import attnviz
from attnviz import SIMILARITIES, get_similarity, scores
from attnviz.errors import InvalidParameter, ShapeMismatch, UnknownSimilarity
from attnviz.similarity import ADDITIVE_HIDDEN, BENCHMARK_KINDS, block_scorer, untrained_parameter

from memory import peak_growth_mib
from reference import ref_scores

NAMES = list(SIMILARITIES)


def _params_for(name, q, k):
    """The untrained parameters, as explicit arrays for the reference implementation."""
    dq, dk = q.shape[-1], k.shape[-1]
    if name == "general":
        w = untrained_parameter((dq, dk), "general", q)
        if dq == dk:
            w = w + torch.eye(dq, dtype=q.dtype)
        return {"weight": w.numpy()}
    if name == "additive":
        return {"w_q": untrained_parameter((ADDITIVE_HIDDEN, dq), "additive_wq", q).numpy(),
                "w_k": untrained_parameter((ADDITIVE_HIDDEN, dk), "additive_wk", q).numpy(),
                "v": untrained_parameter((1, ADDITIVE_HIDDEN), "additive_v", q)[0].numpy()}
    return {}


def test_registry_has_what_the_issue_names():
    for name in ("dot", "scaled_dot", "cosine", "euclidean", "rbf", "manhattan", "general", "additive"):
        assert name in SIMILARITIES
    for sim in SIMILARITIES.values():
        assert sim.formula and sim.sentence and sim.source and sim.url.startswith("https://")
        assert sim.default_temperature > 0
        assert sim.sentence.endswith(".") and sim.use.endswith(".") and sim.label
        assert callable(sim.fn) and callable(sim.reference) and callable(sim.explain)
        assert sim.prepare_keys is None or callable(sim.prepare_keys)
        assert sim.benchmark in BENCHMARK_KINDS
    assert SIMILARITIES["general"].untrained and SIMILARITIES["additive"].untrained
    assert not SIMILARITIES["cosine"].untrained


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n,m,d", [(1, 1, 3), (4, 6, 5), (7, 3, 16)])
def test_scores_match_float64_reference(name, n, m, d):
    g = torch.Generator().manual_seed(n * 100 + m * 10 + d)
    q = torch.randn(n, d, generator=g, dtype=torch.float64) * 2 + 0.5
    k = torch.randn(m, d, generator=g, dtype=torch.float64) * 2 - 0.5
    got = scores(q, k, name).numpy()
    want = ref_scores(q.numpy(), k.numpy(), name)  # the entry's own per-pair formula, default parameters
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [1.0, 0.25])
def test_block_scorer_matches_the_whole_score(name, scale):
    """Blocked attention scores query blocks against keys prepared once (the entry's prepare_keys, if any)."""
    g = torch.Generator().manual_seed(5)
    q = torch.randn(11, 6, generator=g, dtype=torch.float64) + 1.0
    k = torch.cat([q[:2], torch.randn(7, 6, generator=g, dtype=torch.float64)])
    whole = scores(q, k, name) * scale
    score = block_scorer(name, k, scale)
    blocked = torch.cat([score(q[i:i + 4]) for i in range(0, 11, 4)])
    assert torch.allclose(blocked, whole, rtol=1e-10, atol=1e-10), name


@pytest.mark.parametrize("name", NAMES)
def test_scores_float32_close_to_float64(name):
    g = torch.Generator().manual_seed(1)
    q = torch.randn(9, 12, generator=g) * 4 + 3
    k = torch.cat([q[:3], torch.randn(5, 12, generator=g)])  # exact duplicates of some queries
    got = scores(q, k, name).double()
    want = scores(q.double(), k.double(), name)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-4), (got - want).abs().max()


def test_euclidean_duplicates_are_exactly_zero_distance():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, 384, generator=g) * 10 + 40  # large norms: the expansion alone would cancel badly
    s = scores(x, x, "euclidean")
    assert torch.all(s.diagonal() == 0)
    ref = -torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")
    assert torch.allclose(s.double(), ref, atol=2e-4, rtol=1e-5)


def test_batched_and_broadcast_scores():
    q = torch.randn(3, 4, 8, dtype=torch.float64)
    k = torch.randn(3, 5, 8, dtype=torch.float64)
    for name in NAMES:
        s = scores(q, k, name)
        assert s.shape == (3, 4, 5)
        for b in range(3):
            assert torch.allclose(s[b], scores(q[b], k[b], name))
    s = scores(torch.randn(4, 8), torch.randn(2, 5, 8), "euclidean")
    assert s.shape == (2, 4, 5)


def test_cosine_zero_vector_is_zero_not_nan():
    x = torch.zeros(3, 4)
    x[1] = torch.tensor([1.0, 0, 0, 0])
    s = scores(x, x, "cosine")
    assert not torch.isnan(s).any()
    assert s[0].abs().max() == 0 and s[1, 1] == pytest.approx(1.0)


def test_cosine_scale_invariant():
    x = torch.randn(6, 5, dtype=torch.float64)
    assert torch.allclose(scores(x, x, "cosine"), scores(7.5 * x, x, "cosine"))


def test_general_and_additive_compare_different_widths():
    q, k = torch.randn(4, 6, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    for name in ("general", "additive"):
        got = scores(q, k, name).numpy()
        want = ref_scores(q.numpy(), k.numpy(), name, _params_for(name, q, k))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)
    for name in (n for n, sim in SIMILARITIES.items() if sim.same_dim):
        with pytest.raises(ShapeMismatch, match="general"):
            scores(q, k, name)


def test_untrained_parameters_are_seeded_and_device_independent():
    a = untrained_parameter((4, 4), "general", torch.zeros(1))
    b = untrained_parameter((4, 4), "general", torch.zeros(1, dtype=torch.float64))
    assert torch.allclose(a.double(), b, atol=1e-7)
    w = torch.eye(5, dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(scores(x, x, "general", weight=w), scores(x, x, "dot"))


def test_additive_blocks_match_unblocked(monkeypatch):
    import attnviz.similarity as simmod

    q, k = torch.randn(37, 8, dtype=torch.float64), torch.randn(11, 8, dtype=torch.float64)
    full = scores(q, k, "additive")
    monkeypatch.setattr(simmod, "ADDITIVE_BLOCK_ELEMENTS", 3 * 11 * ADDITIVE_HIDDEN)
    assert torch.allclose(scores(q, k, "additive"), full)


def test_rbf_sigma_parameter():
    x = torch.randn(4, 9, dtype=torch.float64)
    want = ref_scores(x.numpy(), x.numpy(), "rbf", {"sigma": 0.7})
    np.testing.assert_allclose(scores(x, x, "rbf", sigma=0.7).numpy(), want, rtol=1e-9, atol=1e-9)
    with pytest.raises(InvalidParameter):
        scores(x, x, "rbf", sigma=0)


def test_unknown_similarity_says_what_exists():
    with pytest.raises(UnknownSimilarity) as e:
        get_similarity("cosin")
    assert "cosine" in str(e.value) and "euclidean" in str(e.value)
    assert isinstance(e.value, attnviz.AttnvizError)


@pytest.mark.parametrize("name", NAMES)
def test_no_kernel_builds_an_n_m_d_intermediate(name):
    """n = m = 1024, d = 384: an (n, m, d) float32 intermediate would be 1.5 GiB; n x m is 4 MiB."""
    grown = peak_growth_mib("import attnviz; x = torch.randn(1024, 384)", f"attnviz.scores(x, x, {name!r})")
    assert grown < 200, grown
