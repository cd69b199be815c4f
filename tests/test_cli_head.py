"""``attnviz head``: the JSON shape, the swap fields, and bad input as one line with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnviz.cli import main

TEXT = "The kitten sat on the mat."


def _json(capsys, *argv):
    assert main(["head", TEXT, *argv, "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_the_head_numbers(capsys):
    out = _json(capsys, "--layer", "2", "--head", "5")
    n = len(out["tokens"])
    assert out["tokens"][0] == "[CLS]" and out["tokens"][-1] == "[SEP]"
    for name, shape in (("q", (n, 32)), ("k", (n, 32)), ("v", (n, 32)), ("scores", (n, n)), ("weights", (n, n)),
                        ("output", (n, 384))):
        assert np.asarray(out[name]).shape == shape, name
    np.testing.assert_allclose(np.asarray(out["weights"]).sum(1), 1, atol=1e-4)
    assert out["max_abs_diff"] <= 1e-5 and (out["layer"], out["head"]) == (2, 5)
    assert "swapped_weights" not in out


def test_json_with_a_similarity_adds_the_swap(capsys):
    out = _json(capsys, "-l", "-1", "-H", "-1", "--similarity", "cosine", "--temperature", "0.1")
    n = len(out["tokens"])
    assert (out["layer"], out["head"]) == (5, 11)
    assert np.asarray(out["swapped_weights"]).shape == (n, n)
    assert out["drift"] < 1 and out["similarity"] == "cosine" and out["temperature"] == 0.1


def test_identity_swap_through_the_cli(capsys):
    out = _json(capsys, "-l", "1", "-H", "3", "-s", "scaled_dot", "-t", "1")
    assert out["drift"] >= 1 - 1e-6
    np.testing.assert_allclose(out["swapped_weights"], out["weights"], atol=2e-5)


@pytest.mark.parametrize("argv", [
    ["head", TEXT, "--layer", "9", "--head", "0"],
    ["head", TEXT, "--layer", "0", "--head", "12"],
    ["head", TEXT, "--layer", "0", "--head", "0", "-s", "nope"],
    ["head", TEXT, "--layer", "0", "--head", "0", "-t", "2"],
    ["head", TEXT, "--layer", "0", "--head", "0", "-s", "cosine", "-t", "0"],
    ["head", "   ", "--layer", "0", "--head", "0"],
    ["head", TEXT, "--layer", "0"],  # argparse's own error
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv):
    try:
        code = main(argv + ["--device", "cpu"])
    except SystemExit as stop:
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("attnviz") and "Traceback" not in "\n".join(err)


def test_the_table_names_the_strongest_keys(capsys):
    assert main(["head", TEXT, "--layer", "0", "--head", "0", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "strongest key" in out and "kitten" in out
