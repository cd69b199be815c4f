"""Real-browser fixtures: one streamlit server per test session, one Chromium page per test.

* ``app_url``  (session): ``streamlit run app.py`` on a free loopback port, waited for via
  ``/_stcore/health``; stopped (by its own PID) at the end of the session. Its log is printed when a
  test fails to reach it.
* ``browser``  (session): headless Debian Chromium through Python playwright (never ``playwright install``).
* ``page``     (per test): a fresh context + page; on failure a full screenshot goes to
  ``test-artifacts/<test name>.png``.
* ``fresh_app_url`` (per test): a server of the test's own, for what only a never-visited server shows.

Tests that use them are marked ``@pytest.mark.browser``; without /usr/bin/chromium (or playwright)
they are skipped locally — but with ``ATTNVIZ_REQUIRE_BROWSER=1`` (set by ``.ci/run``) a missing browser
or playwright FAILS them, and so does a test module that skips itself for lack of playwright, so CI can
never pass without having run the real-browser tests.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("ATTNVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_TIMEOUT = 90


REQUIRE_BROWSER = os.environ.get("ATTNVIZ_REQUIRE_BROWSER", "").strip().lower() not in ("", "0", "false", "no")


def _missing(reason: str):
    """Skip locally; fail where the browser is required (CI)."""
    if REQUIRE_BROWSER:
        pytest.fail(f"ATTNVIZ_REQUIRE_BROWSER is set but {reason}", pytrace=False)
    pytest.skip(reason)


def browser_problem() -> str | None:
    """Why the real-browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package playwright is not installed (pip install playwright; never `playwright install`)"
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Under ATTNVIZ_REQUIRE_BROWSER a browser test module that skips itself at import (e.g. through
    ``pytest.importorskip("playwright.sync_api")``) is a collection error, not a silent skip."""
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_BROWSER and rep.skipped and isinstance(collector, pytest.Module):
        rep.outcome = "failed"
        rep.longrepr = f"ATTNVIZ_REQUIRE_BROWSER is set but {collector.nodeid} skipped itself: {rep.longrepr}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@contextlib.contextmanager
def streamlit_server(log_dir: Path):
    """``streamlit run app.py`` on a free loopback port (the load test's launcher); yields its URL."""
    if str(ROOT) not in sys.path:  # loadtest/ lives at the repository root
        sys.path.insert(0, str(ROOT))
    from loadtest.run import streamlit_server as serve

    with contextlib.ExitStack() as stack:
        try:
            url, _pid = stack.enter_context(serve(log_dir / "server.log", start_timeout=SERVER_START_TIMEOUT))
        except RuntimeError as err:  # it did not start: its log tail is in the message
            pytest.fail(str(err))
        yield url


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    problem = browser_problem()
    if problem:
        _missing(problem)
    with streamlit_server(tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture
def fresh_app_url(browser, tmp_path):
    """A server of its own, started for this test: its very first request is the test's (e.g. a deep link)."""
    with streamlit_server(tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def chromium_alone():
    """Debian's Chromium under playwright, one per test session, with no server (files open in it too).
    Playwright's sync API allows one instance per thread, so every browser test shares this one."""
    problem = browser_problem()
    if problem:
        _missing(problem)
    from playwright import sync_api

    pw = sync_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.fixture(scope="session")
def browser(app_url, chromium_alone):
    """The shared Chromium, once the app's server is up."""
    return chromium_alone


@pytest.fixture
def page(browser, app_url, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1800})
    context.set_default_timeout(60_000)
    pg = context.new_page()
    try:
        yield pg
    finally:
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            ARTIFACTS.mkdir(exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
            try:
                pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            except Exception:  # a crashed page must not hide the test's own failure
                pass
        context.close()
