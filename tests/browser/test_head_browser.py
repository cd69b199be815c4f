"""A real headless Chromium on How it works, track "Inside a trained head": switch to the track, open the
overview of all heads, click one thumbnail, and see that head opened step by step.

(AppTest cannot click a plotly chart; this is the test that a click on a thumbnail really reaches the page.)
Screenshots at the projector's 1280 x 720 go to /tmp/shots/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")

SHOTS = Path("/tmp/shots")


def wait_for_text(page, text: str, timeout: float = 90.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if page.get_by_text(text, exact=False).count():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {text!r}")


def thumbnail_centre(page, layer: int, head: int) -> tuple[float, float]:
    """Where thumbnail (layer, head) of the layer-by-layer overview is drawn on screen, read from the chart's
    own axes (plotly's data -> pixel mapping), not guessed from the layout."""
    return tuple(page.evaluate(
        """([layer, head]) => {
            const gd = [...document.querySelectorAll('.js-plotly-plot')].find(
                g => g.data && g.data.length > 1 && g.data[1].customdata &&
                     g.data[1].customdata.some(c => c.length === 3));
            const k = gd.data[1].customdata.findIndex(c => c[0] === layer && c[1] === head);
            const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, r = gd.getBoundingClientRect();
            const x = gd.data[1].x[k], y = gd.data[1].y[k];
            return [r.left + xa._offset + xa.l2p(x), r.top + ya._offset + ya.l2p(y)];
        }""", [layer, head]))


def test_clicking_a_thumbnail_opens_that_head(app_url, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(f"{app_url}/how_it_works")
    wait_for_text(page, "Step 1 of 8")
    page.get_by_text("Inside a trained head").first.click()
    wait_for_text(page, "Layer 2, head 5 · step 1. The layer input h")
    page.screenshot(path=str(SHOTS / "head_steps_1280x720.png"))
    page.get_by_text("All heads at a glance", exact=True).first.click()
    wait_for_text(page, "Click a thumbnail to open that head step by step")
    time.sleep(1.5)  # let plotly finish laying out the chart
    page.screenshot(path=str(SHOTS / "head_overview_1280x720.png"))
    for attempt in range(3):  # a click that lands during a rerun is lost: click again
        page.locator("[data-testid='stPlotlyChart']").first.scroll_into_view_if_needed()
        time.sleep(0.5)
        x, y = thumbnail_centre(page, 4, 7)
        page.mouse.move(x, y)
        time.sleep(0.3)
        page.mouse.click(x, y)
        try:
            wait_for_text(page, "Layer 4, head 7 · step 1. The layer input h", timeout=20)
            break
        except AssertionError:
            if attempt == 2:
                raise
    assert page.get_by_text("Layer 2, head 5 · step", exact=False).count() == 0
    time.sleep(1.0)
    # the pickers under the matrix show the cell that is explained (they were away during the overview)
    shown = page.evaluate("[...document.querySelectorAll('[data-testid=stSelectbox] input')].map(e => e.value)")
    assert shown[-2:] == ["0 · [CLS]", "1 · c1"], shown
    page.get_by_text("This number: h_0[1] ('[CLS]')", exact=False).first.wait_for()
    page.screenshot(path=str(SHOTS / "head_opened_1280x720.png"))
    spec = json.dumps(page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].map(g => g.layout.title)"))
    assert "layer 4, head 7" in spec.lower() or "layer 4" in spec.lower()  # the step's matrix is the new head's
