"""CI must not pass without the real-browser tests: with ATTNVIZ_REQUIRE_BROWSER=1 (set by .ci/run) a missing
Chromium or playwright fails tests/browser instead of skipping it; locally it still skips.

Each case runs pytest on tests/browser in a subprocess with the browser taken away (no server, no Chromium
is started: the checks come first)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_browser_tests(tmp_path: Path, *, require: bool, no_chromium: bool = False, no_playwright: bool = False):
    env = {k: v for k, v in os.environ.items() if k not in ("ATTNVIZ_REQUIRE_BROWSER", "PYTEST_ADDOPTS")}
    if require:
        env["ATTNVIZ_REQUIRE_BROWSER"] = "1"
    if no_chromium:
        env["ATTNVIZ_CHROMIUM"] = str(tmp_path / "no-such-chromium")
    if no_playwright:  # a `playwright` package that cannot be imported shadows the real one
        fake = tmp_path / "fake" / "playwright"
        fake.mkdir(parents=True)
        (fake / "__init__.py").write_text(
            'raise ModuleNotFoundError("No module named playwright (hidden by the test)", name="playwright")\n')
        env["PYTHONPATH"] = os.pathsep.join([str(fake.parent), str(ROOT)])
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/browser", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts="], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.timeout(150)
@pytest.mark.parametrize("missing", ["chromium", "playwright"])
def test_missing_browser_fails_in_ci_and_skips_locally(tmp_path, missing):
    kw = {"no_chromium": True} if missing == "chromium" else {"no_playwright": True}
    rc, out = run_browser_tests(tmp_path, require=True, **kw)
    assert rc != 0 and "ATTNVIZ_REQUIRE_BROWSER is set" in out, out[-2000:]
    assert " passed" not in out.splitlines()[-1]
    if missing == "chromium":  # (a module's own importorskip is pytest's plain skip locally)
        rc, out = run_browser_tests(tmp_path / "local", require=False, **kw)
        assert rc == 0 and "skipped" in out.splitlines()[-1] and "error" not in out.splitlines()[-1], out[-2000:]


def test_ci_script_requires_the_browser_and_runs_the_default_pytest():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "export ATTNVIZ_REQUIRE_BROWSER=1" in ci and "apt-get install" in ci and "chromium" in ci
    assert ci.rstrip().endswith(".venv/bin/python -m pytest")  # the browser tests are collected by default
    import tomllib

    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "browser" not in str(opts.get("addopts", "")) and opts.get("testpaths") == ["tests"]
