"""Streamlit custom components of attnviz (Custom Components v2: inline, no iframe, no build step)."""

from .token_view import token_view

__all__ = ["token_view"]
