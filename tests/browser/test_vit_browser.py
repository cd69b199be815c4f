"""DINOv2's own heads on the image page in a real headless Chromium.

1. Open the image page, switch to "DINOv2's own heads", click a patch of the overlay: the picture changes
   (screenshots of the image element compared pixel by pixel) and the clicked patch's row is shown.
2. A click on a thumbnail opens that head.
3. At 1280 x 720 (a classroom projector) the overlay lies inside the first screen.

Screenshots go to /tmp/shots/ (or $ATTNVIZ_SHOTS) for a person to look at; failures also leave a full-page
screenshot in test-artifacts/ (the ``page`` fixture of conftest.py).
"""

from __future__ import annotations

import io
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from browser_helpers import settled_box

pytestmark = pytest.mark.browser

pytest.importorskip("playwright.sync_api")

COMPONENT = 'iframe[title*="streamlit_image_coordinates"]'
SHOTS = Path(os.environ.get("ATTNVIZ_SHOTS", "/tmp/shots"))
ASPECT = 480 / 320  # the sample photo the page opens with


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - the page may be mid-rerun
            pass
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def pixels(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def src_of(page, index: int = 0) -> str:
    return page.frame_locator(COMPONENT).nth(index).locator("img#image").get_attribute("src") or ""


def open_heads_view(page, base_url: str) -> None:
    page.goto(base_url)  # the router first (a deep link as the very first request would skip app.py)
    page.get_by_text("see where attention goes").first.wait_for()
    page.goto(base_url + "/image")
    page.get_by_text("Image attention").first.wait_for()
    page.frame_locator(COMPONENT).first.locator("img#image").wait_for(timeout=120_000)  # the similarity view
    page.locator('[data-testid="stRadio"] label').filter(has_text="DINOv2's own heads").first.click()
    page.get_by_text(re.compile(r"\[CLS\] → patches: layer 11, mean of the heads")).first.wait_for(timeout=120_000)
    wait_for(lambda: page.locator(COMPONENT).count() == 2, what="the overlay and the thumbnails")


def shoot(locator, name: str) -> np.ndarray:
    SHOTS.mkdir(parents=True, exist_ok=True)
    png = locator.screenshot(path=str(SHOTS / name))
    return pixels(png)


def test_heads_view_click_a_patch_and_the_picture_changes(app_url, page):
    base = app_url.rstrip("/")
    open_heads_view(page, base)
    frame = page.locator(COMPONENT).first
    heat = page.frame_locator(COMPONENT).first.locator("img#image")
    box = settled_box(heat, ASPECT)
    assert box["width"] > 300
    before_src = src_of(page)
    before = shoot(frame, "vit-heads-before.png")
    for attempt in range(3):  # a rerun can swallow a click: click again
        box = settled_box(heat, ASPECT)
        heat.click(position={"x": box["width"] * 0.5, "y": box["height"] * 0.8})
        try:
            wait_for(lambda: src_of(page) != before_src, timeout=30, what="the overlay to change after the click")
            break
        except AssertionError:
            if attempt == 2:
                raise
    page.get_by_text(re.compile(r"The chosen patch's row: layer 11, mean of the heads, from patch \(8, 8\)")) \
        .first.wait_for()
    settled_box(heat, ASPECT)
    time.sleep(0.5)  # the image element repaints after its src changes
    after = shoot(frame, "vit-heads-after-click.png")
    assert before.shape == after.shape
    assert np.abs(after - before).mean() > 5, "the picture did not change after the click"
    page.screenshot(path=str(SHOTS / "vit-heads-page.png"))


def test_a_thumbnail_click_opens_that_head(app_url, page):
    open_heads_view(page, app_url.rstrip("/"))
    strip = page.frame_locator(COMPONENT).nth(1).locator("img#image")
    wait_for(lambda: (strip.bounding_box() or {}).get("width", 0) > 300, what="the thumbnails")
    box = strip.bounding_box()
    before_src = src_of(page)
    # seven equal tiles (the mean, then heads 0-5): the middle of the fourth is head 2
    strip.click(position={"x": box["width"] * 3.5 / 7, "y": box["height"] * 0.4})
    page.get_by_text(re.compile(r"layer 11, head 2, from \[CLS\]")).first.wait_for()
    wait_for(lambda: src_of(page) != before_src, what="the overlay to show head 2")
    shoot(page.locator(COMPONENT).nth(1), "vit-thumbnails-head2.png")


def test_at_projector_size_the_overlay_is_in_the_first_screen(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        open_heads_view(page, app_url.rstrip("/"))
        heat = page.frame_locator(COMPONENT).first.locator("img#image")
        settled_box(heat, ASPECT)
        box = page.locator(COMPONENT).first.bounding_box()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "vit-heads-1280x720.png"))
        assert box["y"] >= 0 and box["y"] + box["height"] <= 720, f"the overlay is not in the first screen: {box}"
        assert box["width"] >= 300  # big enough to read on a projector
    finally:
        context.close()
