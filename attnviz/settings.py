"""Deployment settings from environment variables (the server's own settings live in .streamlit/config.toml).

| variable | meaning | default |
| --- | --- | --- |
| ``ATTNVIZ_DEVICE`` | default device: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` | ``auto`` |
| ``ATTNVIZ_MODEL_PATH`` | a local Hugging Face model folder for the text pages | the bundled all-MiniLM-L6-v2 |
| ``ATTNVIZ_PAGE_MAX_CHARS`` | text the web page analyses before truncating with a notice | 50000 |
| ``ATTNVIZ_MAX_IMAGE_PIXELS`` | decoded pixels above which an image is refused as a decompression bomb | 40000000 |

A malformed value raises :class:`InvalidParameter` naming the variable, so a misconfigured server says
what is wrong at start-up instead of misbehaving later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InvalidParameter


@dataclass(frozen=True)
class Settings:
    device: str = "auto"
    model_path: str | None = None
    page_max_chars: int = 50_000
    max_image_pixels: int = 40_000_000


def _int(env, name: str, default: int, lo: int, hi: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise InvalidParameter(f"{name} must be a whole number, got {raw!r}.") from None
    if not lo <= value <= hi:
        raise InvalidParameter(f"{name} must be between {lo} and {hi}, got {value}.")
    return value


def env_device(env=None) -> str:
    """``ATTNVIZ_DEVICE`` alone (lower-case, ``auto`` when unset): the default device of the page's
    device picker and of the CLI's ``--device``, without validating the other variables."""
    env = os.environ if env is None else env
    return (env.get("ATTNVIZ_DEVICE") or "auto").strip().lower() or "auto"


def device_choice(options, env=None) -> str:
    """The entry of ``options`` (e.g. ``["auto", "cpu", "cuda:0"]``) that ``ATTNVIZ_DEVICE`` names;
    ``cuda`` means ``cuda:0``; a device this machine lacks falls back to ``auto``."""
    wanted = env_device(env)
    if wanted == "cuda":
        wanted = "cuda:0"
    return wanted if wanted in options else "auto"


def load_settings(env=None) -> Settings:
    """Read the ``ATTNVIZ_*`` variables (from ``env``, default ``os.environ``)."""
    env = os.environ if env is None else env
    model = (env.get("ATTNVIZ_MODEL_PATH") or "").strip() or None
    if model is not None and not os.path.isdir(model):
        raise InvalidParameter(f"ATTNVIZ_MODEL_PATH must be a local model folder; {model!r} is not a folder.")
    return Settings(
        device=env_device(env),
        model_path=model,
        page_max_chars=_int(env, "ATTNVIZ_PAGE_MAX_CHARS", Settings.page_max_chars, 100, 2_000_000),
        max_image_pixels=_int(env, "ATTNVIZ_MAX_IMAGE_PIXELS", Settings.max_image_pixels, 10_000, 178_956_970),
    )
