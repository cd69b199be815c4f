"""A real headless Chromium on the image page: upload a real photo, see the heatmap, click a patch.

Uses the shared ``app_url`` (one streamlit server per session) and ``page`` fixtures of conftest.py.
"""

from __future__ import annotations

import base64
import io
import re
import time
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

from browser_helpers import settled_box

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
CHINA = Path(str(files("sklearn.datasets") / "images")) / "china.jpg"  # 640 x 427, scikit-learn's real photo
COMPONENT = 'iframe[title*="streamlit_image_coordinates"]'

pytest.importorskip("playwright.sync_api")


def heatmap_src(page) -> str:
    return page.frame_locator(COMPONENT).locator("img#image").get_attribute("src") or ""


def decode(src: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")).astype(float)


def number_value(page, label: str) -> int:
    return int(page.get_by_label(label).input_value())


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the page may be mid-rerun
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def strongest(page) -> list[tuple[int, int]]:
    text = page.get_by_text(re.compile("^Strongest patches")).first.inner_text()
    return [(int(r), int(c)) for r, c in re.findall(r"\((\d+), (\d+)\)", text)]


def click_until_changed(page, heat, fx: float, fy: float, aspect: float, what: str) -> None:
    """Click the heatmap at a fraction (fx, fy) of its size; if a rerun swallowed the click, click again."""
    before = heatmap_src(page)
    for attempt in range(3):
        box = settled_box(heat, aspect)
        heat.click(position={"x": box["width"] * fx, "y": box["height"] * fy})
        try:
            wait_for(lambda: heatmap_src(page) != before, timeout=20, what=what)
            return
        except AssertionError:
            if attempt == 2:
                raise


def test_upload_a_real_photo_see_the_heatmap_click_a_patch(app_url, page):
    base_url = app_url.rstrip("/")
    page.goto(base_url)  # the router first (a deep link as the very first request would skip app.py)
    page.get_by_text("see where attention goes").first.wait_for()
    page.goto(base_url + "/image")
    page.get_by_text("Image attention").first.wait_for()
    page.frame_locator(COMPONENT).locator("img#image").wait_for()  # the sample's heatmap

    page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(str(CHINA))
    page.get_by_text("640 × 427 px").first.wait_for()  # the uploaded photo, upright, full size reported
    wait_for(lambda: decode(heatmap_src(page)).shape[:2] == (427, 640), what="the uploaded photo's heatmap")
    page.get_by_text("16 × 24").first.wait_for()  # patches metric

    # click the sky (top left of the heatmap, in the image's own pixels)
    heat = page.frame_locator(COMPONENT).locator("img#image")
    aspect = 640 / 427
    assert settled_box(heat, aspect)["width"] > 200
    click_until_changed(page, heat, 0.06, 0.10, aspect, "the heatmap to change after the click")
    wait_for(lambda: (number_value(page, "Query row"), number_value(page, "Query column")) == (1, 1),
             what="the clicked patch to become the query")
    sky = decode(heatmap_src(page))
    h, w = sky.shape[:2]
    yellow = (sky[..., 0] + sky[..., 1]) / 2 - sky[..., 2]  # cividis: hot is yellow
    assert yellow[: h // 8].mean() > yellow[-h // 5:].mean() + 20  # the sky lights up, not the trees
    # the caption below is redrawn a moment after the heatmap: poll it rather than read it once
    wait_for(lambda: all(r <= 6 for r, _ in strongest(page)), what="the strongest patches to be sky patches")

    # click the trees at the bottom: the map changes and the sky goes dark
    click_until_changed(page, heat, 0.5, 0.95, aspect, "the heatmap to change after the second click")
    wait_for(lambda: number_value(page, "Query row") == 15, what="row 15 to become the query")
    trees = decode(heatmap_src(page))
    yellow2 = (trees[..., 0] + trees[..., 1]) / 2 - trees[..., 2]
    assert yellow2[: h // 8].mean() < yellow[: h // 8].mean() - 20
    assert np.abs(trees - sky).mean() > 10
    wait_for(lambda: all(r >= 7 for r, _ in strongest(page)[:4]), what="the strongest patches to leave the sky")
    # the colour bar and the downloads are on the page
    assert page.get_by_text("Colour scale: cividis").count() >= 1
    assert page.get_by_role("button", name=re.compile("Overlay PNG \\(640 × 427\\)")).count() == 1
