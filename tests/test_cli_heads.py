"""``attnviz heads``: the files it writes are the model's own attention (checked against model_attentions),
and bad input is one line on stderr with exit 2."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from attnviz.cli import main
from attnviz.loaders.hf import default_model_path
from attnviz.text import model_attentions

TEXT = "The kitten sat on the mat."


@pytest.fixture(scope="module")
def ma():
    return model_attentions(TEXT, device="cpu")


def run(capsys, *argv):
    code = main(["heads", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_one_head_png_is_that_heads_picture(capsys, tmp_path, ma):
    out = tmp_path / "h.png"
    code, stdout, _ = run(capsys, TEXT, "--layer", "-1", "--head", "-1", "--out", str(out), "--device", "cpu")
    assert code == 0 and "layer 5, head 11" in stdout
    assert out.read_bytes() == ma.to_png("matrix", 5, 11)
    with Image.open(out) as im:
        assert im.width > 7 * 10 and im.height > 7 * 10  # the cells, the labels, the colour bar


def test_grid_and_rollout(capsys, tmp_path, ma):
    grid, roll = tmp_path / "g.png", tmp_path / "r.png"
    assert run(capsys, TEXT, "--grid", "--out", str(grid), "--device", "cpu")[0] == 0
    assert grid.read_bytes() == ma.head_grid_png()
    assert run(capsys, TEXT, "--rollout", "--out", str(roll), "--device", "cpu")[0] == 0
    assert roll.read_bytes() == ma.to_png("rollout")


def test_html_page_and_json(capsys, tmp_path, ma):
    page = tmp_path / "p.html"
    assert run(capsys, TEXT, "--layer", "2", "--head", "3", "--out", str(page), "--device", "cpu")[0] == 0
    html = page.read_text(encoding="utf-8")
    assert html == ma.to_html(layer=2, head=3)

    class Tags(HTMLParser):
        names: set = set()

        def handle_starttag(self, tag, attrs):
            self.names.add(tag)

    t = Tags()
    t.feed(html)
    assert "img" in t.names and "table" in t.names and not t.names & {"script", "link", "iframe"}
    data = tmp_path / "a.json"
    assert run(capsys, TEXT, "--out", str(data), "--device", "cpu")[0] == 0
    d = json.loads(data.read_text(encoding="utf-8"))
    np.testing.assert_allclose(d["attentions"], ma.attentions, atol=5e-7)
    assert d["tokens"][0] == "[CLS]" and (d["layers"], d["heads"]) == (6, 12)


@pytest.mark.parametrize("argv, message", [
    (["--grid", "--layer", "1"], "leave out --layer"),
    (["--layer", "9"], "layer must be 0..5"),
    (["--head", "-13"], "head must be 0..11"),
])
def test_bad_views_are_one_line(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, TEXT, *argv, "--out", str(tmp_path / "x.png"), "--device", "cpu")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_bad_paths_are_one_line(capsys, tmp_path):
    code, _, err = run(capsys, TEXT, "--out", str(tmp_path / "x.gif"))
    assert code == 2 and "--out must end in" in err
    code, _, err = run(capsys, TEXT, "--out", str(tmp_path / "nowhere" / "x.png"), "--device", "cpu")
    assert code == 2 and "does not exist" in err
    code, _, err = run(capsys, TEXT, "--model", default_model_path() + "/config.json", "--out", str(tmp_path / "x.png"))
    assert code == 2 and "give the folder, not config.json" in err
    code, _, err = run(capsys, "--file", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "x.png"))
    assert code == 2 and "there is no file there" in err
