"""The token view: the user's text as clickable tokens, drawn by a Streamlit Custom Components v2
component (inline, no iframe). Click a token (or Tab to the text, arrows, Enter/Space): its index comes
back to Python.

The data (tokens, gaps, 8-bit weights, colours) is built by ``attnviz.highlight.token_view_payload``;
``tokens.js`` writes every string with ``textContent``, so no token can become markup. The JS and CSS
live beside this file and are read once, at import. See docs/token-view.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import streamlit as st

from attnviz.highlight import token_view_payload
from attnviz.render import DEFAULT_COLORMAP

_HERE = Path(__file__).resolve().parent
JS = (_HERE / "tokens.js").read_text(encoding="utf-8")
CSS = (_HERE / "tokens.css").read_text(encoding="utf-8")
NAME = "attnviz_token_view"

_mount = st.components.v2.component(NAME, css=CSS, js=JS)


def _noop() -> None:  # a state needs an on_<name>_change callback to be kept
    pass


def _index(value, n: int) -> int | None:
    """A selection from the browser is user input: an int in range, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    i = int(value)
    return i if i == value and 0 <= i < n else None


def current_selection(key: str, n: int) -> int | None:
    """The token last selected in the view with this ``key`` (its kept state), or None."""
    state = st.session_state.get(key) if key in st.session_state else None
    return _index(state.get("selected"), n) if isinstance(state, dict) else None


def token_view(tokens: Sequence[str], weights, gaps: Sequence[str] | None = None, *, key: str,
               selected: int | None = None, scale: str = "view", theme: str = "auto",
               labels: Sequence[str] | None = None, classroom: bool = False, label: str = "attention weight",
               uniform: float | str | None = "auto", cmap: str = DEFAULT_COLORMAP,
               on_select: Callable[[], None] | None = None, vmin: float | None = None,
               vmax: float | None = None, controlled: bool = False) -> int | None:
    """Show ``tokens (n,)`` with ``gaps (n + 1,)`` between them (``"".join`` of gap, token, gap, ... is the
    text), each coloured by ``weights (n,)``; return the index of the selected token, or None.

    ``selected`` is the selection before the user picks one; ``scale``: ``"view"`` (0 to this view's
    maximum) or ``"absolute"`` (0 to 1); ``theme``: ``"auto"`` (the browser follows Streamlit's theme),
    ``"light"`` or ``"dark"``; ``classroom``: larger text. ``on_select`` runs when the selection changes.
    ``controlled``: ``selected`` is always the one drawn (the page keeps the selection in its own state,
    e.g. a token picker that a click also moves); otherwise the user's last click wins.
    """
    n = len(tokens)
    picked = None if controlled else current_selection(key, n)
    payload = token_view_payload(tokens, weights, gaps, labels=labels, scale=scale, theme=theme, cmap=cmap,
                                 selected=picked if picked is not None else selected, classroom=classroom,
                                 label=label, uniform=uniform, vmin=vmin, vmax=vmax)
    result = _mount(key=key, data=payload, default={"selected": payload["selected"]},
                    on_selected_change=on_select or _noop)
    return _index(result.get("selected") if result is not None else None, n)
