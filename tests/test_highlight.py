"""attnviz.highlight: verbatim text, escaping, colours from weights, hover, legend, standalone page."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz.errors import InvalidParameter, ShapeMismatch
from attnviz.highlight import (highlight_html, highlight_legend, highlight_legend_html, highlight_many, highlight_spans,
                               palette, ranks_of, scale_for, standalone_html)

#: Streamlit 1.67's own page colours (background, body text) of its light and dark themes
PAGE = {"light": ((255, 255, 255), (47, 45, 43)), "dark": ((23, 22, 20), (237, 235, 232))}


def wcag_luminance(rgb) -> float:
    """WCAG 2.x relative luminance, written out here independently of attnviz."""
    def lin(v):
        c = v / 255.0
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (lin(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def wcag_contrast(a, b) -> float:
    la, lb = sorted((wcag_luminance(a), wcag_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


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


def ink_of(style: str) -> tuple[int, int, int]:
    h = re.search(r"(?:^|;)color:#([0-9a-f]{6})", style).group(1)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


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


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_colours_follow_the_weights(theme):
    weights = np.array([0.05, 0.6, 0.2, 0.0, 0.1, 0.05])
    p = parse(highlight_spans(TEXT, OFFSETS, weights, theme=theme))
    lum = [wcag_luminance(rgb_of(s["style"])) for s in p.spans]
    order = np.argsort(weights, kind="stable")
    # away from the page: darker on the light page, brighter on the dark one
    sign = -1 if theme == "light" else 1
    assert all(sign * (lum[b] - lum[a]) >= 0 for a, b in zip(order, order[1:]))
    assert scale_for(weights) == (0.0, 0.6)
    bg, _ = palette(theme)
    assert rgb_of(p.spans[1]["style"]) == tuple(int(c) for c in bg[255])  # the maximum gets the top colour
    assert rgb_of(p.spans[3]["style"]) == PAGE[theme][0]  # weight 0 is the page itself


@pytest.mark.parametrize("classroom", [False, True])
@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_token_is_readable_on_its_own_background(theme, classroom):
    """WCAG AA (4.5) for every span of a real highlight over a fine weight ramp 0..1."""
    n = 501
    text = " ".join(["tok"] * n)
    offsets = [(4 * i, 4 * i + 3) for i in range(n)]
    ramp = np.linspace(0.0, 1.0, n)
    for scale in ("absolute", "view"):
        frag = highlight_spans(text, offsets, ramp, theme=theme, scale=scale, classroom=classroom)
        spans = parse(frag).spans
        assert len(spans) == n
        ratios = [wcag_contrast(rgb_of(s["style"]), ink_of(s["style"])) for s in spans]
        assert min(ratios) >= 4.5, (theme, scale, min(ratios), int(np.argmin(ratios)))
        assert rgb_of(spans[0]["style"]) == PAGE[theme][0]  # weight 0: the page's background ...
        assert ink_of(spans[0]["style"]) == PAGE[theme][1]  # ... and its text colour: plain text
        assert f"background-color:#{''.join(f'{c:02x}' for c in PAGE[theme][0])}" in frag  # the box is the page
    big = highlight_spans(text, offsets, ramp, theme=theme, classroom=True)
    assert ("font-size:1.4em" in big) and ("font-size:1.4em" not in highlight_spans(text, offsets, ramp, theme=theme))


def test_the_palette_starts_at_the_page_and_has_readable_ink_everywhere():
    for theme, (page, text) in PAGE.items():
        bg, ink = palette(theme)
        assert bg.shape == ink.shape == (256, 3)
        assert tuple(bg[0]) == page and tuple(ink[0]) == text
        assert min(wcag_contrast(b, i) for b, i in zip(bg, ink)) >= 4.5
        assert wcag_contrast(bg[1], page) < 1.1  # the smallest weight is barely tinted
    with pytest.raises(InvalidParameter):
        palette("sepia")


def test_text_colour_contrasts_with_the_background():
    p = parse(highlight_spans(TEXT, OFFSETS, [0, 1, 0, 0, 0, 0], cmap="viridis"))
    for s in p.spans:
        assert wcag_contrast(rgb_of(s["style"]), ink_of(s["style"])) >= 4.5  # WCAG AA for normal text


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


def test_the_scale_choice_changes_the_legend():
    w = [0.1, 0.5, 0.2, 0.0, 0.15, 0.05]
    view, absolute = highlight_legend(w, scale="view"), highlight_legend(w, scale="absolute")
    assert (view.lo, view.hi) == (0.0, 0.5) and (absolute.lo, absolute.hi) == (0.0, 1.0)
    assert [t.text for t in view.ticks] == ["0", "0.125", "0.25", "0.375", "0.5"]
    assert [t.text for t in absolute.ticks] == ["0", "0.25", "0.5", "0.75", "1"]
    assert "this view's maximum" in view.words and "0.5" in view.words
    assert "0 to 1" in absolute.words and "every view" in absolute.words
    # the uniform level 1/n is marked where it lies on each scale
    assert view.uniform.value == pytest.approx(1 / 6) and view.uniform.position == pytest.approx((1 / 6) / 0.5)
    assert absolute.uniform.position == pytest.approx(1 / 6) and "1/6" in absolute.uniform.text
    assert highlight_legend(w, uniform=None).uniform is None
    assert highlight_legend([0.1, 0.2], scale="view", uniform=0.5).uniform is None  # above the scale: not drawn
    # the legend's colour bar is the theme's palette, from the page colour up
    assert view.stops[0] == (0.0, "#ffffff") and highlight_legend(w, theme="dark").stops[0] == (0.0, "#171614")
    h_view, h_abs = highlight_legend_html(view), highlight_legend_html(absolute)
    assert "this view&#x27;s maximum" in h_view and "0 to 1 (absolute)" in h_abs and h_view != h_abs
    assert "uniform 1/6" in h_view and "dashed" in h_view
    assert "0 to 1 (absolute)" in highlight_html(TEXT, OFFSETS, w, scale="absolute")
    d = view.to_dict()
    assert d["scale"] == "view" and d["uniform"]["text"].startswith("uniform 1/6") and len(d["stops"]) == 21
    with pytest.raises(InvalidParameter):
        scale_for(w, scale="log")


def test_absolute_scale_keeps_colours_comparable():
    """On the absolute scale the same weight gets the same colour in two views of different maxima."""
    a = parse(highlight_spans("x y", [(0, 1), (2, 3)], [0.2, 0.8], scale="absolute")).spans
    b = parse(highlight_spans("x y", [(0, 1), (2, 3)], [0.2, 0.3], scale="absolute")).spans
    assert a[0]["style"] == b[0]["style"]
    a = parse(highlight_spans("x y", [(0, 1), (2, 3)], [0.2, 0.8], scale="view")).spans
    b = parse(highlight_spans("x y", [(0, 1), (2, 3)], [0.2, 0.3], scale="view")).spans
    assert a[0]["style"] != b[0]["style"]


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
    bg, _ = palette("light")
    assert rgb_of(p.spans[1]["style"]) == tuple(int(c) for c in bg[255])
    assert rgb_of(p.spans[2]["style"]) == tuple(int(c) for c in bg[128])  # 0.4 of 0.8: level 127.5 -> 128


def test_standalone_page_has_no_scripts_and_no_remote_resources():
    page = standalone_html(highlight_html("hi there", [(0, 2), (3, 8)], [0.3, 0.7]), "attention <demo>")
    assert page.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in page
    assert "default-src 'none'" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<title>attention &lt;demo&gt;</title>" in page
