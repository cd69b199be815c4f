"""analyze_image / attend_patches: views, live similarity & temperature, devices, exports."""

from __future__ import annotations

import base64
import csv
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from attnviz import SIMILARITIES
from attnviz.errors import DeviceUnavailable, InvalidParameter, UnknownSimilarity
from attnviz.image import (VIEWS, ImageAnalysis, analyze_image, attend_patches, compute_features, load_image,
                           sample_path, synthetic_scene)


@pytest.fixture(scope="module")
def photo():
    return load_image(sample_path("china.jpg"))  # 480 x 320


@pytest.fixture(scope="module")
def feats(photo):
    return compute_features(photo, features="handcrafted")  # the 16 x 24 grid of hand-made cells


@pytest.mark.parametrize("similarity", list(SIMILARITIES))
def test_every_similarity_gives_distributions(photo, feats, similarity):
    res = attend_patches(photo, feats, similarity=similarity, query=(2, 3))
    assert res.similarity == similarity
    assert res.temperature == SIMILARITIES[similarity].default_temperature
    for view in VIEWS:
        m = res.map(view)
        assert m.shape == feats.grid.shape and np.isfinite(m).all() and (m >= 0).all()
        assert m.sum() == pytest.approx(1.0, abs=1e-4)


def test_lower_temperature_is_sharper(photo, feats):
    def entropy(p):
        p = p[p > 0]
        return float(-(p * np.log(p)).sum())

    hot = attend_patches(photo, feats, temperature=0.02, query=(5, 5)).row
    warm = attend_patches(photo, feats, temperature=0.1, query=(5, 5)).row
    cold = attend_patches(photo, feats, temperature=10.0, query=(5, 5)).row
    assert entropy(hot) < entropy(warm) < entropy(cold) < np.log(hot.size) + 1e-6
    assert cold.max() - cold.min() < 0.01  # nearly uniform


def test_switching_only_reattends(photo, feats):
    a = attend_patches(photo, feats, similarity="cosine", query=(0, 0))
    b = attend_patches(photo, feats, similarity="euclidean", query=(0, 0))
    c = attend_patches(photo, feats, similarity="cosine", query=(12, 20))
    assert not np.allclose(a.row, b.row) and not np.allclose(a.row, c.row)
    assert a.grid is b.grid is c.grid  # features and grid were reused, not recomputed
    assert np.array_equal(a.received, c.received)  # the query does not change what patches receive


def test_row_matches_a_direct_softmax(photo, feats):
    res = attend_patches(photo, feats, similarity="cosine", temperature=0.1, query=(3, 4))
    x = feats.features.astype(np.float64)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    s = xn @ xn[res.grid.index(3, 4)] / 0.1
    w = np.exp(s - s.max())
    w /= w.sum()
    assert np.allclose(res.row.reshape(-1), w, atol=1e-5)


def test_views_and_defaults(photo, feats):
    assert attend_patches(photo, feats).view == "received"
    assert attend_patches(photo, feats, query=(1, 1)).view == "query"
    res = attend_patches(photo, feats, query=(1, 1), view="pooling")
    assert np.array_equal(res.scores, res.pooling)
    with pytest.raises(InvalidParameter, match="query patch"):
        attend_patches(photo, feats, view="query")
    with pytest.raises(InvalidParameter, match="Unknown view"):
        attend_patches(photo, feats, view="sideways")
    with pytest.raises(InvalidParameter, match="outside"):
        attend_patches(photo, feats, query=(99, 0))


def test_bad_parameters(photo, feats):
    with pytest.raises(UnknownSimilarity):
        attend_patches(photo, feats, similarity="nope")
    with pytest.raises(InvalidParameter):
        attend_patches(photo, feats, temperature=0)
    res = attend_patches(photo, feats)
    with pytest.raises(InvalidParameter):
        res.overlay(cmap="rainbow")
    with pytest.raises(InvalidParameter):
        res.to_png(opacity=1.5)
    with pytest.raises(InvalidParameter, match="features are for"):
        attend_patches(photo.resize((100, 100)), feats)


def test_devices(photo, feats):
    assert attend_patches(photo, feats, device="cpu").device == "cpu"
    with pytest.raises(DeviceUnavailable):
        attend_patches(photo, feats, device="cuda:7")


def test_large_grid_runs(photo):
    res = analyze_image(photo, patch=7, query=(10, 10))  # 46 x 69 = 3174 patches: a 3174 x 3174 matrix
    assert res.grid.shape == (46, 69) and res.row.sum() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(InvalidParameter, match="7 pixels or more"):
        analyze_image(photo, patch=6)


def test_overlay_full_size_and_display_copy(photo, feats):
    res = attend_patches(photo, feats, query=(2, 2))
    full = res.overlay(show_grid=True)
    assert full.shape == (320, 480, 3)
    small = res.overlay(max_side=240)
    assert small.shape == (160, 240, 3)
    thumb = photo.resize((120, 80))
    assert res.overlay(thumb).shape == (80, 120, 3)
    assert np.array_equal(res.overlay(opacity=0, show_grid=False, outline_query=False), np.asarray(photo))
    assert not np.array_equal(res.overlay(show_grid=True), res.overlay())  # the grid is an argument of drawing


def test_results_hold_numbers_not_display_state(photo, feats):
    import dataclasses

    res = attend_patches(photo, feats, query=(2, 2))
    names = {f.name for f in dataclasses.fields(res)}
    assert not names & {"cmap", "opacity", "show_grid"}
    a = res.to_png(cmap="viridis", opacity=0.8)
    b = res.to_png(cmap="cividis", opacity=0.8)
    assert a != b and res.to_png() == res.to_png(cmap="cividis", opacity=0.5)


def test_summary_numbers(photo, feats):
    from attnviz.attention import effective_tokens

    res = attend_patches(photo, feats, query=(2, 2))
    expected = float(effective_tokens(torch.from_numpy(res.scores.reshape(1, -1).astype(np.float64)))[0])
    assert res.effective_patches == pytest.approx(expected)
    top = res.top_patches(5)
    assert len(top) == 5 and [w for _, _, w in top] == sorted((w for _, _, w in top), reverse=True)
    r, c, w = top[0]
    assert w == pytest.approx(float(res.scores.max())) and res.scores[r, c] == w


def test_png_export_is_full_resolution(tmp_path):
    arr = synthetic_scene(900, 600)
    res = analyze_image(arr, query=(3, 3))
    png = res.to_png()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(png)).size == (900, 600)
    p = res.save(tmp_path / "o.png")
    assert Image.open(p).size == (900, 600)


def test_json_export(photo, feats, tmp_path):
    res = attend_patches(photo, feats, similarity="rbf", query=(4, 5))
    d = json.loads(res.to_json())
    assert {"width", "height", "grid", "scores", "similarity", "device"} <= set(d)
    assert (d["width"], d["height"], d["grid"]) == (480, 320, [16, 24])
    assert np.array(d["scores"]).shape == (16, 24)
    assert np.allclose(d["scores"], res.row, atol=1e-7)
    assert d["similarity"] == "rbf" and d["device"] == "cpu" and d["query"] == [4, 5] and d["view"] == "query"
    full = json.loads((res.save(tmp_path / "r.json")).read_text())
    assert np.array(full["received"]).shape == (16, 24) and len(full["row_edges"]) == 17


def test_csv_export(photo, feats):
    res = attend_patches(photo, feats, query=(0, 1))
    rows = list(csv.DictReader(io.StringIO(res.to_csv())))
    assert len(rows) == 16 * 24
    assert rows[1]["row"] == "0" and rows[1]["col"] == "1"
    assert sum(float(r["query_weight"]) for r in rows) == pytest.approx(1.0, abs=1e-5)
    assert sum(float(r["received"]) for r in rows) == pytest.approx(1.0, abs=1e-5)
    assert (int(rows[1]["left"]), int(rows[1]["top"])) == res.grid.box(0, 1)[:2]
    no_query = attend_patches(photo, feats)
    assert list(csv.DictReader(io.StringIO(no_query.to_csv())))[0]["query_weight"] == ""


def test_html_is_self_contained_and_escaped(photo, feats, tmp_path):
    from html.parser import HTMLParser

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.imgs, self.text = [], [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag == "img":
                self.imgs.append(dict(attrs))

        def handle_data(self, data):
            self.text.append(data)

    res = attend_patches(photo, feats, query=(1, 2))
    res.similarity = "<script>alert(1)</script>"  # as if a user string reached the page
    page = res.to_html()
    parsed = Tags()
    parsed.feed(page)
    assert page.startswith("<!DOCTYPE html>") and "title" in parsed.tags and "table" in parsed.tags
    assert "script" not in parsed.tags and "<script" not in page.lower()
    assert "<script>alert(1)</script>" in "".join(parsed.text)  # shown as text, not markup
    assert "http://" not in page and "https://" not in page
    srcs = [i["src"] for i in parsed.imgs]
    assert len(srcs) == 1 and srcs[0].startswith("data:image/png;base64,")  # hand-made features: no ViT figures
    overlay = Image.open(io.BytesIO(base64.b64decode(srcs[0].split(",", 1)[1])))
    assert overlay.size == (480, 320)
    assert 'class="attnviz-legend"' in page
    fig = Tags()
    fig.feed(res._repr_html_())  # the notebook's compact figure: overlay + colour bar, escaped caption
    assert "script" not in fig.tags and len(fig.imgs) == 2 and "<script>alert(1)</script>" in "".join(fig.text)
    res.similarity = "cosine"
    saved = res.save(tmp_path / "r.html").read_text()
    assert saved.startswith("<!DOCTYPE html>")


def test_save_rejects_unknown_suffix(photo, feats, tmp_path):
    res = attend_patches(photo, feats)
    with pytest.raises(InvalidParameter, match=".png"):
        res.save(tmp_path / "x.gif")
    from attnviz.errors import FileNotFound

    with pytest.raises(FileNotFound, match="does not exist"):  # the one export helper, as for text results
        res.save(tmp_path / "missing-dir" / "x.png")


def test_colorbar_matches_the_view(photo, feats):
    res = attend_patches(photo, feats, query=(1, 2))
    bar = res.colorbar()
    assert bar.ndim == 3 and bar.shape[2] == 3 and bar.dtype == np.uint8


def test_analysis_is_an_image_analysis():
    res = analyze_image(sample_path("flower.jpg"), query=(3, 3), view="pooling", similarity="dot", temperature=2.0)
    assert isinstance(res, ImageAnalysis)
    assert (res.view, res.similarity, res.temperature, res.query) == ("pooling", "dot", 2.0, (3, 3))


@pytest.mark.parametrize("query", [5, "r1c2", (1, 2, 3), 2.5])
def test_a_query_that_is_not_a_pair_is_a_typed_error(query):
    from attnviz.errors import InvalidParameter

    with pytest.raises(InvalidParameter, match="pair"):
        analyze_image(sample_path("china.jpg"), query=query, features="handcrafted")


def test_leaving_the_query_out_of_the_scale(photo, feats):
    """ImageAnalysis.scale / overlay / colorbar with exclude_query, against the row's own float64 numbers."""
    res = attend_patches(photo, feats, similarity="cosine", temperature=0.1, query=(3, 5))
    w = np.asarray(res.scores, dtype=np.float64).ravel()
    qi = 3 * feats.grid.cols + 5
    others = np.delete(w, qi)
    sc = res.scale(True)
    assert w[qi] == w.max() and w[qi] > 5 * others.max()  # the query takes most of its own row
    assert (sc.vmin, sc.vmax) == pytest.approx((others.min(), others.max())) and sc.query_excluded
    assert sc.query_value == pytest.approx(w[qi]) and sc.query_off_scale
    plain = res.scale(False)
    assert (plain.vmin, plain.vmax) == pytest.approx((w.min(), w.max())) and not plain.query_excluded
    # the overlay: the runner-up patch reaches the top colour only with the query left out
    from attnviz.render import colormap

    top = colormap("cividis").lut[255].astype(float)
    r2, c2 = divmod(int(np.argmax(np.where(np.arange(w.size) == qi, -1, w))), feats.grid.cols)
    cy, cx = int((r2 + 0.5) * photo.height / feats.grid.rows), int((c2 + 0.5) * photo.width / feats.grid.cols)
    on = res.overlay(opacity=1.0, exclude_query=True)[cy, cx].astype(float)
    off = res.overlay(opacity=1.0, exclude_query=False)[cy, cx].astype(float)
    assert np.abs(on - top).max() < 12 and np.abs(off - top).max() > 60
    # other views have no query: the switch does nothing there
    received = attend_patches(photo, feats, similarity="cosine", temperature=0.1, view="received", query=(3, 5))
    assert not received.scale(True).query_excluded
    assert np.array_equal(received.overlay(exclude_query=True), received.overlay(exclude_query=False))
    # the colour bar's ends are the scale's
    bar_on, bar_off = res.colorbar(exclude_query=True), res.colorbar(exclude_query=False)
    assert bar_on.shape != bar_off.shape or not np.array_equal(bar_on, bar_off)  # other tick numbers


def bar_strip(bar: np.ndarray, vertical: bool) -> np.ndarray:
    """The colours inside a colour bar's grey frame along its length, low end first, ``(length, 3)``: the frame is
    the one rectangle of (96, 96, 96) pixels whose sides run the bar's length."""
    grey = (bar == 96).all(-1)
    if vertical:
        grey = grey.T  # columns become rows: the long sides are then rows
        bar = bar.transpose(1, 0, 2)
    sides = np.flatnonzero(grey.sum(1) > grey.shape[1] // 3)
    top, bottom = sides.min(), sides.max()
    xs = np.flatnonzero(grey[top])
    strip = bar[(top + bottom) // 2, xs.min() + 1:xs.max()]
    return strip[::-1] if vertical else strip  # a vertical bar has its low end at the bottom


def faded_ramp(length: int, cmap: str = "cividis", fade: float = 0.2) -> np.ndarray:
    """The overlay's documented rule drawn on white, in float64: level L of the colour map at alpha
    ``min(1, L / (255 * fade))`` (the photo shows as it is at the bottom of the scale; white stands for it)."""
    from attnviz.render import colormap

    levels = np.floor(np.linspace(0.0, 1.0, length) * 255 + 0.5).astype(int)
    alpha = np.minimum(1.0, levels / (255 * fade))[:, None]
    return colormap(cmap).lut[levels].astype(np.float64) * alpha + 255.0 * (1 - alpha)


@pytest.mark.parametrize("vertical", [True, False])
def test_the_colour_bar_fades_its_low_end_as_the_overlay_does(photo, feats, vertical):
    """The legend shows only what the photo can: the bottom of the scale is the background (the overlay leaves the
    photo itself there), full colour from a fifth of the scale up (the overlay's FADE)."""
    res = attend_patches(photo, feats, query=(1, 2))
    strip = bar_strip(res.colorbar("cividis", vertical=vertical, length=300), vertical).astype(np.float64)
    assert strip.shape == (300, 3)
    assert (strip[0] == 255).all()  # the lowest value: nothing drawn over the photo
    assert np.abs(strip - faded_ramp(300)).max() <= 1
    from attnviz.render import colormap

    assert np.abs(strip[-1] - colormap("cividis").lut[255]).max() <= 1  # the top: the colour in full
    plain = bar_strip(res.colorbar("cividis", vertical=vertical, length=300, fade=0.0), vertical)
    assert np.abs(plain[0].astype(float) - colormap("cividis").lut[0]).max() <= 1  # fade=0 still draws every colour
