"""swap_head_similarity: the identity swap is the model itself, other swaps change what they should and only
that, every registered similarity runs, and the shared model is never changed (also under threads)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from attnviz.attention import masked_softmax
from attnviz.errors import InvalidParameter, UnknownSimilarity
from attnviz.similarity import SIMILARITIES, get_similarity
from attnviz.text import load_model
from attnviz.trace import head_trace, swap_head_similarity

TEXT = "The bank of the river flooded."


@pytest.fixture(scope="module")
def m():
    return load_model(None, "cpu")


def _plain(m, text=TEXT):
    ids = torch.tensor([list(m.prefix_ids) + m.tokenizer.encode(text, add_special_tokens=False).ids
                        + list(m.suffix_ids)])
    with torch.inference_mode():
        return m.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)


@pytest.mark.parametrize("layer,head", [(0, None), (3, None), (-1, 4)])
def test_scaled_dot_at_t1_is_the_model_itself(m, layer, head):
    r = swap_head_similarity(TEXT, layer, head, "scaled_dot", 1.0, model=m)
    assert r.last_hidden_max_diff <= 1e-5
    assert r.drift >= 1 - 1e-6
    assert np.abs(r.swapped_weights - r.original_weights).max() <= 1e-5
    assert r.overlap >= 1 - 1e-5
    plain = _plain(m)
    np.testing.assert_allclose(r.original_weights, plain.attentions[r.layer][0].numpy(), atol=0, rtol=0)


def test_cosine_swap_changes_that_head_only_and_moves_the_embedding(m):
    r = swap_head_similarity(TEXT, 2, 7, "cosine", 0.1, model=m)
    assert r.heads == (7,) and r.temperature == 0.1
    assert np.abs(r.swapped_weights[7] - r.original_weights[7]).max() > 1e-2
    others = [h for h in range(12) if h != 7]
    assert np.abs(r.swapped_weights[others] - r.original_weights[others]).max() <= 1e-5
    assert r.drift < 1 and 0 < r.overlap < 1
    assert r.last_hidden_max_diff > 1e-4
    # the new weights are softmax(cos(q, k) / T) of the head's own q and k
    tr = head_trace(TEXT, 2, 7, model=m)
    q, k = torch.from_numpy(tr.q), torch.from_numpy(tr.k)
    want = masked_softmax(get_similarity("cosine")(q, k) / 0.1).numpy()
    np.testing.assert_allclose(r.swapped_weights[7], want, atol=1e-5)
    drifts = [d for _, _, d in r.moved_tokens]
    assert drifts == sorted(drifts, reverse=True) and len(r.moved_tokens) == len(r.tokens)


def test_a_swap_in_layer_l_leaves_earlier_layers_alone(m):
    r = swap_head_similarity(TEXT, 4, None, "cosine", 0.1, model=m)
    assert r.heads == tuple(range(12))
    assert np.abs(r.swapped_weights - r.original_weights).max() > 1e-2


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_every_similarity_swaps(m, name):
    r = swap_head_similarity(TEXT, 1, 0, name, model=m)
    assert np.isfinite(r.swapped_weights).all()
    np.testing.assert_allclose(r.swapped_weights.sum(-1), 1.0, atol=1e-5)
    assert -1 <= r.drift <= 1 + 1e-9 and r.temperature == SIMILARITIES[name].default_temperature


def test_bad_similarity_temperature_and_layer(m):
    with pytest.raises(UnknownSimilarity):
        swap_head_similarity(TEXT, 0, 0, "nope", model=m)
    with pytest.raises(InvalidParameter):
        swap_head_similarity(TEXT, 0, 0, "cosine", 0.0, model=m)
    with pytest.raises(InvalidParameter):
        swap_head_similarity(TEXT, 9, 0, model=m)


def test_the_shared_model_is_never_changed(m):
    before = _plain(m).last_hidden_state.clone()
    impl = m.model.config._attn_implementation
    swap_head_similarity(TEXT, 2, None, "euclidean", 0.5, model=m)
    assert m.model.config._attn_implementation == impl == "eager"
    torch.testing.assert_close(_plain(m).last_hidden_state, before, atol=0, rtol=0)


def test_concurrent_swaps_and_plain_runs_do_not_mix(m):
    jobs = [("cosine", 0.1, 3), ("scaled_dot", 1.0, None), ("euclidean", 1.0, 5), ("dot", 1.0, 0)]
    serial = {j: swap_head_similarity(TEXT, 2, j[2], j[0], j[1], model=m).swapped_weights for j in jobs}
    plain = _plain(m).last_hidden_state.clone()
    got, errors = {}, []

    def work(j):
        try:
            for _ in range(3):
                got.setdefault(j, []).append(swap_head_similarity(TEXT, 2, j[2], j[0], j[1], model=m).swapped_weights)
                got.setdefault("plain", []).append(_plain(m).last_hidden_state.clone())
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for j in jobs:
        for w in got[j]:
            np.testing.assert_allclose(w, serial[j], atol=1e-6)
    for p in got["plain"]:
        torch.testing.assert_close(p, plain, atol=1e-6, rtol=0)
