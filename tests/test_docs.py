"""docs/api.md cannot rot: every ```python block runs, in order, in one namespace, in a temporary folder;
and every ``attnviz.NAME`` the page mentions exists."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

import attnviz

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """(line number, code) of each fenced block whose info string is exactly ``python``."""
    blocks, lines = [], markdown.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start, body = i + 1, []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append((start + 1, "\n".join(body) + "\n"))
        i += 1
    return blocks


def test_api_examples_run(tmp_path, monkeypatch, capsys):
    blocks = python_blocks(API.read_text(encoding="utf-8"))
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)  # the examples save files
    namespace: dict = {"__name__": "docs_api"}
    t0 = time.monotonic()
    for line, code in blocks:
        try:
            exec(compile(code, f"{API}:{line}", "exec"), namespace)
        except Exception as err:  # name the block that broke
            pytest.fail(f"docs/api.md block at line {line} fails: {type(err).__name__}: {err}")
    assert time.monotonic() - t0 < 60
    for name in ("bank.html", "bank.json", "bank.csv", "bank.png", "overlay.png"):
        assert (tmp_path / name).stat().st_size > 0
    out = capsys.readouterr().out
    assert "EmptyText - " in out and "UnknownSimilarity - " in out


def test_api_page_names_exist():
    text = API.read_text(encoding="utf-8")
    for name in sorted(set(re.findall(r"\battnviz\.([A-Za-z_]\w*)", text))):
        if name in {"text", "image", "models", "render", "devices", "settings"}:
            continue  # sub-modules, checked by the imports the blocks run
        assert hasattr(attnviz, name), f"docs/api.md mentions attnviz.{name}, which does not exist"


def test_the_deployment_guide_covers_settings_scaling_and_measured_numbers():
    import tomllib

    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    for var in set(re.findall(r"ATTNVIZ_[A-Z_]+", (ROOT / "attnviz" / "settings.py").read_text(encoding="utf-8"))):
        assert f"`{var}`" in deploy, f"{var} (attnviz/settings.py) is not documented in docs/deploy.md"
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    for section, values in config.items():
        for key in values:
            assert f"`{section}.{key}`" in deploy, f".streamlit/config.toml's {section}.{key} is not in docs/deploy.md"
    for must in ("sticky sessions", "websocket", "load balancer", "/_stcore/health", "--gpus all", "requirements.txt"):
        assert must in deploy
    # sessions per process and memory per session are measured by the load test, never guessed here
    assert "docs/limits.md" in deploy
    if (ROOT / "docs" / "limits.md").exists():
        assert "placeholder" not in deploy, ("docs/limits.md now exists: quote its measured sessions per process "
                                             "and memory per session in docs/deploy.md, and drop the placeholder")
