from pathlib import Path

from streamlit.testing.v1 import AppTest

from attnviz.devices import best_device

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


def test_library_never_imports_streamlit():
    for path in (ROOT / "attnviz").rglob("*.py"):
        src = path.read_text(encoding="utf-8")
        assert "import streamlit" not in src and "from streamlit" not in src, path
