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
ASPECT = 480 / 320  # the shipped sample of the same photo
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


def shown_grid(page) -> tuple[int, int]:
    """The (rows, cols) the page's "Patches" metric reports (e.g. "11 × 16")."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text="Patches").first
    m = re.fullmatch(r"\s*(\d+) × (\d+)\s*", metric.locator('[data-testid="stMetricValue"]').inner_text())
    assert m, "the Patches metric reads 'rows × cols'"
    return int(m[1]), int(m[2])


def yellowness(img: np.ndarray) -> np.ndarray:
    return (img[..., 0] + img[..., 1]) / 2 - img[..., 2]  # cividis: hot is yellow


def click_cell(page, heat, aspect: float, rows: int, cols: int, r: int, c: int, what: str) -> np.ndarray:
    """Click the centre of patch (r, c) of an even rows x cols split of the heatmap until the page takes it as
    the query (a rerun may swallow a click); return the redrawn heatmap."""
    for attempt in range(3):
        before = heatmap_src(page)
        box = settled_box(heat, aspect)
        heat.click(position={"x": box["width"] * (c + 0.5) / cols, "y": box["height"] * (r + 0.5) / rows})
        try:
            wait_for(lambda: (number_value(page, "Query row"), number_value(page, "Query column")) == (r, c)
                     and heatmap_src(page) != before, timeout=20, what=f"patch ({r}, {c}) as the query ({what})")
            break
        except AssertionError:
            if attempt == 2:
                raise
    time.sleep(0.5)  # the component may send one more frame of the same rerun
    return decode(heatmap_src(page))


def cell_centre(img: np.ndarray, rows: int, cols: int, r: int, c: int) -> np.ndarray:
    """The middle half of patch (r, c) of an even rows x cols split (clear of the query's outline)."""
    h, w = img.shape[:2]
    y0, y1, x0, x1 = (r + 0.25) * h / rows, (r + 0.75) * h / rows, (c + 0.25) * w / cols, (c + 0.75) * w / cols
    return img[int(y0):int(y1), int(x0):int(x1)]


def sky_then_trees(page, heat, aspect: float, rows: int, cols: int, what: str) -> None:
    """A sky patch lights up the sky; a patch of the trees in the bottom row moves the weight off it. The sky is
    the top ~45 % of the photo (as tests/test_image_dinov2.py's pixel mask finds it), whatever the grid.
    Each map is compared with the other one of the same photo, so the photo's own colours cancel out."""
    sky = click_cell(page, heat, aspect, rows, cols, 1, 1, f"{what}: sky")
    h = sky.shape[0]
    ys = yellowness(sky)  # (the overlay leaves the photo as it is at the bottom of the scale, so a map is only
    # compared with another map of the same photo: the trees are yellow-green in the photo itself)
    # the caption below is redrawn a moment after the heatmap: poll it rather than read it once
    wait_for(lambda: all(r < 0.45 * rows for r, _ in strongest(page)),
             what=f"the strongest patches to be sky patches ({what})")
    tree = (rows - 1, cols // 2)
    trees = click_cell(page, heat, aspect, rows, cols, *tree, f"{what}: trees")
    yt = yellowness(trees)
    assert ys[: h // 8].mean() > yt[: h // 8].mean() + 20  # the sky goes dark (measured: 41, 68)
    assert cell_centre(yt, rows, cols, *tree).mean() > cell_centre(ys, rows, cols, *tree).mean() + 20  # the tree lights
    assert np.abs(trees - sky).mean() > 8  # measured: 14, 17
    wait_for(lambda: all(r >= 0.4 * rows for r, _ in strongest(page)[:4]),
             what=f"the strongest patches to leave the sky ({what})")


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
    heat = page.frame_locator(COMPONENT).locator("img#image")
    aspect = 640 / 427
    assert settled_box(heat, aspect)["width"] > 200

    # the default features: DINOv2's tokens on its own patch grid (14 px of a 224 px copy)
    saw = page.get_by_text(re.compile("DINOv2 saw a")).first
    saw.wait_for()
    w, h, vr, vc = map(int, re.search(r"DINOv2 saw a (\d+) × (\d+) px copy of the photo: (\d+) × (\d+) patches",
                                      saw.inner_text()).groups())
    rows, cols = shown_grid(page)
    assert (rows, cols) == (vr, vc) == (h // 14, w // 14)  # the similarity grid is the ViT's own
    assert w == 224 and h == round(224 * 427 / 640 / 14) * 14  # the long side 224, the short one kept to scale
    sky_then_trees(page, heat, aspect, rows, cols, "DINOv2 features")

    # the hand-made features: the photo's own grid of 16 x 24 patches, the same behaviour
    page.get_by_text("Hand-made (colour and texture)").first.click()
    page.get_by_text("16 × 24").first.wait_for()
    rows, cols = shown_grid(page)
    assert (rows, cols) == (16, 24)
    sky_then_trees(page, heat, aspect, rows, cols, "hand-made features")
    # the colour bar and the downloads are on the page
    assert page.get_by_text(re.compile("^Colour scale: what the chosen patch attends to, over the other patches")).count() >= 1
    assert page.get_by_role("button", name=re.compile("Overlay PNG \\(640 × 427\\)")).count() == 1


# ------------------------------------------------------------------------- the link (issue 15) and layout

import os  # noqa: E402

SHOTS = Path(os.environ.get("ATTNVIZ_SHOTS", "/tmp/shots")) / "IMG"
LINK = "/image?sample=china&m=heads&hm=patch&l=7&h=3&r=5&col=6"


def open_link(context, url: str):
    page = context.new_page()
    page.goto(url)
    page.get_by_text("Image attention").first.wait_for()
    page.frame_locator(COMPONENT).first.locator("img#image").wait_for(timeout=120_000)
    return page


def selected_head(page) -> str:
    return page.get_by_role("combobox", name="Head", exact=True).input_value().strip()


def test_a_shared_link_opens_the_same_patch_and_head_in_a_fresh_browser(browser, app_url):
    base = app_url.rstrip("/")
    teacher = browser.new_context(viewport={"width": 1280, "height": 720})
    teacher.set_default_timeout(60_000)
    student = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    student.set_default_timeout(60_000)
    try:
        page = open_link(teacher, base + LINK)
        page.get_by_text(re.compile(r"layer 7, head 3, from patch \(5, 6\)")).first.wait_for()
        assert selected_head(page) == "head 3"
        assert (number_value(page, "Query row"), number_value(page, "Query column")) == (5, 6)
        # the teacher opens head 1 from the thumbnails: the address bar follows
        strip = page.frame_locator(COMPONENT).nth(1).locator("img#image")
        wait_for(lambda: (strip.bounding_box() or {}).get("width", 0) > 300, what="the thumbnails")
        box = strip.bounding_box()
        strip.click(position={"x": box["width"] * 2.5 / 7, "y": box["height"] * 0.4})  # mean, head 0, head 1, ...
        page.get_by_text(re.compile(r"layer 7, head 1, from patch \(5, 6\)")).first.wait_for()
        wait_for(lambda: "h=1" in page.url and "r=5" in page.url and "col=6" in page.url, what="the link to follow")
        shared = page.url
        # the student's phone: a fresh context (no cookies, no session), the copied link
        phone = open_link(student, shared)
        phone.get_by_text(re.compile(r"layer 7, head 1, from patch \(5, 6\)")).first.wait_for()
        assert selected_head(phone) == "head 1"
        assert (number_value(phone, "Query row"), number_value(phone, "Query column")) == (5, 6)
        # the two overlays are the same picture (same photo, patch, layer and head)
        src = lambda pg: pg.frame_locator(COMPONENT).first.locator("img#image").get_attribute("src")  # noqa: E731
        a, b = decode(src(page)), decode(src(phone))
        assert a.shape == b.shape and np.abs(a - b).mean() < 1.0
    finally:
        teacher.close()
        student.close()


def test_a_slow_model_run_says_what_it_is_doing(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    context.set_default_timeout(60_000)
    try:
        page = open_link(context, app_url.rstrip("/") + "/image?sample=flower&m=heads&res=224")
        seen = []
        page.locator('[data-testid="stSelectbox"]').filter(has_text="Model input").first.click()
        page.get_by_role("option", name="518").click()
        status = page.get_by_text(re.compile(r"^Running DINOv2 at (518 × \d+|\d+ × 518) px on (cpu|cuda)"))
        status.first.wait_for(timeout=20_000)  # shown while the forward runs (~2-3 s at 518 on 2 cores)
        seen.append(status.first.inner_text())
        page.get_by_text(re.compile(r"DINOv2 saw a (518 × \d+|\d+ × 518) px copy")).first.wait_for(timeout=120_000)
        wait_for(lambda: status.count() == 0, what="the progress box to go once the page is drawn")
        assert seen and "×" in seen[0]
    finally:
        context.close()


@pytest.mark.parametrize("width,height", [(1280, 720), (390, 844)])
def test_the_overlay_is_in_the_first_screen_and_nothing_is_wider_than_the_screen(browser, app_url, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, is_mobile=width < 500,
                                  has_touch=width < 500)
    context.set_default_timeout(60_000)
    try:
        page = open_link(context, app_url.rstrip("/") + "/image?sample=china&r=3&col=5")
        heat = page.frame_locator(COMPONENT).first.locator("img#image")
        settled_box(heat, ASPECT)
        page.get_by_text(re.compile("^Strongest patches")).first.wait_for()
        time.sleep(1.0)  # fonts and the component's last resize
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"image_{width}x{height}.png"))
        box = page.locator(COMPONENT).first.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"the overlay is not in the first screen: {box}"
        assert box["width"] >= min(300, width - 40)
        # no sideways scrolling, and every Streamlit element (what a person sees: inner parts such as a combobox's
        # input or KaTeX's screen-reader MathML may run past their clipped box) lies inside the screen
        wide = page.evaluate("""() => {
            const main = document.querySelector('[data-testid="stMain"]');
            const els = [...main.querySelectorAll('[data-testid]')].filter(e => e.getBoundingClientRect().width > 0);
            return {doc: document.documentElement.scrollWidth, main: main.scrollWidth,
                    widest: Math.max(...els.map(e => e.getBoundingClientRect().right))};
        }""")
        assert wide["doc"] <= width and wide["main"] <= width and wide["widest"] <= width + 1, wide
    finally:
        context.close()
