"""A real headless Chromium on the How-it-works page: click cells of the matrix, see each explained.

(AppTest cannot click a plotly chart; this is the test that the click really reaches the page.)
Uses the shared ``app_url`` and ``page`` fixtures of conftest.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]


def wait_for_text(page, text: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.get_by_text(text, exact=False).count():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {text!r}")


def click_cell(page, row: int, col: int, n: int) -> None:
    """Click the centre of cell (row, col) of the first n x n matrix on the page."""
    area = page.locator(".js-plotly-plot .nsewdrag").first
    box = area.bounding_box()
    page.mouse.click(box["x"] + (col + 0.5) * box["width"] / n, box["y"] + (row + 0.5) * box["height"] / n)


def test_clicking_a_matrix_cell_explains_that_number(app_url, page):
    page.goto(f"{app_url}/how_it_works")
    wait_for_text(page, "Step 1 of 8")
    page.get_by_role("button", name="Next ▶").click()
    wait_for_text(page, "Step 2 of 8. Similarity scores")
    page.locator(".js-plotly-plot .nsewdrag").first.wait_for()
    time.sleep(1.0)  # let plotly finish laying out the chart
    for row, col, words in ((1, 4, "row 1 (cat), column 4 (the)"), (5, 0, "row 5 (mat), column 0 (the)")):
        for attempt in range(3):  # a click that lands during a rerun is lost: click again
            click_cell(page, row, col, 6)
            try:
                wait_for_text(page, words, timeout=15)
                break
            except AssertionError:
                if attempt == 2:
                    raise


def test_the_classroom_toggle_enlarges_the_text(app_url, page):
    if "classroom_toggle" not in (ROOT / "app.py").read_text(encoding="utf-8"):
        pytest.skip("app.py does not call ui.classroom.classroom_toggle() yet")
    page.goto(f"{app_url}/how_it_works")
    wait_for_text(page, "Step 1 of 8")
    size = lambda: page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")  # noqa: E731
    before = size()
    page.get_by_text("Classroom mode").first.click()
    deadline = time.time() + 30
    while size() == before and time.time() < deadline:
        time.sleep(0.25)
    assert size() == 20.0 and before < 20.0


# ------------------------------------------------------------------ layout, measured in the browser (issue 16)

PROJECTOR = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}

#: the first plot of the step (its matrix or figure), measured in viewport pixels with stMain scrolled to the top
VISUAL_JS = """() => { document.querySelector('[data-testid=stMain]').scrollTop = 0;
  const e = document.querySelector('[data-testid=stMain] .js-plotly-plot');
  if (!e) return null; const r = e.getBoundingClientRect(); return {top: r.top, width: r.width, height: r.height}; }"""

#: every plot's printed cell numbers (visible ones) and tick labels: boxes, overlaps, and those past the plot area
BOXES_JS = """sel => Array.from(document.querySelectorAll('[data-testid=stMain] .js-plotly-plot')).map(pl => {
  const area = pl.querySelector('.nsewdrag').getBoundingClientRect();
  const boxes = Array.from(pl.querySelectorAll(sel)).map(t => t.getBoundingClientRect()).filter(r => r.width > 0);
  let overlaps = 0, outside = 0;
  for (let i = 0; i < boxes.length; i++) { const a = boxes[i];
    if (sel.includes('heatmap') && (a.left < area.left - 0.5 || a.right > area.right + 0.5)) outside++;
    for (let j = i + 1; j < boxes.length; j++) { const c = boxes[j];
      if (a.left < c.right - 0.5 && c.left < a.right - 0.5 && a.top < c.bottom - 0.5 && c.top < a.bottom - 0.5) overlaps++; } }
  const t = pl.querySelector(sel);
  return {n: boxes.length, overlaps, outside, area: [area.width, area.height], font: t ? parseFloat(getComputedStyle(t).fontSize) : 0,
          heatmap: !!pl.querySelector('.hm')};
})"""

#: elements wider than the screen that are not inside a box that scrolls sideways (a long formula may scroll)
WIDE_JS = """w => Array.from(document.querySelectorAll('[data-testid=stMain] *'))
  .filter(e => !e.closest('.katex-mathml'))
  .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > w + 0.5; })
  .filter(e => { for (let a = e.parentElement; a; a = a.parentElement) { const s = getComputedStyle(a).overflowX;
      if ((s === 'auto' || s === 'scroll') && a.getBoundingClientRect().right <= w + 0.5) return false; } return true; })
  .map(e => e.tagName + '.' + (e.className && e.className.baseVal !== undefined ? e.className.baseVal : e.className)).slice(0, 5)"""


def _context(browser, viewport, **kw):
    ctx = browser.new_context(viewport=viewport, **kw)
    ctx.set_default_timeout(90_000)
    return ctx, ctx.new_page()


def _settled(page, seconds: float = 2.0) -> None:
    page.locator(".js-plotly-plot").first.wait_for()
    time.sleep(seconds)  # plotly lays out after the element appears


def _choose_photo(page) -> None:
    page.get_by_role("combobox", name="Example").click()
    page.get_by_role("option", name="A photo, 3 × 3 patches").click()
    wait_for_text(page, "r0c0")


def _next(page, k: int) -> None:
    page.get_by_role("button", name="Next ▶").click()
    wait_for_text(page, f"Step {k} of 8.")
    _settled(page)


def _classroom(page) -> None:
    size = lambda: page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")  # noqa: E731
    page.get_by_text("Classroom mode").first.click()
    deadline = time.time() + 30
    while size() != 20.0 and time.time() < deadline:
        time.sleep(0.25)
    assert size() == 20.0
    time.sleep(2.5)


def test_the_step_visual_is_on_the_first_screen_at_1280x720(browser, app_url):
    ctx, page = _context(browser, PROJECTOR)
    try:
        page.goto(f"{app_url}/how_it_works")
        wait_for_text(page, "Step 1 of 8.")
        _settled(page)
        seen = {}
        seen["sentence, step 1"] = page.evaluate(VISUAL_JS)
        _next(page, 2)
        seen["sentence, step 2"] = page.evaluate(VISUAL_JS)
        _choose_photo(page)
        _settled(page, 3)
        seen["photo, step 2"] = page.evaluate(VISUAL_JS)
        _classroom(page)
        seen["photo, step 2, classroom"] = page.evaluate(VISUAL_JS)
        page.get_by_role("combobox", name="Example").click()
        page.get_by_role("option", name="A short sentence").click()
        wait_for_text(page, "0·the")
        _settled(page)
        seen["sentence, step 2, classroom"] = page.evaluate(VISUAL_JS)
        for what, box in seen.items():
            # at least 150 px of the step's visual show on the first screen, without scrolling
            assert box is not None and box["top"] < PROJECTOR["height"] - 150, (what, box)
        assert seen["photo, step 2, classroom"]["width"] > seen["photo, step 2"]["width"]  # the projector's matrix is wider
    finally:
        ctx.close()


def test_phone_matrix_numbers_never_overlap_and_the_long_formula_scrolls(browser, app_url):
    ctx, page = _context(browser, PHONE, is_mobile=True, has_touch=True)
    try:
        page.goto(f"{app_url}/how_it_works")
        wait_for_text(page, "Step 1 of 8.")
        _settled(page)
        printed = 0
        for k in range(2, 8):
            _next(page, k)
            for plot in page.evaluate(BOXES_JS, "g.heatmap-label text"):
                assert plot["overlaps"] == 0 and plot["outside"] == 0, (k, plot)
                printed += plot["n"]
            assert page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollWidth") <= PHONE["width"]
            assert not page.evaluate(WIDE_JS, PHONE["width"]), (k, page.evaluate(WIDE_JS, PHONE["width"]))
        assert printed >= 5 * 36  # steps 2-6 print their 6 x 6 (or 6 x 7) numbers, sized to fit
        # step 7's worked sum is longer than the screen: its box scrolls sideways, and the page says so
        long = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid=stMain] .katex-display'))
            .filter(e => e.scrollWidth > e.clientWidth + 20).map(e => getComputedStyle(e).overflowX)""")
        assert long and all(o in ("auto", "scroll") for o in long), long
        assert page.get_by_text("scroll it sideways", exact=False).count() >= 1
        _choose_photo(page)  # 9 x 9 numbers in a phone's width
        page.get_by_role("button", name="◀ Back").click()
        wait_for_text(page, "Step 6 of 8.")
        _settled(page)
        for plot in page.evaluate(BOXES_JS, "g.heatmap-label text"):
            assert plot["overlaps"] == 0 and plot["outside"] == 0, plot
    finally:
        ctx.close()


def test_lab_heatmaps_in_classroom_mode_are_wide_with_readable_ticks(browser, app_url):
    ctx, page = _context(browser, PROJECTOR)
    try:
        page.goto(f"{app_url}/lab")
        wait_for_text(page, "Side by side")
        _settled(page, 3)
        normal = [p for p in page.evaluate(BOXES_JS, ".xtick text") if p["heatmap"]]
        _classroom(page)
        xs = [p for p in page.evaluate(BOXES_JS, ".xtick text") if p["heatmap"]]
        ys = [p for p in page.evaluate(BOXES_JS, ".ytick text") if p["heatmap"]]
        assert len(xs) == 3 and len(ys) == 3  # the three default functions
        for x, y in zip(xs, ys):
            w, h = x["area"]
            assert w > h > 200, x["area"]  # the matrix is wider than tall
            assert x["n"] == y["n"] == 15 and x["overlaps"] == 0 and y["overlaps"] == 0, (x, y)
            assert x["font"] > normal[0]["font"] and x["font"] >= 15  # the tick labels grow with classroom mode
        titles = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid=stMain] .js-plotly-plot'))
            .map(pl => pl.querySelector('.xtitle')).filter(Boolean).map(t => parseFloat(getComputedStyle(t).fontSize))""")
        assert min(titles) >= 19, titles  # axis labels (and the legends, one font) grow too
    finally:
        ctx.close()
