"""Load test of the attnviz Streamlit app (see run.py and docs/limits.md)."""
