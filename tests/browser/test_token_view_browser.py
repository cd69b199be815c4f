"""The token view (ui/components) in a real headless Chromium: click and keyboard selection, hostile
tokens stay text, every token readable (WCAG contrast from the computed colours).

Serves tests/browser/apps/token_view_app.py on a server of its own (same flags as the load test's
launcher, stopped by its PID); the Chromium and the per-test ``page`` come from conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
pytest.importorskip("playwright.sync_api")

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).resolve().parent / "apps" / "token_view_app.py"
N = 32

# Every token span in the component's (open) shadow root: its text, index, computed colours, and the
# first non-transparent background behind it (walking out through the shadow root to the page).
SPANS_JS = """
() => {
  const host = document.querySelector('[data-testid="stBidiComponentIsolated"]');
  if (!host || !host.shadowRoot) return [];
  const opaque = (c) => c && c !== 'transparent' && !/rgba\\(.*,\\s*0\\)$/.test(c);
  const behind = (el) => {
    for (let e = el; e; e = e.parentElement || (e.getRootNode() && e.getRootNode().host)) {
      const c = getComputedStyle(e).backgroundColor;
      if (opaque(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  return [...host.shadowRoot.querySelectorAll('.tv-tok')].map((e) => ({
    i: Number(e.dataset.i), text: e.textContent, color: getComputedStyle(e).color, bg: behind(e),
    title: e.title, label: e.getAttribute('aria-label'), selected: e.getAttribute('aria-selected'),
    tabindex: e.getAttribute('tabindex'), role: e.getAttribute('role'),
  }));
}
"""


def rgb(css: str) -> tuple[float, float, float]:
    nums = css[css.index("(") + 1:css.index(")")].replace(",", " ").split()
    return tuple(float(v) for v in nums[:3])


def luminance(c) -> float:
    lin = [(v / 255) / 12.92 if v / 255 <= 0.04045 else ((v / 255 + 0.055) / 1.055) ** 2.4 for v in c]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a, b) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@contextlib.contextmanager
def serve(script: Path, log_path: Path, start_timeout: float = 90.0, extra: tuple[str, ...] = ()):
    """The load test's launcher (the one place that starts streamlit), serving ``script``; yields its URL."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from loadtest.run import streamlit_server

    try:
        with streamlit_server(log_path, start_timeout, script=script, extra=extra) as (url, _pid):
            yield url
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="module")
def token_app_url(tmp_path_factory):
    with serve(APP, tmp_path_factory.mktemp("token_view") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def dark_app_url(tmp_path_factory):
    """The same app under Streamlit's dark theme: what ``theme="auto"`` must follow."""
    with serve(APP, tmp_path_factory.mktemp("token_view_dark") / "server.log", extra=("--theme.base", "dark")) as url:
        yield url


def spans(page, want=N, timeout=60.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        got = page.evaluate(SPANS_JS)
        if len(got) == want:
            return got
        page.wait_for_timeout(200)
    raise AssertionError(f"the token view never showed {want} tokens: {got[:5]}")


def wait_selected(page, i, timeout=30.0) -> None:
    page.get_by_text(f"selected: {i}", exact=True).wait_for(timeout=timeout * 1000)


def test_click_selects_and_hostile_tokens_stay_text(page, token_app_url):
    page.goto(f"{token_app_url}/")
    got = spans(page)
    wait_selected(page, None)
    assert got[1]["text"] == "<img src=x onerror=\"document.title='pwned'\">"
    assert got[3]["text"] == "<script>document.title='pwned'</script>"
    host_html = page.evaluate("document.querySelector('[data-testid=\"stBidiComponentIsolated\"]').shadowRoot.innerHTML")
    assert "<img" not in host_html and "<script" not in host_html  # escaped text, not elements
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    assert page.evaluate("document.title") != "pwned"
    assert got[2]["title"] == f"kitten · weight {2 / (N - 1):.3g} · rank {N - 2}/{N}"
    assert got[2]["label"].startswith("kitten, weight ") and got[2]["role"] == "option"

    page.locator('[data-testid="stBidiComponentIsolated"] .tv-tok[data-i="6"]').click()  # "red"
    wait_selected(page, 6)
    assert [s["i"] for s in spans(page) if s["selected"] == "true"] == [6]
    page.locator('[data-testid="stBidiComponentIsolated"] .tv-tok[data-i="1"]').click()  # the hostile one
    wait_selected(page, 1)
    assert page.evaluate("document.querySelectorAll('img').length") == 0 and page.evaluate("document.title") != "pwned"


def test_tab_then_enter_selects_a_token(page, token_app_url):
    page.goto(f"{token_app_url}/")
    spans(page)
    wait_selected(page, None)
    focused = "() => { const h = document.activeElement; const a = h && h.shadowRoot && h.shadowRoot.activeElement;" \
              " return a && a.classList.contains('tv-tok') ? Number(a.dataset.i) : null; }"
    at = None
    for _ in range(40):  # Tab through the page's own controls until the token text has the focus
        page.keyboard.press("Tab")
        at = page.evaluate(focused)
        if at is not None:
            break
    assert at == 0  # one Tab stop: the first token (no selection yet)
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(focused) == 2
    page.keyboard.press("Enter")
    wait_selected(page, 2)
    page.wait_for_timeout(300)
    assert page.evaluate(focused) == 2  # the focus stays on the token after the rerun
    page.keyboard.press("ArrowRight")
    page.keyboard.press(" ")
    wait_selected(page, 3)
    tabstops = [s["i"] for s in spans(page) if s["tabindex"] == "0"]
    assert tabstops == [3]


def drawn_theme(page) -> str:
    return page.evaluate("document.querySelector('[data-testid=\"stBidiComponentIsolated\"]')"
                         ".shadowRoot.querySelector('.tv-root').dataset.theme")


@pytest.mark.parametrize("base,theme", [("light", "auto"), ("light", "light"), ("dark", "auto"), ("dark", "dark")])
def test_every_token_is_readable(page, request, base, theme):
    url = request.getfixturevalue("token_app_url" if base == "light" else "dark_app_url")
    page.goto(f"{url}/?theme={theme}")
    got = spans(page)
    assert drawn_theme(page) == base  # "auto" follows Streamlit's theme (its --st-background-color)
    ratios = [(contrast(rgb(s["color"]), rgb(s["bg"])), s["i"], s["color"], s["bg"]) for s in got]
    worst = min(ratios)
    assert worst[0] >= 4.5, worst
    # weight 0 is plain text: the token shows the page's own background
    page_bg = page.evaluate("getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
    assert got[0]["bg"] == page_bg
    assert rgb(page_bg) == ((255, 255, 255) if base == "light" else (23, 22, 20))  # Streamlit 1.67's pages
    assert rgb(got[-1]["bg"]) != rgb(page_bg)  # weight adds colour
    assert contrast(rgb(got[1]["bg"]), rgb(page_bg)) < 1.3  # a small weight only tints the page
    page.screenshot(path=str(request.config.rootpath / "test-artifacts" / f"token_view_{base}_{theme}.png")) \
        if os.environ.get("ATTNVIZ_SCREENSHOTS") else None
