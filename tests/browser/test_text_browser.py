"""The text page in a real headless Chromium: paste text, see it highlighted, switch the similarity, click."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_helpers import set_text, wait_tokens  # noqa: E402

pytestmark = pytest.mark.browser

TEXT = "The kitten chased a red ball, and the old car rusted in the rain."
TOKENS = ["The", "kitten", "chased", "a", "red", "ball", ",", "and", "the", "old", "car", "rust", "ed", "in", "the", "rain", "."]


def test_paste_text_see_highlights_switch_similarity(page, app_url):
    page.goto(f"{app_url}/")  # the router first, as a visitor would
    page.get_by_test_id("stSidebarNavItems").get_by_role("link", name="Text attention").click()
    wait_tokens(page, lambda s: len(s) > 10)

    set_text(page, TEXT)
    before = wait_tokens(page, lambda s: [x["text"] for x in s] == TOKENS)
    assert sum(x["w"] for x in before) == pytest.approx(1, abs=2e-2)  # query 'cat': one row (3-digit hovers)
    top = min(before, key=lambda x: x["rank"])
    assert top["text"] == "kitten" and top["title"].startswith("kitten · weight")
    assert len({x["bg"] for x in before}) > 3  # the colours really differ by weight
    assert page.locator(".tv-legend").first.is_visible()
    assert page.get_by_role("combobox", name="Sample text").input_value() == "Your own text"  # no longer the sample

    page.get_by_role("combobox", name="Similarity function").click()
    page.get_by_role("option", name="Euclidean (negative distance)").click()
    after = wait_tokens(page, lambda s: [x["text"] for x in s] == TOKENS
                        and any(abs(a["w"] - b["w"]) > 1e-3 for a, b in zip(s, before)))
    assert [a["bg"] for a in after] != [b["bg"] for b in before]  # the highlight changed colour
    deadline = time.monotonic() + 30  # the address bar is updated by the same run, a moment later
    while "s=euclidean" not in page.url and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert "s=euclidean" in page.url and "t=1.0" in page.url and "sample=" not in page.url  # the link follows


def test_click_a_heatmap_cell_picks_its_row(page, app_url):
    page.goto(f"{app_url}/text?v=matrix")
    picker = page.get_by_role("combobox", name="Token (click a word or pick one)")
    picker.wait_for()
    assert picker.input_value() == "0 · the"
    plot = page.locator(".js-plotly-plot .nsewdrag").first
    plot.wait_for()
    box = plot.bounding_box()
    n = 41  # tokens of the kitten sample
    x, y = box["x"] + box["width"] * 3.5 / n, box["y"] + box["height"] * 24.5 / n  # row 24 ('cat'), column 3
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)
    deadline = time.monotonic() + 30
    while picker.input_value() == "0 · the" and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    row = int(picker.input_value().split(" · ")[0])
    assert abs(row - 24) <= 1  # the clicked row's token is now the picked one
    wait_tokens(page, lambda s: s[row]["selected"])  # and the token view below marks it


def test_a_long_text_says_which_window_it_encodes_then_shows_the_matrix(page, app_url):
    """9,001 word pieces: cut to the page's 4,096 with a notice, encoded window by window under a progress bar
    that names the window ("Encoding window 3 of 11"), then the matrix of its first 512 tokens."""
    from attnviz.state.text import PAGE_MAX_TOKENS, encode_text_param

    page.goto(f"{app_url}/text?v=matrix&e=contextual&text={encode_text_param('! ' * 9000 + 'end')}")
    bar = page.locator('[data-testid="stProgress"]').first
    bar.wait_for(timeout=120_000)
    labels = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not page.locator(".js-plotly-plot").count():
        shown = page.evaluate("""() => Array.from(document.querySelectorAll('[data-testid="stProgress"]'),
                                                  e => e.innerText.trim())""")  # read at once: no wait, no race
        labels.update(t.splitlines()[0] for t in shown if t)
        page.wait_for_timeout(100)
    assert labels and all(re.fullmatch(r"Encoding window (\d+) of 11 \(512 word pieces each\)…", t) for t in labels)
    assert page.get_by_text(f"this page reads the first {PAGE_MAX_TOKENS:,}").count() == 1
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.get_by_text("tokens 0–511 of 4096").count() >= 1
    assert not page.locator('[data-testid="stProgress"]').count()  # emptied when the encoding is done
