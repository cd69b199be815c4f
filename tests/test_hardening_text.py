"""Hostile text through every renderer: the library's HTML, legend, figure labels, CSV, JSON, the CLI and the
text page (AppTest). Nothing the user typed may become a live tag, attribute, link, image or heading.

The check parses the output (``html.parser``; Markdown is first rendered with markdown-it, as CommonMark + tables)
and inspects the tag set and attributes: it does not grep for ``<script``.
"""

from __future__ import annotations

import csv
import html
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz import text as tx
from attnviz.cli import main as cli_main
from attnviz.errors import AttnvizError, EmptyText, InvalidParameter, TextTooLong
from attnviz.highlight import highlight_html, highlight_many, standalone_html
from attnviz.render import legend_html, matrix_figure, to_json, weights_csv
from inert import (MARK, TOKEN_VIEW, assert_inert_html, assert_inert_markdown, assert_js_has_no_html_sink,
                   assert_page_inert, assert_token_view_data, parse, woven)

ROOT = Path(__file__).resolve().parents[1]

#: hostile or unusual text, each shown as inert text (or refused with a sentence, see REFUSED)
PAYLOADS = {
    "script_tags": f"{MARK} <script>alert('x')</script> <img src=x onerror=alert(1)> <svg onload=alert(2)> "
                   f"<iframe src=//example.invalid></iframe> <b>{MARK}</b>",
    "javascript_urls": f"{MARK} javascript:alert(document.cookie) <a href=\"javascript:alert(1)\">{MARK}</a> "
                       f"[{MARK} link](javascript:alert(1)) <javascript:alert(1)> jAvAsCrIpT&#58;alert(1)",
    "markdown_layout": f"# {MARK} heading\n\n![{MARK}](http://example.invalid/t.png)\n\n**{MARK}** _{MARK}_ "
                       f"`{MARK}`\n\n| {MARK} | b |\n|---|---|\n| c | d |\n\n> {MARK} quote\n\n"
                       f"<div style=\"position:fixed;inset:0\">{MARK}</div>\n$$\\href{{javascript:alert(1)}}{{{MARK}}}$$",
    "attribute_break": f"{MARK} \" onmouseover=\"alert(1)\" style=\"x ' onfocus='alert(2)",
    "style_break": f"{MARK} </style><style>body{{display:none}}</style></div></span></title>",
    "comments_cdata": f"{MARK} <!-- x --><script>1</script><![CDATA[ <b>{MARK}</b> ]]> <?xml x?>",
    "entities": f"{MARK} &lt;script&gt; &amp;lt; &#60;b&#62; &#x3C;i&#x3E; &quot; &nbsp;",
    "control_chars": f"{MARK} tab\there nul\x00byte bell\x07 esc\x1b[31mred\x1b[0m del\x7f nel\u0085 \r\nline2\x0c",
    "emoji_zwj": f"{MARK} family 👨‍👩‍👧‍👦, flag 🏳️‍🌈, thumbs 👍🏽, keycap 1️⃣, zwj\u200dalone",
    "rtl": f"{MARK} שלום עולם — مرحبا بالعالم \u202egnp.exe\u202c \u2067isolate\u2069 \u200f",
    "cjk": f"{MARK} 注意力机制是深度学习中的一种技术。日本語のテキスト。한국어 텍스트.",
    "csv_formula": f"{MARK} =HYPERLINK(\"http://example.invalid\",\"x\") +cmd|' /C calc'!A0 @SUM(1+1) -2+3",
}

#: refused with one sentence (never a crash): text -> the error type
REFUSED = {
    "empty": ("", EmptyText),
    "spaces": ("   \n\t  \u3000 ", EmptyText),
    "only_controls": ("\x00\x01\x02\x1b", EmptyText),
    "zero_widths": ("\ufeff\u200b\u200d", EmptyText),
    "lone_surrogate": (f"{MARK} bad \ud800 text", InvalidParameter),
    "lone_low_surrogate": ("\udcff\udcfe", InvalidParameter),
    "one_megabyte": ("word " * 200_000 + "x" * 100, TextTooLong),  # 1,000,100 characters
}


def test_the_checker_catches_live_tags():
    """The checks (tests/inert.py) fail on unescaped input, so a pass means something."""
    with pytest.raises(AssertionError):
        assert_inert_html(f"<div>{PAYLOADS['script_tags']}</div>")
    with pytest.raises(AssertionError):
        assert_inert_html('<span style="x" onmouseover="alert(1)">a</span>')
    with pytest.raises(AssertionError):
        assert_inert_markdown(f"[{MARK}](javascript:alert(1))")
    with pytest.raises(AssertionError):
        assert_inert_markdown(f"# {MARK}")
    with pytest.raises(AssertionError):
        assert_inert_markdown(f"**{MARK}**")
    assert_inert_markdown(f"plain {MARK} text")


# ------------------------------------------------------------------------------------------- library


@pytest.fixture(scope="module")
def analyses():
    """Each payload analysed once (static encoder: the renderers do not depend on the encoder)."""
    return {name: tx.analyze_text(text, "cosine", 0.1, encoder="static", query=text[:200])
            for name, text in PAYLOADS.items()}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_every_renderer_keeps_hostile_text_inert(name, analyses, tmp_path):
    text, a = PAYLOADS[name], analyses[name]
    assert a.tokens and len(a.offsets) == len(a.tokens)
    for s, e in a.offsets:  # offsets index the user's own characters
        assert 0 <= s < e <= len(text)

    # highlight fragment, legend with a hostile label, the notebook repr, the standalone page
    assert_inert_html(a.highlight(), shown=text)
    assert_inert_html(a._repr_html_(), shown=text)
    page = a.to_html(title=text)
    assert page.startswith("<!DOCTYPE html>")
    assert_inert_html(page, shown=text)
    assert "default-src 'none'" in page  # a CSP that blocks scripts even if something slipped through
    assert_inert_html(highlight_html(text, a.offsets, a.scores, labels=[text] * len(a.tokens),
                                     legend_label=text), shown=text)
    assert_inert_html(legend_html(0.0, 1.0, label=text), shown=text)
    assert_inert_html(highlight_many([(text, a.offsets, a.scores, a.tokens)] * 2, legend_label=text,
                                     captions=[text, text]))
    assert_inert_html(standalone_html(f"<p>{html.escape(text)}</p>", title=text), shown=text)

    # plotly labels and titles (plotly renders a subset of HTML in them: <a>, <b>, <br>, <span style>)
    n = min(len(a.tokens), 12)
    fig = matrix_figure(np.full((n, n), 1.0 / n), [text[:40]] * n, title=text).to_plotly_json()
    heat = fig["data"][0]
    for label in list(heat["x"]) + list(heat["y"]) + [fig["layout"]["title"]["text"]]:
        p = parse(label)
        assert not p.tags, f"plotly would render {p.tags} from {label!r}"

    # CSV: spreadsheet formulas are defused, every label survives
    for csv_text in (a.to_csv(), weights_csv(np.eye(2), [text, "=1+1"], ["@x", text])):
        rows = list(csv.reader(io.StringIO(csv_text)))
        labels = rows[0][1:] + [r[0] for r in rows[1:]]
        for label in labels:
            assert label[:1] not in ("=", "+", "-", "@", "\t", "\r"), label
        for r in rows[1:]:
            [float(v) for v in r[1:]]  # the numbers are numbers

    # JSON: valid, complete, round-trips the tokens
    data = json.loads(a.to_json())
    assert data["tokens"] == a.tokens and len(data["scores"]) == len(a.tokens)
    assert json.loads(to_json({"text": text}))["text"] == text

    # files written by save() read back as valid UTF-8
    for suffix in (".html", ".json", ".csv"):
        path = a.save(tmp_path / f"out{suffix}")
        assert path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_text_gets_one_sentence(name):
    text, error = REFUSED[name]
    with pytest.raises(error) as info:
        tx.analyze_text(text, encoder="static")
    message = str(info.value)
    assert "\n" not in message and message.endswith(".") and len(message) < 200 and "Traceback" not in message
    if text.strip():
        assert text[:50] not in message  # the sentence never echoes the (possibly hostile) text
    with pytest.raises(AttnvizError):  # a hostile query gets the same treatment
        tx.analyze_text("A fine sentence.", encoder="static", query=text if text.strip() else "\ud800")


def test_a_megabyte_is_refused_fast():
    import time

    text = REFUSED["one_megabyte"][0]
    t0 = time.perf_counter()
    with pytest.raises(TextTooLong, match="1,000,100 characters; the limit is 500,000"):
        tx.analyze_text(text)
    assert time.perf_counter() - t0 < 1.0  # refused before any tokenising


def test_at_the_library_limit_the_text_is_analysed():
    text = ("attention " * 50_000)[:tx.MAX_TEXT_CHARS]
    a = tx.analyze_text(text, encoder="static", query="attention", include_matrix=False, row_stats=False)
    assert len(a.tokens) == 50_000 and a.weights is None


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=60, alphabet=st.characters(blacklist_categories=("Cs",))))
def test_any_text_any_split_is_inert(text):
    """Property: for arbitrary Unicode (no surrogates) and arbitrary token cuts, the highlight is inert."""
    cuts = sorted({0, len(text), *range(0, len(text), 3)})
    offsets = list(zip(cuts[:-1], cuts[1:]))
    out = highlight_html(text, offsets, np.linspace(0, 1, len(offsets)), labels=[text] * len(offsets),
                         legend_label=text)
    assert_inert_html(out)
    assert parse(out).text.endswith(text)  # shown verbatim, after the legend


# ----------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("name", ["lone_surrogate", "empty", "only_controls"])
def test_cli_refuses_with_one_line(name, capsys):
    text = REFUSED[name][0]
    assert cli_main(["text", text, "--encoder", "static"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("attnviz: ") and "Traceback" not in err


def test_cli_hostile_text_json_and_html(capsys, tmp_path):
    text = PAYLOADS["script_tags"] + PAYLOADS["control_chars"]
    target = tmp_path / "out.html"
    assert cli_main(["text", text, "--encoder", "static", "--json", "--html", str(target)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["tokens"]
    with open(target, encoding="utf-8", newline="") as fh:  # keep the text's own \r\n
        assert_inert_html(fh.read(), shown=text)


@pytest.mark.timeout(60)
def test_cli_process_with_undecodable_argv_bytes(tmp_path):
    """A real process: bytes that are not UTF-8 in argv arrive as lone surrogates (surrogateescape)."""
    proc = subprocess.run([sys.executable, "-m", "attnviz", "text", b"caf\xe9 \xff", "--encoder", "static"],
                          capture_output=True, timeout=60, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                               "PYTHONPATH": str(ROOT), "LC_ALL": "C.UTF-8"})
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2, err
    assert err.count("\n") == 1 and "not valid Unicode" in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------- page


@pytest.fixture(scope="module")
def text_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/text.py").run()
    assert not at.exception
    at.selectbox(key="encoder").set_value("static").run()  # the renderers, not the encoder, are under test
    return at


def views_of(at) -> dict[str, dict]:
    """Each token view on the page (Custom Components v2): its key -> its data, as the browser receives it."""
    out = {}
    for el in at.get("bidi_component"):
        if el.proto.component_name == TOKEN_VIEW:
            out[el.proto.id] = assert_token_view_data(json.loads(el.proto.json))
    return out


def assert_sent_as_data(at, text: str, exact: bool = True) -> list[dict]:
    """The text page's token views carry ``text`` as plain strings (gaps + tokens give it back verbatim: nothing
    escaped, dropped or parsed); the view's JS writes them with textContent only; every other element is inert."""
    assert_page_inert(at)  # st.html, Markdown, captions, labels, metrics, plotly labels, tables, components
    views = list(views_of(at).values())
    assert views, "no token view on the page"
    texts = [woven(v["gaps"], v["tokens"]) for v in views]
    if exact:
        assert text in texts, f"no token view draws the text verbatim: {[t[:80] for t in texts]}"
    else:  # a window of the text (the model view): contiguous pieces of it, the first one from its start
        assert all(t and t in text for t in texts) and any(text.startswith(t[:40]) for t in texts), texts
    for v in views:
        for pal in v["palettes"].values():  # what becomes a style is pure hex (checked above); the rest is text
            assert MARK not in pal["page"] + pal["text"] + pal["bg"] + pal["ink"]
        if v["labels"] is not None:  # hover names: word pieces of the text, unescaped
            assert all(type(t) is str and "&lt;" not in t for t in v["labels"])
    for frame in at.dataframe:  # table cells: the text's own characters, as plain strings
        if "text" in frame.value.columns:
            assert all(cell in text for cell in frame.value["text"]), list(frame.value["text"])
    return views


def test_the_token_view_js_has_no_html_sink():
    """The JS the page mounts (and the file it is read from) writes text with textContent only; the checker
    itself fails on each sink."""
    js = (ROOT / "ui" / "components" / "tokens.js").read_text(encoding="utf-8")
    assert "textContent" in js
    assert_js_has_no_html_sink(js)
    for sink in ("el.innerHTML = tok", "el.outerHTML = x", "el.insertAdjacentHTML('beforeend', t)",
                 "document.write(t)", "new DOMParser().parseFromString(t, 'text/html')"):
        with pytest.raises(AssertionError):
            assert_js_has_no_html_sink(js + "\n" + sink)


def test_the_data_checker_catches_markup_in_styles():
    """A colour that is not pure hex (the only strings the JS turns into styles) fails the check."""
    from attnviz.highlight import token_view_payload

    good = token_view_payload(["a", "<b>"], [0.2, 0.8], ["", " ", ""], labels=["a", "<b>"])
    assert_token_view_data(good)
    bad = json.loads(json.dumps(good))
    bad["palettes"]["light"]["page"] = "red;background:url(javascript:alert(1))"
    with pytest.raises(AssertionError):
        assert_token_view_data(bad)
    bad = json.loads(json.dumps(good))
    bad["tokens"][1] = {"html": "<b>"}
    with pytest.raises(AssertionError):
        assert_token_view_data(bad)


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_page_query_and_row_views_keep_text_inert(text_page, name):
    at, text = text_page, PAYLOADS[name]
    at.radio(key="view").set_value("query").run()
    at.text_area(key="text").set_value(text)
    at.text_input(key="query").set_value(text[:120]).run()
    (view,) = assert_sent_as_data(at, text)
    assert view["label"] == f"attention from the query {text[:120].strip()!r}"  # the query: a plain string
    pieces, end = [], 0  # each word piece's own characters (pieces that share characters: the new ones only)
    for s, e in tx.analyze_text(text, encoder="static").offsets:
        pieces.append(text[max(s, end):max(e, end)])
        end = max(end, e)
    assert view["tokens"] == pieces
    at.radio(key="view").set_value("row").run()
    (view,) = assert_sent_as_data(at, text)
    assert view["selected"] == at.session_state["token"]


def test_page_matrix_and_model_views_keep_text_inert(text_page):
    at = text_page
    text = " ".join(PAYLOADS[k] for k in ("script_tags", "markdown_layout", "attribute_break", "rtl"))
    at.text_area(key="text").set_value(text)
    at.radio(key="view").set_value("matrix").run()
    views = assert_sent_as_data(at, text)
    assert len(views) == 2 and all(woven(v["gaps"], v["tokens"]) == text for v in views)  # the row and received
    at.radio(key="view").set_value("model").run()
    views = assert_sent_as_data(at, text, exact=False)
    assert len(views) == 2  # the similarity row and the model's row, side by side
    at.radio(key="view").set_value("query").run()


def test_page_batch_mode_keeps_lines_and_query_inert(text_page):
    at = text_page
    lines = [PAYLOADS[k].replace("\n", " ") for k in ("script_tags", "javascript_urls", "markdown_layout", "cjk")]
    query = f"[{MARK}](javascript:alert(1)) ![x](http://example.invalid/y.png) **{MARK}** <b>{MARK}</b> # {MARK}"
    at.radio(key="view").set_value("query").run()  # the query box exists in the query view only
    at.text_area(key="text").set_value("\n".join(lines))
    at.toggle(key="batch").set_value(True)
    at.text_input(key="query").set_value(query).run()
    assert at.toggle(key="batch").value is True
    views = assert_sent_as_data(at, lines[0])  # the inspected line (the first) as a token view
    assert views[0]["label"] == f"attention from the query {query!r}"
    batch = [b for b in (el.proto.body for el in at.get("html")) if "attnviz-text" in b]
    assert len(batch) == 1  # every line in one static highlight, escaped
    shown = assert_inert_html(batch[0]).text
    assert all(line in shown for line in lines), "each line is shown verbatim in the batch highlight"
    assert any("texts, batched" in m.value for m in at.markdown)
    at.selectbox(key="line").set_value(3).run()
    assert_sent_as_data(at, lines[3])
    at.toggle(key="batch").set_value(False).run()


@pytest.mark.parametrize("name", ["empty", "spaces", "only_controls", "zero_widths"])
def test_page_refuses_empty_text_with_one_sentence(text_page, name):
    at = text_page
    at.text_area(key="text").set_value(REFUSED[name][0]).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "\n" not in errors[0] and errors[0].endswith(".")


def test_page_cuts_a_megabyte_with_a_notice(text_page):
    at = text_page
    at.text_area(key="text").set_value(REFUSED["one_megabyte"][0]).run()
    assert not at.exception and not at.error
    assert any("1,000,100 characters; this page analyses the first" in w.value for w in at.warning)
    assert "text" not in at.query_params  # a megabyte never goes into the shareable link
    at.text_area(key="text").set_value("Back to a short text.").run()
