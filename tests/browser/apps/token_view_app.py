"""A tiny app for tests/browser/test_token_view_browser.py: the token view with hostile tokens, a weight ramp
and the selection written out. ``?theme=dark`` / ``?theme=light`` forces a palette (default: auto)."""

import streamlit as st

from ui.components import token_view

TOKENS = ["The", "<img src=x onerror=\"document.title='pwned'\">", "kitten", "<script>document.title='pwned'</script>",
          "chased", "a", "red", "ball"] + [f"w{i}" for i in range(24)]
N = len(TOKENS)
WEIGHTS = [i / (N - 1) for i in range(N)]  # 0 .. 1: every part of the palette is on the page
GAPS = [""] + [" "] * (N - 1) + ["."]

theme = st.query_params.get("theme", "auto")
theme = theme if theme in ("auto", "light", "dark") else "auto"
picked = token_view(TOKENS, WEIGHTS, GAPS, key="tv", theme=theme, scale="absolute")
st.write(f"selected: {picked}")
