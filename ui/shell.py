"""Make sure every page runs inside app.py's shell (its st.navigation and shared sidebar).

Streamlit still knows the legacy "pages/ folder" mode: on the very first run of a fresh server, a deep link
such as /image executes pages/image.py on its own, without app.py (so without the device picker). A page
that finds itself outside the shell switches the legacy mode off and reruns, which goes through app.py.
"""

from __future__ import annotations

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


def require_shell() -> None:
    """Call first in every page: outside app.py's shell, rerun through it."""
    if getattr(_state, "active", False):
        return
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()
