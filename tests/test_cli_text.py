"""`attnviz text`: JSON contract, stdin/file input, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from attnviz.cli import main
from attnviz.cli_text import read_input
from attnviz.errors import EmptyText, InvalidParameter
from attnviz.text import analyze_text, load_model

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The little kitten chased a ball, while the car stayed in the garage."


@pytest.fixture(scope="module", autouse=True)
def model():
    return load_model()


def run_json(capsys, *args) -> dict:
    assert main(["text", *args, "--json"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_json_contract_with_query(capsys):
    d = run_json(capsys, TEXT, "--query", "cat")
    for key in ("tokens", "offsets", "weights", "scores", "similarity", "encoder", "device"):
        assert key in d
    n = len(d["tokens"])
    assert d["similarity"] == "cosine" and d["encoder"] == "contextual" and d["device"] == "cpu"
    assert [TEXT[s:e].lower() for s, e in d["offsets"]] == d["tokens"]  # [start, end) spans into the input
    assert len(d["scores"]) == n and np.asarray(d["weights"]).shape == (n, n)
    assert d["score_kind"] == "query" and sum(d["scores"]) == pytest.approx(1, abs=1e-4)
    assert d["tokens"][int(np.argmax(d["scores"]))] == "kitten"
    ref = analyze_text(TEXT, query="cat")
    np.testing.assert_allclose(d["scores"], ref.scores, atol=1e-5)
    np.testing.assert_allclose(d["weights"], ref.weights, atol=1e-5)


def test_scores_without_query_are_attention_received(capsys):
    d = run_json(capsys, TEXT, "--similarity", "euclidean", "--temperature", "2", "--encoder", "static")
    w = np.asarray(d["weights"])
    assert (d["similarity"], d["temperature"], d["encoder"]) == ("euclidean", 2.0, "static")
    np.testing.assert_allclose(w.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(d["scores"], w.mean(0), atol=1e-5)
    assert d["score_kind"] == "received"


def test_no_matrix_and_token_row(capsys):
    d = run_json(capsys, TEXT, "--no-matrix", "--token", "2", "--merge-words")
    assert d["weights"] is None and d["score_kind"] == "row" and d["merged_words"] is True
    assert d["tokens"][2] == "kitten"


def test_stdin_and_file_input(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("Piped café text".encode())))
    d = run_json(capsys, "-", "--no-matrix")
    assert d["tokens"] == ["pipe", "##d", "cafe", "text"]
    f = tmp_path / "in.txt"
    f.write_text("From a file.", encoding="utf-8")
    assert run_json(capsys, "--file", str(f))["tokens"] == ["from", "a", "file", "."]


def test_table_output_and_html_file(capsys, tmp_path):
    assert main(["text", TEXT, "-q", "cat", "--top", "3", "--html", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("15 tokens · attention from the query 'cat'")
    assert out[-3].split()[:4] == ["1", "2", out[-3].split()[2], "kitten"]
    page = (tmp_path / "out.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "kitten" in page


def test_8000_tokens_with_a_query(capsys):
    base = (ROOT / "attnviz" / "assets" / "text_en_long.txt").read_text(encoding="utf-8")
    long_text = "\n".join([base] * 5)
    d = run_json(capsys, long_text, "--query", "kitten", "--encoder", "static")
    assert len(d["tokens"]) > 8000 and len(d["scores"]) == len(d["tokens"])
    assert d["weights"] is None  # no 8,900 x 8,900 matrix in JSON
    assert any("matrix" in n for n in d["notes"])
    top = d["tokens"][int(np.argmax(d["scores"]))]
    assert top in ("kitten", "cat", "dog")


@pytest.mark.parametrize("args, message", [
    (["   "], "empty"),
    (["hello", "--similarity", "nope"], "Unknown similarity 'nope'"),
    (["hello", "--temperature", "0"], "temperature"),
    (["hello", "--encoder", "glove"], "Unknown encoder"),
    (["--file", "/does/not/exist.txt"], "Cannot read"),
    (["hello", "--device", "cuda:7"], "not available"),
    (["hello", "--model", "/nonexistent/model"], "does not exist"),
    (["hello", "--query", "   "], "query is empty"),
    (["hello", "--token", "99"], "token index"),
])
def test_bad_input_exits_2_with_one_line(capsys, args, message):
    assert main(["text", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attnviz: ") and message in err
    assert "Traceback" not in err


def test_unreadable_inputs(tmp_path):
    binary = tmp_path / "b.bin"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InvalidParameter, match="not UTF-8"):
        read_input(None, str(binary))
    with pytest.raises(InvalidParameter, match="not both"):
        read_input("x", str(binary))
    with pytest.raises(InvalidParameter, match="Cannot read"):
        read_input(None, str(tmp_path))  # a directory

    class Tty(io.StringIO):
        def isatty(self):
            return True

    with pytest.raises(EmptyText):
        read_input(None, None, stdin=Tty())


def test_real_process_exit_codes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ok = subprocess.run([sys.executable, "-m", "attnviz", "text", "-", "--json", "--no-matrix", "-q", "cat"],
                        input="A kitten and a car.".encode(), capture_output=True, env=env, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["tokens"] == ["a", "kitten", "and", "a", "car", "."]
    assert b"Loading weights" not in ok.stderr  # no progress bars on stderr
    bad = subprocess.run([sys.executable, "-m", "attnviz", "text", "", "--json"], capture_output=True, env=env,
                         cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and bad.stdout == b""
    assert bad.stderr.decode().strip() == "attnviz: The text is empty: type or paste some words first."


class _RunsCode:
    """Unpickling this creates ``path``: the proof that a pickle's code ran."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy-tar"])
def test_a_pickled_model_folder_is_one_line_and_its_pickle_never_runs(tmp_path, zip_format):
    import shutil

    import torch
    from safetensors.torch import load_file

    from attnviz.errors import ModelNotFound
    from attnviz.loaders.hf import default_model_path

    src, folder, marker = Path(default_model_path()), tmp_path / "legacy-bert", tmp_path / "PICKLE_RAN"
    folder.mkdir()
    for f in src.iterdir():
        if f.suffix in (".json", ".txt"):
            shutil.copy(f, folder)
    weights = dict(load_file(str(src / "model.safetensors")))
    weights["pooler.extra"] = _RunsCode(str(marker))  # an ordinary-looking state_dict with one object in it
    torch.save(weights, folder / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
    assert not list(folder.glob("*.safetensors"))
    out = subprocess.run([sys.executable, "-m", "attnviz", "text", "--model", str(folder), "hi"], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "\x1b" not in out.stderr, out.stderr  # one line, no colour codes
    assert out.stderr.startswith(f"attnviz: The weights in {str(folder)!r} are a pickle holding Python objects")
    assert "safetensors" in out.stderr and "Warning" not in out.stderr
    assert not marker.exists()
    with pytest.raises(ModelNotFound, match="could run code"):
        load_model(str(folder))
    assert not marker.exists()
    # the same folder's tensors alone (a legacy but plain pytorch_model.bin) load: only the object was refused
    del weights["pooler.extra"]
    torch.save(weights, folder / "pytorch_model.bin", _use_new_zipfile_serialization=zip_format)
    plain = analyze_text(TEXT, model_path=str(folder))
    reference = analyze_text(TEXT)
    np.testing.assert_allclose(plain.scores, reference.scores, atol=1e-6)
