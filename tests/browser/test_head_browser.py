"""A real headless Chromium on How it works, track "Inside a trained head".

* A sentence: open the overview of all heads, click one thumbnail, see that head opened step by step.
* A photo: pick it, open the 12 x 6 overview of DINOv2's heads, click a thumbnail, see that head's title, click a
  patch of the photo, see the matrices' window move.
* The first screen: at 1280 x 720 the step's first matrix starts above the fold (inside stMain, unscrolled), for
  both inputs; at 390 x 844 nothing is wider than the phone.

(AppTest cannot click a plotly chart; this is the test that a click really reaches the page.)
Screenshots go to /tmp/shots/HEAD/.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")

SHOTS = Path("/tmp/shots/HEAD")
PROJECTOR = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}


def wait_for_text(page, text: str, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.get_by_text(text, exact=False).count():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {text!r}")


def marker_centre(page, n_markers: int, match: list[int]) -> tuple[float, float]:
    """Screen position of the invisible marker (trace 1) whose customdata starts with ``match``, on the chart
    whose trace 1 has ``n_markers`` markers, read from the chart's own axes (plotly's data -> pixel mapping).
    A patch grid's customdata travels as a binary array: there ``match`` is (row, col) and the marker is
    ``row * cols + col`` (row-major, cols read from the markers' distinct x)."""
    return tuple(page.evaluate(
        """([n, match]) => {
            const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
                g => g.data && g.data.length > 1 && g.data[1].x && g.data[1].x.length === n);
            const cd = gd.data[1].customdata;
            let k;
            if (Array.isArray(cd)) {
                k = [...Array(cd.length).keys()].find(i => match.every((v, d) => Number(cd[i][d]) === v));
            } else {
                const cols = new Set(gd.data[1].x).size;
                k = match[0] * cols + match[1];
            }
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
            const x = gd.data[1].x[k], y = gd.data[1].y[k];
            return [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)];
        }""", [n_markers, match]))


def click_marker(page, n_markers: int, match: list[int], then: str) -> None:
    for attempt in range(3):  # a click that lands during a rerun is lost: click again
        time.sleep(0.8)
        x, y = marker_centre(page, n_markers, match)
        if not 0 < y < page.viewport_size["height"]:
            page.mouse.wheel(0, y - page.viewport_size["height"] / 2)
            time.sleep(0.8)
            x, y = marker_centre(page, n_markers, match)
        page.mouse.move(x, y)
        time.sleep(0.3)
        page.mouse.click(x, y)
        try:
            wait_for_text(page, then, timeout=25)
            return
        except AssertionError:
            if attempt == 2:
                raise


def open_track(page, app_url: str, photo: bool) -> None:
    page.goto(f"{app_url}/how_it_works")
    wait_for_text(page, "Step 1 of 8")
    page.get_by_text("Inside a trained head").first.click()
    wait_for_text(page, "Layer 2, head 5 · step 1. The layer input h")
    if photo:
        page.locator("[data-testid=stRadio]").filter(has_text="Look inside").get_by_text("Photo", exact=True).click()
        wait_for_text(page, "Layer 9, head 2 · step 1.")
    time.sleep(2.0)  # let plotly lay the charts out


def first_matrix_top(page, view_key: str) -> float:
    """The top of the step's first chart, in viewport pixels, with stMain unscrolled."""
    page.evaluate("document.querySelector('[data-testid=stMain]').scrollTo(0, 0)")
    time.sleep(0.3)
    box = page.locator(f".st-key-{view_key} [data-testid=stPlotlyChart]").first.bounding_box()
    assert box and box["height"] > 100, box
    return box["y"]


def open_overview(page, app_url: str, photo: bool, prefix: str, timeout: float = 90.0) -> None:
    """The track on the projector, its steps' screenshot, then the overview of every head (and its screenshot)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(PROJECTOR)
    open_track(page, app_url, photo=photo)
    page.screenshot(path=str(SHOTS / f"{prefix}_steps_1280x720.png"))
    page.get_by_text("All heads at a glance", exact=True).first.click()
    wait_for_text(page, "Click a thumbnail to open that head step by step", timeout=timeout)
    time.sleep(1.5)
    page.screenshot(path=str(SHOTS / f"{prefix}_overview_1280x720.png"))


def test_clicking_a_thumbnail_opens_that_head(app_url, page):
    open_overview(page, app_url, photo=False, prefix="head")
    click_marker(page, 72, [4, 7], "Layer 4, head 7 · step 1. The layer input h")
    assert page.get_by_text("Layer 2, head 5 · step", exact=False).count() == 0
    time.sleep(1.0)
    # the pickers under the matrix show the cell that is explained (they were away during the overview)
    shown = page.evaluate("[...document.querySelectorAll('[data-testid=stSelectbox] input')].map(e => e.value)")
    assert shown[-2:] == ["0 · [CLS]", "1 · c1"], shown
    page.get_by_text("This number: h_0[1] ('[CLS]')", exact=False).first.wait_for()
    page.screenshot(path=str(SHOTS / "head_opened_1280x720.png"))
    page.get_by_text("Queries and keys in one picture", exact=True).first.click()
    wait_for_text(page, "Faint lines join each query")
    time.sleep(1.5)
    page.screenshot(path=str(SHOTS / "head_qk_1280x720.png"))


def test_the_photo_overview_opens_a_head_and_a_patch_moves_the_window(app_url, page):
    open_overview(page, app_url, photo=True, prefix="head_photo", timeout=120)
    layout = page.evaluate("""() => { const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
        g => g.data && g.data.length > 1 && g.data[1].x && g.data[1].x.length === 72);
        return [new Set(gd.data[1].y).size, new Set(gd.data[1].x).size]; }""")
    assert layout == [12, 6]  # 12 layers x 6 heads
    click_marker(page, 72, [4, 3], "Layer 4, head 3 · step 1.")
    assert page.get_by_text("Layer 9, head 2 · step", exact=False).count() == 0
    time.sleep(1.5)

    def row_labels() -> list[str]:
        return page.evaluate("""() => { const gd = document.querySelector(
            '.st-key-head_img_view_steps .js-plotly-plot'); return [...gd.data[0].y].map(String); }""")

    before = row_labels()
    assert any(label.endswith("r5c8") for label in before), before  # the default window: the photo's centre
    click_marker(page, 176, [1, 2], "r0c1")
    time.sleep(1.5)
    after = row_labels()
    assert after != before and after[1].endswith("r0c1") and after[-1].endswith("r3c4"), after
    page.screenshot(path=str(SHOTS / "head_photo_moved_1280x720.png"))


@pytest.mark.parametrize("photo", [False, True], ids=["sentence", "photo"])
def test_the_first_matrix_is_on_the_projectors_first_screen(app_url, page, photo):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size(PROJECTOR)
    open_track(page, app_url, photo)
    top = first_matrix_top(page, "head_img_view_steps" if photo else "head_view_steps")
    page.screenshot(path=str(SHOTS / f"head_first_screen_{'photo' if photo else 'text'}_1280x720.png"))
    print(f"first matrix top at 1280 x 720 ({'photo' if photo else 'sentence'}): {top:.0f} px")
    assert top < PROJECTOR["height"] - 120, top  # its top and at least 120 px of it without scrolling


@pytest.mark.parametrize("photo", [False, True], ids=["sentence", "photo"])
def test_nothing_is_wider_than_a_phone(browser, app_url, photo):
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    try:
        open_track(page, app_url, photo)
        time.sleep(1.5)
        main_width = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollWidth")
        assert main_width <= PHONE["width"], main_width
        wide = page.evaluate("""w => Array.from(document.querySelectorAll('[data-testid=stMain] *'))
            .filter(e => !e.closest('.katex-mathml'))  // MathML for screen readers: clipped to 1 px, never seen
            .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > w + 0.5; })
            .map(e => e.tagName + '.' + (e.className && e.className.baseVal !== undefined ? e.className.baseVal
                 : e.className)).slice(0, 5)""", PHONE["width"])
        page.screenshot(path=str(SHOTS / f"head_{'photo' if photo else 'text'}_390x844.png"))
        assert not wide, wide
    finally:
        ctx.close()
