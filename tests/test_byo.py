"""Bring your own attention: ``attnviz.from_attention`` with transformers' tuples, TransformerLens-shaped caches
and plain arrays, checked against the numbers that went in (the model's own tensors, a float64 softmax, a
float64 rollout written here), and every bad input named in a typed error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import attnviz
from attnviz.byo import locate_tokens
from attnviz.errors import InvalidParameter, ShapeMismatch
from attnviz.loaders.hf import default_model_path
from attnviz.text import ModelAttention

TEXT = "The bank of the river flooded."


@pytest.fixture(scope="module")
def hf():
    """MiniLM through transformers itself (not attnviz's loader): tokens, offsets and output_attentions."""
    import transformers

    folder = default_model_path()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    enc = tok([TEXT, "A much longer second text with more words in it."], padding=True, return_tensors="pt",
              return_offsets_mapping=True)
    with torch.no_grad():
        out = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_attentions=True)
    n0 = int(enc["attention_mask"][0].sum())
    single = tok(TEXT, return_tensors="pt", return_offsets_mapping=True)
    with torch.no_grad():
        out1 = model(input_ids=single["input_ids"], attention_mask=single["attention_mask"], output_attentions=True)
    return {
        "batch": out.attentions, "batch_tokens": tok.convert_ids_to_tokens(enc["input_ids"][1]), "n0": n0,
        "attentions": out1.attentions, "tokens": tok.convert_ids_to_tokens(single["input_ids"][0]),
        "offsets": [tuple(o) for o in single["offset_mapping"][0].tolist()],
    }


def softmax64(scores: np.ndarray, causal: bool = False) -> np.ndarray:
    s = np.array(scores, dtype=np.float64)
    if causal:
        s = np.where(np.triu(np.ones(s.shape[-2:], bool), 1), -np.inf, s)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def rollout64(a: np.ndarray) -> np.ndarray:
    """Abnar & Zuidema's rollout written out: per layer 0.5 * mean over heads + 0.5 * I, rows renormalised,
    multiplied from the first layer up."""
    n = a.shape[-1]
    r = np.eye(n)
    for layer in np.asarray(a, dtype=np.float64):
        m = 0.5 * layer.mean(0) + 0.5 * np.eye(n)
        r = (m / m.sum(-1, keepdims=True)) @ r
    return r


# ----------------------------------------------------------------------------------- three input kinds


def test_transformers_tuple_gives_back_the_models_own_tensors(hf):
    att, tokens = hf["attentions"], hf["tokens"]
    ma = attnviz.from_attention(att, tokens, text=TEXT, offsets=hf["offsets"])
    assert isinstance(ma, ModelAttention) and (ma.num_layers, ma.num_heads) == (6, 12)
    for layer in range(6):
        for head in (0, 5, 11):
            np.testing.assert_allclose(ma.matrix(layer, head), att[layer][0, head].numpy(), atol=1e-6)
            np.testing.assert_array_equal(ma.raw(layer, head), att[layer][0, head].numpy())
    np.testing.assert_array_equal(ma.raw(-1, -1), att[5][0, 11].numpy())  # negative indices count from the end
    np.testing.assert_array_equal(ma.raw(), ma.raw(5))  # layer=None: the last layer
    np.testing.assert_allclose(ma.matrix(), att[5][0].numpy().mean(0), atol=1e-6)
    stacked = torch.stack(att)[:, 0].numpy()
    np.testing.assert_allclose(ma.raw(None, "rollout"), rollout64(stacked), atol=1e-5)
    np.testing.assert_allclose(ma.matrix(head="rollout"), attnviz.text.attention_rollout(stacked), atol=1e-6)
    # [CLS] and [SEP] are the sinks: the mean over rows of their columns, in float64
    assert ma.sink_positions() == (0, len(tokens) - 1)
    last = att[5][0].numpy().astype(np.float64).mean(0)
    assert ma.sink_share() == pytest.approx(last[:, [0, -1]].sum(-1).mean(), abs=1e-6)
    assert not ma.causal  # an encoder: weights above the diagonal
    assert ma.offsets == tuple(hf["offsets"]) and ma.text == TEXT


def test_a_batch_needs_batch_and_picks_that_row(hf):
    with pytest.raises(InvalidParameter, match=r"batch of 2: say which with batch=0\.\.1"):
        attnviz.from_attention(hf["batch"], hf["batch_tokens"])
    ma = attnviz.from_attention(hf["batch"], hf["batch_tokens"], batch=1)
    np.testing.assert_array_equal(ma.raw(3, 4), hf["batch"][3][1, 4].numpy())
    ma_neg = attnviz.from_attention(hf["batch"], hf["batch_tokens"], batch=-1)
    np.testing.assert_array_equal(ma_neg.raw(3, 4), ma.raw(3, 4))
    with pytest.raises(InvalidParameter, match="batch must be 0..1"):
        attnviz.from_attention(hf["batch"], hf["batch_tokens"], batch=2)


def _causal_patterns(layers=3, heads=2, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return softmax64(rng.standard_normal((layers, heads, n, n)) * 2, causal=True)


def test_transformerlens_cache_in_layer_order_and_causal_detected():
    a = _causal_patterns()
    # a cache holds many hooks, in any order; only blocks.{L}.attn.hook_pattern counts
    cache = {"blocks.1.attn.hook_pattern": torch.tensor(a[1][None]), "blocks.0.hook_resid_pre": torch.zeros(1, 5, 8),
             "blocks.2.attn.hook_pattern": torch.tensor(a[2][None]), "blocks.0.attn.hook_pattern": torch.tensor(a[0][None]),
             "blocks.0.attn.hook_attn_scores": torch.zeros(1, 2, 5, 5)}
    tokens = ["<|endoftext|>", "The", " cat", " sat", "."]
    ma = attnviz.from_attention(cache, tokens)
    assert ma.causal and CAUSAL_NOTE_IN(ma)
    for layer in range(3):
        for head in range(2):
            np.testing.assert_allclose(ma.raw(layer, head), a[layer, head], atol=1e-7)
    assert np.all(np.triu(ma.raw(-1, -1), 1) == 0)
    np.testing.assert_allclose(ma.raw(None, "rollout"), rollout64(a), atol=1e-6)
    assert ma.sink_positions() == (0,)  # <|endoftext|> looks special: the sink
    assert ma.sink_share(0, 1) == pytest.approx(a[0, 1][:, 0].mean(), abs=1e-7)
    # per-layer TransformerLens patterns as a list: the same object
    listed = attnviz.from_attention([torch.tensor(a[i][None]) for i in range(3)], tokens)
    np.testing.assert_array_equal(listed.attentions, ma.attentions)
    # causal=False shows them as they are (still exactly the same weights)
    assert not attnviz.from_attention(cache, tokens, causal=False).causal


def CAUSAL_NOTE_IN(ma) -> bool:
    from attnviz.text import CAUSAL_NOTE

    return CAUSAL_NOTE in ma.notes


@pytest.mark.parametrize("shape_kind", ["lhnn", "hnn", "nn", "lbhnn"])
def test_arrays_of_every_accepted_shape(shape_kind):
    rng = np.random.default_rng(3)
    a = softmax64(rng.standard_normal((2, 3, 4, 4)))
    given, expect = {
        "lhnn": (a, a),
        "hnn": (torch.tensor(a[1], dtype=torch.float32), a[1:2]),
        "nn": (a[0, 2], a[0:1, 2:3]),
        "lbhnn": (np.stack([a, a[::-1]], axis=1), a[::-1]),  # (layers, batch, heads, n, n), batch 1
    }[shape_kind]
    ma = attnviz.from_attention(given, ["w", "x", "y", "z"], **({"batch": 1} if shape_kind == "lbhnn" else {}))
    assert ma.attentions.shape == expect.shape
    np.testing.assert_allclose(ma.attentions, expect, atol=1e-7)
    assert ma.sink_positions() == (0,)  # no special-looking token: the first token
    assert ma.text == "w x y z" and ma.offsets == ((0, 1), (2, 3), (4, 5), (6, 7))


# ------------------------------------------------------------------------------------------ bad input


def test_a_row_that_does_not_sum_to_one_is_named(hf):
    bad = [a.clone() for a in hf["attentions"]]
    bad[3][0, 5, 2, :] *= 0.5
    with pytest.raises(InvalidParameter, match=r"Layer 3, head 5, row 2 sums to 0\.5, not 1"):
        attnviz.from_attention(tuple(bad), hf["tokens"])
    # within the tolerance (float16 rounding) it passes
    fine = [a.clone() for a in hf["attentions"]]
    fine[0][0, 0, 0, 0] += 5e-4
    attnviz.from_attention(tuple(fine), hf["tokens"])


def test_scores_instead_of_probabilities_are_refused():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((1, 2, 3, 3))
    with pytest.raises(InvalidParameter, match=r"Layer 0, head 0, row 0 has a negative weight.*after the softmax"):
        attnviz.from_attention(scores, ["a", "b", "c"])
    nan = softmax64(rng.standard_normal((1, 2, 3, 3)))
    nan[0, 1, 2, 1] = np.nan
    with pytest.raises(InvalidParameter, match=r"Layer 0, head 1, row 2 holds a NaN"):
        attnviz.from_attention(nan, ["a", "b", "c"])


def test_causal_true_checks_the_upper_triangle():
    a = softmax64(np.random.default_rng(1).standard_normal((2, 2, 4, 4)))
    with pytest.raises(InvalidParameter, match=r"causal=True, but layer 0, head 0, row 0 gives .* to the later position 1"):
        attnviz.from_attention(a, list("abcd"), causal=True)
    assert not attnviz.from_attention(a, list("abcd")).causal  # detected: not causal


def test_shapes_that_do_not_fit_are_shape_mismatches():
    a = softmax64(np.random.default_rng(2).standard_normal((2, 2, 4, 4)))
    with pytest.raises(ShapeMismatch, match="covers 4 positions but 3 tokens"):
        attnviz.from_attention(a, ["a", "b", "c"])
    with pytest.raises(ShapeMismatch, match="square"):
        attnviz.from_attention(softmax64(np.ones((2, 2, 3, 4))), ["a", "b", "c"])
    with pytest.raises(ShapeMismatch, match="shapes differ"):
        attnviz.from_attention([a[0], a[1, :, :3, :3]], list("abcd"))
    with pytest.raises(ShapeMismatch, match="layers .0, 2."):
        attnviz.from_attention({"blocks.0.attn.hook_pattern": a[0][None], "blocks.2.attn.hook_pattern": a[1][None]},
                               list("abcd"))
    with pytest.raises(InvalidParameter, match="hook_pattern"):
        attnviz.from_attention({"blocks.0.hook_resid_pre": a}, list("abcd"))
    with pytest.raises(InvalidParameter, match="output_attentions=True"):
        attnviz.from_attention((None, None), list("abcd"))
    with pytest.raises(InvalidParameter, match="not one string"):
        attnviz.from_attention(a, "abcd")
    with pytest.raises(InvalidParameter, match="pass text= too"):
        attnviz.from_attention(a, list("abcd"), offsets=[(0, 1)] * 4)
    with pytest.raises(InvalidParameter, match="outside the text"):
        attnviz.from_attention(a, list("abcd"), text="ab", offsets=[(0, 1), (1, 2), (2, 3), (0, 0)])


def test_tokens_are_found_in_the_text_without_offsets(hf):
    tokens = ["[CLS]", "The", "bank", "##s", "Ġof", "▁the", "river", "[SEP]"]
    text = "The banks of the river"
    spans = locate_tokens(text, tokens)
    assert [text[s:e] for s, e in spans] == ["", "The", "bank", "s", "of", "the", "river", ""]
    ma = attnviz.from_attention(hf["attentions"], hf["tokens"], text=TEXT)  # wordpieces located left to right
    real = [i for i, (s, e) in enumerate(hf["offsets"]) if e > s]
    assert [ma.offsets[i] for i in real] == [hf["offsets"][i] for i in real]  # the fast tokenizer's own spans
    assert all(ma.offsets[i][0] == ma.offsets[i][1] for i in range(len(ma.offsets)) if i not in real)  # specials: empty
