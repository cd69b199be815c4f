"""Checks that user text stays inert in generated HTML and Markdown (shared by the hardening tests).

HTML is parsed with ``html.parser`` and its tag set and attributes inspected; Markdown (what st.markdown,
st.caption, st.error and widget labels render) is first turned into HTML with markdown-it (CommonMark +
tables, every link allowed so that link syntax is seen even where a renderer would drop the URL).
"""

from __future__ import annotations

import json
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
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return bodies, markdown, specs


def assert_page_inert(at, text: str | None = None) -> None:
    """No exception element; every st.html body, Markdown text, widget label and plotly label of an AppTest
    run is inert; ``text`` (the user's) is shown, escaped, in a highlight."""
    assert not at.exception, [e.value for e in at.exception]
    bodies, markdown, specs = page_outputs(at)
    for body in bodies:
        assert_inert_html(body)
    if text is not None:
        assert any(text[:40] in parse(b).text for b in bodies if "attnviz-text" in b), \
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
