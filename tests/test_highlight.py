"""attnviz.highlight: verbatim text, escaping, colours from weights, hover, legend, standalone page."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz.errors import ShapeMismatch
from attnviz.highlight import highlight_html, highlight_many, highlight_spans, ranks_of, scale_for, standalone_html
from attnviz.render import colormap, relative_luminance


class Spans(HTMLParser):
    """Collects every token span: its attributes and its text; and all visible text in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.spans, self.text, self.tags, self._open = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        if tag == "span" and attrs.get("class") == "attnviz-tok":
            self._open = {**attrs, "text": ""}

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(self._open)
            self._open = None

    def handle_data(self, data):
        self.text.append(data)
        if self._open is not None:
            self._open["text"] += data


def parse(fragment: str) -> Spans:
    p = Spans()
    p.feed(fragment)
    return p


def rgb_of(style: str) -> tuple[int, int, int]:
    m = re.search(r"background-color:rgb\((\d+),(\d+),(\d+)\)", style)
    return tuple(int(v) for v in m.groups())


TEXT = "Cats  chase\nmice.\tDogs?"
OFFSETS = [(0, 4), (6, 11), (12, 16), (16, 17), (18, 22), (22, 23)]


def test_text_between_tokens_is_kept_verbatim():
    frag = highlight_spans(TEXT, OFFSETS, [0.1, 0.5, 0.2, 0.0, 0.15, 0.05])
    p = parse(frag)
    assert "".join(p.text) == TEXT  # double space, newline, tab all kept
    assert [s["text"] for s in p.spans] == ["Cats", "chase", "mice", ".", "Dogs", "?"]
    assert "white-space:pre-wrap" in frag


def test_user_text_is_escaped_and_inert():
    text = '<script>alert("x")</script> <img src=x onerror=alert(1)> & "quotes"'
    offsets = [(0, 8), (8, 16), (29, 33), (55, 56)]
    frag = highlight_html(text, offsets, [0.4, 0.3, 0.2, 0.1], labels=['<b>"lbl"</b>', "x", "y", "&"])
    page = standalone_html(frag, title="<script>t</script>")
    p = parse(page)
    assert "script" not in p.tags and "img" not in p.tags and "b" not in p.tags
    assert "onerror" not in re.sub(r"&[a-z]+;", "", "".join(re.findall(r"<[^>]*>", page)))  # not in any tag
    assert "".join(p.text).count(text) == 1  # the whole text, as text
    assert p.spans[0]["title"].startswith('<b>"lbl"</b> · weight 0.4')  # the label arrives escaped, as text


def test_colours_follow_the_weights():
    weights = np.array([0.05, 0.6, 0.2, 0.0, 0.1, 0.05])
    p = parse(highlight_spans(TEXT, OFFSETS, weights, cmap="cividis"))
    lum = [relative_luminance(rgb_of(s["style"])) for s in p.spans]
    order = np.argsort(weights, kind="stable")
    assert all(lum[a] <= lum[b] for a, b in zip(order, order[1:]))  # cividis: brighter = more weight
    lo, hi = scale_for(weights)
    assert (lo, hi) == (0.0, 0.6)
    cm = colormap("cividis")
    assert rgb_of(p.spans[1]["style"]) == tuple(int(c) for c in cm(1.0))  # the maximum gets the top colour
    assert rgb_of(p.spans[3]["style"]) == tuple(int(c) for c in cm(0.0))


def test_text_colour_contrasts_with_the_background():
    p = parse(highlight_spans(TEXT, OFFSETS, [0, 1, 0, 0, 0, 0], cmap="viridis"))
    for s in p.spans:
        bg = relative_luminance(rgb_of(s["style"]))
        fg = 0.0 if "color:#000000" in s["style"] else 1.0
        assert (max(bg, fg) + 0.05) / (min(bg, fg) + 0.05) >= 4.5  # WCAG AA for normal text


def test_hover_gives_token_weight_and_rank():
    p = parse(highlight_spans(TEXT, OFFSETS, [0.1, 0.5, 0.2, 0.0, 0.15, 0.05], labels=["cats", "chase", "mice", ".", "dogs", "?"]))
    titles = [s["title"] for s in p.spans]
    assert titles[1] == "chase · weight 0.5 · rank 1/6"
    assert titles[3] == ". · weight 0 · rank 6/6"
    assert [int(s["data-rank"]) for s in p.spans] == [4, 1, 2, 6, 3, 5]
    assert list(ranks_of([0.1, 0.5, 0.2, 0.0, 0.15, 0.05])) == [4, 1, 2, 6, 3, 5]


def test_legend_shows_the_numeric_scale():
    frag = highlight_html(TEXT, OFFSETS, [0.1, 0.5, 0.2, 0.0, 0.15, 0.05], legend_label="query <weights>")
    assert "attnviz-legend" in frag and "linear-gradient" in frag
    for tick in ("0", "0.125", "0.25", "0.375", "0.5"):
        assert f">{tick}</span>" in frag
    assert "query &lt;weights&gt;" in frag


def test_bad_offsets_never_break_the_html():
    text = "abcdef"
    frag = highlight_spans(text, [(0, 3), (2, 5), (4, 99), (5, 5)], [1, 2, 3, 4])
    p = parse(frag)
    assert "".join(p.text) == text
    assert [s["text"] for s in p.spans] == ["abc", "ef"]  # overlap and empty spans skipped, end clipped
    with pytest.raises(ShapeMismatch):
        highlight_spans(text, [(0, 1)], [1, 2])


@settings(max_examples=80, deadline=None)
@given(st.text(min_size=0, max_size=80), st.data())
def test_any_text_round_trips(text, data):
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(text)), max_size=10))))
    offsets = [(a, b) for a, b in zip(cuts, cuts[1:])]
    weights = data.draw(st.lists(st.floats(0, 1), min_size=len(offsets), max_size=len(offsets)))
    frag = highlight_spans(text, offsets, weights)
    p = parse(frag)
    # our tags stripped and entities decoded give back exactly the user's text (escaping leaves no raw "<")
    assert html.unescape(re.sub(r"<[^>]+>", "", frag)) == text
    assert "<script" not in frag.lower()
    assert len(p.spans) == len(offsets)


def test_many_texts_share_one_scale():
    frag = highlight_many([("a b", [(0, 1), (2, 3)], [0.2, 0.8], None), ("c", [(0, 1)], [0.4], None)],
                          captions=["first <1>", "second"])
    assert frag.count("attnviz-legend") == 1 and ">0.8</span>" in frag
    assert "first &lt;1&gt;" in frag
    p = parse(frag)
    assert [s["text"] for s in p.spans] == ["a", "b", "c"]
    assert rgb_of(p.spans[1]["style"]) == tuple(int(c) for c in colormap("cividis")(1.0))
    assert rgb_of(p.spans[2]["style"]) == tuple(int(c) for c in colormap("cividis")(0.5))


def test_standalone_page_has_no_scripts_and_no_remote_resources():
    page = standalone_html(highlight_html("hi there", [(0, 2), (3, 8)], [0.3, 0.7]), "attention <demo>")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "default-src 'none'" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<title>attention &lt;demo&gt;</title>" in page
