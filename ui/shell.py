"""Make sure every page runs inside app.py's shell (its st.navigation and shared sidebar).

The one workaround for Streamlit's legacy multipage mode lives here (:func:`navigation_only`); the tests
(tests/conftest.py) and the benchmark (bench/apptest.py) call it too.
"""

from __future__ import annotations

import functools
import threading

import streamlit as st

_state = threading.local()  # each session's script runs in its own thread


class shell:
    """``with shell(): nav.run()`` in app.py marks the pages it runs as inside the shell."""

    def __enter__(self):
        _state.active = True
        return self

    def __exit__(self, *exc):
        _state.active = False
        return False


def navigation_only() -> None:
    """Tell Streamlit this app uses ``st.navigation`` only, never the legacy ``pages/`` folder mode.

    Works around: a ``pages/`` folder next to the entry script puts Streamlit 1.x (checked: 1.67) in its
    legacy multipage mode ("MPA v1") on a fresh server's first run — ``PagesManager`` sets its class flag
    ``uses_pages_directory`` from ``Path("pages").exists()`` while the flag is still None — so a deep link
    such as /image runs pages/image.py alone, without app.py (no device picker, no sidebar). Streamlit
    clears the flag only once app.py has called ``st.navigation``; ``AppTest`` resets it to None before
    every run, so there every run would detect the folder again. Hence: the flag off now, and off after
    every ``PagesManager()`` from here on. Idempotent.

    When it can go: ``tests/test_app_shell.py::test_streamlit_still_needs_the_navigation_only_workaround``
    fails (with a message saying so) once Streamlit no longer detects the folder; then delete this
    function, its calls (here, tests/conftest.py, bench/apptest.py) and that test.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    if getattr(PagesManager.__init__, "_attnviz_navigation_only", False):
        return
    original = PagesManager.__init__

    @functools.wraps(original)  # __wrapped__ keeps Streamlit's own __init__ reachable (for that test)
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    init._attnviz_navigation_only = True
    PagesManager.__init__ = init


def require_shell() -> None:
    """Call first in every page: outside app.py's shell (a deep link on a fresh server), rerun through it."""
    if getattr(_state, "active", False):
        return
    navigation_only()
    st.rerun()
