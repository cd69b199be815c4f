"""Streamlit-only helpers shared by the pages (the library, attnviz/, never imports streamlit)."""
