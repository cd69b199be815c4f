"""The docs run as written: every code block of README.md and docs/*.md, verbatim, on the shipped samples.

* ```python blocks: exec'd in order in one fresh namespace per file (the blocks of a file share it), in a
  temporary folder;
* ```bash / ```sh / ```shell / ```console blocks (console: the ``$ `` lines; the rest is output): every
  command that starts with ``attnviz`` or ``python -m attnviz`` runs in a shell in a temporary folder and
  must exit 0. Every other command must match one entry of SKIPPED (installs, servers, the benchmark),
  so a new kind of command cannot be skipped silently;
* blocks of any other info string must be listed in NOT_CODE (pictures, signatures, config files);
* every approximate timing the docs claim ("~0.2 s", "about 3 s", "≈ 0.6 s") is listed in CLAIMS with
  the benchmark key that measures it, and is within 2x of that key in docs/benchmarks.json (the run
  docs/benchmarks.md reports; ``python bench/run.py --quick --json > docs/benchmarks.json`` renews it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import attnviz

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BENCH_JSON = ROOT / "docs" / "benchmarks.json"

SHELL = {"bash", "sh", "shell", "console"}
#: info strings of blocks that are not commands or code to run, and why
NOT_CODE = {"": "diagrams and trees", "text": "API signatures", "haproxy": "a load-balancer config file"}
#: commands that start with these run; the rest must be in SKIPPED
RUNNABLE = re.compile(r"^(attnviz|python -m attnviz)(\s|$)")
#: (pattern, why) of the commands that are not run here
SKIPPED = [
    (r"\bpip install\b", "installs packages"),
    (r"\bstreamlit run\b", "starts a server"),
    (r"^docker\s", "builds or runs a container"),
    (r"\bbench/run\.py\b", "the benchmark (minutes); its JSON, docs/benchmarks.json, backs the timing claims"),
    (r"-m loadtest\.run\b", "starts a server and drives 20 sessions for a minute"),
    (r"-m pytest\b", "runs tests (this is a test)"),
]
#: what the blocks of a file must leave in its folder
LEAVES = {
    "docs/api.md": ("bank.html", "bank.json", "bank.csv", "bank.png", "overlay.png"),
    "README.md": ("bank.html", "overlay.png", "weights.json"),
}

CLAIM = re.compile(r"(?:~|≈|\babout |\baround |\broughly )\s*(\d+(?:\.\d+)?)(?:\s*[–-]\s*\d+(?:\.\d+)?)?\s*(ms|s)\b")
#: (file, the claim as written) -> (where the measured value is, its unit). "bench:" keys are paths into
#: docs/benchmarks.json; "setting:" names a default in the code whose value the claim quotes.
CLAIMS = {
    ("docs/deploy.md", "~0.2 s"): ("bench:cold.gc_collect_s", "s"),
    ("docs/limits.md", "~0.2 s"): ("bench:cold.gc_collect_s", "s"),
    ("docs/deploy.md", "~1 s"): ("setting:loadtest/run.py --think", "s"),
    ("docs/limits.md", "~1 s"): ("setting:loadtest/run.py --think", "s"),
}


def fenced_blocks(markdown: str) -> list[tuple[int, str, list[str]]]:
    """(line number of the first code line, info string, code lines) of each fenced block."""
    blocks, lines, i = [], markdown.splitlines(), 0
    while i < len(lines):
        m = re.match(r"^\s*```\s*([\w+-]*)", lines[i])
        if m:
            start, body = i + 1, []
            i += 1
            while not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((start + 1, m.group(1), body))
        i += 1
    return blocks


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    return [(line, "\n".join(body) + "\n") for line, info, body in fenced_blocks(markdown) if info == "python"]


def shell_commands(info: str, body: list[str]) -> list[str]:
    """The commands of a shell block: ``$ `` lines of a console block, every line of the others; a trailing
    backslash continues a command; comments and blank lines are not commands."""
    cmds, current = [], ""
    for raw in body:
        line = raw.rstrip()
        if not current:
            if info == "console":
                if not line.startswith("$ "):
                    continue  # output
                line = line[2:]
            if not line.strip() or line.lstrip().startswith("#"):
                continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        cmds.append((current + line).strip())
        current = ""
    return cmds


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.mark.slow
@pytest.mark.timeout(1800)  # each CLI command is a fresh process that imports torch: seconds each, more under load
@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_code_block_runs_verbatim(doc, tmp_path, monkeypatch, capsys):
    name = _rel(doc)
    monkeypatch.chdir(tmp_path)  # the examples write files
    bin_dir = str(Path(sys.executable).parent)  # `attnviz` and `python` are this environment's
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    namespace: dict = {"__name__": f"docs_{doc.stem}"}
    ran = 0
    t0 = time.monotonic()
    for line, info, body in fenced_blocks(doc.read_text(encoding="utf-8")):
        where = f"{name}:{line}"
        if info == "python":
            try:
                exec(compile("\n".join(body) + "\n", where, "exec"), namespace)
            except Exception as err:  # name the block that broke
                pytest.fail(f"{where}: the python block fails: {type(err).__name__}: {err}")
            ran += 1
        elif info in SHELL:
            for cmd in shell_commands(info, body):
                if not RUNNABLE.match(cmd):
                    assert any(re.search(p, cmd) for p, _ in SKIPPED), (
                        f"{where}: {cmd!r} is neither an attnviz command nor a listed skip (SKIPPED)")
                    continue
                out = subprocess.run(["bash", "-c", "set -eo pipefail\n" + cmd], cwd=tmp_path, env=env,
                                     capture_output=True, text=True, timeout=300)
                assert out.returncode == 0, f"{where}: {cmd!r} exits {out.returncode}: {out.stderr.strip()[-500:]}"
                assert "Traceback" not in out.stderr, f"{where}: {cmd!r}: {out.stderr[-500:]}"
                ran += 1
        else:
            assert info in NOT_CODE, f"{where}: a ```{info} block: run it here, or list it in NOT_CODE with why"
    for leaf in LEAVES.get(name, ()):
        assert (tmp_path / leaf).is_file() and (tmp_path / leaf).stat().st_size > 0, f"{name} should leave {leaf}"
    if name == "docs/api.md":
        assert ran >= 8 and time.monotonic() - t0 < 120
        out = capsys.readouterr().out
        assert "EmptyText - " in out and "UnknownSimilarity - " in out


def test_the_block_reader_sees_every_command():
    md = ("```console\n$ attnviz --help   # x\nusage: ...\n$ python -m attnviz \\\n    devices\n```\n"
          "```bash\n# c\npip install x\nattnviz samples\n```\n")
    (l1, i1, b1), (l2, i2, b2) = fenced_blocks(md)
    assert (l1, i1, l2, i2) == (2, "console", 8, "bash")
    assert shell_commands(i1, b1) == ["attnviz --help   # x", "python -m attnviz      devices"]
    assert shell_commands(i2, b2) == ["pip install x", "attnviz samples"]
    assert [bool(RUNNABLE.match(c)) for c in ("attnviz x", "python -m attnviz", "attnvizz", "cat x | attnviz")] == [
        True, True, False, False]


def _measured(source: str, bench: dict) -> float | None:
    kind, _, key = source.partition(":")
    if kind == "setting":
        path, _, option = key.partition(" ")
        m = re.search(re.escape(f'"{option}"') + r"[^)]*?default=([\d.]+)", (ROOT / path).read_text(encoding="utf-8"))
        return float(m.group(1)) if m else None
    node = bench
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def test_every_timing_claim_is_within_2x_of_the_benchmark():
    bench = json.loads(BENCH_JSON.read_text(encoding="utf-8"))
    found, problems = set(), []
    for doc in DOCS:
        name = _rel(doc)
        for m in CLAIM.finditer(doc.read_text(encoding="utf-8")):
            claim = m.group(0).strip()
            found.add((name, claim))
            if (name, claim) not in CLAIMS:
                problems.append(f"{name}: {claim!r} is not in CLAIMS (map it to the benchmark key that measures it)")
                continue
            source, unit = CLAIMS[(name, claim)]
            value = _measured(source, bench)
            claimed = float(m.group(1)) * (1e-3 if m.group(2) == "ms" else 1)
            if value is None:
                problems.append(f"{name}: {claim!r}: {source} is not measured (docs/benchmarks.json)")
                continue
            value *= 1e-3 if unit == "ms" else 1
            if not claimed / 2 <= value <= claimed * 2:
                problems.append(f"{name}: {claim!r} but {source} = {value:g} s")
    stale = set(CLAIMS) - found
    assert not stale, f"CLAIMS lists claims the docs no longer make: {sorted(stale)}"
    assert not problems, "\n".join(problems)


def test_api_page_names_exist():
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
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
