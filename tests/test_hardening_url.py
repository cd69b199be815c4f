"""URL parameters are untrusted input: fuzz every parameter of every page that reads ``st.query_params``.

For each hostile value the page must open without an exception element, keep every rendered string inert,
say which parameters it ignored (one caption naming them), keep only valid values in its widgets' state,
and write only valid values back into the shareable link.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from attnviz import SIMILARITIES
from attnviz import text as tx
from attnviz.errors import InvalidParameter
from attnviz.image.analysis import VIEWS as IMAGE_VIEWS
from attnviz.pages import page
from attnviz.render import COLORMAPS
from attnviz.state import TEMPERATURES
from attnviz.state import image as si
from attnviz.state import text as ts
from attnviz.state.text import QUERY_PARAMS, TextPageState
from inert import assert_page_inert

ROOT = Path(__file__).resolve().parents[1]

#: pages that read st.query_params -> their link parameters (a new page that reads them must be added here)
PAGES_WITH_PARAMS = {"pages/text.py": set(QUERY_PARAMS),
                     "ui/widgets.py": set(QUERY_PARAMS),  # read_link / write_link: the text page's
                     "pages/image.py": set(si.QUERY_PARAMS)}


def _index_ok(v: str, limit: int) -> bool:
    return v.isascii() and v.isdigit() and len(v) <= 6 and int(v) < limit


def _text_of(v: str):
    """The specification of the ``text`` parameter: urlsafe base64 (padding optional) of zlib data that
    inflates to UTF-8 text of 1..URL_MAX_TEXT_CHARS characters; read with a bound so a bomb is not inflated."""
    import base64
    import binascii
    import zlib

    if not v or len(v) > ts.URL_MAX_TEXT_PARAM or not v.isascii():
        return None
    try:
        d = zlib.decompressobj()
        out = d.decompress(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)), 4 * 20_000 + 1)
        text = out.decode("utf-8") if d.eof and not d.unconsumed_tail else None
    except (binascii.Error, ValueError, zlib.error, UnicodeDecodeError):
        return None
    return text if text and len(text) <= 20_000 else None


def _temperature_ok(v: str) -> bool:
    try:
        t = float(v)
    except ValueError:
        return False
    return math.isfinite(t) and t in TEMPERATURES


#: the specification each value is checked against (independently of the state object's own code)
VALID = {
    "sample": lambda v: v in ts.SAMPLES or v == "own",
    "s": lambda v: v in SIMILARITIES,
    "t": _temperature_ok,
    "e": lambda v: v in tx.ENCODERS,
    "v": lambda v: v in ts.VIEWS,
    "m": lambda v: v in ("0", "1"),
    "b": lambda v: v in ("0", "1"),
    "q": lambda v: len(v) <= ts.URL_MAX_QUERY_CHARS and v.isprintable(),
    "k": lambda v: _index_ok(v, ts.URL_MAX_INDEX),
    "l": lambda v: _index_ok(v, 64),
    "h": lambda v: v in ts.HEADS_SPECIAL or _index_ok(v, 64),
    "w": lambda v: _index_ok(v, ts.URL_MAX_INDEX),
    "text": lambda v: _text_of(v) is not None,
    "c": lambda v: v in ("absolute", "view"),
}

#: garbage, huge, unicode, negative, NaN, markup — and a few values valid for some parameters
VALUES = [
    "", " ", "garbage", "-1", "-0", "NaN", "-inf", "1e309", "0x1A", "１２", "٣", "3.5e-400", "9" * 7, "9" * 5000,
    "x" * 30_000, "<script>alert(1)</script>", "[x](javascript:alert(1)) ![i](http://example.invalid/i.png)",
    "\x00\x1b[31m\x7f", "\ufffd\ufffd", "😀" * 60, "true", "None", "[]", "../../etc/passwd", "%00",
    "0.1", "1", "rollout", "euclidean", "1_0", " 1", "0.10", "1e-1", "kitten", "model", "999999", "000001",
]
IDS = lambda v: ascii(v[:12]) + (f"x{len(v)}" if len(v) > 12 else "")  # noqa: E731


def assert_link_valid(link) -> None:
    """Every parameter of ours in a written link passes the specification."""
    for param in QUERY_PARAMS:
        if param in link:
            v = link[param][-1] if isinstance(link[param], list) else link[param]
            assert VALID[param](v), (param, v[:80])


# ------------------------------------------------------------------------- the state object alone


def expected_value(param: str, v: str):
    """What a valid value of ``param`` becomes in the state (the specification's reading of it)."""
    if param == "t":
        return float(v)
    if param in ("m", "b"):
        return v == "1"
    if param in ("k", "l", "w") or (param == "h" and v not in ts.HEADS_SPECIAL):
        return int(v)
    if param == "text":
        return _text_of(v)
    return v


def test_the_specification_covers_every_parameter_and_the_slider_offers_what_a_link_may_carry():
    from ui.widgets import TEMPERATURES as slider

    assert set(QUERY_PARAMS) == set(VALID), "a parameter of TextPageState has no specification here"
    assert set(QUERY_PARAMS.values()) == set(TextPageState.field_names())  # every setting travels in the link
    assert slider is TEMPERATURES


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_state_takes_each_parameter_only_when_valid(value):
    defaults = TextPageState()
    for param, name in QUERY_PARAMS.items():
        state = TextPageState.from_query({param: value})
        if VALID[param](value):
            assert state.ignored == (), param
            assert getattr(state, name) == expected_value(param, value), param
        else:
            assert state.ignored == (param,), param
            assert state == defaults, param  # a bad value falls back to the default
        assert_link_valid(state.to_query())
        assert TextPageState.from_query(state.to_query()) == state  # what it writes opens the same state


@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_state_with_every_parameter_at_once(value):
    state = TextPageState.from_query({p: value for p in QUERY_PARAMS})
    assert set(state.ignored) == {p for p in QUERY_PARAMS if not VALID[p](value)}
    assert_link_valid(state.to_query())
    assert TextPageState.from_query(state.to_query()) == state


def test_state_values_are_typed():
    state = TextPageState.from_query({"t": "0.5", "m": "1", "b": "0", "k": "000007", "l": "3", "h": "2", "w": "40",
                                      "s": "rbf", "text": "A kitten."})
    assert (state.temperature, state.merge, state.batch, state.token, state.layer, state.head, state.window) == (
        0.5, True, False, 7, 3, 2, 40)
    assert TextPageState.from_query({"h": "rollout"}).head == "rollout"
    assert TextPageState.from_query({"s": "euclidean"}).temperature == 1.0  # the similarity's own default
    assert TextPageState.from_query({"sample": "batch"}).batch is True  # the batch sample starts batched
    assert TextPageState.from_query({"s": ["bogus"]}).ignored == ("s",)  # not a string: ignored, never raised
    for bad in ({"temperature": 0.04}, {"token": -1}, {"token": True}, {"head": "max"}, {"view": "evil"},
                {"sample": "../x"}, {"similarity": "nope"}, {"merge": "1"}):
        with pytest.raises(InvalidParameter):
            TextPageState(**bad)  # built directly, it validates too


# ---------------------------------------------------------------------------- through the page


def ignored_params(at) -> set[str]:
    for c in at.caption:
        m = re.search(r"The link's (.+?) parameter\(s\) were not valid and were ignored", c.value)
        if m:
            return set(m.group(1).split(", "))
    return set()


def open_text_page(params: dict) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(params)
    at.run()
    at.switch_page("pages/text.py").run()
    return at


def test_every_page_that_reads_query_params_is_fuzzed():
    readers = sorted(str(p.relative_to(ROOT)) for folder in ("pages", "ui") for p in (ROOT / folder).glob("*.py")
                     if "query_params" in p.read_text(encoding="utf-8"))
    readers += ["app.py"] if "query_params" in (ROOT / "app.py").read_text(encoding="utf-8") else []
    assert set(readers) <= set(PAGES_WITH_PARAMS), f"fuzz these pages' parameters too: {readers}"
    assert "read_link(TextPageState," in (ROOT / "pages" / "text.py").read_text(encoding="utf-8")
    assert "state_cls.from_query(st.query_params)" in (ROOT / "ui" / "widgets.py").read_text(encoding="utf-8")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("value", VALUES, ids=IDS)
def test_every_parameter_at_once(value):
    at = open_text_page({p: value for p in QUERY_PARAMS})
    assert_page_inert(at)
    assert at.title and at.title[0].value == page("pages/text.py").heading
    expected = {p for p in QUERY_PARAMS if not VALID[p](value)}
    assert ignored_params(at) == expected  # the page names exactly what it ignored
    assert_link_valid(at.query_params)  # the page rewrites its link: only valid values remain


def test_repeated_and_unknown_parameters():
    at = open_text_page({"s": ["bogus", "euclidean"], "zzz": "<script>alert(1)</script>", "utm_source": "x" * 500,
                         "embed_options": "garbage"})
    assert_page_inert(at)
    assert at.session_state["txt_sim"] == "euclidean"  # the last of repeated values, as st.query_params.get does
    assert not ignored_params(at)  # unknown names belong to someone else: not ours to judge


def test_a_query_string_beyond_streamlits_limit_opens_the_defaults():
    """Streamlit drops a query string above 512 Ki characters entirely; the page opens with its defaults."""
    at = open_text_page({"text": "y" * 600_000, "s": "euclidean"})
    assert_page_inert(at)
    assert at.session_state["txt_sim"] == "cosine"


def test_percent_encoding_that_is_not_utf8_arrives_as_replacement_characters():
    """Bytes that are not UTF-8 (%ED%A0%80 is a lone surrogate, %FF is not UTF-8 at all) are decoded by the
    query-string parser as U+FFFD, so no lone surrogate ever reaches the page; the page takes the text."""
    from urllib.parse import parse_qs

    try:
        from streamlit.runtime.state.query_params import _parse_query_string as parse
    except ImportError:  # streamlit moved its helper; it uses the standard library's parser
        parse = lambda q: parse_qs(q, keep_blank_values=True)  # noqa: E731
    raw = "text=caf%C3%A9%20%ED%A0%80%FF%20ok&q=%00%ED%A0%80&k=%FF"
    parsed = {k: v[-1] for k, v in parse(raw).items()}
    assert all(not re.search("[\ud800-\udfff]", v) for v in parsed.values())
    assert "\ufffd" in parsed["text"]
    at = open_text_page(parsed)
    assert_page_inert(at)
    assert ignored_params(at) == {"text", "q", "k"}  # not base64 text; a NUL is not printable; U+FFFD is not a digit
    assert at.session_state["text"] == ts.sample_text("kitten")


@pytest.mark.parametrize("page", ["pages/home.py"])
def test_pages_without_parameters_ignore_garbage(page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update({"s": "<script>", "t": "NaN", "text": "\x00" * 100, "k": "-1", "img_row": "9" * 50})
    at.run()
    at.switch_page(page).run()
    assert_page_inert(at)
    assert at.title


def test_link_round_trip_keeps_text_and_settings():
    """What the page writes into its link opens the same settings in a new session."""
    at = open_text_page({"text": ts.encode_text_param("The kitten <b>sat</b> by the car."), "s": "rbf", "t": "0.5",
                         "v": "row", "k": "2"})
    assert not ignored_params(at)
    link = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    again = open_text_page(link)
    assert_page_inert(again)
    shown = [json.loads(e.proto.json) for e in again.get("bidi_component")
             if e.proto.component_name == "attnviz_token_view"]
    assert "".join(shown[0]["tokens"]).startswith("Thekitten<b>sat</b>")  # plain strings, drawn with textContent
    for key in ("txt_sim", "txt_temp", "view", "token", "text"):
        assert again.session_state[key] == at.session_state[key]
    assert urlencode(link)  # a plain, encodable link


def test_a_20000_character_text_survives_the_link_round_trip():
    """The documented limit: a 20,000-character text and its settings come back from the page's own link."""
    words = (ROOT / "attnviz" / "assets" / "text_en_long.txt").read_text(encoding="utf-8")
    text = (words * 3)[:ts.URL_MAX_TEXT_CHARS - 1] + "."
    assert len(text) == ts.URL_MAX_TEXT_CHARS == 20_000
    at = open_text_page({"text": ts.encode_text_param(text), "s": "dot", "v": "row", "k": "7", "c": "absolute"})
    assert not at.exception and not ignored_params(at)
    assert at.text_area(key="text").value == text and at.selectbox(key="sample").value == "own"
    link = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    assert "sample" not in link and len(link["text"]) < len(text)  # compressed, and no sample's name
    again = open_text_page(link)
    assert not again.exception and not ignored_params(again)
    for key in ("text", "txt_sim", "view", "token", "scale", "sample"):
        assert again.session_state[key] == at.session_state[key], key
    too_long = text + " and more"
    again.text_area(key="text").set_value(too_long).run()
    assert "text" not in again.query_params  # too long for a link: the teacher is told before copying it
    assert any("20,009 characters" in w.value and "at most 20,000" in w.value for w in again.warning)


# --------------------------------------------------------------------------- the image page's link


def _step_ok(v: str, lo: float, hi: float, step: float) -> bool:
    try:
        x = float(v)
    except ValueError:
        return False
    k = (x - lo) / step if math.isfinite(x) else 0.5
    return lo <= x <= hi and abs(k - round(k)) < 1e-6


def _flag(v: str) -> bool:
    return v in ("0", "1")


#: the image page's link parameters, specified independently of attnviz.state.image's parsers
IMAGE_VALID = {
    "sample": lambda v: v in si.SAMPLE_IDS or v in si.SAMPLE_IDS.values(),
    "s": lambda v: v in SIMILARITIES,
    "t": _temperature_ok,
    "p": lambda v: _index_ok(v, si.URL_MAX_PATCH) and int(v) >= 1,
    "v": lambda v: v in ("query", "received", "pooling"),
    "c": lambda v: v in COLORMAPS,
    "o": lambda v: _step_ok(v, 0.0, 1.0, 0.05),
    "g": _flag,
    "pos": lambda v: _step_ok(v, 0.0, 3.0, 0.25),
    "r": lambda v: _index_ok(v, si.URL_MAX_INDEX),
    "col": lambda v: _index_ok(v, si.URL_MAX_INDEX),
    "m": lambda v: v in ("similarity", "heads"),
    "f": lambda v: v in ("dinov2", "handcrafted"),
    "res": lambda v: v in ("224", "336", "448", "518"),
    "fl": lambda v: _index_ok(v, 12),
    "l": lambda v: _index_ok(v, 12),
    "h": lambda v: v == "mean" or _index_ok(v, 6),
    "hm": lambda v: v in ("cls", "patch", "rollout"),
    "k": _flag,
    "kf": lambda v: _step_ok(v, 0.1, 0.95, 0.05),
    "ns": _flag,
    "xq": _flag,
}

#: hostile values, and a few that are valid for some of the image page's parameters
IMAGE_VALUES = ["", "garbage", "-1", "NaN", "1e309", "１２", "9" * 5000, "x" * 20_000, "<script>alert(1)</script>",
                "[x](javascript:alert(1))", "\x00\x1b[31m", "😀" * 60, "../../etc/passwd", "1", "0.5", "mean"]


def test_the_image_specification_covers_every_parameter():
    assert set(IMAGE_VALID) == set(si.QUERY_PARAMS)
    assert set(IMAGE_VIEWS) == {"query", "received", "pooling"}  # the specification's views are the page's


@pytest.mark.timeout(180)
@pytest.mark.parametrize("value", IMAGE_VALUES, ids=IDS)
def test_every_image_parameter_at_once(value):
    """All of the image page's link parameters set to one hostile value: the page opens inert, says in one
    warning that the link was not valid when any parameter was refused, and writes only valid values back."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({p: value for p in si.QUERY_PARAMS})
    at.switch_page("pages/image.py").run()
    assert not at.exception, at.exception
    assert_page_inert(at)
    assert at.title and at.title[0].value == page("pages/image.py").heading
    refused = {p for p in si.QUERY_PARAMS if not IMAGE_VALID[p](value)}
    notices = [w.value for w in at.warning if "link" in w.value]
    assert len(notices) == (1 if refused else 0), notices
    for param in si.QUERY_PARAMS:
        if param in at.query_params:
            v = at.query_params[param]
            v = v[-1] if isinstance(v, list) else v
            assert IMAGE_VALID[param](v), (param, v[:80])
