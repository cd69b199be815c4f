import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from attnviz import render
from attnviz.errors import InvalidParameter


def test_colormaps_are_monotonic_in_luminance_and_cvd_safe_first():
    assert render.COLORMAPS[0] == render.DEFAULT_COLORMAP == "cividis"
    for name in ("cividis", "viridis"):
        cm = render.colormap(name)
        lum = [render.relative_luminance(c) for c in cm.lut[::16]]
        assert all(b > a for a, b in zip(lum, lum[1:])), name
    assert tuple(render.colormap("cividis")(0.0)) == (0x00, 0x22, 0x4E)  # plotly's first cividis stop
    with pytest.raises(InvalidParameter):
        render.colormap("jet")


def test_text_colour_contrasts():
    assert render.text_color_for((0, 0, 0)) == "#ffffff"
    assert render.text_color_for((255, 255, 200)) == "#000000"


def test_legend_shows_the_numeric_scale():
    html = render.legend_html(0.0, 0.5, label="weight <b>")
    assert "0.25" in html and "0.5" in html and "&lt;b&gt;" in html and "<script" not in html


def test_matrix_figure_escapes_and_keeps_duplicate_tokens_apart():
    w = np.array([[0.5, 0.5], [0.2, 0.8]])
    fig = render.matrix_figure(w, ["the", "the"], title="<img src=x onerror=alert(1)>")
    hm = fig.data[0]
    assert list(hm.x) == ["0·the", "1·the"]
    assert "<img" not in fig.layout.title.text and "&lt;img" in fig.layout.title.text
    fig = render.matrix_figure(w, ["<a href='javascript:alert(1)'>x</a>", "b"])
    assert all("<a" not in lab for lab in fig.data[0].x)
    assert np.allclose(np.asarray(fig.data[0].z), w)


def test_matrix_figure_at_512_tokens_is_light():
    w = np.random.default_rng(0).random((512, 512)).astype(np.float32)
    fig = render.matrix_figure(w, [f"tok{i}" for i in range(512)])
    size = len(fig.to_json())
    assert size < 3_000_000, size  # ~1 MB of binary-encoded floats, not bertviz's hundreds of MB


def test_matrix_png_pixels_follow_the_weights():
    w = np.array([[0.0, 1.0], [0.5, 0.25]])
    img = Image.open(io.BytesIO(render.matrix_png(w, cell=4)))
    assert img.size == (8, 8)
    cm = render.colormap("cividis")
    assert img.getpixel((1, 1)) == tuple(cm(0.0))
    assert img.getpixel((5, 1)) == tuple(cm(1.0))
    assert img.getpixel((1, 5)) == tuple(cm(0.5))


def test_csv_round_trip_and_injection_guard():
    w = np.array([[0.25, 0.75], [1.0, 0.0]])
    text = render.weights_csv(w, ["=cmd()", "b"])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["query \\ key", "'=cmd()", "b"]
    assert rows[1][0] == "'=cmd()" and [float(v) for v in rows[1][1:]] == [0.25, 0.75]


def test_to_json_arrays_and_no_nan():
    import torch

    assert json.loads(render.to_json({"a": torch.tensor([1.0, 2.0]), "b": np.float32(0.5)})) == {"a": [1.0, 2.0], "b": 0.5}
    with pytest.raises(ValueError):
        render.to_json({"a": float("nan")})
