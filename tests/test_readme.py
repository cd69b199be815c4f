"""The README's two set-up commands stay true: .ci/run runs the README's test command verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Set-up: two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_exactly_two_commands_app_and_tests():
    cmds = _readme_commands()
    assert len(cmds) == 2
    app, tests = cmds
    assert "pip install -r requirements.txt" in app and app.endswith("streamlit run app.py")
    # two malloc arenas: what a class's closed sessions freed goes back to the OS (docs/deploy.md, the Dockerfile)
    from loadtest.run import SERVER_MALLOC_ARENA_MAX

    assert f"MALLOC_ARENA_MAX={SERVER_MALLOC_ARENA_MAX} .venv/bin/streamlit run app.py" in app
    assert "pip install -r requirements-dev.txt" in tests and "pytest" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert _readme_commands()[1] in ci.splitlines()


def test_torch_is_pinned_everywhere():
    assert re.search(r"^torch==2\.13\.0$", (ROOT / "requirements.txt").read_text(), re.M)
    assert '"torch==2.13.0"' in (ROOT / "pyproject.toml").read_text()
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert "-r requirements.txt" in dev and "torch" not in dev.replace("requirements.txt", "")
