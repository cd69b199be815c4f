"""The text page as the class sees it, in a real headless Chromium (issue "The visualisation is the interface").

* 1280 x 720 (projector): the highlighted tokens, and the matrix, start inside the first screen.
* Every token of the view is readable: WCAG contrast >= 4.5 of its computed colours, light and dark theme.
* A click on a word changes the highlights (the query view takes the word as its query); the keyboard
  (Tab, arrows, Enter) selects a token in the row view.
* The scale choice changes the legend's words and ticks.
* Bytes on the wire: each view change of the ~1,800-token sample is <= 1 MB (the browser's own websocket frames,
  bench/wire.py).
* 390 x 844 (phone): nothing is wider than the screen, and the view comes before the settings.
* A shared link of a 5,000-character text opens the same text and settings in a fresh browser context.

One server for the session (conftest's ``app_url``); each test opens its own context at the size it judges.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_helpers import open_text, set_text, tokens, url, wait_tokens, wait_until  # noqa: E402

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
PROJECTOR = {"width": 1280, "height": 720}
PHONE = {"width": 390, "height": 844}

#: the WCAG contrast of each token's computed text colour on its computed background (transparent: the page's)
CONTRAST_JS = """els => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = c => { const l = c.slice(0, 3).map(v => { v /= 255; return v <= 0.04045 ? v / 12.92 :
                     Math.pow((v + 0.055) / 1.055, 2.4); }); return 0.2126 * l[0] + 0.7152 * l[1] + 0.0722 * l[2]; };
  const page = rgb(getComputedStyle(document.querySelector('[data-testid="stApp"]')).backgroundColor);
  return els.map(e => {
    const s = getComputedStyle(e); let bg = rgb(s.backgroundColor);
    if (bg.length === 4 && bg[3] === 0) bg = page;
    const a = lum(rgb(s.color)), b = lum(bg);
    return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  });
}"""


def _load_wire():
    spec = importlib.util.spec_from_file_location("attnviz_bench_wire", ROOT / "bench" / "wire.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def projector(browser):
    ctx = browser.new_context(viewport=PROJECTOR)
    ctx.set_default_timeout(90_000)
    yield ctx.new_page()
    ctx.close()


def test_the_view_is_on_the_first_screen_and_every_token_is_readable(projector, app_url):
    page = projector
    open_text(page, app_url)
    first = page.locator(".tv-tok").first.bounding_box()
    assert first["y"] < PROJECTOR["height"] - 40, first  # the highlighted text starts inside 1280 x 720
    settings = page.get_by_role("combobox", name="Similarity function").bounding_box()
    assert settings["x"] > first["x"] and settings["y"] < PROJECTOR["height"]  # the settings sit beside it
    ratios = page.locator(".tv-tok").evaluate_all(CONTRAST_JS)
    assert len(ratios) == 41 and min(ratios) >= 4.5, min(ratios)
    page.goto(f"{app_url}/text?sample=long&v=matrix")
    heat = page.locator(".js-plotly-plot").first
    heat.wait_for()
    box = heat.bounding_box()
    assert box["y"] < 300 and box["width"] > box["height"], box  # the matrix leads and is wider than tall


def test_dark_theme_tokens_are_readable(browser, app_url):
    ctx = browser.new_context(viewport=PROJECTOR, color_scheme="dark")
    page = ctx.new_page()
    try:
        open_text(page, app_url, "?sample=bank")
        ratios = page.locator(".tv-tok").evaluate_all(CONTRAST_JS)
        assert len(ratios) > 10 and min(ratios) >= 4.5, min(ratios)
        assert page.locator(".tv-root").first.get_attribute("data-theme") == "dark"
    finally:
        ctx.close()


def test_a_click_on_a_word_and_the_keyboard_change_the_highlight(projector, app_url):
    page = projector
    open_text(page, app_url)
    before = tokens(page)
    kitten = next(i for i, t in enumerate(before) if t["text"] == "kitten")
    page.locator(".tv-tok").nth(kitten).click()  # the query view: the word becomes the query
    query = page.get_by_role("textbox", name="Query word or phrase (or click a word)")
    wait_until(lambda: query.input_value() == "kitten", what="the clicked word as the query")
    after = wait_tokens(page, lambda s: min(s, key=lambda t: t["rank"])["text"] == "kitten")
    assert [a["bg"] for a in after] != [b["bg"] for b in before]

    page.get_by_text("One token's row", exact=True).click()
    picker = page.get_by_role("combobox", name="Token whose row to show (or click a word)")
    picker.wait_for()
    rows = wait_tokens(page, lambda s: s[0]["selected"])  # token 0's row, marked as selected
    page.locator(".tv-tok").first.focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    wait_until(lambda: picker.input_value().startswith("3 · "), what="the keyboard's token in the picker")
    moved = wait_tokens(page, lambda s: s[3]["selected"] and [t["q"] for t in s] != [t["q"] for t in rows])
    assert moved[3]["selected"] and not moved[0]["selected"]


def test_the_scale_choice_changes_the_legend(projector, app_url):
    page = projector
    open_text(page, app_url)
    words = page.locator(".tv-words").first
    wait_until(lambda: "this view's maximum" in words.inner_text(), what="the view scale's words")
    ticks_view = page.locator(".tv-tick").all_inner_texts()
    page.get_by_text("0 to 1", exact=True).click()
    wait_until(lambda: "0 to 1 (absolute)" in page.locator(".tv-words").first.inner_text(), what="the absolute words")
    ticks_abs = page.locator(".tv-tick").all_inner_texts()
    assert ticks_abs[-1] == "1" and ticks_view[-1] != "1" and ticks_abs != ticks_view
    wait_until(lambda: "c=absolute" in url(page), what="the scale in the link")


def test_each_view_change_sends_at_most_1_mb(projector, app_url):
    wire = _load_wire()
    got = wire.measure_views(projector, app_url, "long")
    for view in ("row", "matrix", "model", "query"):
        assert 0 < got[view]["bytes"] <= wire.LIMIT_BYTES, (view, got[view])


def test_the_phone_layout_fits_the_screen_and_shows_the_view_first(browser, app_url):
    ctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = ctx.new_page()
    page.set_default_timeout(90_000)
    try:
        for query in ("", "?v=matrix", "?v=model"):
            open_text(page, app_url, query)
            page.wait_for_timeout(1500)
            main_width = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollWidth")
            assert main_width <= PHONE["width"], (query, main_width)
            wide = page.evaluate("""w => Array.from(document.querySelectorAll('[data-testid=stMain] *'))
                .filter(e => !e.closest('.katex-mathml'))  // MathML for screen readers: clipped to 1 px, never seen
                .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.right > w + 0.5; })
                .map(e => e.tagName + '.' + (e.className && e.className.baseVal !== undefined ? e.className.baseVal
                     : e.className)).slice(0, 5)""", PHONE["width"])
            assert not wide, (query, wide)
            view_top = page.locator(".tv-tok").first.bounding_box()["y"]
            settings_top = page.get_by_role("combobox", name="Similarity function").bounding_box()["y"]
            assert view_top < settings_top  # the visual before the settings
    finally:
        ctx.close()


def test_a_shared_link_of_a_5000_character_text_opens_the_same_view(browser, projector, app_url):
    text = (ROOT / "attnviz" / "assets" / "text_en_long.txt").read_text(encoding="utf-8")[:4996].rstrip() + " end"
    assert 4990 <= len(text) <= 5000
    page = projector
    open_text(page, app_url)
    set_text(page, text)
    wait_tokens(page, lambda s: len(s) > 500)
    wait_until(lambda: "text=" in url(page), what="the text in the link")  # the run has finished
    page.get_by_role("combobox", name="Similarity function").click()
    page.get_by_role("option", name="Euclidean (negative distance)").click()
    wait_until(lambda: "s=euclidean" in url(page), what="the similarity in the link")
    page.get_by_text("One token's row", exact=True).click()
    wait_until(lambda: "v=row" in url(page) and "s=euclidean" in url(page) and "text=" in url(page), what="the link")
    link = url(page)
    assert "sample=" not in link and len(link) < len(text)  # compressed, and no sample's name
    shown = tokens(page)

    fresh = browser.new_context(viewport=PROJECTOR)  # a student's browser: nothing shared but the link
    other = fresh.new_page()
    other.set_default_timeout(90_000)
    try:
        other.goto(link)
        again = wait_tokens(other, lambda s: len(s) == len(shown))
        assert other.get_by_role("textbox", name="Your text").input_value() == text
        assert re.search(r"euclidean", other.get_by_role("combobox", name="Similarity function").input_value(), re.I)
        assert other.get_by_role("radio", name="One token's row").is_checked()
        assert [t["text"] for t in again] == [t["text"] for t in shown] and [t["q"] for t in again] == [t["q"] for t in shown]
    finally:
        fresh.close()
