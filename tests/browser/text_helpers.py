"""Helpers for the text page in a real browser: read the token view's tokens as the reader sees them."""

from __future__ import annotations

import time

#: each token of every token view: its text, the weight and rank its hover shows, and its computed colours
TOKENS_JS = """els => els.map(e => {
  const m = /· weight (\\S+) · rank (\\d+)\\/(\\d+)$/.exec(e.title) || [];
  return {text: e.textContent, w: parseFloat(m[1]), rank: parseInt(m[2]), n: parseInt(m[3]), title: e.title,
          q: parseInt(e.dataset.q), bg: getComputedStyle(e).backgroundColor, fg: getComputedStyle(e).color,
          selected: e.getAttribute("aria-selected") === "true"};
})"""


def tokens(page, view: int = 0) -> list[dict]:
    """The tokens of token view number ``view`` (in page order)."""
    roots = page.locator(".tv-text")
    if roots.count() <= view:
        return []
    return roots.nth(view).locator(".tv-tok").evaluate_all(TOKENS_JS)


def wait_tokens(page, predicate, view: int = 0, timeout: float = 90.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        try:
            got = tokens(page, view)
        except Exception:  # noqa: BLE001 - mid-rerun the element may be replaced
            got = []
        if got and predicate(got):
            return got
        page.wait_for_timeout(250)
    raise AssertionError(f"the token view never matched; last seen: {got[:12]}")


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            if value := predicate():
                return value
        except Exception as err:  # noqa: BLE001 - the page may be mid-rerun
            last = err
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what} (last error: {last})")


def url(page) -> str:
    """The address bar now (``page.url`` is only refreshed while playwright runs; this asks the page)."""
    return page.evaluate("() => location.href")


def open_text(page, base: str, query: str = "") -> None:
    page.goto(f"{base}/text{query}")
    wait_tokens(page, lambda t: len(t) > 5)


def set_text(page, text: str) -> None:
    box = page.get_by_role("textbox", name="Your text")
    box.fill(text)
    box.press("Control+Enter")
