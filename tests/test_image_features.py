"""Patch features: deterministic, alike regions alike on real photos; the optional pretrained extractor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_image

from attnviz.errors import InvalidParameter, ModelNotFound
from attnviz.image import (HANDCRAFTED_FEATURES, FeatureExtractor, analyze_image, compute_features, compute_size, handcrafted_features,
                           load_extractor, load_image, patch_features, patch_grid, rgb_to_lab, sample_path,
                           synthetic_scene)


@pytest.fixture(scope="module")
def china():
    return load_sample_image("china.jpg")  # 427 x 640, a real photo with sky in the top rows


@pytest.fixture(scope="module")
def flower():
    return load_sample_image("flower.jpg")


def cell_fraction(mask: np.ndarray, grid) -> np.ndarray:
    """Fraction of each patch's pixels where ``mask`` holds -> (rows, cols)."""
    out = np.zeros(grid.shape)
    for r in range(grid.rows):
        for c in range(grid.cols):
            left, top, right, bottom = grid.box(r, c)
            out[r, c] = mask[top:bottom, left:right].mean()
    return out


def sky_mask(photo: np.ndarray) -> np.ndarray:
    """China.jpg's sky: the top 45 % of the photo where pixels are bright and blue-ish."""
    a = photo.astype(int)
    top = np.arange(a.shape[0])[:, None] < 0.45 * a.shape[0]
    return top & (a[..., 2] > 170) & (a[..., 2] >= a[..., 0]) & (a.sum(-1) > 500)


def orange_mask(photo: np.ndarray) -> np.ndarray:
    """Flower.jpg's dahlia: orange pixels (red high, blue much lower)."""
    a = photo.astype(int)
    return (a[..., 0] > 140) & (a[..., 0] - a[..., 2] > 60)


def test_lab_reference_values():
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8))
    assert np.allclose(lab[0], [100, 0, 0], atol=0.05)
    assert np.allclose(lab[1], [0, 0, 0], atol=0.05)
    assert np.allclose(lab[2], [53.24, 80.09, 67.20], atol=0.05)  # published sRGB red
    assert np.allclose(lab[3], [32.30, 79.19, -107.86], atol=0.05)


def test_feature_names_and_shape(china):
    im = Image.fromarray(china)
    g = patch_grid(im, patch=40)
    raw = handcrafted_features(im, g)
    assert raw.shape == (g.n, len(HANDCRAFTED_FEATURES)) == (g.n, 13)
    hist = raw[:, -6:]
    assert np.allclose(hist.sum(1), 1.0)
    assert (raw[:, 3:7] >= 0).all()


def test_flat_patches_have_uniform_orientation_and_no_texture():
    g = patch_grid((64, 64), patch=32)
    raw = handcrafted_features(np.full((64, 64, 3), 120, np.uint8), g)
    assert np.allclose(raw[:, 3:7], 0.0, atol=1e-6)
    assert np.allclose(raw[:, -6:], 1 / 6)


def test_orientation_histogram_sees_stripes():
    vertical = np.zeros((32, 32, 3), np.uint8)
    vertical[:, ::4] = 255  # vertical lines: horizontal gradients (0 degrees)
    raw = handcrafted_features(vertical, patch_grid((32, 32), grid=(1, 1)))
    hist = raw[0, -6:]
    assert hist.argmax() == 0 and hist[0] > 0.8


def test_features_are_deterministic_and_standardised(china):
    im = Image.fromarray(china)
    a = compute_features(im, patch=32)
    b = compute_features(im.copy(), patch=32)
    assert np.array_equal(a.features, b.features)
    assert a.features.dtype == np.float32 and np.isfinite(a.features).all()
    assert np.allclose(a.features.mean(0), 0.0, atol=1e-5)
    assert a.names == HANDCRAFTED_FEATURES and a.extractor == "handcrafted"


def test_uniform_image_gives_zero_features_not_noise():
    f = compute_features(Image.new("RGB", (100, 80), (40, 90, 200)), patch=20).features
    assert np.abs(f).max() < 1e-6


def test_position_term_makes_neighbours_alike(china):
    im = Image.fromarray(china)
    plain = compute_features(im, patch=40)
    pos = compute_features(im, patch=40, position_weight=2.0)
    assert pos.features.shape[1] == plain.features.shape[1] + 2 and pos.names[-2:] == ("pos_y", "pos_x")
    g = plain.grid
    near = [g.index(r, c) for r in range(g.rows) for c in range(g.cols) if abs(r - 1) + abs(c - 1) <= 2]

    def mass(feats):
        from attnviz.image import attend_patches

        res = attend_patches(im, feats, query=(1, 1))
        return res.row.reshape(-1)[near].sum()

    assert mass(pos) > mass(plain)


@pytest.mark.parametrize("weight", [-1, float("nan"), "x"])
def test_bad_weights(weight):
    with pytest.raises(InvalidParameter):
        patch_features(np.zeros((8, 8, 3), np.uint8), patch_grid((8, 8), patch=4), position_weight=weight)


def test_compute_copy_is_downscaled_but_keeps_pixels_per_patch():
    assert compute_size(4000, 3000) == (1024, 768)
    assert compute_size(640, 427) == (640, 427)
    assert compute_size(40000, 1, rows=1, cols=4000) == (16000, 1)
    big = Image.fromarray(np.asarray(Image.fromarray(synthetic_scene()).resize((3000, 2000))))
    f = compute_features(big, grid=(16, 24))
    assert f.compute_size == (1024, 683)
    assert (f.grid.width, f.grid.height) == (3000, 2000)  # the grid is in full-resolution pixels


# ------------------------------------------------------------------------- alike regions attend alike

def test_sky_attends_to_sky(china):
    res0 = analyze_image(china, features="handcrafted")
    sky = cell_fraction(sky_mask(china), res0.grid) > 0.5
    share = sky.mean()
    assert 0.2 < share < 0.5  # the sky is a third of the photo
    sky_patches = [tuple(rc) for rc in np.argwhere(sky)]
    for q in [(0, 0), (1, 3), (2, 20), (0, 12)]:
        assert q in sky_patches
        res = analyze_image(china, features="handcrafted", query=q)  # cosine, its default temperature
        assert res.row[sky].sum() > 0.85, q
    for sim in ("dot", "euclidean", "rbf", "general"):
        res = analyze_image(china, features="handcrafted", query=(1, 3), similarity=sim)
        assert res.row[sky].sum() > 0.6, sim  # "mostly", well above the sky's 35 % share


def test_flower_attends_to_the_flower(flower):
    res0 = analyze_image(flower, features="handcrafted")
    petals = cell_fraction(orange_mask(flower), res0.grid) > 0.5
    assert 0.15 < petals.mean() < 0.35
    for q in [(8, 12), (6, 10), (12, 9)]:
        assert petals[q]
        res = analyze_image(flower, features="handcrafted", query=q)
        assert res.row[petals].sum() > 0.9, q
        for sim in ("dot", "general"):
            assert analyze_image(flower, features="handcrafted", query=q, similarity=sim).row[petals].sum() > 0.8, (sim, q)


def test_leaves_attend_to_leaves(flower):
    res = analyze_image(flower, features="handcrafted", query=(1, 1))
    petals = cell_fraction(orange_mask(flower), res.grid) > 0.2
    assert res.row[~petals].sum() > 0.95


def test_synthetic_discs_attend_to_the_other_discs():
    arr = synthetic_scene()
    red = (arr[..., 0] == 200) & (arr[..., 1] == 40)
    g = patch_grid((480, 320))
    q = g.locate(0.18 * 480, 0.25 * 320)  # the centre of the first disc
    res = analyze_image(arr, features="handcrafted", query=q)
    redness = cell_fraction(red, res.grid)
    far_discs = (redness > 0.3)
    far_discs[max(0, q[0] - 2):q[0] + 3, max(0, q[1] - 2):q[1] + 3] = False
    assert far_discs.sum() >= 4
    assert res.row[redness > 0.3].sum() > 0.8
    assert res.row[far_discs].sum() > 0.3  # the other discs, not only the query's neighbours


def test_shipped_sample_matches_its_generator():
    assert np.array_equal(np.asarray(load_image(sample_path("shapes.png"))), synthetic_scene())


# ------------------------------------------------------------------------- a local pretrained network

class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv2(torch.relu(self.conv1(x)))


class TinyViT(torch.nn.Module):
    """Patchify 8 x 8, one linear layer, a class token in front: (1, 1 + h*w, C)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.embed = torch.nn.Conv2d(3, 12, 8, stride=8)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, 12))

    def forward(self, x):
        t = self.embed(x).flatten(2).transpose(1, 2)
        return torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)


@pytest.fixture(scope="module")
def tiny_pt2(tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "tiny.pt2"
    dims = {"x": {2: torch.export.Dim("h", min=8, max=4096), 3: torch.export.Dim("w", min=8, max=4096)}}
    ep = torch.export.export(TinyNet().eval(), (torch.zeros(1, 3, 64, 96),), dynamic_shapes=dims)
    torch.export.save(ep, str(path))
    return path


def test_pretrained_extractor_pt2(tiny_pt2, china):
    im = Image.fromarray(china)
    f1 = compute_features(im, patch=40, extractor=tiny_pt2)
    f2 = compute_features(im, patch=40, extractor=str(tiny_pt2))
    assert f1.features.shape == (f1.grid.n, 16) and f1.extractor == "tiny.pt2"
    assert np.array_equal(f1.features, f2.features)  # deterministic (and cached loading)
    # the network's features must equal the hand-pooled feature map
    fe = load_extractor(tiny_pt2)
    small = im  # 640 px: the compute copy is the image itself
    fmap = fe.feature_map(small)
    assert fmap.shape == (16, 214, 320)
    res = analyze_image(china, patch=40, extractor=tiny_pt2, query=(0, 0))
    assert res.row.sum() == pytest.approx(1.0, abs=1e-5) and res.extractor == "tiny.pt2"


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # torch's, not ours
def test_pretrained_extractor_torchscript_and_vit_tokens(tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ts = tmp_path / "tiny_vit.pt"
        torch.jit.save(torch.jit.script(TinyViT().eval()), str(ts))
    im = Image.fromarray(synthetic_scene(160, 96))
    f = compute_features(im, grid=(6, 10), extractor=ts)
    assert f.features.shape == (60, 12) and np.isfinite(f.features).all()
    fixed = load_extractor(ts, input_size=(64, 64))
    assert fixed.feature_map(im).shape == (12, 8, 8)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_pretrained_extractor_errors(tmp_path):
    with pytest.raises(ModelNotFound, match="No feature model"):
        load_extractor(tmp_path / "missing.pt2")
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelNotFound, match="torch.export"):
        load_extractor(junk)
    sd = tmp_path / "state_dict.pt"
    torch.save(TinyNet().state_dict(), sd)  # a pickled state_dict is refused, not unpickled
    with pytest.raises(ModelNotFound):
        load_extractor(sd)

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.mean(dim=(2, 3))  # (1, 3): no spatial layout

    wrong = tmp_path / "four_channels.pt2"  # a model for 4-channel input is refused on RGB: a clear error
    conv4 = torch.nn.Conv2d(4, 2, 3)
    torch.export.save(torch.export.export(conv4, (torch.zeros(1, 4, 16, 16),)), str(wrong))
    with pytest.raises(InvalidParameter, match=r"exported for input of shape \(1 x 4 x 16 x 16\)"):
        compute_features(Image.new("RGB", (16, 16)), grid=(2, 2), extractor=wrong)

    flat = tmp_path / "flat.pt2"
    torch.export.save(torch.export.export(Flat(), (torch.zeros(1, 3, 16, 16),)), str(flat))
    with pytest.raises(InvalidParameter):
        compute_features(Image.new("RGB", (16, 16)), grid=(2, 2), extractor=flat)


class FixedNet(torch.nn.Module):
    """A 4 x 4 patchifying conv: (1, 3, 64, 64) -> (1, 8, 16, 16)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 8, 4, stride=4)

    def forward(self, x):
        return torch.tanh(self.conv(x))


@pytest.fixture(scope="module")
def fixed_pt2(tmp_path_factory):
    """FixedNet exported at one fixed size, 64 x 64 (no dynamic dimensions): torch's guards refuse other sizes."""
    path = tmp_path_factory.mktemp("models") / "fixed64.pt2"
    torch.export.save(torch.export.export(FixedNet().eval(), (torch.zeros(1, 3, 64, 64),)), str(path))
    return path


def _reference_map(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The eager FixedNet on the photo resized to ``size`` (float64 reference of what the extractor must feed)."""
    x = torch.from_numpy(photo.astype(np.float64).transpose(2, 0, 1) / 255.0)[None]
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64).view(1, 3, 1, 1)
    with torch.no_grad():
        return FixedNet().double()((x - mean) / std)[0].numpy()


def test_a_fixed_size_pt2_is_fed_the_photo_resized_to_its_exported_size(fixed_pt2):
    from attnviz.loaders.extractor import exported_input_shape

    photo = np.asarray(load_image(sample_path("flower.jpg")))  # 480 x 320: not the model's 64 x 64
    assert photo.shape[:2] != (64, 64)
    fe = load_extractor(fixed_pt2)
    assert fe.input_shape == (1, 3, 64, 64) and fe.input_size == (64, 64)  # read from the program itself
    np.testing.assert_allclose(fe.feature_map(Image.fromarray(photo)).numpy(), _reference_map(photo, (64, 64)),
                               atol=2e-5)
    program = torch.export.load(str(fixed_pt2))
    assert exported_input_shape(program, "fixed64.pt2") == (1, 3, 64, 64)
    # analyze_image(extractor=path) runs end to end, with the same features as the eager net fed 64 x 64 by hand
    res = analyze_image(sample_path("flower.jpg"), extractor=fixed_pt2, query=(2, 3))
    eager = FeatureExtractor(FixedNet().eval(), "eager", input_size=(64, 64))
    ref = compute_features(load_image(sample_path("flower.jpg")), extractor=eager)
    assert res.extractor == "fixed64.pt2" and res.patch_features.grid == ref.grid
    np.testing.assert_allclose(res.patch_features.features, ref.features, atol=1e-4)
    assert res.row.sum() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")  # torch's, not ours
def test_input_size_for_a_dynamic_pt2_and_the_sentences_for_sizes_it_cannot_take(fixed_pt2, tiny_pt2, tmp_path):
    photo = np.asarray(load_image(sample_path("flower.jpg")))
    dyn = load_extractor(tiny_pt2)
    assert dyn.input_shape == (1, 3, None, None) and dyn.input_size is None  # dynamic: the image's own size
    assert load_extractor(tiny_pt2, input_size=(48, 80)).feature_map(Image.fromarray(photo)).shape == (16, 24, 40)
    assert load_extractor(fixed_pt2, input_size=(64, 64)).input_size == (64, 64)  # the same size is fine
    with pytest.raises(InvalidParameter, match=r"^The feature model 'fixed64.pt2' was exported for 64 x 64 px "
                                               r"images \(height x width\), not 32 x 48: give that size"):
        load_extractor(fixed_pt2, input_size=(32, 48))
    for bad in [(0, 64), (64,), "64x64", (64.5, 64), (10**6, 64)]:
        with pytest.raises(InvalidParameter, match="input_size must be"):
            load_extractor(tiny_pt2, input_size=bad)
    gray = tmp_path / "gray.pt2"  # one channel: no resize fixes that
    torch.export.save(torch.export.export(torch.nn.Conv2d(1, 2, 3), (torch.zeros(1, 1, 32, 32),)), str(gray))
    with pytest.raises(InvalidParameter, match=r"exported for input of shape \(1 x 1 x 32 x 32\), but attnviz "
                                               r"gives it one RGB image"):
        load_extractor(gray)
    # TorchScript does not say its size: the failure says how to give one
    ts = tmp_path / "fixed.pt"
    traced = torch.jit.trace(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)),
                             torch.zeros(1, 3, 8, 8))
    torch.jit.save(traced, str(ts))
    with pytest.raises(InvalidParameter, match=r"input_size=\(H, W\), on the command line --input-size HxW\.$"):
        load_extractor(ts).feature_map(Image.fromarray(photo))
