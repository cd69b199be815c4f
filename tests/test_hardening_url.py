"""URL parameters are untrusted input: fuzz every parameter of every page that reads ``st.query_params``.

For each hostile value the page must open without an exception element, keep every rendered string inert,
say which parameters it ignored (one caption naming them), keep only valid values in its widgets' state,
and write only valid values back into the shareable link.
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from streamlit.testing.v1 import AppTest

from attnviz import SIMILARITIES
from attnviz import text as tx
from inert import assert_page_inert

ROOT = Path(__file__).resolve().parents[1]
TEXT_PAGE = ROOT / "pages" / "text.py"
if str(ROOT) not in sys.path:  # the app's ui/ package, also under a bare `pytest` (not `python -m pytest`)
    sys.path.insert(0, str(ROOT))

from ui.widgets import TEMPERATURES  # noqa: E402


def text_page_params() -> dict[str, str]:
    """``{url parameter: session-state key}`` as declared in pages/text.py's ``_url_to_state``."""
    src = TEXT_PAGE.read_text(encoding="utf-8")
    body = src[src.index("def _url_to_state"):src.index("def _state_to_url")]
    found = dict(re.findall(r'"(\w+)": \("(\w+)",', body))
    assert len(found) >= 10, f"could not read the parameters of _url_to_state: {found}"
    return found


#: pages that read st.query_params -> their parameters (a new page that reads them must be added here)
PAGES_WITH_PARAMS = {"pages/text.py": text_page_params}


def _text_page_module() -> dict:
    """The page's literal constants (SAMPLES, VIEWS, limits) read with ``ast``, without running the page."""
    import ast

    wanted = {"SAMPLES", "VIEWS", "HEADS_SPECIAL", "URL_MAX_TEXT_CHARS", "URL_MAX_QUERY_CHARS", "URL_MAX_INDEX"}
    out = {}
    for node in ast.parse(TEXT_PAGE.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(node.targets[0], "id", None) in wanted:
            out[node.targets[0].id] = ast.literal_eval(node.value)
    assert set(out) == wanted, f"pages/text.py no longer declares {wanted - set(out)} as literals"
    return out


PAGE = _text_page_module()


def _index_ok(v: str, limit: int) -> bool:
    return v.isascii() and v.isdigit() and len(v) <= 6 and int(v) < limit


def _temperature_ok(v: str) -> bool:
    try:
        t = float(v)
    except ValueError:
        return False
    return math.isfinite(t) and t in TEMPERATURES


#: the specification each value is checked against (independently of the page's own code)
VALID = {
    "sample": lambda v: v in PAGE["SAMPLES"],
    "s": lambda v: v in SIMILARITIES,
    "t": _temperature_ok,
    "e": lambda v: v in tx.ENCODERS,
    "v": lambda v: v in PAGE["VIEWS"],
    "m": lambda v: v in ("0", "1"),
    "b": lambda v: v in ("0", "1"),
    "q": lambda v: len(v) <= PAGE["URL_MAX_QUERY_CHARS"] and v.isprintable(),
    "k": lambda v: _index_ok(v, PAGE["URL_MAX_INDEX"]),
    "l": lambda v: _index_ok(v, 64),
    "h": lambda v: v in PAGE["HEADS_SPECIAL"] or _index_ok(v, 64),
    "w": lambda v: _index_ok(v, PAGE["URL_MAX_INDEX"]),
    "text": lambda v: 0 < len(v) <= PAGE["URL_MAX_TEXT_CHARS"],
}

#: garbage, huge, unicode, negative, NaN, markup — and a few values valid for some parameters
VALUES = [
    "", " ", "garbage", "-1", "-0", "NaN", "-inf", "1e309", "0x1A", "１２", "٣", "3.5e-400", "9" * 7, "9" * 5000,
    "x" * 30_000, "<script>alert(1)</script>", "[x](javascript:alert(1)) ![i](http://example.invalid/i.png)",
    "\x00\x1b[31m\x7f", "\ufffd\ufffd", "😀" * 60, "true", "None", "[]", "../../etc/passwd", "%00",
    "0.1", "1", "rollout", "euclidean",
]


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
    assert set(text_page_params()) == set(VALID), "a parameter of pages/text.py has no specification here"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("value", VALUES, ids=lambda v: ascii(v[:12]) + (f"x{len(v)}" if len(v) > 12 else ""))
def test_every_parameter_at_once(value):
    params = text_page_params()
    at = open_text_page({p: value for p in params})
    assert_page_inert(at)
    assert at.title and at.title[0].value == "📝 Text attention"
    expected = {p for p in params if not VALID[p](value)}
    assert ignored_params(at) == expected  # the page names exactly what it ignored
    link = at.query_params  # the page rewrites its link: only valid values remain
    for param in params:
        if param in link:
            v = link[param][-1] if isinstance(link[param], list) else link[param]
            assert VALID[param](v), (param, v[:80])


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
    assert_page_inert(at, "café")
    assert ignored_params(at) == {"q", "k"}  # a NUL is not printable; U+FFFD is not a digit


@pytest.mark.parametrize("page", ["pages/image.py", "pages/home.py"])
def test_pages_without_parameters_ignore_garbage(page):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.query_params.update({"s": "<script>", "t": "NaN", "text": "\x00" * 100, "k": "-1", "img_row": "9" * 50})
    at.run()
    at.switch_page(page).run()
    assert_page_inert(at)
    assert at.title


def test_link_round_trip_keeps_text_and_settings():
    """What the page writes into its link opens the same settings in a new session."""
    at = open_text_page({"text": "The kitten <b>sat</b> by the car.", "s": "rbf", "t": "0.5", "v": "row", "k": "2"})
    assert not ignored_params(at)
    link = {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}
    again = open_text_page(link)
    assert_page_inert(again, "The kitten <b>sat</b> by the car.")
    for key in ("txt_sim", "txt_temp", "view", "token", "text"):
        assert again.session_state[key] == at.session_state[key]
    assert urlencode(link)  # a plain, encodable link
