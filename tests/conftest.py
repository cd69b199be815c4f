"""Shared test set-up."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="session")
def _streamlit_navigation_only():
    """app.py declares its pages with st.navigation. AppTest re-detects the legacy `pages/` folder on every
    run (a real server does it once, then st.navigation turns it off), and on a rerun it would then execute
    the page file alone, without app.py's sidebar. Tell it the truth: this app does not use MPA v1."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init
    yield
    PagesManager.__init__ = original
