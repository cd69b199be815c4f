"""ATTNVIZ_DEVICE is the default device of the page's device picker and of the CLI's --device."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnviz.cli import main
from attnviz.image import sample_path
from attnviz.settings import device_choice, env_device, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value, options, expected", [
    (None, ["auto", "cpu"], "auto"),
    ("", ["auto", "cpu"], "auto"),
    (" CPU ", ["auto", "cpu"], "cpu"),
    ("cuda", ["auto", "cpu", "cuda:0", "cuda:1"], "cuda:0"),
    ("cuda:1", ["auto", "cpu", "cuda:0", "cuda:1"], "cuda:1"),
    ("cuda", ["auto", "cpu"], "auto"),  # a device this machine lacks: the page falls back to auto
    ("mps", ["auto", "cpu"], "auto"),
])
def test_device_choice(value, options, expected):
    env = {} if value is None else {"ATTNVIZ_DEVICE": value}
    assert device_choice(options, env) == expected
    assert env_device(env) == load_settings(env).device


def test_the_sidebar_starts_on_the_servers_device(monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ATTNVIZ_DEVICE", "cpu")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert at.sidebar.selectbox(key="device_choice").value == "cpu" and at.session_state["device"] == "cpu"
    monkeypatch.setenv("ATTNVIZ_DEVICE", "cuda:7")  # not on this machine: a new session starts on auto
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and at.sidebar.selectbox(key="device_choice").value == "auto"


def test_the_cli_device_defaults_to_the_setting(monkeypatch, capsys):
    monkeypatch.setenv("ATTNVIZ_DEVICE", "cpu")
    assert main(["text", "The kitten sat.", "--encoder", "random", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device"] == "cpu"
    monkeypatch.setenv("ATTNVIZ_DEVICE", "cuda:7")
    for argv in (["text", "The kitten sat.", "--encoder", "random"], ["image", str(sample_path("shapes.png"))]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "ATTNVIZ_DEVICE='cuda:7'" in err and "Traceback" not in err  # says where the device came from
    assert main(["text", "The kitten sat.", "--encoder", "random", "--device", "cpu", "--json"]) == 0  # flag wins
    assert json.loads(capsys.readouterr().out)["device"] == "cpu"
