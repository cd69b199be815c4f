"""The Python API as a notebook user meets it: ``attnviz.analyze_text`` / ``attnviz.analyze_image`` results,
their HTML (escaped: no live tag from the input; self-contained: no script, no remote resource), JSON
(round-trips to the same numbers), PNG (sizes) and ``_repr_html_`` called the way Jupyter calls it."""

from __future__ import annotations

import base64
import html
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import attnviz
from attnviz.errors import InvalidParameter
from attnviz.image import sample_path, synthetic_scene
from attnviz.render import colormap
from attnviz.text import MATRIX_MAX_TOKENS

ASSETS = Path(__file__).resolve().parents[1] / "attnviz" / "assets"
HOSTILE = ('Tom wrote <script>alert("x")</script> & <img src=x onerror=alert(1)> then '
           "<b>left</b> the <style>body{display:none}</style> room.")
QUERY = "<i>cat</i>"
# the only elements attnviz itself writes into text results
TEXT_TAGS = {"html", "head", "meta", "title", "body", "h1", "p", "div", "span", "ul", "li",
             "table", "caption", "thead", "tbody", "tr", "th", "td", "img"}
IMAGE_TAGS = {"figure", "div", "img", "figcaption"}
# a saved image page: the figure plus its title, settings and the top-patches table
IMAGE_PAGE_TAGS = IMAGE_TAGS | {"html", "head", "meta", "title", "body", "h1", "h2", "p", "b", "span",
                                "table", "caption", "tr", "th", "td"}


class Parsed(HTMLParser):
    """Start tags with their attributes, and the visible text (character references decoded)."""

    def __init__(self, markup: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def names(self) -> set[str]:
        return {t for t, _ in self.tags}


def self_contained(markup: str, allowed: set[str]) -> Parsed:
    """Only attnviz's own elements, no event handler, nothing fetched: no script, no http(s) URL."""
    p = Parsed(markup)
    assert p.names <= allowed, p.names - allowed
    for tag, attrs in p.tags:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
        for k in ("src", "href"):
            if k in attrs:
                assert attrs[k].startswith("data:image/png;base64,"), (tag, k, attrs[k][:40])
    assert not re.search(r"https?://", markup)
    assert "@import" not in markup and "url(" not in markup
    return p


def notebook_html(obj) -> str:
    """What Jupyter shows: IPython's HTML formatter looks ``_repr_html_`` up on the object, calls it with
    no arguments and puts the returned string in the output cell (``text/html``)."""
    assert not hasattr(obj, "_repr_mimebundle_")  # it would take precedence over _repr_html_
    method = getattr(obj, "_repr_html_", None)
    assert callable(method)
    out = method()
    assert isinstance(out, str) and out.strip()
    return out


def strict_json(s: str):
    """json.loads that refuses NaN / Infinity (not JSON; browsers' JSON.parse fails on them)."""
    def refuse(c):
        raise ValueError(f"non-finite number {c} in JSON")

    return json.loads(s, parse_constant=refuse)


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return im.size


@pytest.fixture(scope="module")
def text_result():
    return attnviz.analyze_text(HOSTILE, "cosine", 0.1, encoder="static", query=QUERY)


@pytest.fixture(scope="module")
def image_result():
    return attnviz.analyze_image(sample_path("china.jpg"), "cosine", query=(3, 5))


def test_the_top_level_api_is_the_modules():
    import attnviz.image
    import attnviz.text

    assert attnviz.analyze_text is attnviz.text.analyze_text
    assert attnviz.analyze_image is attnviz.image.analyze_image
    assert {"analyze_text", "analyze_image", "attend"} <= set(attnviz.__all__)


# ------------------------------------------------------------------------------------------------ text


def test_text_html_is_escaped_and_self_contained(text_result):
    a = text_result
    page = a.to_html(title='<script>alert("title")</script>')
    for markup in (page, a.html_fragment(), a.highlight(), notebook_html(a)):
        p = self_contained(markup, TEXT_TAGS)
        assert not p.names & {"script", "b", "i", "style"}  # the input's tags stay text
        assert not any(t == "img" and not a.get("src", "").startswith("data:") for t, a in p.tags)
        visible = "".join(p.text)
        assert HOSTILE in visible  # shown verbatim, character for character
    assert QUERY in "".join(Parsed(page).text) and '<script>alert("title")</script>' in "".join(Parsed(page).text)
    csp = [t[1]["content"] for t in Parsed(page).tags if t[0] == "meta" and t[1].get("http-equiv")]
    assert csp == ["default-src 'none'; style-src 'unsafe-inline'; img-src data:"]  # no script, nothing remote


def test_text_json_round_trips(text_result, tmp_path):
    a = text_result
    d = strict_json(a.to_json())
    assert d["tokens"] == a.tokens and [tuple(o) for o in d["offsets"]] == [tuple(o) for o in a.offsets]
    assert [a.text[s:e].lower() for s, e in d["offsets"]][:2] == ["tom", "wrote"]
    np.testing.assert_allclose(d["weights"], a.weights, atol=5e-7)  # 6 decimals
    np.testing.assert_allclose(d["scores"], a.scores, atol=5e-7)
    np.testing.assert_allclose(d["entropy"], a.entropy, atol=5e-7)
    np.testing.assert_allclose(np.sum(d["weights"], axis=1), 1.0, atol=1e-4)
    assert (d["similarity"], d["temperature"], d["encoder"], d["query"], d["score_kind"], d["causal"]) == (
        "cosine", 0.1, "static", QUERY, "query", False)
    assert strict_json(a.to_json(include_matrix=False))["weights"] is None
    saved = strict_json(a.save(tmp_path / "a.json").read_text(encoding="utf-8"))
    assert saved == d


def test_text_png_sizes(text_result, tmp_path):
    a = text_result
    n = len(a.tokens)
    cell = max(1, min(32, 2048 // n))  # render.matrix_png's default: the longer side <= 2048 px
    assert png_size(a.to_png("matrix", labels=False)) == (n * cell, n * cell)
    assert png_size(a.to_png("matrix", cell=3, labels=False)) == (3 * n, 3 * n)
    assert png_size(a.to_png("scores", cell=5, labels=False)) == (5 * n, 5)
    # labelled: the cells plus the labels and the colour bar around them
    w, h = png_size(a.to_png("matrix", cell=3))
    assert w > 3 * n and h > 3 * n
    # a query result saves the query's scores (one row), not the self-attention matrix
    assert a.score_kind == "query"
    assert a.save(tmp_path / "q.png").read_bytes() == a.to_png("scores") == a.to_png()
    with Image.open(io.BytesIO(a.to_png("matrix", cell=2, labels=False))) as im:  # the strongest weight has the top colour
        i, j = np.unravel_index(np.argmax(a.weights), a.weights.shape)
        assert im.convert("RGB").getpixel((int(j) * 2, int(i) * 2)) == tuple(int(c) for c in colormap("cividis")(1.0))
    with pytest.raises(InvalidParameter):
        a.to_png("heads")


def test_long_text_without_a_matrix():
    text = (ASSETS / "text_en_long.txt").read_text(encoding="utf-8") * 2
    a = attnviz.analyze_text(text, "scaled_dot", encoder="static")
    n = len(a.tokens)
    assert n > MATRIX_MAX_TOKENS and a.weights is None
    d = strict_json(a.to_json())
    assert d["weights"] is None and len(d["scores"]) == n
    assert d["scores"] == pytest.approx(np.round(a.scores.astype(np.float64), 6).tolist())
    assert png_size(a.to_png(labels=False)) == (n, 1)  # the scores as one row, one pixel each
    with pytest.raises(InvalidParameter, match="no matrix"):
        a.to_png("matrix")


def test_text_repr_html_as_a_notebook_shows_it(text_result):
    a = text_result
    out = notebook_html(a)
    assert out.count('class="attnviz-tok"') == len(a.tokens)
    assert "attnviz-legend" in out and html.escape(a.caption()) in out  # the settings, escaped
    assert not out.lstrip().lower().startswith(("<!doctype", "<html"))  # a fragment for the output cell


# ----------------------------------------------------------------------------------------------- image


def test_image_png_is_the_image_size(image_result, tmp_path):
    with Image.open(sample_path("china.jpg")) as im:
        size = im.size
    assert png_size(image_result.to_png()) == size == (image_result.width, image_result.height)
    assert png_size(image_result.save(tmp_path / "o.png").read_bytes()) == size
    # an odd size with an EXIF rotation: the PNG is the upright picture, pixel for pixel
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    buf = io.BytesIO()
    Image.fromarray(synthetic_scene(301, 157)).save(buf, "JPEG", exif=exif.tobytes(), quality=90)
    res = attnviz.analyze_image(buf.getvalue(), "euclidean", grid=8)
    assert png_size(res.to_png()) == (157, 301) == (res.width, res.height)


def test_image_json_round_trips(image_result):
    r = image_result
    d = strict_json(r.to_json(all_views=True))
    assert (d["width"], d["height"], d["grid"], d["query"], d["view"]) == (
        r.width, r.height, [r.grid.rows, r.grid.cols], [3, 5], "query")
    np.testing.assert_allclose(d["scores"], r.scores, atol=5e-9)  # 8 decimals
    np.testing.assert_allclose(d["row"], r.row, atol=5e-9)
    np.testing.assert_allclose(d["received"], r.received, atol=5e-9)
    np.testing.assert_allclose(d["pooling"], r.pooling, atol=5e-9)
    assert np.sum(d["row"]) == pytest.approx(1.0, abs=1e-6) and np.sum(d["received"]) == pytest.approx(1.0, abs=1e-6)
    assert len(d["row_edges"]) == r.grid.rows + 1 and d["col_edges"][-1] == r.width


def test_image_repr_html_as_a_notebook_shows_it(image_result):
    out = notebook_html(image_result)
    p = self_contained(out, IMAGE_TAGS)
    srcs = [a["src"] for t, a in p.tags if t == "img"]
    assert len(srcs) == 2  # the overlay and its colour bar, inline
    w, h = png_size(base64.b64decode(srcs[0].split(",", 1)[1]))
    assert max(w, h) <= 640 and abs(w / h - image_result.width / image_result.height) < 0.01
    assert "similarity cosine" in "".join(p.text)
    page = self_contained(image_result.to_html(), IMAGE_PAGE_TAGS)
    assert {"html", "body", "img", "table"} <= {t for t, _ in page.tags}  # a whole page, not the fragment


def test_the_practitioners_names_are_top_level():
    import attnviz.byo
    import attnviz.export
    import attnviz.loaders.hf
    import attnviz.text

    assert attnviz.from_attention is attnviz.byo.from_attention
    assert attnviz.model_attentions is attnviz.text.model_attentions
    assert attnviz.ModelAttention is attnviz.text.ModelAttention
    assert attnviz.register_model is attnviz.loaders.hf.register_model
    assert attnviz.save is attnviz.export.save
    assert {"from_attention", "model_attentions", "register_model", "save"} <= set(attnviz.__all__)
