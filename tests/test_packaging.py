"""Packaging and deployment files: the wheel ships the sample assets, the `attnviz` command lists its
sub-commands, and the Dockerfile builds its environment from requirements.txt the way .ci/run does
(read from both files: there is no container engine here to run it)."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "attnviz" / "assets"
COMMANDS = ("text", "image", "similarities", "devices")


def _setuptools_builds_wheels() -> bool:
    """The venv's setuptools can build the wheel itself (no isolated build env to fetch)."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    from importlib.metadata import version

    major, minor = (int(p) for p in version("setuptools").split(".")[:2])
    return (major, minor) >= (70, 1) or importlib.util.find_spec("wheel") is not None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """`pip wheel . --no-deps` on a copy of what the package is made of (an in-tree build would write
    build/ and *.egg-info into the checkout other jobs are reading)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    shutil.copytree(ROOT / "attnviz", src / "attnviz", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(tmp / "out"), "-q"]
    if _setuptools_builds_wheels():
        cmd.append("--no-build-isolation")  # offline and fast; else pip fetches setuptools from the index
    out = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (whl,) = (tmp / "out").glob("attnviz-*.whl")
    return whl


def test_the_wheel_ships_the_assets_and_the_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = sorted(p.name for p in ASSETS.iterdir() if p.is_file() and p.suffix != ".pyc")
    assert {"LICENSES.md", "china.jpg", "flower.jpg", "shapes.png", "text_en_kitten.txt"} <= set(assets)
    missing = [a for a in assets if f"attnviz/assets/{a}" not in names]
    assert not missing, f"left out of the wheel: {missing} (pyproject.toml [tool.setuptools.package-data])"
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "attnviz").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert any("/" in m.removeprefix("attnviz/") for m in modules)  # the subpackages are really counted
    assert not modules - names, f"modules left out of the wheel: {sorted(modules - names)}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    zf = zipfile.ZipFile(wheel)
    info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert re.search(r"^attnviz\s*=\s*attnviz\.cli:main$", zf.read(info).decode(), re.M)
    meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: torch==2.13.0" in meta
    licences = zf.read("attnviz/assets/LICENSES.md").decode()
    assert "china.jpg" in licences and "flower.jpg" in licences


def test_the_installed_wheel_finds_its_samples(wheel, tmp_path):
    """Unpacked alone (not the editable checkout): the samples load through importlib.resources."""
    zipfile.ZipFile(wheel).extractall(tmp_path)
    code = ("import attnviz, attnviz.image as im, attnviz.text; from importlib.resources import files\n"
            "print(attnviz.__file__)\n"
            "print(im.load_image(im.sample_path('china.jpg')).size)\n"
            "print(len(files('attnviz.assets').joinpath('text_en_kitten.txt').read_text('utf-8')) > 20)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    where, size, text_ok = out.stdout.split("\n")[:3]
    from PIL import Image

    with Image.open(ASSETS / "china.jpg") as photo:
        expected = str(photo.size)
    assert Path(where).is_relative_to(tmp_path) and size == expected and text_ok == "True"


def test_attnviz_help_lists_the_commands():
    exe = Path(sys.executable).with_name("attnviz")
    if not exe.exists():
        pytest.skip("the `attnviz` console script is not installed in this environment (pip install -e .)")
    t0 = time.monotonic()
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - t0 < 60
    assert out.returncode == 0, out.stderr
    listed = re.findall(r"^ {4}(\w+)\s", out.stdout, re.M)
    assert set(COMMANDS) <= set(listed), out.stdout


# --------------------------------------------------------------------------------- Dockerfile vs CI


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash continuations joined and comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not cur:
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        out.append((cur + line).strip())
        cur = ""
    return [ln for ln in out if ln]


def _pip_installs(command: str) -> list[tuple[str, str, list[str]]]:
    """Each `python3 -m venv V` ... `V/bin/pip install ARGS` in a shell command: (venv, pip, args)."""
    found = []
    for part in re.split(r"&&|;", command):
        words = shlex.split(part)
        if len(words) >= 3 and words[1] == "install" and words[0].endswith("/bin/pip"):
            found.append((words[0][: -len("/bin/pip")], words[0], words[2:]))
    return found


def _requirement_files(args: list[str]) -> tuple[list[str], list[str]]:
    """(files given with -r, anything else that is not an index option): nothing may bypass the files."""
    files, other, it = [], [], iter(args)
    for a in it:
        if a in ("-r", "--requirement"):
            files.append(next(it))
        elif a in ("--extra-index-url", "--index-url"):
            next(it)
        elif a not in ("-q", "--quiet", "--no-cache-dir"):
            other.append(a)
    return files, other


def _requirements(path: Path) -> list[str]:
    """Requirement lines of a file, following -r includes."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            lines += _requirements(path.parent / line[3:].strip())
        elif line:
            lines.append(line)
    return lines


def _docker_install() -> tuple[list[str], str, list[str]]:
    docker = _logical_lines((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    runs = [(i, ln[4:]) for i, ln in enumerate(docker) if ln.startswith("RUN ") and "pip install" in ln]
    assert len(runs) == 1, "the image installs its Python packages in exactly one step"
    i, cmd = runs[0]
    return docker[:i], cmd, docker


def test_the_dockerfile_installs_like_ci():
    ci = next(ln for ln in _logical_lines((ROOT / ".ci" / "run").read_text(encoding="utf-8")) if "pip install" in ln)
    before, docker_cmd, docker = _docker_install()
    for cmd in (ci, docker_cmd):
        (venv, pip, args), = _pip_installs(cmd)
        assert f"python3 -m venv {venv}" in cmd, f"{cmd!r}: a fresh venv, then its own pip"
    (_, _, ci_args), = _pip_installs(ci)
    (_, _, docker_args), = _pip_installs(docker_cmd)
    ci_files, ci_other = _requirement_files(ci_args)
    docker_files, docker_other = _requirement_files(docker_args)
    assert ci_files == ["requirements-dev.txt"] and docker_files == ["requirements.txt"]
    assert ci_other == [] and docker_other == [], "no package installed outside the requirements files"
    # CI installs requirements.txt (through requirements-dev.txt's -r) plus test tools; the image the same
    # requirements without the test tools
    ci_reqs = _requirements(ROOT / "requirements-dev.txt")
    app_reqs = _requirements(ROOT / "requirements.txt")
    assert set(app_reqs) <= set(ci_reqs) and "torch==2.13.0" in app_reqs
    # the only extra index is PyTorch's wheel index, chosen by a build argument (CPU by default)
    idx = docker_args[docker_args.index("--extra-index-url") + 1]
    assert idx == "${TORCH_INDEX}"
    arg = next(ln for ln in docker if ln.startswith("ARG TORCH_INDEX="))
    assert arg == "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu"
    # `-e .` needs the package and its metadata in the image before the install
    copied = " ".join(ln for ln in before if ln.startswith("COPY "))
    for need in ("requirements.txt", "pyproject.toml", "README.md", "attnviz"):
        assert need in copied, f"{need} is not copied before the install"


def test_the_image_runs_offline_like_ci():
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for var in ("HF_HUB_OFFLINE=1", "TRANSFORMERS_OFFLINE=1"):
        assert var in docker and var in ci
    base = re.search(r"^ARG BASE_IMAGE=python:(\d+)\.(\d+)", docker, re.M)
    assert base and (int(base[1]), int(base[2])) >= (3, 10)  # pyproject: requires-python >= 3.10
    assert re.search(r'^CMD \["streamlit", "run", "app.py"', docker, re.M)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", "test-artifacts"} <= set(ignored)  # `COPY . .` must not ship a local venv


def test_the_documented_cuda_variant_is_the_same_dockerfile():
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    build = re.search(r"docker build(?:[^\n]*\\\n)*[^\n]*", deploy[deploy.index("## The CUDA variant"):])
    assert build, "docs/deploy.md shows the CUDA build command"
    cmd = build[0]
    assert re.search(r"BASE_IMAGE=nvidia/cuda:\S+", cmd) and re.search(r"TORCH_INDEX=https://download\.pytorch\.org/whl/cu\d+", cmd)
    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM ${BASE_IMAGE}" in docker and "python3-venv" in docker  # CUDA images get Python first
