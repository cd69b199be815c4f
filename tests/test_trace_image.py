"""head_trace_image / swap_head_similarity_image against DINOv2-small's own modules: q, k, v and the attention
output projection read through forward hooks (here only), h = norm1 of the residual stream read by a pre-hook,
weights vs output_attentions, the identity swap vs the unchanged model, a cosine swap vs softmax(cos(q, k) / T)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnviz.attention import masked_softmax
from attnviz.errors import InvalidParameter, NotAnImage
from attnviz.image import load_upload, patch_label, sample_path
from attnviz.loaders.dinov2 import load_dinov2, preprocess
from attnviz.similarity import get_similarity
from attnviz.trace import WINDOW_SIZE, head_trace_image, swap_head_similarity_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def photo():
    return load_upload(str(sample_path("china.jpg")))


@pytest.fixture(scope="module")
def vit():
    return load_dinov2("cpu").model


def _hooked(vit, photo, layer):
    """What the layer's attention saw and computed, read by hooks on the model's own modules."""
    att = vit.encoder.layer[layer].attention
    seen = {}
    hooks = [mod.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out[0].clone()))
             for name, mod in (("q", att.q_proj), ("k", att.k_proj), ("v", att.v_proj), ("out", att.o_proj))]
    hooks.append(att.register_forward_pre_hook(lambda _m, inp: seen.__setitem__("h", inp[0][0].clone())))
    hooks.append(vit.encoder.layer[layer].register_forward_pre_hook(
        lambda _m, inp: seen.__setitem__("stream", inp[0][0].clone())))
    try:
        pv, _ = preprocess(photo, 224)
        with torch.inference_mode():
            out = vit(pixel_values=pv, output_attentions=True, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


@pytest.mark.parametrize("layer,head", [(0, 0), (9, 2), (11, 5)])
def test_q_k_v_weights_output_match_dinov2(vit, photo, layer, head):
    tr = head_trace_image(photo, layer, head, device="cpu")
    seen, out = _hooked(vit, photo, layer)
    d = 64
    cols = slice(head * d, (head + 1) * d)
    assert tr.kind == "image" and tr.d_head == d and tr.num_heads == 6 and tr.num_layers == 12
    assert tr.grid == (11, 16) and tr.n == 1 + 11 * 16  # 427 x 640 -> 154 x 224 pixels
    assert tr.tokens[0] == "[CLS]" and tr.tokens[1] == patch_label(0, 0) and tr.tokens[-1] == patch_label(10, 15)
    # h is norm1 of the residual stream, exactly what the attention module was given
    np.testing.assert_allclose(tr.h, seen["h"].numpy(), atol=1e-6, rtol=0)
    ln = vit.encoder.layer[layer].norm1
    stream = seen["stream"].double()
    by_hand = (stream - stream.mean(-1, keepdim=True)) / torch.sqrt(stream.var(-1, unbiased=False, keepdim=True)
                                                                      + ln.eps) * ln.weight.detach().double() + ln.bias.detach().double()
    np.testing.assert_allclose(tr.h, by_hand.numpy(), atol=1e-4, rtol=0)
    assert np.abs(by_hand.numpy() - out.hidden_states[layer][0].numpy()).max() > 0.1  # h is not the raw stream
    for name in "qkv":
        np.testing.assert_allclose(getattr(tr, name), seen[name][:, cols].numpy(), atol=1e-4, rtol=0)
    model_w = out.attentions[layer][0, head].numpy()
    assert np.abs(tr.weights - model_w).max() <= 1e-5 and tr.max_abs_diff <= 1e-5
    np.testing.assert_allclose(tr.output, seen["out"].numpy(), atol=1e-4, rtol=0)
    q, k = tr.q.astype(np.float64), tr.k.astype(np.float64)
    s = q @ k.T / math.sqrt(d)
    np.testing.assert_allclose(tr.scores, s, atol=1e-4)
    e = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(tr.weights, e / e.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(tr.context, tr.weights.astype(np.float64) @ tr.v, atol=1e-4)
    hn = tr.h.astype(np.float64) / np.linalg.norm(tr.h.astype(np.float64), axis=1, keepdims=True)
    seed = np.exp((hn @ hn.T - 1) / tr.seed_temperature)
    np.testing.assert_allclose(tr.seed_weights, seed / seed.sum(1, keepdims=True), atol=1e-5)


def test_the_explanations_carry_the_numbers(vit, photo):
    tr = head_trace_image(photo, 9, 2, device="cpu")
    said = tr.explain("weights", 5, 7)
    assert said.startswith("weights[5,7] ('r0c4' -> 'r0c6')") and f"= {tr.weights[5, 7]:.4f}, over the scores" in said
    assert "before the layer scale and the residual connection" in tr.explain("output", 3, 4)
    assert "norm1(hidden_states[9])" in tr.explain("h", 3, 4)
    ds = tr.diagonal_share()
    assert ds["model"] == pytest.approx(float(np.diagonal(tr.weights).mean()))
    assert ds["seed"] > ds["model"]  # the seed stares at itself; the head need not


def test_window_is_a_block_of_patches_inside_the_grid(photo):
    tr = head_trace_image(photo, 0, 0, device="cpu")
    rows, cols = tr.grid
    w = tr.window(5, 7)
    assert w[0] == 0 and len(w) == 1 + WINDOW_SIZE ** 2
    labels = [tr.tokens[i] for i in w[1:]]
    assert labels[0] == patch_label(4, 6) and labels[-1] == patch_label(7, 9)
    assert patch_label(5, 7) in labels
    corner = [tr.tokens[i] for i in tr.window(rows - 1, cols - 1)[1:]]
    assert corner[0] == patch_label(rows - 4, cols - 4) and corner[-1] == patch_label(rows - 1, cols - 1)
    assert [tr.tokens[i] for i in tr.window(0, 0)[1:5]] == [patch_label(0, c) for c in range(4)]
    sub = tr.weights[np.ix_(w, w)]
    assert sub.shape == (17, 17) and (sub.sum(1) <= 1 + 1e-6).all()
    with pytest.raises(InvalidParameter):
        tr.window(rows, 0)
    with pytest.raises(InvalidParameter):
        tr.window(0, 0, size=0)


def test_identity_swap_is_the_unchanged_model(vit, photo):
    pv, _ = preprocess(photo, 224)
    with torch.inference_mode():
        plain = vit(pixel_values=pv, output_attentions=True)
    for layer, head in ((3, None), (9, 2)):
        r = swap_head_similarity_image(photo, layer, head, "scaled_dot", 1.0, device="cpu")
        assert r.kind == "image" and r.tokens[0] == "[CLS]"
        assert r.last_hidden_max_diff <= 1e-5
        assert np.abs(r.swapped_weights - plain.attentions[layer][0].numpy()).max() <= 1e-5
        assert r.drift >= 1 - 1e-6 and r.overlap >= 1 - 1e-5
    with torch.inference_mode():  # the shared model was never changed
        again = vit(pixel_values=pv)
    assert vit.config._attn_implementation == "eager"
    torch.testing.assert_close(again.last_hidden_state, plain.last_hidden_state, atol=0, rtol=0)


def test_a_cosine_swap_changes_the_head_and_moves_the_cls_embedding(vit, photo):
    r = swap_head_similarity_image(photo, 9, 2, "cosine", 0.1, device="cpu")
    assert r.heads == (2,)
    tr = head_trace_image(photo, 9, 2, device="cpu")
    want = masked_softmax(get_similarity("cosine")(torch.from_numpy(tr.q), torch.from_numpy(tr.k)) / 0.1).numpy()
    np.testing.assert_allclose(r.swapped_weights[2], want, atol=1e-5)
    assert np.abs(r.swapped_weights[2] - r.original_weights[2]).max() > 1e-2
    others = [h for h in range(6) if h != 2]
    assert np.abs(r.swapped_weights[others] - r.original_weights[others]).max() <= 1e-5
    assert r.drift < 1
    # drift is the cosine of the final LayerNorm's [CLS] output: 1 - drift = that token's own moved share
    assert 1 - r.drift == pytest.approx(float(r.token_drift[0]), abs=1e-6)


def test_bad_inputs_are_typed_errors(photo):
    with pytest.raises(NotAnImage):
        head_trace_image("china.jpg", 0, 0, device="cpu")
    with pytest.raises(InvalidParameter):
        head_trace_image(photo, 12, 0, device="cpu")
    with pytest.raises(InvalidParameter):
        swap_head_similarity_image(photo, 0, 6, device="cpu")


def test_the_cli_traces_a_photo(capsys, photo):
    import json

    from attnviz.cli import main

    path = str(sample_path("china.jpg"))
    assert main(["head", "--image", path, "-l", "9", "-H", "2", "-s", "cosine", "-t", "0.1", "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    tr = head_trace_image(photo, 9, 2, device="cpu")
    assert out["kind"] == "image" and out["tokens"] == list(tr.tokens) and out["d_head"] == 64
    np.testing.assert_allclose(out["weights"], tr.weights, atol=1e-5)
    r = swap_head_similarity_image(photo, 9, 2, "cosine", 0.1, device="cpu")
    np.testing.assert_allclose(out["swapped_weights"], r.swapped_weights[2], atol=1e-5)
    assert out["drift"] == pytest.approx(r.drift)
    assert main(["head", "some text", "--image", path, "-l", "0", "-H", "0"]) == 2
