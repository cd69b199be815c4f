"""Every result's standalone HTML page, opened from disk (file://) in the real Chromium at 1280 x 720 and 390 x 844.

Each page must render as written: no console error, no script element, the tokens as visible text, the colour bar
(a gradient with numeric labels) where there is one, every image decoded, and nothing wider than a phone's
viewport (a wide matrix scrolls inside its own box). No streamlit server: the pages stand alone.
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.browser

TEXT = "The kitten <b>sat</b> on the river bank & slept."
SIZES = {"projector": (1280, 720), "phone": (390, 844)}

MEASURE = """() => ({
  scripts: document.querySelectorAll('script').length,
  text: document.body.innerText,
  images: [...document.images].map(i => ({complete: i.complete, w: i.naturalWidth, h: i.naturalHeight,
                                          shown: i.getBoundingClientRect().width})),
  legends: [...document.querySelectorAll('.attnviz-legend')].map(l => ({
      gradient: [...l.querySelectorAll('div')].some(d => getComputedStyle(d).backgroundImage.includes('gradient')),
      labels: l.innerText})),
  scrollWidth: document.documentElement.scrollWidth,
  markup: [...document.querySelectorAll('body b, body i')].map(e => e.innerText),
  // drawn outside the viewport, left or right, and not inside a box that scrolls sideways
  outside: [...document.querySelectorAll('body *')].filter(e => {
      for (let p = e.parentElement; p; p = p.parentElement)
        if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(p).overflowX)) return false;
      const r = e.getBoundingClientRect();
      return r.width > 0 && (r.left < -0.5 || r.right > innerWidth + 0.5);
    }).map(e => e.tagName + ': ' + e.innerText.slice(0, 40)),
})"""


@pytest.fixture(scope="module")
def chromium(chromium_alone):
    """Chromium alone (tests/browser/conftest.py's, shared with the other browser tests: playwright's sync
    API allows one instance per thread): the pages are files, so no streamlit server is started."""
    return chromium_alone


def _softmax_rows(rng, shape):
    x = rng.normal(size=shape)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """name -> (the file written by save(), the token texts that must be visible, whether it has a colour bar,
    whether it has pictures: the text pages draw their matrix as a table of text)."""
    import torch

    from attnviz.byo import from_attention
    from attnviz.export import save
    from attnviz.image import analyze_image, sample_path
    from attnviz.text import analyze_text, model_attentions
    from attnviz.trace import head_trace, swap_head_similarity

    out = tmp_path_factory.mktemp("exports")
    rng = np.random.default_rng(0)
    words = ["[CLS]", "the", "<b>kitten</b>", "sat", "&amp;", "slept", "[SEP]"]
    n = len(words)
    found = {}

    analysis = analyze_text(TEXT, encoder="contextual")
    assert analysis.weights is not None  # the matrix view
    found["text"] = (save(analysis, out / "text.html"), ["kitten", "<b>sat</b>", "river", "&"], True, False)
    found["model"] = (save(model_attentions(TEXT), out / "model.html"), ["kitten", "<b>sat</b>", "bank"], True, True)
    kinds = {"numpy": _softmax_rows(rng, (2, 3, n, n)),  # (layers, heads, n, n)
             "tuple": tuple(torch.from_numpy(_softmax_rows(rng, (1, 3, n, n))) for _ in range(2)),  # HF style
             "list": [_softmax_rows(rng, (3, n, n)).tolist() for _ in range(2)]}  # per layer, nested lists
    for kind, att in kinds.items():
        res = from_attention(att, words, name="<i>my</i> model")
        found[f"byo-{kind}"] = (save(res, out / f"byo-{kind}.html"), ["<b>kitten</b>", "&amp;", "slept", "<i>my</i> model"],
                                    True, True)
    image = analyze_image(sample_path("china.jpg"), features="dinov2", query=(3, 4))
    assert image.vit is not None  # with the trained heads' rows
    found["image"] = (save(image, out / "image.html"), [], True, True)
    found["vit"] = (save(image.vit, out / "vit.html"), [], True, True)
    trace = head_trace(TEXT, 2, 5)
    found["head-trace"] = (save(trace, out / "head-trace.html"), ["kitten", "sat", "bank"], False, False)
    swap = swap_head_similarity(TEXT, 2, 5, "cosine", 0.1)
    found["swap"] = (save(swap, out / "swap.html"), ["kitten", "sat", "bank", "similarity swap"], False, False)
    return found


PAGES = ["text", "model", "byo-numpy", "byo-tuple", "byo-list", "image", "vit", "head-trace", "swap"]


def _open(chromium, path, width, height, shot=None) -> tuple[dict, list[str]]:
    """Open ``path`` from disk at ``width`` x ``height``: (what MEASURE reads, console errors and fetches)."""
    context = chromium.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else problems.append(f"fetch {r.url}"))
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        page.wait_for_function("[...document.images].every(i => i.complete)")
        got = page.evaluate(MEASURE)
        if shot:
            page.screenshot(path=str(shot), full_page=True)
    finally:
        context.close()
    return got, problems


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name", PAGES)
def test_an_exported_page_renders_in_chromium(chromium, pages, name, size):
    path, tokens, has_legend, has_images = pages[name]
    width, height = SIZES[size]
    got, problems = _open(chromium, path, width, height, path.with_suffix(f".{size}.png"))
    assert problems == []
    assert got["scripts"] == 0
    # "<b>sat</b>" and "<i>my</i>" in the input are shown as characters, never as markup
    assert not {"sat", "kitten", "my"} & set(got["markup"]), got["markup"]
    for token in tokens:
        assert token in got["text"], (token, got["text"][:400])
    assert bool(got["images"]) == has_images, got["images"]
    for img in got["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0 and 0 < img["shown"] <= width, img
    if has_legend:
        assert got["legends"], "no colour bar"
        for legend in got["legends"]:
            numbers = [float(t) for t in legend["labels"].replace("\u2212", "-").split() if _is_number(t)]
            assert legend["gradient"] and len(numbers) >= 2, legend
    else:
        assert got["legends"] == []


@pytest.mark.parametrize("name", PAGES)  # the legends' end tick labels end at the bar's ends (render.tick_anchor)
def test_an_exported_page_fits_a_phone(chromium, pages, name):
    path = pages[name][0]
    got, _ = _open(chromium, path, *SIZES["phone"])
    assert got["scrollWidth"] <= SIZES["phone"][0], f"{name} is {got['scrollWidth']} px wide on a 390 px phone"
    assert got["outside"] == [], f"{name}: drawn past the edge of a 390 px viewport"


def _is_number(text: str) -> bool:
    try:
        float(text.replace("\u2212", "-"))
    except ValueError:
        return False
    return True
