"""docs/limits.md states the limits the code enforces (the deployment guide quotes it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from attnviz import image as im
from attnviz import text as tx
from attnviz.settings import Settings
from attnviz.state import text as ts

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "limits.md").read_text(encoding="utf-8")


def test_text_limits_are_the_code_s():
    assert f"{tx.MAX_TEXT_CHARS:,} characters (`attnviz.text.MAX_TEXT_CHARS`)" in DOC
    assert f"{Settings.page_max_chars:,} characters (`ATTNVIZ_PAGE_MAX_CHARS`" in DOC
    assert f"{tx.MATRIX_MAX_TOKENS:,} tokens (`MATRIX_MAX_TOKENS`)" in DOC
    assert f"| {ts.HEATMAP_TOKENS} tokens |" in DOC
    assert f"| {ts.BATCH_MAX_LINES} lines |" in DOC
    assert f"the text at most {ts.URL_MAX_TEXT_CHARS:,} characters" in DOC
    assert f"query at most {ts.URL_MAX_QUERY_CHARS} printable characters" in DOC
    assert f"| {tx.MAX_QUERY_CHARS:,} characters |" in DOC
    assert f"{ts.PAGE_MAX_TOKENS:,} word pieces (`attnviz.state.text.PAGE_MAX_TOKENS`)" in DOC


def test_image_limits_are_the_code_s():
    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert cfg["server"]["maxUploadSize"] * 2**20 == im.MAX_FILE_BYTES
    assert f"{cfg['server']['maxUploadSize']} MB (`server.maxUploadSize = {cfg['server']['maxUploadSize']}`" in DOC
    assert f"{im.MAX_IMAGE_PIXELS / 1e6:g} megapixels (`ATTNVIZ_MAX_IMAGE_PIXELS`" in DOC
    assert f"at most {im.MAX_PATCHES:,}" in DOC and f"≤ {im.MAX_COMPUTE_SIDE:,} px" in DOC
    assert cfg["runner"]["postScriptGC"] is False and "runner.postScriptGC = false" in DOC
