"""The main journeys end to end in a real headless Chromium against ``streamlit run app.py``.

1. Text: paste text (with hostile markup in it) -> highlighted tokens, nothing from it runs; switch the
   similarity -> the highlight changes; download the weights (CSV) and the standalone HTML and check them.
2. Image: upload a real photo (scikit-learn's china.jpg saved as a JPEG) -> heatmap; click a patch -> the map
   changes; download the patch weights (CSV) and the overlay (PNG) and check them.
3. A deep link straight to /image as the very first request of a fresh server -> the page with app.py's
   sidebar (device picker, navigation).

Failures leave a full-page screenshot in test-artifacts/ (the ``page`` fixture of conftest.py).
"""

from __future__ import annotations

import base64
import csv
import io
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the shared inert-HTML checker
from inert import assert_inert_html  # noqa: E402

from browser_helpers import settled_box  # noqa: E402
from text_helpers import set_text, tokens, wait_tokens  # noqa: E402

COMPONENT = 'iframe[title*="streamlit_image_coordinates"]'
HOSTILE = "<img src=x onerror=alert(1)> <script>alert(2)</script> [link](javascript:alert(3))"
TEXT = "The kitten chased a red ball, and the old car rusted in the rain. " + HOSTILE


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_err = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # noqa: BLE001 - the page may be mid-rerun
            last_err = err
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_err})")


def download(page, button_name: str, popover: str | None = None) -> tuple[str, bytes]:
    """Click a download button (inside the ``popover`` button's panel, opened first); return (file name, content)."""
    if popover and not page.get_by_role("button", name=button_name).is_visible():
        page.get_by_role("button", name=popover).click()
    button = page.get_by_role("button", name=button_name)
    button.wait_for()
    with page.expect_download(timeout=60_000) as info:
        button.click()
    dl = info.value
    return dl.suggested_filename, Path(dl.path()).read_bytes()


def open_from_home(page, app_url: str, link: str) -> None:
    page.goto(f"{app_url}/")  # the router first, as a visitor would
    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name=link).click()


# ---------------------------------------------------------------------------------------------- text


def test_text_journey_paste_highlight_switch_download(page, app_url):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_from_home(page, app_url, "Text attention")
    wait_tokens(page, lambda s: len(s) > 10)

    set_text(page, TEXT)
    before = wait_tokens(page, lambda s: s[1]["text"] == "kitten" and "".join(x["text"] for x in s).endswith("alert(3))"))
    assert sum(x["w"] for x in before) == pytest.approx(1, abs=3e-2)  # the hovers' 3 significant digits
    assert len({x["bg"] for x in before}) > 3  # colours follow the weights
    # the hostile markup is shown as text and nothing from it became an element or ran
    shown = page.locator(".tv-text").first.inner_text()
    assert HOSTILE in shown
    assert page.locator("img[src='x']").count() == 0
    assert page.locator("script", has_text="alert(2)").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0

    page.get_by_role("combobox", name="Similarity function").click()
    page.get_by_role("option", name="Euclidean (negative distance)").click()
    after = wait_tokens(page, lambda s: len(s) == len(before) and any(abs(a["w"] - b["w"]) > 1e-3 for a, b in zip(s, before)))
    assert [a["bg"] for a in after] != [b["bg"] for b in before]

    name, data = download(page, "Weights (CSV)", popover="Download")
    assert name.endswith(".csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert rows[0][1] == "query"
    weights = np.array([float(r[1]) for r in rows[1:]])
    assert len(weights) == len(after) and weights.sum() == pytest.approx(1, abs=1e-3)
    np.testing.assert_allclose(weights, [s["w"] for s in after], rtol=5.1e-3, atol=1e-9)  # the file holds what is shown

    name, data = download(page, "Highlighted text (HTML)", popover="Download")
    assert name.endswith(".html")
    saved = data.decode("utf-8")
    assert_inert_html(saved, shown=HOSTILE)
    assert "default-src 'none'" in saved  # its CSP blocks scripts even if something slipped through
    spans = saved_tokens(saved)  # the saved highlight holds the same tokens and weights as the view
    assert [t for t, _ in spans] == [s["text"] for s in after]
    np.testing.assert_allclose([w for _, w in spans], [s["w"] for s in after], rtol=5.1e-3, atol=1e-9)
    assert not dialogs, dialogs


def saved_tokens(markup: str) -> list[tuple[str, float]]:
    """(text, data-w) of each ``span.attnviz-tok`` in a saved page, in order."""
    from html.parser import HTMLParser

    class Spans(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.out, self.cur = [], None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "span" and a.get("class") == "attnviz-tok":
                self.cur = ["", float(a["data-w"])]

        def handle_data(self, data):
            if self.cur is not None:
                self.cur[0] += data

        def handle_endtag(self, tag):
            if tag == "span" and self.cur is not None:
                self.out.append(tuple(self.cur))
                self.cur = None

    p = Spans()
    p.feed(markup)
    return p.out


# --------------------------------------------------------------------------------------------- image


def heatmap_src(page) -> str:
    return page.frame_locator(COMPONENT).locator("img#image").get_attribute("src") or ""


def decode(src: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")).astype(float)


@pytest.fixture
def china_jpeg(tmp_path) -> Path:
    from PIL import Image
    from sklearn.datasets import load_sample_image

    path = tmp_path / "my photo.jpg"
    Image.fromarray(load_sample_image("china.jpg")).save(path, "JPEG", quality=92)
    return path


def test_image_journey_upload_heatmap_click_download(page, app_url, china_jpeg):
    from PIL import Image

    open_from_home(page, app_url, "Image attention")
    page.frame_locator(COMPONENT).locator("img#image").wait_for()  # the sample's heatmap first

    page.locator('[data-testid="stFileUploader"] input[type=file]').set_input_files(str(china_jpeg))
    page.get_by_text("640 × 427 px").first.wait_for()
    wait_for(lambda: decode(heatmap_src(page)).shape[:2] == (427, 640), what="the uploaded photo's heatmap")
    before = heatmap_src(page)
    row0 = int(page.get_by_label("Query row").input_value())
    patches = page.locator('[data-testid="stMetric"]').filter(has_text="Patches").first  # the grid the page reports
    rows, cols = map(int, re.fullmatch(r"\s*(\d+) × (\d+)\s*", patches.locator(
        '[data-testid="stMetricValue"]').inner_text()).groups())  # DINOv2's by default: 11 x 16 at 224 px

    heat = page.frame_locator(COMPONENT).locator("img#image")
    for attempt in range(3):  # a click that lands during a rerun is lost: click again
        box = settled_box(heat, 640 / 427)
        # the trees: the middle of the bottom row of patches
        heat.click(position={"x": box["width"] * 0.5, "y": box["height"] * (rows - 0.5) / rows})
        try:
            wait_for(lambda: heatmap_src(page) != before, timeout=20, what="the map to change after the click")
            break
        except AssertionError:
            if attempt == 2:
                raise
    wait_for(lambda: int(page.get_by_label("Query row").input_value()) == rows - 1, what="the clicked row")
    assert row0 != rows - 1
    assert np.abs(decode(heatmap_src(page)) - decode(before)).mean() > 5  # the map really changed
    row, col = int(page.get_by_label("Query row").input_value()), int(page.get_by_label("Query column").input_value())

    name, data = download(page, "Patch weights (CSV)")
    assert name == "my-photo-patches.csv"
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    assert len(table) == rows * cols  # one line per patch
    assert {int(r["row"]) for r in table} == set(range(rows))  # of the grid the page reported
    weight_cols = [c for c in table[0] if "weight" in c or c in ("query", "received", "pooling")]
    assert weight_cols
    for c in weight_cols:
        assert sum(float(r[c]) for r in table) == pytest.approx(1, abs=1e-3)
    query_col = weight_cols[0]
    top = max(table, key=lambda r: float(r[query_col]))
    assert int(top["row"]) >= 0.4 * rows  # the trees attend to trees, not to the sky (the top ~45 %)
    assert (row, col) != (0, 0)

    name, data = download(page, "Overlay PNG (640 × 427)")
    assert name == "my-photo-attention.png"
    assert Image.open(io.BytesIO(data)).size == (640, 427)


# ----------------------------------------------------------------------------------------- deep link


def test_deep_link_to_image_on_a_fresh_server_has_the_sidebar(page, fresh_app_url):
    """The first request a server ever gets is /image (a link shared in class): the page must run inside
    app.py's shell, with the device picker and the navigation in the sidebar, and stray parameters ignored."""
    page.goto(f"{fresh_app_url}/image?s=%3Cscript%3E&t=NaN")
    page.get_by_role("heading", name="Image attention").wait_for()
    page.frame_locator(COMPONENT).locator("img#image").wait_for()  # the sample's heatmap
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Device").first.wait_for()
    nav = page.get_by_test_id("stSidebarNavItems")
    for title in ("Home", "Text attention", "Image attention"):
        assert nav.get_by_role("link", name=title).count() == 1
    assert page.get_by_test_id("stException").count() == 0
    nav.get_by_role("link", name="Text attention").click()  # and the app works from there
    wait_for(lambda: len(tokens(page)) > 10, what="the text page's highlight")
