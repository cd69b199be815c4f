import csv
import io
import json

import numpy as np
import pytest
from PIL import Image

from attnviz import figures, render
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


def test_one_legend_model_for_the_html_and_the_png_bar(monkeypatch):
    from attnviz import overlay

    lg = render.legend(-8.7e-11, 0.017, "viridis", "weight", ticks=3)
    assert [t.text for t in lg.ticks] == ["0", "0.0085", "0.017"]  # a rounding-error value reads as 0
    assert [t.position for t in lg.ticks] == [0.0, 0.5, 1.0]
    assert lg.stops[0] == (0.0, render.colormap("viridis").hex(0.0)) and lg.stops[-1][0] == 1.0
    html = render.legend_html(-8.7e-11, 0.017, "viridis", "weight", ticks=3)
    assert all(f">{t.text}</span>" in html for t in lg.ticks)
    assert all(colour in html for _, colour in lg.stops)
    drawn = []
    monkeypatch.setattr(overlay, "legend", lambda *a, **k: drawn.append(render.legend(*a, **k)) or drawn[-1])
    overlay.colorbar(-8.7e-11, 0.017, "viridis", ticks=3, label="weight")
    assert drawn and [t.text for t in drawn[-1].ticks] == [t.text for t in lg.ticks]  # the PNG bar's labels


def test_one_number_formatter():
    from attnviz.fmt import fmt, plain, tex

    assert render.format_number is plain
    for v in (0.0, 0.25, -1.5, 3.2e-7, 1.5e7, 22026.47, 1.00034):
        # the three forms are the same number written for people, for LaTeX and in ASCII
        assert fmt(v, 3).replace("−", "-").replace("×10^", "e") == plain(v).replace("e-0", "e-").replace("e+0", "e")
        assert float(tex(v).replace("\\times10^{", "e").rstrip("}")) == pytest.approx(v, rel=5e-3)


def test_clickable_heatmap_keeps_absolute_indices_and_marks_every_cell():
    z = np.arange(6.0).reshape(2, 3)
    fig = figures.clickable_heatmap(z, ["a", "<b>", "c"], ["x", "y"], first_index=10, hover_format=".4f",
                                    hover_hint="", zoomable=True)
    heat, dots = fig.data
    assert list(heat.x) == ["10·a", "11·&lt;b&gt;", "12·c"] and list(heat.y) == ["10·x", "11·y"]
    assert dots.customdata.tolist()[4] == [1, 1, 4.0]  # row and column within z, whatever the labels say
    assert "customdata[2]:.4f" in dots.hovertemplate and "click" not in dots.hovertemplate
    assert fig.layout.dragmode is None and fig.layout.clickmode == "event+select"
    assert tuple(fig.layout.xaxis.range) == (-0.5, 2.5) and tuple(fig.layout.yaxis.range) == (1.5, -0.5)
    assert figures.clickable_heatmap(z, list("abc"), list("xy")).layout.dragmode is False


def test_matrix_figure_escapes_and_keeps_duplicate_tokens_apart():
    w = np.array([[0.5, 0.5], [0.2, 0.8]])
    fig = figures.matrix_figure(w, ["the", "the"], title="<img src=x onerror=alert(1)>")
    hm = fig.data[0]
    assert list(hm.x) == ["0·the", "1·the"]
    assert "<img" not in fig.layout.title.text and "&lt;img" in fig.layout.title.text
    fig = figures.matrix_figure(w, ["<a href='javascript:alert(1)'>x</a>", "b"])
    assert all("<a" not in lab for lab in fig.data[0].x)
    assert np.allclose(np.asarray(fig.data[0].z), w)


def test_matrix_figure_at_512_tokens_is_light():
    w = np.random.default_rng(0).random((512, 512)).astype(np.float32)
    fig = figures.matrix_figure(w, [f"tok{i}" for i in range(512)])
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


def test_the_end_tick_labels_stay_inside_the_bar():
    """The first label starts at its mark and the last ends at it, so a legend as wide as a phone's column
    never pushes the page wider than the screen (the middle ones are centred on their marks)."""
    import re

    from attnviz.render import legend_html

    spans = re.findall(r'left:([\d.]+)%;transform:translateX\(([^)]*)\)">([^<]*)</span>', legend_html(0.0, 0.5))
    assert [float(left) for left, _, _ in spans] == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert [shift for _, shift, _ in spans] == ["0", "-50%", "-50%", "-50%", "-100%"]
    assert spans[0][2] == "0" and spans[-1][2] == "0.5"
