import json
import subprocess
import sys
from pathlib import Path

from attnviz import SIMILARITIES
from attnviz.cli import main
from attnviz.docs import similarity_reference

ROOT = Path(__file__).resolve().parents[1]


def run(*args, input=None):
    return subprocess.run([sys.executable, "-m", "attnviz", *args], capture_output=True, text=True, input=input,
                          timeout=120, cwd=ROOT)


def test_help_lists_the_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("text", "image", "similarities", "devices"):
        assert cmd in out.stdout


def test_similarities_json_is_the_registry(capsys):
    assert main(["similarities", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(SIMILARITIES)
    assert rows[2]["default_temperature"] == SIMILARITIES[rows[2]["name"]].default_temperature


def test_devices(capsys):
    assert main(["devices", "--json"]) == 0
    assert "cpu" in json.loads(capsys.readouterr().out)["devices"]


def test_bad_usage_exits_2_without_traceback():
    out = run("no-such-command")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    out = run()
    assert out.returncode == 2


def test_generated_docs_are_current():
    """docs/similarities.md is generated from the registry; regenerate with `attnviz similarities --markdown`."""
    assert (ROOT / "docs" / "similarities.md").read_text(encoding="utf-8") == similarity_reference()
    for sim in SIMILARITIES.values():
        assert sim.formula in similarity_reference() and sim.source in similarity_reference()
