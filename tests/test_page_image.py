"""pages/image.py through streamlit's AppTest: samples, a real uploaded photo, the heatmap's pixels, errors,
DINOv2's tokens as features (against a float64 recomputation), its own heads, thumbnails, keep-mass, sinks."""

from __future__ import annotations

import base64
import io
import json
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from importlib.resources import files
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
SKLEARN_IMAGES = Path(str(files("sklearn.datasets") / "images"))  # the real photos scikit-learn ships


def image_page(features: str = "handcrafted") -> AppTest:
    """The image page; ``features="handcrafted"`` switches to the hand-made features (the default is DINOv2)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.switch_page("pages/image.py").run()
    assert not at.exception, at.exception
    if features != "dinov2":
        at.radio(key="img_features").set_value(features).run()
        assert not at.exception, at.exception
    return at


def photo_caption(at: AppTest) -> str:
    """The caption that names the photo and its upright size."""
    return [c for img in at.image for c in (i.caption for i in img.proto.imgs) if "(upright)" in c][0]


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.file_uploader(key="img_upload").set_value((name, data, mime)).run()
    assert not at.exception, at.exception
    return at


def overlay_of(at: AppTest, key: str = "img_click") -> np.ndarray:
    """The clickable heatmap (or the thumbnails, ``key="img_heads_click"``), decoded from the component's data URI."""
    comp = [c for c in at.get("component_instance") if c.proto.id.endswith(key)][0]
    src = json.loads(comp.proto.json_args)["src"]
    assert src.startswith("data:image/jpeg;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def strongest(at: AppTest) -> list[tuple[int, int]]:
    cap = [c.value for c in at.caption if c.value.startswith("Strongest patches")][0]
    return [(int(r), int(c)) for r, c in re.findall(r"\((\d+), (\d+)\)", cap)]


def errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


@pytest.fixture(scope="module")
def china_bytes() -> bytes:
    return (SKLEARN_IMAGES / "china.jpg").read_bytes()  # the real photo scikit-learn ships (640 x 427)


def test_sample_page_shows_photo_heatmap_colour_bar_and_numbers():
    at = image_page()
    assert "Image attention" in at.title[0].value
    assert photo_caption(at).startswith("Summer Palace")
    assert len(at.image) == 2  # the photo and the colour bar
    ov = overlay_of(at)
    assert ov.shape == (320, 480, 3)
    m = metrics(at)
    assert m["Patches"] == "16 × 24" and float(m["Strongest weight"]) > 1 / 384
    # the default query is a patch of sky (the sample's (1, 3) on DINOv2's 11 x 16 grid, carried to the same
    # place of this 16 x 24 grid); it attends to the sky (top rows)
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (2, 5)
    assert all(r <= 4 for r, _ in strongest(at))
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Overlay PNG (480 × 320)", "Patch weights (CSV)", "Patch weights (JSON)"]


def test_real_uploaded_photo_sky_attends_to_sky(china_bytes):
    at = upload(image_page(), "china.jpg", china_bytes)
    assert "640 × 427" in photo_caption(at)
    assert metrics(at)["Patches"] == "16 × 24"
    # new photo -> its own default query (centre); move it to the sky: row 1, column 3
    at.number_input(key="img_row").set_value(1).run()
    at.number_input(key="img_col").set_value(3).run()
    assert not at.exception
    top = strongest(at)
    assert all(r <= 6 for r, _ in top)
    ov = overlay_of(at).astype(float)
    h, w = ov.shape[:2]
    # cividis: hot = yellow (high red+green, low blue); the sky strip is hotter than the trees at the bottom
    yellowness = (ov[..., 0] + ov[..., 1]) / 2 - ov[..., 2]
    assert yellowness[: h // 8, : w // 3].mean() > yellowness[-h // 5:, :].mean() + 20


def test_clicking_another_patch_changes_the_map(china_bytes):
    at = upload(image_page(), "china.jpg", china_bytes)
    at.number_input(key="img_row").set_value(1).run()
    sky = overlay_of(at).astype(int)
    sky_top = strongest(at)
    at.number_input(key="img_row").set_value(14).run()  # the trees at the bottom
    trees = overlay_of(at).astype(int)
    assert np.abs(sky - trees).mean() > 10
    assert all(r >= 7 for r, _ in strongest(at)[:4]) and strongest(at) != sky_top


def test_similarity_temperature_and_views():
    at = image_page()
    before = metrics(at)["Strongest weight"]
    at.selectbox(key="img_sim").set_value("euclidean").run()
    assert not at.exception
    assert at.select_slider(key="img_temp").value == 1.0  # reset to euclidean's default temperature
    assert metrics(at)["Strongest weight"] != before
    at.select_slider(key="img_temp").set_value(0.01).run()
    assert float(metrics(at)["Effective patches"]) < 10  # a very low temperature is nearly one-hot
    maps = {}
    for view in ("received", "pooling", "query"):
        at.radio(key="img_view").set_value(view).run()
        assert not at.exception
        maps[view] = overlay_of(at).astype(np.int16)
    for a, b in (("received", "pooling"), ("pooling", "query"), ("received", "query")):
        assert np.abs(maps[a] - maps[b]).max() > 20, (a, b)  # each view draws its own map
    at.selectbox(key="img_cmap").set_value("viridis").run()
    at.slider(key="img_opacity").set_value(0.0).run()
    at.toggle(key="img_grid").set_value(True).run()
    assert not at.exception
    # opacity 0 (no grid lines over the photo except the lines themselves): the overlay is the photo
    at.toggle(key="img_grid").set_value(False).run()
    ov = overlay_of(at).astype(int)
    photo = np.asarray(Image.open(ROOT / "attnviz" / "assets" / "china.jpg").convert("RGB")).astype(int)
    mask = np.ones(photo.shape[:2], bool)
    mask[20:60, 60:140] = False  # leave out the outlined query patch
    assert np.abs(ov - photo)[mask].mean() < 4  # JPEG round trip only


def test_samples_and_patch_size():
    at = image_page()
    at.selectbox(key="img_sample").set_value("Dahlia (photo)").run()
    assert not at.exception
    r, c = at.session_state["img_row"], at.session_state["img_col"]
    assert (r, c) == (7, 12)  # the flower's centre
    at.slider(key="img_patch").set_value(40).run()
    assert metrics(at)["Patches"] == "8 × 12"
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (3, 6)  # the same place, coarser grid
    at.selectbox(key="img_sample").set_value("Shapes (synthetic)").run()
    assert not at.exception and metrics(at)["Patches"] == "16 × 24"  # a new photo starts from its default grid


def test_features_are_cached_and_switches_only_reattend(monkeypatch):
    import attnviz.image as im

    calls = []
    real = im.compute_features
    monkeypatch.setattr(im, "compute_features", lambda *a, **k: calls.append(k.get("patch")) or real(*a, **k))
    at = image_page()
    at.slider(key="img_patch").set_value(33).run()  # a size no other test uses: a cache miss
    assert calls.count(33) == 1
    at.selectbox(key="img_sim").set_value("rbf").run()
    at.number_input(key="img_col").set_value(10).run()
    at.radio(key="img_view").set_value("pooling").run()
    at.slider(key="img_opacity").set_value(0.8).run()
    assert calls.count(33) == 1 and not at.exception


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("name,data,needle", [
    ("notes.png", b"definitely not a picture" * 10, "not an image"),
    ("empty.jpg", b"", "empty"),
    ("bomb.png", png_declaring(100_000, 100_000), "megapixels"),
    ("half.jpg", (SKLEARN_IMAGES / "flower.jpg").read_bytes()[:20_000], "cut short"),
])
def test_bad_uploads_get_one_friendly_sentence(name, data, needle):
    at = upload(image_page(), name, data, "image/png")
    assert needle in errors(at)
    assert not at.exception and len(at.error) == 1
    assert not at.get("component_instance")  # no heatmap for a broken file


def test_upload_above_the_configured_limit(monkeypatch):
    import streamlit as st

    real = st.get_option
    monkeypatch.setattr(st, "get_option", lambda key: 1 if key == "server.maxUploadSize" else real(key))
    big = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (700, 700, 3), np.uint8)).save(big, "BMP")
    at = upload(image_page(), "big.bmp", big.getvalue(), "image/bmp")
    assert "limited to 1 MB" in errors(at) and "1.4 MB" in errors(at)
    assert not at.get("component_instance")


def test_config_sets_the_upload_limit_and_hides_tracebacks():
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["server"]["maxUploadSize"] == 64
    assert cfg["client"]["showErrorDetails"] == "none"
    import attnviz.image as im

    assert im.MAX_FILE_BYTES == cfg["server"]["maxUploadSize"] * 1024 * 1024


def click(at: AppTest, x: float, y: float, width: float, height: float, stamp: int) -> AppTest:
    """What streamlit_image_coordinates sends when the heatmap is clicked (display pixels)."""
    at.session_state["img_click"] = {"x": x, "y": y, "width": width, "height": height, "unix_time": stamp}
    at.run()
    assert not at.exception
    return at


def test_a_click_on_the_heatmap_chooses_the_patch_under_it():
    at = image_page()
    at.radio(key="img_view").set_value("received").run()
    before = overlay_of(at)
    # the 480 x 320 photo shown 600 x 400 wide: a click at (300, 250) is pixel (240, 200) -> row 10, col 12
    click(at, 300, 250, 600, 400, stamp=111)
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (10, 12)
    assert at.radio(key="img_view").value == "query"  # a click switches to the clicked patch's view
    assert np.abs(overlay_of(at).astype(int) - before.astype(int)).mean() > 5
    # typing a row afterwards is not undone by the old click
    at.number_input(key="img_row").set_value(2).run()
    assert at.session_state["img_row"] == 2
    click(at, 10, 10, 600, 400, stamp=112)
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (0, 0)
    click(at, 599, 399, 600, 400, stamp=113)
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (15, 23)


def test_junk_click_values_are_ignored():
    at = image_page()
    start = (at.session_state["img_row"], at.session_state["img_col"])
    click(at, "a", None, 0, 0, stamp=5)
    click(at, 1, 1, 0, 0, stamp=6)  # zero display size
    assert (at.session_state["img_row"], at.session_state["img_col"]) == start


def test_uploaded_file_names_are_shown_as_plain_text(china_bytes):
    at = upload(image_page(), "[click me](javascript:alert(1)) <b>x</b>.jpg", china_bytes)
    caption = photo_caption(at)
    assert "[" not in caption and "<" not in caption and "640 × 427" in caption


def test_the_deployment_pixel_limit_is_honoured(monkeypatch, china_bytes):
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "200000")  # 640 x 427 = 273,280 pixels: too many
    at = upload(image_page(), "china.jpg", china_bytes)
    assert "0.2 megapixels" in errors(at) and not at.get("component_instance")
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "lots")  # a misconfigured server says so, no traceback
    assert "ATTNVIZ_MAX_IMAGE_PIXELS" in errors(image_page("dinov2"))


# ------------------------------------------------------------------------------------------ DINOv2 on the page


@pytest.fixture(scope="module")
def sample_vit():
    """The sample photo the page opens with, and DINOv2's own outputs on it (what the page must agree with)."""
    from attnviz.image import load_image, sample_path
    from attnviz.vit import vit_attentions

    photo = load_image(sample_path("china.jpg"))
    return photo, vit_attentions(photo)


def drawn_levels(img: np.ndarray, photo: np.ndarray, rows: int, cols: int, opacity: float = 1.0) -> np.ndarray:
    """The colour-scale level (0..255) each cell of an even rows x cols split was drawn at, recovered from the
    pixels by inverting the overlay's documented blend, ``photo * (1 - alpha) + cividis[L] * alpha`` with
    ``alpha = opacity * min(1, L / (0.2 * 255))`` (the photo shows as it is at the bottom of the scale)."""
    from attnviz.render import colormap

    lut = colormap("cividis").lut.astype(np.float64)
    alpha = opacity * np.minimum(1.0, np.arange(256) / (0.2 * 255))[:, None]
    ys = np.round(np.linspace(0, img.shape[0], rows + 1)).astype(int)
    xs = np.round(np.linspace(0, img.shape[1], cols + 1)).astype(int)
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            cell = (slice(ys[r], ys[r + 1]), slice(xs[c], xs[c + 1]))
            seen, base = img[cell].reshape(-1, 3).mean(0), photo[cell].reshape(-1, 3).mean(0)
            out[r, c] = np.argmin(np.abs(base * (1 - alpha) + lut * alpha - seen).sum(1))
    return out


def drawn_matches(img: np.ndarray, values: np.ndarray, photo: np.ndarray) -> float:
    """Rank correlation between the levels an opaque cividis overlay's cells were drawn at and the map it
    should show."""
    from scipy.stats import spearmanr

    return float(spearmanr(drawn_levels(img, photo, *values.shape).ravel(), values.ravel()).statistic)


def heads_page(opacity: float = 1.0) -> AppTest:
    at = image_page("dinov2")
    at.slider(key="img_opacity").set_value(0.0).run()
    at.photo = overlay_of(at)  # opacity 0: the photo itself, through the page's own JPEG encoding
    at.slider(key="img_opacity").set_value(opacity).run()  # opaque: the map's colours wherever it is not ~0
    at.radio(key="img_mode").set_value("heads").run()
    assert not at.exception, at.exception
    return at


def captions(at: AppTest) -> str:
    return " ".join(c.value for c in at.caption)


def shown_strongest(at: AppTest) -> list[tuple[int, int, float]]:
    text = [c.value for c in at.caption if "Strongest patches" in c.value][0]
    return [(int(r), int(c), float(w)) for r, c, w in re.findall(r"\((\d+), (\d+)\) ([0-9]+\.[0-9]+)", text)]


def test_dinov2_tokens_are_the_default_features_beside_the_trained_head(sample_vit):
    photo, vit = sample_vit
    at = image_page("dinov2")
    m = metrics(at)
    assert m["Patches"] == "11 × 16" and vit.grid == (11, 16)
    assert "DINOv2 saw a 224 × 154 px copy" in captions(at) and "about 0.12 s" in captions(at)
    r, c = at.session_state["img_row"], at.session_state["img_col"]
    qi = r * 16 + c
    for layer in (11, 8):
        if layer != 11:
            at.slider(key="img_flayer").set_value(layer).run()
            assert not at.exception
            m = metrics(at)
        # float64 recomputation from the model's own tokens after block `layer`: each dimension z-scored over
        # the photo's patches (the one definition, attnviz.image.dinov2_features), cosine, T = 0.1, softmax
        f = vit.hidden_states[layer + 1, 1:].astype(np.float64)
        f = (f - f.mean(0)) / np.maximum(f.std(0), 1e-3)
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        s = f @ f[qi] / 0.1
        p = np.exp(s - s.max())
        p /= p.sum()
        assert float(m["Strongest weight"]) == pytest.approx(p.max(), abs=1e-4)
        assert [(r_, c_) for r_, c_, _ in shown_strongest(at)[:3]] == [divmod(int(i), 16) for i in np.argsort(-p)[:3]]
        # the trained heads' row of the same patch (mean of the heads, over the patches) and the overlap
        a = vit.attentions[layer].astype(np.float64).mean(0)[1 + qi, 1:]
        q = a / a.sum()
        assert float(m["Overlap with the similarity row"]) == pytest.approx(np.minimum(p, q).sum(), abs=0.006)
    assert "layer 8, mean of the heads" in photo_caption(at)


def test_heads_view_shows_the_cls_map_and_a_click_opens_a_patch_row(sample_vit):
    photo, vit = sample_vit
    at = heads_page()
    cls = vit.attentions[-1].astype(np.float64).mean(0)[0, 1:].reshape(11, 16)
    before = overlay_of(at)
    assert before.shape == (320, 480, 3) and drawn_matches(before, cls, at.photo) > 0.9
    assert "[CLS] → patches: layer 11, mean of the heads" in captions(at)
    # the photo shown 600 x 400: a click at (300, 320) is 80 % down, half way across -> patch (8, 8)
    click(at, 300, 320, 600, 400, stamp=201)
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (8, 8)
    assert at.radio(key="img_hmap").value == "patch"  # a click opens the clicked patch's row
    after = overlay_of(at)
    row = vit.attentions[-1].astype(np.float64).mean(0)[1 + 8 * 16 + 8, 1:]
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 5
    assert drawn_matches(after, row.reshape(11, 16), at.photo) > 0.9 and \
        drawn_matches(after, cls, at.photo) < drawn_matches(after, row.reshape(11, 16), at.photo)
    top = shown_strongest(at)
    assert [w for _, _, w in top] == pytest.approx(np.sort(row / row.sum())[::-1][:5], abs=6e-5)
    at.radio(key="img_hmap").set_value("rollout").run()  # rollout: no layer or head to pick
    assert not at.exception and "Attention rollout" in captions(at)
    assert not [s for s in at.slider if s.key == "img_layer"] and not [s for s in at.selectbox if s.key == "img_head"]


def test_a_click_on_a_thumbnail_opens_that_head(sample_vit):
    photo, vit = sample_vit
    at = heads_page()
    strip = overlay_of(at, "img_heads_click")
    h, w = strip.shape[:2]
    # the tiles are the runs of non-white columns (the test finds them in the picture itself)
    gap = (strip[: h - 20].min(axis=(0, 2)) > 235)
    edges = np.flatnonzero(np.diff(np.r_[1, gap.astype(int), 1]))
    tiles = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a > 20]  # not a JPEG speck
    assert len(tiles) == 1 + vit.num_heads  # the mean, then every head
    mean_view = overlay_of(at)
    left, right = tiles[3]  # the mean, head 0, head 1, head 2
    at.session_state["img_heads_click"] = {"x": (left + right) / 2 * 0.5, "y": h / 4, "width": w * 0.5,
                                           "height": h * 0.5, "unix_time": 301}
    at.run()
    assert not at.exception and at.selectbox(key="img_head").value == 2
    assert "layer 11, head 2, from [CLS]" in captions(at)
    shown = overlay_of(at)
    head2 = vit.attentions[-1, 2, 0, 1:].astype(np.float64).reshape(11, 16)
    assert drawn_matches(shown, head2, at.photo) > 0.9 and np.abs(shown.astype(int) - mean_view.astype(int)).mean() > 3
    assert np.abs(overlay_of(at, "img_heads_click").astype(int) - strip.astype(int)).max() > 100  # the frame moved


def test_keep_mass_keeps_the_fewest_patches_holding_that_share(sample_vit):
    photo, vit = sample_vit
    at = heads_page()
    assert not [s for s in at.slider if s.key == "img_keepf"]  # the fraction shows only with the option on
    values = vit.attentions[-1].astype(np.float64).mean(0)[0, 1:]
    for fraction in (0.6, 0.9):
        if fraction == 0.6:
            at.toggle(key="img_keep").set_value(True).run()
        else:
            at.slider(key="img_keepf").set_value(fraction).run()
        assert not at.exception and at.slider(key="img_keepf").value == fraction
        desc = np.sort(values)[::-1]
        needed = int(np.searchsorted(np.cumsum(desc), fraction * values.sum() - 1e-12) + 1)
        kept = int(re.search(r"Kept (\d+) of 176 patches", captions(at)).group(1))
        assert kept == needed
        total = float(re.search(r"sum to ([0-9]+\.[0-9]+)", captions(at)).group(1))
        assert total == pytest.approx(desc[:needed].sum(), abs=6e-4)  # only the kept patches are drawn
        levels = drawn_levels(overlay_of(at), at.photo, 11, 16).ravel()
        off = np.argsort(values)[: 176 - needed - 10]  # well outside the kept set: drawn at 0, the photo itself
        kept_cells = np.argsort(values)[::-1][: max(1, needed // 2)]  # the strongest half of the kept set
        assert np.median(levels[off]) <= 10 and levels[kept_cells].mean() > 60


def test_sinks_toggle_leaves_the_top_norm_patches_out_and_renormalises(sample_vit):
    photo, vit = sample_vit
    at = heads_page()
    at.radio(key="img_hmap").set_value("patch").run()
    share = [m for m in at.metric if m.label.startswith("[CLS] share on the top")][0]
    norms = np.linalg.norm(vit.hidden_states[-1, 1:].astype(np.float64), axis=1)
    sinks = np.argsort(-norms)[:2]  # ceil(1 % of 176)
    cls = vit.attentions[-1].astype(np.float64).mean(0)[0, 1:]
    assert share.label == "[CLS] share on the top 2 norm patches"
    assert float(share.value) == pytest.approx(cls[sinks].sum() / cls.sum(), abs=6e-4)
    at.toggle(key="img_nosinks").set_value(True).run()
    assert not at.exception
    assert float([m for m in at.metric if m.label.startswith("[CLS] share")][0].value) == 0.0
    r, c = at.session_state["img_row"], at.session_state["img_col"]
    a = vit.attentions[-1].astype(np.float64).copy()  # (heads, N, N)
    a[..., 1 + sinks] = 0.0
    a /= a.sum(-1, keepdims=True)  # every head's rows renormalised without the sinks
    assert np.allclose(a.sum(-1), 1.0)
    row = a.mean(0)[1 + r * 16 + c, 1:]
    row /= row.sum()
    assert "sum to 1.000" in captions(at)
    top = shown_strongest(at)
    assert [w for _, _, w in top] == pytest.approx(np.sort(row)[::-1][:5], abs=6e-5)
    assert not {(int(s) // 16, int(s) % 16) for s in sinks} & {(r_, c_) for r_, c_, _ in top}


def test_without_the_vision_model_the_page_falls_back_to_hand_made_features(monkeypatch):
    import attnviz.loaders.dinov2 as dinov2

    def missing(*args, **kwargs):
        raise dinov2.VisionModelMissing()

    monkeypatch.setattr(dinov2, "load_dinov2", missing)
    png = io.BytesIO()  # a photo no other test uploads: DINOv2's result for it is not cached
    Image.fromarray(np.random.default_rng(20261201).integers(0, 256, (120, 180, 3), np.uint8)).save(png, "PNG")
    at = upload(image_page("dinov2"), "noise.png", png.getvalue(), "image/png")
    notes = [i.value for i in at.info]
    assert len(notes) == 1 and "not installed" in notes[0] and "hand-made" in notes[0]
    assert not at.error and metrics(at)["Patches"] and "numbers per patch" in captions(at)
    at.radio(key="img_mode").set_value("heads").run()
    assert not at.exception and not at.error and len(at.info) == 1
    assert not [s for s in at.slider if s.key == "img_layer"] and overlay_of(at).shape == (120, 180, 3)


def test_a_picture_smaller_than_the_model_grid_falls_back_with_one_notice():
    png = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (5, 7, 3), np.uint8)).save(png, "PNG")
    at = upload(image_page("dinov2"), "tiny.png", png.getvalue(), "image/png")
    notes = [i.value for i in at.info]
    assert len(notes) == 1 and "(7 × 5 px) is smaller than DINOv2's" in notes[0], notes
    assert not at.error and metrics(at)["Patches"] == "5 × 7" and overlay_of(at).shape == (5, 7, 3)


def test_features_and_heads_share_one_dinov2_forward(monkeypatch):
    """The similarity view's features (compute_features) and the heads view read one forward of a new photo:
    a layer switch and the heads view run the model no more."""
    import attnviz.vit as vit_module
    from attnviz.image import load_image, sample_path

    calls = []
    real = vit_module._forward
    monkeypatch.setattr(vit_module, "_forward", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    buf = io.BytesIO()  # a photo no cache has seen: the sample turned upside down
    load_image(sample_path("china.jpg")).transpose(Image.Transpose.ROTATE_180).save(buf, "PNG")
    at = image_page("dinov2")  # the sample (its forward may run here, in a fresh process)
    calls.clear()
    at = upload(at, "upside-down.png", buf.getvalue(), "image/png")
    assert metrics(at)["Patches"] == "11 × 16" and len(calls) == 1
    at.slider(key="img_flayer").set_value(4).run()
    at.radio(key="img_mode").set_value("heads").run()
    assert not at.exception, at.exception
    assert len(calls) == 1


# ------------------------------------------------------------------------------------ the link (issue 15)

def linked_page(params: dict) -> AppTest:
    """The image page opened from a link carrying ``params`` (a fresh session: a student's first visit)."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.query_params = dict(params)
    at.switch_page("pages/image.py").run()
    assert not at.exception, at.exception
    return at


def test_a_link_opens_the_same_heads_view_and_the_address_bar_keeps_it(sample_vit):
    at = linked_page({"sample": "china", "m": "heads", "hm": "patch", "l": "7", "h": "3", "r": "5", "col": "6",
                      "k": "1", "kf": "0.8", "c": "magma"})
    assert at.radio(key="img_mode").value == "heads" and at.radio(key="img_hmap").value == "patch"
    assert at.selectbox(key="img_head").value == 3 and at.slider(key="img_layer").value == 7
    assert (at.number_input(key="img_row").value, at.number_input(key="img_col").value) == (5, 6)
    assert at.slider(key="img_keepf").value == 0.8 and at.selectbox(key="img_cmap").value == "magma"
    assert "layer 7, head 3, from patch (5, 6)" in captions(at) and not at.warning
    # the map is that head's row for that patch: the model's own numbers
    photo, vit = sample_vit
    a = vit.attentions[7, 3, 1 + 5 * 16 + 6, 1:].astype(np.float64)
    top = int(np.argmax(a))
    assert f"Strongest patches: ({top // 16}, {top % 16}) {a.max() / a.sum():.4f}" in captions(at)
    # the address bar now holds the whole state; after a change it follows, and a new session opened with it
    # (a replica that died, a student's phone) shows the same view
    at.selectbox(key="img_head").set_value(1).run()
    assert at.query_params["h"] == "1" and at.query_params["r"] == "5" and at.query_params["sample"] == "china"
    again = linked_page(at.query_params)
    assert again.selectbox(key="img_head").value == 1 and again.number_input(key="img_col").value == 6
    assert captions(again).count("layer 7, head 1, from patch (5, 6)") == 1
    share = [c.value for c in again.code if "sample=china" in c.value][0]
    assert "h=1" in share and "r=5" in share and "col=6" in share


def test_a_link_sets_the_similarity_view_and_the_hand_made_grid():
    at = linked_page({"sample": "flower", "f": "handcrafted", "p": "40", "s": "euclidean", "t": "2.0",
                      "v": "received", "r": "2", "col": "3"})
    assert at.selectbox(key="img_sample").value == "Dahlia (photo)" and at.slider(key="img_patch").value == 40
    assert at.selectbox(key="img_sim").value == "euclidean" and at.select_slider(key="img_temp").value == 2.0
    assert at.radio(key="img_view").value == "received"
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (2, 3)


def test_a_hostile_link_gives_the_defaults_and_one_friendly_sentence():
    at = linked_page({"v": "<script>alert(1)</script>", "h": "99", "r": "9999", "col": "1", "sample": "**x**"})
    assert [w.value for w in at.warning] == [
        "This link's sample, view, query row and head were not valid, so the page shows the default instead."]
    assert at.radio(key="img_view").value == "query" and at.selectbox(key="img_sample").value == "Summer Palace, Beijing (photo)"
    md = " ".join(m.value for m in at.markdown) + captions(at) + " ".join(w.value for w in at.warning)
    assert "<script>" not in md and "**x**" not in md
    assert not at.exception and metrics(at)["Patches"]  # the page still works


def test_a_links_patch_outside_the_grid_starts_from_the_default_with_a_notice():
    at = linked_page({"sample": "china", "r": "40", "col": "3"})
    assert [i.value for i in at.info] == [
        "The link's patch (row 40, column 3) is outside this photo's 11 × 16 grid, so the page starts from its "
        "default patch."]
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (1, 3)  # china's point of interest


def test_an_upload_says_its_photo_cannot_travel_in_the_link(china_bytes):
    at = image_page()
    assert "opens this photo" in captions(at)
    upload(at, "mine.jpg", china_bytes)
    assert "An uploaded photo cannot travel in a link" in captions(at)


# ------------------------------------------------------------------- the query patch and the scale (issue 16)

def patch_centre(ov: np.ndarray, rows: int, cols: int, r: int, c: int, half: int = 2) -> np.ndarray:
    """The mean colour of a small square at the centre of patch (r, c) of the overlay."""
    h, w = ov.shape[:2]
    y, x = int((r + 0.5) * h / rows), int((c + 0.5) * w / cols)
    return ov[y - half:y + half + 1, x - half:x + half + 1].reshape(-1, 3).astype(float).mean(0)


def test_leaving_the_query_out_gives_the_other_patches_the_whole_scale():
    from attnviz.render import colormap

    at = image_page()  # hand-made features, cosine, T = 0.1: the case
    assert at.checkbox(key="img_xq").value is True  # on by default for the chosen patch's row
    at.number_input(key="img_row").set_value(3).run()  # the temple's roof edge: it takes ~73 % of its own row
    at.number_input(key="img_col").set_value(5).run()
    (qr, qc, wq), (r2, c2, w2) = shown_strongest(at)[:2]
    assert (qr, qc) == (3, 5) and wq > 0.5 and w2 < wq / 5  # a patch is most like itself
    words = [c for c in captions(at).split("Colour scale: ")[1:]][0]
    assert f"to {w2:.4f} (top colour)" in words and f"its own weight {wq:.4f} is above the top" in words
    at.slider(key="img_opacity").set_value(1.0).run()  # full colour at the top: the scales differ the most
    on = overlay_of(at)
    at.slider(key="img_opacity").set_value(0.0).run()
    photo = overlay_of(at)  # opacity 0: the photo itself, through the same JPEG encoding
    at.slider(key="img_opacity").set_value(1.0).run()
    at.checkbox(key="img_xq").set_value(False).run()
    off = overlay_of(at)
    assert f"from the map's least to its largest weight" in captions(at) and f"to {wq:.4f} (top colour)" in captions(at)
    lut = colormap("cividis").lut.astype(float)

    def expected(r, c, w, lo, hi):  # photo * (1 - alpha) + colour * alpha at the patch's level of the scale
        level = int(round(255 * min(1.0, max(0.0, (w - lo) / (hi - lo)))))
        alpha = min(1.0, level / (255 * 0.2))  # the overlay's documented fade over the lowest fifth
        return patch_centre(photo, 16, 24, r, c) * (1 - alpha) + lut[level] * alpha

    assert np.abs(patch_centre(on, 16, 24, r2, c2) - expected(r2, c2, w2, 0.0, w2)).max() < 15  # the top colour
    # a strong patch away from the query (no bicubic spill from it): its colour on each scale
    far = [(r, c, w) for r, c, w in shown_strongest(at)[1:] if max(abs(r - qr), abs(c - qc)) > 1]
    r3, c3, w3 = max(far, key=lambda p: np.abs(expected(*p, 0.0, w2) - expected(*p, 0.0, wq)).max())
    # (the map's minimum is ~0 at T = 0.1: 0 stands for it)
    assert np.abs(patch_centre(on, 16, 24, r3, c3) - expected(r3, c3, w3, 0.0, w2)).max() < 15
    assert np.abs(patch_centre(off, 16, 24, r3, c3) - expected(r3, c3, w3, 0.0, wq)).max() < 15
    assert np.abs(expected(r3, c3, w3, 0.0, w2) - expected(r3, c3, w3, 0.0, wq)).max() > 50  # and they differ
    # the whole photo: far more of it shows colour when the query is left out
    lit = lambda ov: float((np.abs(ov.astype(float) - photo.astype(float)).sum(-1) > 60).mean())  # noqa: E731
    assert lit(on) > 3 * lit(off)


# ------------------------------------------------------------------ controls that apply, progress (issue 16)

def widget_keys(at: AppTest) -> set[str]:
    kinds = ("radio", "selectbox", "slider", "select_slider", "number_input", "checkbox", "toggle")
    return {w.key for kind in kinds for w in at.get(kind) if w.key and w.key.startswith("img_")}


def test_only_the_controls_that_apply_to_the_view_are_shown(sample_vit):
    at = image_page("dinov2")
    query = {"img_row", "img_col", "img_xq"}
    assert query | {"img_sim", "img_temp", "img_view", "img_flayer", "img_res"} <= widget_keys(at)
    assert not {"img_head", "img_layer", "img_hmap", "img_keep", "img_nosinks", "img_patch"} & widget_keys(at)
    for view in ("received", "pooling"):  # every patch's weight: no query patch to pick or leave out
        at.radio(key="img_view").set_value(view).run()
        assert not query & widget_keys(at) and "img_temp" in widget_keys(at)
        assert "DINOv2's own attention from the same patch" not in " ".join(
            i.caption for img in at.image for i in img.proto.imgs)
    at.radio(key="img_features").set_value("handcrafted").run()
    assert {"img_patch", "img_pos"} <= widget_keys(at) and not {"img_flayer", "img_res"} & widget_keys(at)
    at.radio(key="img_mode").set_value("heads").run()
    keys = widget_keys(at)  # the [CLS] map: layer and head, no query patch, no similarity
    assert {"img_layer", "img_head", "img_keep", "img_nosinks", "img_res"} <= keys
    assert not (query | {"img_sim", "img_temp", "img_view", "img_features", "img_patch", "img_keepf"}) & keys
    at.toggle(key="img_keep").set_value(True).run()
    assert "img_keepf" in widget_keys(at)
    at.radio(key="img_hmap").set_value("patch").run()
    assert query <= widget_keys(at)
    at.radio(key="img_hmap").set_value("rollout").run()  # all layers, the heads' mean: nothing to pick
    assert not ({"img_layer", "img_head"} | query) & widget_keys(at)
    assert not at.get("status") and not at.exception  # the progress box is gone once the page is drawn


def test_the_progress_steps_say_what_runs_where():
    from attnviz.state import image as si

    assert si.vit_step((640, 427), 518, "cpu") == "Running DINOv2 at 518 × 350 px on cpu (about 1.76 s on 2 CPU cores)…"
    assert si.vit_step((427, 640), 224, "cuda") == "Running DINOv2 at 154 × 224 px on cuda…"
    done: set = set()
    assert si.shows_progress(done, ("d", 518, "cpu", False)) and not si.shows_progress(done, ("d", 518, "cpu", False))
    assert si.shows_progress(done, ("d", 224, "cpu", False))


# ------------------------------------------------------------------ the legend matches the overlay (review)

@pytest.fixture
def media(monkeypatch) -> dict[str, bytes]:
    """The bytes of every image the page hands Streamlit's media store, by file id (AppTest's store is gone
    after each run)."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stored: dict[str, bytes] = {}
    real = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        file_id = real(self, path_or_data, mimetype, kind, filename)
        stored[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return stored


def legend_strip(at: AppTest, media: dict[str, bytes]) -> np.ndarray:
    """The colours inside the legend's grey frame, low end first (the bar is the one image without a caption)."""
    urls = [i.url for img in at.image for i in img.proto.imgs if not i.caption]
    assert len(urls) == 1, urls
    png = media[Path(urls[0]).stem]
    assert png.startswith(b"\x89PNG"), "the legend is sent lossless"
    bar = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    grey = (bar == 96).all(-1)
    sides = np.flatnonzero(grey.sum(1) > grey.shape[1] // 3)  # the frame's two long sides
    xs = np.flatnonzero(grey[sides.min()])
    return bar[(sides.min() + sides.max()) // 2, xs.min() + 1:xs.max()].astype(np.float64)


def check_fades_like_the_overlay(strip: np.ndarray) -> None:
    """White (the photo itself) at the bottom, rising to full colour at a fifth of the scale, as the overlay's
    alpha ``min(1, L / (0.2 * 255))`` (the rule drawn_levels inverts on the heatmap's own pixels)."""
    from attnviz.render import colormap

    levels = np.floor(np.linspace(0.0, 1.0, len(strip)) * 255 + 0.5).astype(int)
    alpha = np.minimum(1.0, levels / (0.2 * 255))[:, None]
    expected = colormap("cividis").lut[levels].astype(np.float64) * alpha + 255.0 * (1 - alpha)
    assert (strip[:2] >= 250).all()  # the low end is the background: the photo shows there, unpainted
    assert np.abs(strip - expected).max() <= 1  # the page sends the bar as PNG: no JPEG smear


def test_the_legend_fades_into_the_background_as_the_overlay_fades_into_the_photo(media, sample_vit):
    at = image_page()  # the similarity view, a patch chosen
    at.number_input(key="img_row").set_value(3).run()
    strip = legend_strip(at, media)
    assert len(strip) == 420
    check_fades_like_the_overlay(strip)
    at.radio(key="img_mode").set_value("heads").run()  # DINOv2's own heads: the same legend rule
    assert not at.exception, at.exception
    check_fades_like_the_overlay(legend_strip(at, media))
    at.radio(key="img_hmap").set_value("patch").run()
    check_fades_like_the_overlay(legend_strip(at, media))


def test_a_links_patch_size_is_not_given_to_a_later_upload(china_bytes, sample_vit):
    at = linked_page({"sample": "china", "m": "heads", "p": "33"})  # p= read while the heads view shows
    assert at.session_state["img_patch"] == 33
    upload(at, "mine.jpg", china_bytes)  # 640 x 427: its own default is 27 px
    at.radio(key="img_mode").set_value("similarity").run()
    at.radio(key="img_features").set_value("handcrafted").run()
    assert not at.exception, at.exception
    assert at.slider(key="img_patch").value == 27 and "640 × 427" in photo_caption(at)
    # the link's own photo keeps the link's size when it reaches the hand-made grid
    back = linked_page({"sample": "china", "m": "heads", "p": "33"})
    back.radio(key="img_mode").set_value("similarity").run()
    back.radio(key="img_features").set_value("handcrafted").run()
    assert back.slider(key="img_patch").value == 33
