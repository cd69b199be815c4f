"""Cold start: ``import attnviz`` and ``attnviz --help`` load no heavy library (torch, transformers, Pillow,
plotly), checked in fresh interpreters; the lazy exports still give every public name; the CLI's
placeholder help lines say what each sub-command's own parser says."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "PIL", "plotly", "numpy", "tokenizers")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def _fresh(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_attnviz_loads_no_heavy_library():
    assert _fresh("import attnviz, sys; print('torch' in sys.modules)").strip() == "False"
    loaded = json.loads(_fresh(f"import attnviz, attnviz.errors, sys, json; "
                               f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"))
    assert loaded == []


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["samples"], ["samples", "china"], ["nope"]])
def test_cli_without_a_heavy_command_imports_no_heavy_library(argv):
    # what is in sys.modules when the process exits (atexit runs after main() returns or SystemExit)
    code = ("import atexit, json, sys\n"
            f"atexit.register(lambda: sys.__stderr__.write('MODULES=' + json.dumps([m for m in {list(HEAVY)!r} "
            "if m in sys.modules]) + '\\n'))\n"
            f"sys.argv = ['attnviz'] + {argv!r}\n"
            "import runpy; runpy.run_module('attnviz', run_name='__main__')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    line = [ln for ln in out.stderr.splitlines() if ln.startswith("MODULES=")]
    assert line, out.stderr
    assert json.loads(line[-1][len("MODULES="):]) == []
    assert out.returncode == (2 if argv == ["nope"] else 0), out.stderr


def test_help_under_importtime_lists_no_torch():
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "attnviz", "--help"], capture_output=True,
                         text=True, timeout=120, env=ENV)
    assert out.returncode == 0 and "samples" in out.stdout
    imported = {ln.split("|")[-1].strip() for ln in out.stderr.splitlines() if ln.startswith("import time:")}
    assert "attnviz.cli" in imported  # the check reads the right output
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


def test_every_public_name_is_there_lazily():
    import attnviz

    for name in attnviz.__all__:
        assert getattr(attnviz, name) is not None, name
    assert set(attnviz.__all__) <= set(dir(attnviz))
    assert attnviz.attend is attnviz.attention.attend  # the same object as the defining module's
    assert attnviz.analyze_text is attnviz.text.analyze_text
    with pytest.raises(AttributeError):
        attnviz.no_such_name  # noqa: B018


def test_placeholder_help_lines_match_each_command_module():
    from attnviz import cli

    def help_lines(parser):
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        return {a.dest: a.help for a in sub._choices_actions}

    light, full = help_lines(cli.build_parser([None])), help_lines(cli.build_parser())
    assert light == full
    assert set(cli.COMMANDS) <= set(full)


def test_samples_lists_shipped_files_and_refuses_unknown_names(capsys):
    from attnviz.cli import main

    assert main(["samples"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert {"china", "flower", "text_en_bank"} <= set(rows)
    assert all(os.path.isfile(p.strip()) for p in rows.values())
    assert main(["samples", "flower.jpg"]) == 0
    path = capsys.readouterr().out.strip()
    with open(path, "rb") as fh:
        assert fh.read(3) == b"\xff\xd8\xff"  # a JPEG
    assert main(["samples", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("attnviz: Unknown sample 'nope'") and "china" in err and len(err.splitlines()) == 1


#: what no sub-command's --help may import (image's help reads its limits from attnviz.image: numpy and Pillow)
NOT_FOR_HELP = ("torch", "transformers", "plotly", "tokenizers", "streamlit")


@pytest.mark.parametrize("command", ["text", "image", "head", "heads", "similarities", "devices", "samples"])
def test_every_subcommand_help_imports_no_torch(command):
    code = ("import json, sys\n"
            "from attnviz.cli import main\n"
            "try:\n"
            f"    main([{command!r}, '--help'])\n"
            "except SystemExit as e:\n"
            "    assert e.code == 0, e.code\n"
            f"print(json.dumps([m for m in sys.modules if m.split('.')[0] in {list(NOT_FOR_HELP)!r}]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=ENV)
    assert out.returncode == 0, out.stderr
    help_text, modules = out.stdout.rsplit("\n", 2)[0], out.stdout.strip().splitlines()[-1]
    assert f"attnviz {command}" in help_text  # the sub-command's own parser printed its help
    assert json.loads(modules) == []
    if command in ("text", "head", "heads"):  # their help needs nothing but argparse
        light = json.loads(_fresh("import json, sys\nfrom attnviz.cli import main\ntry:\n"
                                  f"    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
                                  f"print('\\n' + json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))\n")
                           .strip().splitlines()[-1])
        assert light == []


def test_the_text_help_names_every_encoder_in_order():
    from attnviz.cli_text import ENCODER_NAMES
    from attnviz.text import ENCODERS

    assert ENCODER_NAMES == tuple(ENCODERS)
