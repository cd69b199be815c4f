"""The arrows of docs/architecture.md, enforced: who may import whom, and no global state at import.

Every import statement is read from the source with ``ast`` (function-level imports included), so a lazy
``import streamlit`` inside a library function is caught too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "attnviz").rglob("*.py"))
PAGES = sorted((ROOT / "pages").glob("*.py"))
UI = sorted((ROOT / "ui").glob("*.py"))
#: the maths core may import only the standard library, torch/numpy and each other
CORE = ("similarity", "attention", "errors", "devices", "settings", "models", "fmt")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path, source: str | None = None) -> list[tuple[str, tuple[str, ...], int]]:
    """(absolute module, imported names, line) for every import in ``path``, relative ones resolved."""
    tree = ast.parse(source if source is not None else path.read_text(encoding="utf-8"), filename=str(path))
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, (), node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            found.append((mod, tuple(a.name for a in node.names), node.lineno))
    return found


def test_the_scanner_sees_relative_and_lazy_imports():
    src = "def f():\n    import streamlit\n    from ..render import _x\n    from . import tokens\n"
    tree_imports = imports(ROOT / "attnviz" / "text" / "probe.py", src)
    assert ("streamlit", (), 2) in tree_imports
    assert ("attnviz.render", ("_x",), 3) in tree_imports
    assert ("attnviz.text", ("tokens",), 4) in tree_imports


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_library_never_imports_streamlit_ui_or_pages(path):
    bad = [(m, line) for m, _, line in imports(path)
           if m.split(".")[0] in ("streamlit", "ui", "pages", "streamlit_image_coordinates")]
    assert not bad, f"{path.relative_to(ROOT)} imports UI code: {bad}"


@pytest.mark.parametrize("name", CORE)
def test_the_maths_core_imports_no_higher_layer(name):
    path = ROOT / "attnviz" / f"{name}.py"
    allowed = {f"attnviz.{c}" for c in CORE}
    bad = [(m, line) for m, _, line in imports(path)
           if m.startswith("attnviz") and m not in allowed]
    assert not bad, f"attnviz/{name}.py reaches above the core: {bad}"


def _private_uses(path: Path) -> list[tuple[str, int]]:
    bad = []
    for mod, names, line in imports(path):
        if not mod.startswith("attnviz"):
            continue
        if any(part.startswith("_") and part != "__init__" for part in mod.split(".")):
            bad.append((mod, line))
        bad += [(f"{mod}.{n}", line) for n in names if n.startswith("_") and not n.startswith("__")]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):  # attnviz.text._load(...) written as an attribute
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id == "attnviz":
                bad.append((ast.unparse(node), node.lineno))
    return bad


@pytest.mark.parametrize("path", PAGES + UI + [ROOT / "app.py"], ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_and_ui_use_only_public_names(path):
    assert not _private_uses(path), f"{path.relative_to(ROOT)} uses private library names: {_private_uses(path)}"


@pytest.mark.parametrize("path", UI, ids=lambda p: str(p.relative_to(ROOT)))
def test_ui_never_imports_pages(path):
    bad = [(m, line) for m, _, line in imports(path) if m.split(".")[0] == "pages"]
    assert not bad


def test_other_packages_never_reach_into_private_library_names():
    """attnviz's own modules may use their package's private names, never another package's."""
    offenders = []
    for path in LIBRARY:
        own = module_name(path).split(".")[:2]  # e.g. ["attnviz", "image"]
        for mod, names, line in imports(path):
            parts = mod.split(".")
            if parts[0] != "attnviz" or parts[:2] == own:
                continue
            offenders += [(str(path.relative_to(ROOT)), f"{mod}.{n}", line) for n in names
                          if n.startswith("_") and not n.startswith("__")]
    assert not offenders, offenders


IMPORT_ALL = r"""
import importlib, json, os, pkgutil, sys, warnings
# third-party packages may set their own filters when imported (torch does): they are not attnviz's doing
for dep in ("numpy", "torch", "PIL.Image", "plotly.graph_objects", "tokenizers", "transformers"):
    importlib.import_module(dep)
before_env = dict(os.environ)
before_filters = list(warnings.filters)
import attnviz
names = ["attnviz"] + [m.name for m in pkgutil.walk_packages(attnviz.__path__, "attnviz.")
                       if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
changed_env = sorted(k for k in set(before_env) | set(os.environ) if before_env.get(k) != os.environ.get(k))
print(json.dumps({"modules": names, "env": changed_env, "filters_changed": list(warnings.filters) != before_filters,
                  "streamlit": "streamlit" in sys.modules}))
"""


def test_importing_the_library_changes_no_global_state():
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report["modules"]) > 10  # really walked the packages
    assert report["env"] == [], f"importing attnviz changed environment variables: {report['env']}"
    assert not report["filters_changed"], "importing attnviz changed the process-wide warning filters"
    assert not report["streamlit"], "importing attnviz pulled in streamlit"


#: docs/architecture.md's layers, lowest first; a module may import only its own layer and the ones below
LAYERS = {
    "core": ("errors", "settings", "devices", "fmt", "similarity", "attention", "models"),
    "loaders": ("loaders",),
    "drawing": ("render", "highlight", "overlay", "figures"),
    "domain": ("text", "image", "vit", "trace", "byo", "export"),
    "classroom": ("walkthrough", "explain", "lab", "hardcases", "measure"),
    "edges": ("state", "pages", "docs", "cli", "cli_text", "cli_image", "cli_head", "cli_heads", "__main__"),
}
ORDER = list(LAYERS)
BELOW = {"loaders": {"core", "loaders"}, "drawing": {"core", "drawing"}}  # loaders and drawing are siblings


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "attnviz" or len(parts) < 2:
        return None
    return next((name for name, members in LAYERS.items() if parts[1] in members), "unknown")


def test_every_library_module_has_a_layer():
    unknown = sorted({module_name(p) for p in LIBRARY if layer_of(module_name(p)) == "unknown"}
                     - {"attnviz.assets"})
    assert not unknown, f"add these to LAYERS and docs/architecture.md: {unknown}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down_the_layers(path):
    own = layer_of(module_name(path))
    if own in (None, "edges", "unknown"):
        return
    allowed = BELOW.get(own) or set(ORDER[: ORDER.index(own) + 1])
    targets = []
    for m, names, line in imports(path):  # `from attnviz import text` names a module too
        targets += [(f"{m}.{n}", line) for n in names] if m == "attnviz" else [(m, line)]
    bad = [(m, line) for m, line in targets if layer_of(m) not in (None, "unknown") and layer_of(m) not in allowed]
    assert not bad, f"{path.relative_to(ROOT)} ({own}) imports upwards: {bad}"


#: emoji and pictographs: Debian's Chromium has no emoji font, so they show as empty boxes (Material icons do not)
_EMOJI = [(0x1F000, 0x1FAFF), (0x2300, 0x23FF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0xFE0F, 0xFE0F)]


@pytest.mark.parametrize("path", PAGES + UI + [ROOT / "app.py", ROOT / "attnviz" / "pages.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_app_draws_no_emoji(path):
    found = [(i, ch) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) for ch in line
             if any(lo <= ord(ch) <= hi for lo, hi in _EMOJI)]
    assert not found, f"{path.relative_to(ROOT)}: emoji {found} (use :material/name: icons)"


def test_test_files_have_unique_basenames():
    """tests/ has no __init__.py: two test files of one name make pytest's whole collection fail."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py") if "__pycache__" not in p.parts]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
