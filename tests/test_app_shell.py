from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from attnviz.devices import best_device
from attnviz.pages import DINOV2, HOME, MINILM, PAGES, START, START_SENTENCE, page, start_preload

ROOT = Path(__file__).resolve().parents[1]


def test_home_page_says_what_each_page_does_and_offers_the_device():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    text = " ".join(m.value for m in at.markdown)
    assert "see where attention goes" in at.title[0].value
    assert "Computing on" in text
    device = at.sidebar.selectbox(key="device_choice")
    assert device.value == "auto" and "cpu" in device.options[1]
    device.set_value("cpu").run()
    assert not at.exception
    assert at.session_state["device"] == "cpu"
    assert best_device() in at.sidebar.selectbox(key="device_choice").options[0]


def test_the_page_table_is_the_only_page_list():
    """app.py's navigation and the home page's cards both come from attnviz.pages.PAGES."""
    assert {p.path for p in PAGES} == {f"pages/{f.name}" for f in (ROOT / "pages").glob("*.py")}
    assert HOME.path == "pages/home.py" and page("pages/text.py").url_path == "text"
    for p in PAGES:  # emoji render as empty boxes in Debian's Chromium; Material icons everywhere
        assert p.icon.startswith(":material/") and p.icon.endswith(":") and p.icon.isascii(), p
        assert p.title and p.description and "\n" not in p.description
    for src in ("app.py", "pages/home.py"):
        assert "pages/text.py" not in (ROOT / src).read_text(encoding="utf-8"), f"{src} lists pages itself"
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    start, *cards = [(link.proto.page, link.proto.label, link.proto.icon) for link in at.get("page_link")]
    assert sorted(label for _, label, _ in cards) == sorted(p.title for p in PAGES if p is not HOME)  # two columns
    assert all(icon.startswith(":material/") for _, _, icon in cards + [start])
    assert start[1] == f"Start: {START.title}" and START_SENTENCE in " ".join(m.value for m in at.markdown)
    shown = " ".join(c.value for c in at.caption)
    assert all(p.description in shown for p in PAGES if p is not HOME)
    cards_css = (ROOT / "ui" / "components" / "page_style.py").read_text(encoding="utf-8")
    assert '[class*="st-key-card_"] a::after' in cards_css  # each card is one big link


def test_the_models_start_loading_in_the_background_once():
    """app.py's first run starts one background load (MiniLM, then DINOv2 when installed) for the process."""
    import threading

    job = start_preload()
    assert start_preload() is job and start_preload("/elsewhere") is job  # once per process
    assert job.wait(MINILM, timeout=300) and job.status[MINILM] in ("ready", "off")
    assert job.wait(DINOV2, timeout=300) and job.status[DINOV2] in ("ready", "not installed", "off", "failed")
    assert sum(t.name == "attnviz-preload" for t in threading.enumerate()) <= 1
    assert "start_preload(" in (ROOT / "app.py").read_text(encoding="utf-8")


def test_the_toolbar_is_for_viewers_and_pages_use_material_icons():
    import re
    import tomllib

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["client"]["toolbarMode"] == "viewer"  # no "Deploy" button in class
    emoji = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]")
    mine = ["app.py", "pages/home.py", "pages/text.py", *[str(p.relative_to(ROOT)) for p in (ROOT / "ui").rglob("*.py")]]
    assert not [f for f in mine if emoji.search((ROOT / f).read_text(encoding="utf-8"))]


@pytest.mark.parametrize("path", ["pages/home.py", "pages/text.py"])  # the other pages: their own tests
def test_a_deep_link_runs_the_page_inside_app_py(path):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.switch_page(path).run()  # a new session opening /text directly
    assert not at.exception, at.exception
    assert at.title[0].value.startswith(page(path).icon) or path == "pages/home.py"
    assert at.sidebar.selectbox(key="device_choice")  # app.py's sidebar: the page ran inside the shell


def test_streamlit_still_needs_the_navigation_only_workaround():
    """Canary for ui.shell.navigation_only. Streamlit 1.67's own PagesManager, on a fresh server, switches to
    the legacy multipage mode because a pages/ folder sits next to app.py. When this stops being true the
    workaround is dead code."""
    from streamlit.runtime.pages_manager import PagesManager

    streamlit_init = getattr(PagesManager.__init__, "__wrapped__", PagesManager.__init__)
    before = PagesManager.uses_pages_directory
    try:
        PagesManager.uses_pages_directory = None  # a fresh server
        streamlit_init(object.__new__(PagesManager), str(ROOT / "app.py"))
        legacy = PagesManager.uses_pages_directory
    finally:
        PagesManager.uses_pages_directory = before
    assert legacy is True, (
        "Streamlit no longer enters its legacy pages/ mode for this app: delete ui.shell.navigation_only, its "
        "calls in ui/shell.py, tests/conftest.py and bench/apptest.py, and this test.")


def test_library_never_imports_streamlit():
    for path in (ROOT / "attnviz").rglob("*.py"):
        src = path.read_text(encoding="utf-8")
        assert "import streamlit" not in src and "from streamlit" not in src, path
