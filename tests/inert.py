"""Checks that user text stays inert in generated HTML and Markdown (shared by the hardening tests).

HTML is parsed with ``html.parser`` and its tag set and attributes inspected; Markdown (what st.markdown,
st.caption, st.error and widget labels render) is first turned into HTML with markdown-it (CommonMark +
tables, every link allowed so that link syntax is seen even where a renderer would drop the URL).
"""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser

MARK = "ZQX"  # every hostile payload carries it, so the user's text can be told from the page's own

#: tags the renderers themselves may emit (st.html fragments and the standalone page)
OWN_HTML_TAGS = {"div", "span", "ul", "li", "p", "h1", "h2", "html", "head", "body", "meta", "title",
                 # the saved page's labelled matrix: a table built from numbers, or an inline PNG of it
                 "table", "caption", "thead", "tbody", "tr", "th", "td", "img", "figure", "figcaption"}
OWN_ATTRS = {"class", "style", "title", "data-i", "data-w", "data-rank", "lang", "charset", "http-equiv",
             "content", "name", "scope", "src", "alt", "width", "height"}
#: the only elements user text may sit inside once Markdown is rendered
MARKDOWN_CONTAINERS = {"p", "br"}


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text (decoded) found inside each stack of tags."""

    VOID = {"meta", "br", "img", "hr", "input", "link"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.data: list[tuple[tuple[str, ...], str]] = []
        self.other: list[str] = []  # comments, declarations, processing instructions

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass

    def handle_data(self, data):
        self.data.append((tuple(self.stack), data))

    def handle_comment(self, data):
        self.other.append(f"<!--{data}-->")

    def handle_decl(self, decl):
        if decl.lower() != "doctype html":
            self.other.append(decl)

    def handle_pi(self, data):
        self.other.append(data)

    def unknown_decl(self, data):
        self.other.append(data)

    @property
    def text(self) -> str:
        return "".join(d for _, d in self.data)


def parse(markup: str) -> Tags:
    p = Tags()
    p.feed(markup)
    p.close()
    return p


def assert_inert_html(markup: str, shown: str | None = None) -> Tags:
    """Only the renderer's own tags and attributes; no handlers, no URLs; ``shown`` is visible as text."""
    p = parse(markup)
    for tag, attrs in p.tags:
        assert tag in OWN_HTML_TAGS, f"live <{tag}> in the output: {markup[:300]!r}"
        for name, value in attrs.items():
            assert name in OWN_ATTRS, f"attribute {name!r} on <{tag}>"
            value = value or ""
            if name not in ("title", "alt"):  # tooltips and alt text show the user's text as text; nothing else may carry a URL
                assert "javascript:" not in value.lower().replace(" ", "")
            if name == "src":  # pictures are inline PNGs the renderer drew, never a link
                assert tag == "img" and value.startswith("data:image/png;base64,"), value[:80]
            if name == "style":  # styles are built from numbers only: no user text may reach CSS
                assert MARK not in value and "display:none" not in value, value
            if name == "content" and tag == "meta":
                assert MARK not in value
    assert not p.other, f"comments/declarations leaked: {p.other}"
    if shown is not None:
        assert shown in p.text, "the user's text must be shown verbatim (escaped), not dropped"
    return p


def md_to_html(source: str) -> str:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").enable("strikethrough")
    md.validateLink = lambda url: True  # show every link the syntax makes, even ones a renderer would drop
    return md.render(source)


def assert_inert_markdown(source: str) -> None:
    """Rendered as Markdown (as st.markdown / st.caption / st.error would), the user's text is plain text."""
    p = parse(md_to_html(source))
    for tag, attrs in p.tags:
        assert tag not in ("img", "script", "iframe", "svg", "style", "table", "div", "h1", "h2", "h3"), \
            f"<{tag}> from {source[:200]!r}"
        if tag == "a":
            href = (attrs.get("href") or "").lower()
            assert "javascript" not in href and "example.invalid" not in href, href
    for stack, data in p.data:
        if MARK in data:
            assert set(stack) <= MARKDOWN_CONTAINERS, f"user text inside {stack}: {source[:200]!r}"


def page_outputs(at) -> tuple[list[str], list[str], list[dict]]:
    """(st.html bodies, Markdown sources of every text element, plotly figure specs) of an AppTest run."""
    bodies = [el.proto.body for el in at.get("html")]
    markdown = []
    for kind in ("markdown", "caption", "warning", "error", "info", "success", "title", "header", "subheader"):
        markdown += [el.value for el in getattr(at, kind)]
    for widget in ("selectbox", "radio", "text_input", "text_area", "toggle", "slider", "select_slider",
                   "number_input"):
        markdown += [w.label for w in getattr(at, widget)]  # widget labels are rendered as Markdown
    markdown += [m.label for m in at.metric]
    for image in at.image:  # st.image captions are rendered as Markdown too
        markdown += image.captions
    for kind in ("expander", "download_button", "button", "tabs"):  # their labels are Markdown as well
        markdown += [el.proto.label for el in at.get(kind) if getattr(el.proto, "label", "")]
    markdown += [el.proto.popover.label for el in at.get("popover") if el.proto.popover.label]
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return bodies, markdown, specs


def assert_page_inert(at, text: str | None = None) -> None:
    """No exception element; every st.html body, Markdown text, widget label and plotly label of an AppTest
    run is inert; ``text`` (the user's) is shown, escaped, in a highlight."""
    assert not at.exception, [e.value for e in at.exception]
    bodies, markdown, specs = page_outputs(at)
    for body in bodies:
        assert_inert_html(body)
    views = [v for el in at.get("bidi_component") if (v := assert_component_inert(el)) is not None]
    for latex in at.latex:  # KaTeX runs \\href and friends: no user text may reach a formula
        assert MARK not in latex.value, latex.value[:200]
    for frame in at.dataframe:
        assert_plain_table(frame)
    if text is not None:  # shown: escaped in a static highlight, or as plain strings in a token view's data
        assert (any(text[:40] in parse(b).text for b in bodies if "attnviz-text" in b)
                or any(text[:40] in woven(v["gaps"], v["tokens"]) for v in views)), \
            "the user's text must appear, escaped, in the highlight"
    for source in markdown:
        assert_inert_markdown(source)
    for spec in specs:
        labels = [spec.get("layout", {}).get("title", {}).get("text", "")]
        for trace in spec["data"]:
            labels += [str(v) for v in (trace.get("x") or []) if isinstance(v, str)]
            labels += [str(v) for v in (trace.get("y") or []) if isinstance(v, str)]
        for label in labels:
            assert not parse(label).tags, label


# ------------------------------------------------------------- Custom Components v2 and tables (AppTest)

TOKEN_VIEW = "attnviz_token_view"
#: every component the app mounts; only the token view carries data (the user's text, as plain strings)
COMPONENTS = {TOKEN_VIEW, "attnviz_page_style"}
#: ways JS can turn a string into markup or code; a component's JS may use none of them
HTML_SINKS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment",
              "DOMParser", "setHTML", "srcdoc", "eval(", "new Function", "setTimeout(\"", "javascript:")
TOKEN_VIEW_KEYS = {"v", "n", "tokens", "gaps", "labels", "q", "wt", "rank", "lo", "hi", "scale", "theme", "label",
                   "classroom", "selected", "palettes"}
_HEX6 = re.compile(r"#[0-9a-f]{6}")
_PACKED = re.compile(r"(?:[0-9a-f]{6}){256}")


def woven(gaps, tokens) -> str:
    """The text a token view draws: gap 0, token 0, gap 1, ..., token n-1, gap n."""
    return "".join(g + t for g, t in zip(gaps, tokens)) + gaps[-1]


def token_views(at) -> list[dict]:
    """The data of every token view on an AppTest page, as the browser receives it."""
    return [json.loads(el.proto.json) for el in at.get("bidi_component") if el.proto.component_name == TOKEN_VIEW]


def assert_js_has_no_html_sink(js: str) -> None:
    for sink in HTML_SINKS:
        assert sink not in js, f"the component's JS uses {sink!r}"
    assert "http://" not in js and "https://" not in js  # loads nothing from elsewhere


def _strings(value, n: int | None, what: str) -> list[str]:
    assert isinstance(value, list) and all(type(s) is str for s in value), f"{what}: not a list of plain strings"
    assert n is None or len(value) == n, f"{what}: {len(value)} items, expected {n}"
    return value


def assert_token_view_data(data: dict) -> dict:
    """The token view's data: user text only as plain strings (tokens, gaps, labels, the legend's label), the
    rest numbers, known words and colours that are pure hex (the only strings the JS turns into styles)."""
    assert set(data) == TOKEN_VIEW_KEYS, sorted(set(data) ^ TOKEN_VIEW_KEYS)
    n = data["n"]
    assert type(n) is int and n >= 0
    _strings(data["tokens"], n, "tokens")
    _strings(data["gaps"], n + 1, "gaps")
    if data["labels"] is not None:
        _strings(data["labels"], n, "labels")
    assert type(data["label"]) is str
    assert len(data["q"]) == n and all(type(v) is int and 0 <= v <= 255 for v in data["q"])
    assert len(data["rank"]) == n and all(type(v) is int and 1 <= v <= n for v in data["rank"])
    assert len(data["wt"]) == n and all(math.isfinite(float(v)) for v in _strings(data["wt"], n, "wt"))
    assert all(isinstance(data[k], (int, float)) and math.isfinite(data[k]) for k in ("lo", "hi"))
    assert data["scale"] in ("view", "absolute") and data["theme"] in ("auto", "light", "dark")
    assert type(data["classroom"]) is bool
    assert data["selected"] is None or (type(data["selected"]) is int and 0 <= data["selected"] < n)
    assert data["palettes"] and set(data["palettes"]) <= {"light", "dark"}
    for pal in data["palettes"].values():
        assert _HEX6.fullmatch(pal["page"]) and _HEX6.fullmatch(pal["text"]), (pal["page"], pal["text"])
        assert _PACKED.fullmatch(pal["bg"]) and _PACKED.fullmatch(pal["ink"])
        for position, colour in pal["legend"].get("stops") or []:
            assert math.isfinite(position) and _HEX6.fullmatch(colour), colour
    return data


def assert_component_inert(el) -> dict | None:
    """One Custom Components v2 element: a known component, JS without HTML sinks, no user text in its HTML or
    CSS; a token view's data checked (returned), every other component without data (None)."""
    proto = el.proto
    assert proto.component_name in COMPONENTS, f"unknown component {proto.component_name!r}"
    assert_js_has_no_html_sink(proto.js_content)
    assert MARK not in proto.css_content and "url(" not in proto.css_content and "@import" not in proto.css_content
    if proto.html_content:
        assert MARK not in proto.html_content
        assert_inert_html(proto.html_content)
    if proto.component_name != TOKEN_VIEW:
        assert not proto.json or MARK not in proto.json
        return None
    assert "textContent" in proto.js_content  # the strings are written as text
    return assert_token_view_data(json.loads(proto.json))


#: column types whose cells Streamlit would render as a link, a picture or Markdown
LIVE_COLUMN_TYPES = {"link", "image", "markdown", "html"}


def assert_plain_table(frame) -> None:
    """st.dataframe: no column turns a cell into a link, picture or Markdown; text cells are plain strings."""
    config = json.loads(frame.proto.columns or "{}")
    for name, col in config.items():
        kind = ((col or {}).get("type_config") or {}).get("type")
        assert kind not in LIVE_COLUMN_TYPES, f"column {name!r} is a {kind} column"
    df = frame.value
    for name in df.columns:
        if df[name].dtype == object:
            assert all(type(v) is str for v in df[name]), f"column {name!r} holds non-text objects"
