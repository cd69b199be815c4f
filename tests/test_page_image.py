"""pages/image.py through streamlit's AppTest: samples, a real uploaded photo, the heatmap's pixels, errors."""

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


def image_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/image.py").run()
    assert not at.exception, at.exception
    return at


def upload(at: AppTest, name: str, data: bytes, mime: str = "image/jpeg") -> AppTest:
    at.file_uploader(key="img_upload").set_value((name, data, mime)).run()
    assert not at.exception, at.exception
    return at


def overlay_of(at: AppTest) -> np.ndarray:
    """The clickable heatmap, decoded from the component's data URI."""
    comp = [c for c in at.get("component_instance") if c.proto.id.endswith("img_click")][0]
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
    assert [i.proto.imgs[0].caption for i in at.image][0].startswith("Summer Palace")
    assert len(at.image) == 2  # the photo and the colour bar
    ov = overlay_of(at)
    assert ov.shape == (320, 480, 3)
    m = metrics(at)
    assert m["Patches"] == "16 × 24" and float(m["Strongest weight"]) > 1 / 384
    # the default query is a patch of sky; it attends to the sky (top rows)
    assert (at.session_state["img_row"], at.session_state["img_col"]) == (1, 4)
    assert all(r <= 4 for r, _ in strongest(at))
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Overlay PNG (480 × 320)", "Patch weights (CSV)", "Patch weights (JSON)"]


def test_real_uploaded_photo_sky_attends_to_sky(china_bytes):
    at = upload(image_page(), "china.jpg", china_bytes)
    caption = at.image[0].proto.imgs[0].caption
    assert "640 × 427" in caption
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
    caption = at.image[0].proto.imgs[0].caption
    assert "[" not in caption and "<" not in caption and "640 × 427" in caption


def test_the_deployment_pixel_limit_is_honoured(monkeypatch, china_bytes):
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "200000")  # 640 x 427 = 273,280 pixels: too many
    at = upload(image_page(), "china.jpg", china_bytes)
    assert "0.2 megapixels" in errors(at) and not at.get("component_instance")
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "lots")  # a misconfigured server says so, no traceback
    assert "ATTNVIZ_MAX_IMAGE_PIXELS" in errors(image_page())
