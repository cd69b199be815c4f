"""Shared test set-up."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the app's ui/ package, also under a bare `pytest` (not `python -m pytest`)
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True, scope="session")
def _streamlit_navigation_only():
    """AppTest resets Streamlit's legacy-``pages/``-mode flag before every run and would then run a page file
    alone, without app.py's sidebar: the one workaround, ``ui.shell.navigation_only``, keeps it off."""
    from ui.shell import navigation_only

    navigation_only()
    yield


@pytest.fixture(scope="session")
def small_photo() -> bytes:
    """A shipped sample as a 640 x 400 JPEG upload: a real photo, small enough for quick page runs."""
    import io

    from PIL import Image

    from attnviz.image import SAMPLES, sample_path

    with Image.open(sample_path(next(iter(SAMPLES.values()))[0])) as im:
        small = im.convert("RGB").resize((640, 400))
    buf = io.BytesIO()
    small.save(buf, "JPEG")
    return buf.getvalue()
