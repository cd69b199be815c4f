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
    wait_for_text(page, "Step 2. Similarity scores")
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
