"""Every view outside Streamlit: the HTML pages parsed with html.parser (labels as text, nothing live, images
inline), the PNGs decoded with Pillow (labels make them grow, a colour bar is drawn, a grid's gaps are the
background), and the one export helper."""

from __future__ import annotations

import base64
import csv
import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import attnviz
from attnviz.errors import FileNotFound, InvalidParameter
from attnviz.export import CONTENT_SECURITY_POLICY
from attnviz.render import BACKGROUND, TABLE_MAX_TOKENS, colormap, labelled_matrix_png, matrix_png

HOSTILE = ["<script>alert(1)</script>", "a&b", '"quoted"', "<img src=x onerror=alert(1)>", "ok"]
LIVE = {"script", "link", "iframe", "object", "embed", "style", "base", "form"}


class Page(HTMLParser):
    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.cells = [], [], []
        self._in_th = False
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_th = tag == "th"

    def handle_endtag(self, tag):
        if tag == "th":
            self._in_th = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_th:
            self.cells.append(data)

    def names(self) -> set[str]:
        return {t for t, _ in self.tags}

    def images(self) -> list[Image.Image]:
        out = []
        for tag, attrs in self.tags:
            if tag == "img":
                src = attrs["src"]
                assert src.startswith("data:image/png;base64,"), src[:40]
                out.append(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"))
        return out


def check_inert(markup: str) -> Page:
    page = Page(markup)
    assert not page.names() & LIVE, page.names() & LIVE
    for tag, attrs in page.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    assert "http://" not in markup and "https://" not in markup and "url(" not in markup
    return page


def byo(tokens, layers=2, heads=3, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.standard_normal((layers, heads, len(tokens), len(tokens))) * 2
    e = np.exp(s - s.max(-1, keepdims=True))
    return attnviz.from_attention(e / e.sum(-1, keepdims=True), tokens)


def bar_columns(im: Image.Image, cmap="cividis", at_least: int = 64) -> int:
    """Columns holding at least ``at_least`` different colours of the map: a colour bar's ramp (a matrix of a
    few tokens has only a few colours per column)."""
    lut = {tuple(int(v) for v in c) for c in colormap(cmap).lut}
    a = np.asarray(im)
    found = 0
    for x in range(a.shape[1]):
        colours = {tuple(int(v) for v in p) for p in a[:, x]} & lut
        found += len(colours) >= at_least
    return found


# ----------------------------------------------------------------------------------------------- HTML


def test_model_attention_page_shows_labels_as_text_and_inline_images_only():
    ma = byo(HOSTILE)
    html = ma.to_html()
    page = check_inert(html)
    assert html.startswith("<!DOCTYPE html>")
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv")]
    assert csp == [CONTENT_SECURITY_POLICY]
    for token in HOSTILE:  # each label is visible text, character for character, in the matrix headers
        assert token in page.cells
    assert "".join(page.text).count("<script>alert(1)</script>") >= 3  # highlighted text, rows and columns
    images = page.images()
    assert images and all(im.width > 50 and im.height > 50 for im in images)  # the grid of heads, decoded
    assert "rollout" in "".join(page.text) and "layer 1" in "".join(page.text)
    assert {"table", "th", "td"} <= page.names()
    fragment = ma._repr_html_()
    assert not fragment.lstrip().lower().startswith(("<!doctype", "<html"))
    assert [c for c in Page(fragment).cells] == page.cells  # the same views for a notebook cell


def test_the_table_cells_are_the_numbers():
    ma = byo(["x", "y", "z"])
    page = Page(ma.to_html(layer=1, head=2))
    titles = [float(a["title"]) for t, a in page.tags if t == "td" and "title" in a]
    np.testing.assert_allclose(titles[:9], ma.matrix(1, 2).ravel(), rtol=5e-3, atol=1e-6)  # the first table (3 digits)
    lut = colormap("cividis")
    m = ma.matrix(1, 2).astype(np.float64)
    scaled = (m - m.min()) / (m.max() - m.min())
    want = ["background:" + lut.hex(v) for v in scaled.ravel()]
    got = [a["style"].split(";")[-1] for t, a in page.tags if t == "td" and "title" in a][:9]
    assert got == want


def test_a_long_text_page_draws_the_matrix_as_a_labelled_picture():
    tokens = [f"t{i}" for i in range(TABLE_MAX_TOKENS + 6)]
    page = check_inert(byo(tokens, layers=1, heads=1).to_html())
    assert "table" not in page.names()
    alts = [a["alt"] for t, a in page.tags if t == "img"]
    assert any("t0 t1 t2" in alt for alt in alts)
    assert len(page.images()) >= 2  # the matrix, rollout, the grid


def test_text_analysis_page_has_text_matrix_and_bar():
    text = 'Tom <b>wrote</b> "a & b" then left.'
    a = attnviz.analyze_text(text, "cosine", encoder="static")
    html = a.to_html()
    page = check_inert(html)
    assert "".join(page.text).count("<b>") >= 1 and "b" not in page.names()
    for token in a.tokens:
        assert token in page.cells
    assert "attnviz-legend" in html and "attention weight" in "".join(page.text)
    q = attnviz.analyze_text(text, "cosine", encoder="static", query="<i>x</i>")
    qpage = check_inert(q.to_html())
    assert "query '<i>x</i>'" in qpage.cells  # the one row the page shows is the query's


# ------------------------------------------------------------------------------------------------ PNG


def test_labels_make_the_png_grow_and_a_colour_bar_is_drawn():
    w = np.random.default_rng(0).random((4, 4))
    bare = Image.open(io.BytesIO(matrix_png(w, cell=10)))
    short = Image.open(io.BytesIO(labelled_matrix_png(w, ["a", "b", "c", "d"], cell=10))).convert("RGB")
    long = Image.open(io.BytesIO(labelled_matrix_png(w, ["a much longer label", "b", "c", "d"], cell=10))).convert("RGB")
    assert bare.size == (40, 40)
    assert short.width > 40 and short.height > 40
    assert long.width > short.width and long.height > short.height  # row labels left, column labels on top
    assert bar_columns(short) >= 10 and bar_columns(Image.open(io.BytesIO(matrix_png(w, cell=10))).convert("RGB")) == 0


@pytest.mark.parametrize("view", ["matrix", "rollout", "grid"])
def test_model_attention_pngs_have_a_colour_bar(view):
    ma = byo(["the", "cat", "sat", "down"])
    im = Image.open(io.BytesIO(ma.to_png(view, layer=-1, head=-1))).convert("RGB")
    assert bar_columns(im) >= 10
    a = np.asarray(im)
    assert (a == np.array(BACKGROUND)).all(-1).any()  # margins in the background colour


def test_grid_gaps_are_the_background_not_the_colour_of_zero():
    n, heads, cell, gap = 4, 3, 5, 2
    eye = np.broadcast_to(np.eye(n), (2, heads, n, n)).copy()  # every head attends to itself: blocks 1 and 0
    ma = attnviz.from_attention(eye, ["a", "b", "c", "d"])
    im = np.asarray(Image.open(io.BytesIO(ma.to_png("grid", cell=cell))).convert("RGB"))
    zero, one = (tuple(int(v) for v in colormap("cividis")(x)) for x in (0.0, 1.0))
    assert zero != tuple(BACKGROUND)
    heat = lambda p: tuple(int(v) for v in p) in (zero, one)  # noqa: E731
    # the row through the middle of layer 0's blocks: find the heat pixels (the labels are grey text)
    rows = [y for y in range(im.shape[0]) if sum(heat(p) for p in im[y]) >= heads * n * cell]
    y = rows[len(rows) // 4]
    xs = [x for x in range(im.shape[1]) if heat(im[y, x])]
    runs, start = [], xs[0]
    for a, b in zip(xs, xs[1:]):
        if b != a + 1:
            runs.append((start, a))
            start = b
    runs.append((start, xs[-1]))
    blocks = runs[:heads]
    assert [b - a + 1 for a, b in blocks] == [n * cell] * heads  # each head's block, then
    for (_, end), (nxt, _) in zip(blocks, blocks[1:]):
        assert nxt - end - 1 == gap * cell
        assert all(tuple(int(v) for v in im[y, x]) == tuple(BACKGROUND) for x in range(end + 1, nxt))  # the gap
    grid = ma.head_grid(gap=gap)
    assert np.isnan(grid[:, n]).all()  # the array keeps its NaN gaps; matrix_png draws them as background
    bare = np.asarray(Image.open(io.BytesIO(matrix_png(grid, cell=1))).convert("RGB"))
    assert (bare[:, n] == np.array(BACKGROUND)).all() and (bare[0, 0] == np.array(one)).all()


def test_a_query_result_saves_its_scores(tmp_path):
    q = attnviz.analyze_text("The kitten sat on the mat.", "cosine", encoder="static", query="cat")
    assert q.weights is not None  # there is a self-attention matrix, but a query's picture is its scores
    saved = q.save(tmp_path / "q.png").read_bytes()
    assert saved == q.to_png("scores") != q.to_png("matrix")
    n = len(q.tokens)
    row = np.asarray(Image.open(io.BytesIO(q.to_png("scores", cell=8, labels=False))).convert("RGB"))
    assert row.shape == (8, 8 * n, 3)  # one row of n cells: the query's scores
    s = q.scores.astype(np.float64)
    want = colormap("cividis")((s - s.min()) / (s.max() - s.min()))
    np.testing.assert_array_equal(row[4, 4::8], want)


# --------------------------------------------------------------------------------------------- export


def test_one_export_helper_for_every_suffix(tmp_path):
    ma = byo(["a", "=SUM(A1)", "c"])
    assert ma.save(tmp_path / "m.png", view="matrix", layer=0, head=1).read_bytes() == ma.to_png("matrix", 0, 1)
    assert ma.save(tmp_path / "m.html", layer=0, head=1).read_text(encoding="utf-8") == ma.to_html(layer=0, head=1)
    d = json.loads((ma.save(tmp_path / "m.json")).read_text(encoding="utf-8"))
    np.testing.assert_allclose(d["attentions"], ma.attentions, atol=5e-7)
    np.testing.assert_allclose(d["rollout"], ma.raw(None, "rollout"), atol=5e-7)
    rows = list(csv.reader(io.StringIO(ma.save(tmp_path / "m.csv", layer=1, head=2).read_text(encoding="utf-8"))))
    assert rows[0][1:] == ["a", "'=SUM(A1)", "c"]  # a formula stays text in a spreadsheet
    np.testing.assert_allclose(np.array([r[1:] for r in rows[1:]], dtype=float), ma.matrix(1, 2), atol=1e-6)
    with pytest.raises(InvalidParameter, match=r"\.png, \.html, \.json or \.csv"):
        ma.save(tmp_path / "m.gif")
    with pytest.raises(FileNotFound, match="does not exist") as err:
        ma.save(tmp_path / "missing" / "m.png")
    assert isinstance(err.value, FileNotFoundError)
    assert attnviz.save(ma, tmp_path / "top.html").read_text(encoding="utf-8") == ma.to_html()
