"""AppTest: the classroom pages (How it works, Similarity lab, Hard cases) and the classroom toggle.

Every displayed number that is checked here is compared with a computation done in this file with
torch / numpy, not read back from the library that produced it.
"""

from __future__ import annotations

import base64
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The cat sat on the mat"  # pages/how_it_works.py's default sentence


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def number_at_end(latex: str) -> float:
    """The number a formula ends with: '... = 8.953\\times10^{-5}' -> 8.953e-05."""
    tail = latex.strip().strip("$").strip().rsplit("=", 1)[1].strip()
    return float(tail.replace(r"\times10^{", "e").replace("}", ""))


def explanation(at: AppTest) -> str:
    return at.latex[-1].value.strip().strip("$").strip()


@pytest.fixture(scope="module")
def cat_vectors() -> np.ndarray:
    from attnviz.text import encode_text

    return encode_text(TEXT, "contextual").vectors.double().numpy()


def cosine_attention(x: np.ndarray, t: float):
    xt = torch.from_numpy(x)
    xn = xt / xt.norm(dim=-1, keepdim=True)
    s = xn @ xn.T
    w = torch.softmax(s / t, dim=-1)
    return s.numpy(), w.numpy(), (w @ xt).numpy()


# ------------------------------------------------------------------------------------- How it works


def test_walkthrough_steps_forward_and_back_showing_the_right_numbers(cat_vectors):
    at = open_page("pages/how_it_works.py")
    t = 0.1
    s, w, y = cosine_attention(cat_vectors, t)
    m0 = (s[0] / t).max()
    e = np.exp(s[0] / t - m0)
    expected = {  # step -> the number its default cell (row 0, column 1; coordinate 0 for vectors/outputs) shows
        1: cat_vectors[0, 0], 2: s[0, 1], 3: s[0, 1] / t, 4: e[1], 5: e[1], 6: w[0, 1], 7: y[0, 0],
    }
    titles = ["The vectors", "Similarity scores", "Divide by the temperature", "Exponentiate", "Add up each row",
              "Divide: the attention weights", "The weighted sum", "The seed article's notation"]
    for k in range(1, 9):
        assert at.session_state["hiw_step"] == k - 1
        assert at.header[0].value.startswith(f"Step {k} of 8. {titles[k - 1]}")
        if k in expected:
            assert number_at_end(explanation(at)) == pytest.approx(expected[k], rel=6e-4), (k, explanation(at))
        if k < 8:
            at.button(key="hiw_next").click().run()
            assert not at.exception
    assert at.button(key="hiw_next").disabled
    for k in range(7, 0, -1):
        at.button(key="hiw_back").click().run()
        assert at.session_state["hiw_step"] == k - 1
    assert at.button(key="hiw_back").disabled
    assert at.header[0].value.startswith("Step 1 of 8.")


def test_any_cell_can_be_explained_by_row_and_column(cat_vectors):
    from attnviz.explain import explain_cell
    from attnviz.walkthrough import text_example, walk_example

    at = open_page("pages/how_it_works.py")
    for _ in range(5):
        at.button(key="hiw_next").click().run()
    assert at.header[0].value.startswith("Step 6 of 8.")
    at.selectbox(key="hiw_weights_row").set_value(2)
    at.selectbox(key="hiw_weights_col").set_value(5).run()
    s, w, _ = cosine_attention(cat_vectors, 0.1)
    shown = explanation(at)
    assert shown.startswith("a_{25}")
    assert number_at_end(shown) == pytest.approx(w[2, 5], rel=6e-4)
    # the exp and the row sum in the fraction are the independent ones too
    num, den = re.search(r"\\frac\{([^{}]+)\}\{([^{}]+)\}", shown.split("=", 1)[1].split("=", 1)[1]).groups()
    ex = np.exp(s[2] / 0.1 - (s[2] / 0.1).max())
    assert float(num) == pytest.approx(ex[5], rel=6e-4) and float(den) == pytest.approx(ex.sum(), rel=6e-4)
    wt = walk_example(text_example(TEXT, "contextual"), "cosine", 0.1)
    assert shown == explain_cell(wt, "weights", 2, 5).latex  # exactly the library's formula, as displayed
    sums = [c.value for c in at.caption if c.value.startswith("Row sums of the weights")][0]
    assert [float(v) for v in re.findall(r"\d+(?:\.\d+)?", sums.split(":", 1)[1])] == pytest.approx([1.0] * 6)


def test_similarity_and_temperature_change_the_numbers(cat_vectors):
    at = open_page("pages/how_it_works.py")
    at.selectbox(key="hiw_sim").set_value("dot").run()  # the temperature resets to dot's default, 1
    assert at.select_slider(key="hiw_temp").value == 1.0
    at.button(key="hiw_next").click().run()
    x = cat_vectors
    assert number_at_end(explanation(at)) == pytest.approx(float(x[0] @ x[1]), rel=6e-4)
    at.select_slider(key="hiw_temp").set_value(2.0).run()
    at.button(key="hiw_next").click().run()
    assert number_at_end(explanation(at)) == pytest.approx(float(x[0] @ x[1]) / 2.0, rel=6e-4)


def test_every_registered_similarity_is_offered_and_explained(cat_vectors):
    """A registry entry is all a new function needs: manhattan (added as one entry) is offered and its
    score is explained with its own formula and numbers, checked here against numpy."""
    from attnviz import SIMILARITIES

    at = open_page("pages/how_it_works.py")
    assert at.selectbox(key="hiw_sim").options == [s.label for s in SIMILARITIES.values()]
    at.selectbox(key="hiw_sim").set_value("manhattan").run()
    at.button(key="hiw_next").click().run()
    assert not at.exception
    x = cat_vectors
    latex = explanation(at)
    assert r"\rVert_1" in latex and r"\lvert" in latex
    assert number_at_end(latex) == pytest.approx(-float(np.abs(x[0] - x[1]).sum()), rel=6e-4)
    assert any("block distance" in m.value for m in at.markdown)  # the entry's sentence, under the formula


def dinov2_cells(path, grid: int) -> np.ndarray:
    """An independent pooling of DINOv2's patch tokens: each grid x grid cell is the mean of the tokens whose
    centres ((r + 0.5) / rows of the height, in exact floats) fall inside it."""
    from attnviz.image import load_image
    from attnviz.image.vit_features import cached_vit, dinov2_features

    img = load_image(path)
    vit = cached_vit(img.convert("RGB"))
    z = dinov2_features(vit).astype(np.float64)
    rows, cols = vit.grid
    out = np.zeros((grid * grid, z.shape[1]))
    n = np.zeros(grid * grid)
    for r in range(rows):
        for c in range(cols):
            cell = int((r + 0.5) * grid // rows) * grid + int((c + 0.5) * grid // cols)
            out[cell] += z[r * cols + c]
            n[cell] += 1
    assert n.min() > 0
    return out / n[:, None]


def test_the_photo_example_is_a_three_by_three_grid_of_dinov2_cells():
    from attnviz.image import compute_features, load_image, sample_path

    at = open_page("pages/how_it_works.py")
    at.selectbox(key="hiw_mode").set_value("image").run()
    assert not at.exception and not at.error
    assert at.selectbox(key="hiw_features").value == "dinov2"  # the default
    assert len(at.image) >= 1, "the photo with its grid is shown"
    source = re.sub(r"\\(.)", r"\1", " ".join(m.value for m in at.markdown))  # md_escape undone
    assert "DINOv2-small patch tokens" in source and "mean of the" in source and "centres fall inside it" in source
    at.button(key="hiw_next").click().run()
    s, _, _ = cosine_attention(dinov2_cells(sample_path("china.jpg"), 3), 0.1)
    assert number_at_end(explanation(at)) == pytest.approx(s[0, 1], rel=6e-4)
    labels = at.selectbox(key="hiw_scores_row").options
    assert labels == [f"{i} · r{i // 3}c{i % 3}" for i in range(9)]
    # the hand-made features are a named option
    at.selectbox(key="hiw_features").set_value("handcrafted").run()
    assert not at.exception and not at.error
    f = compute_features(load_image(sample_path("china.jpg")), grid=(3, 3), features="handcrafted").features
    s, _, _ = cosine_attention(f.astype(np.float64), 0.1)
    assert number_at_end(explanation(at)) == pytest.approx(s[0, 1], rel=6e-4)


def test_the_notation_step_compares_the_article_with_the_standard_form(cat_vectors):
    at = open_page("pages/how_it_works.py")
    for _ in range(7):
        at.button(key="hiw_next").click().run()
    latex = [el.value for el in at.latex]
    assert any(r"\alpha_{ij}" in v for v in latex) and any(r"\mathrm{softmax}_j" in v for v in latex)
    table = at.dataframe[0].value
    s, w, _ = cosine_attention(cat_vectors, 0.1)
    row = s.sum(1)
    pooled = np.exp(row - row.max()) / np.exp(row - row.max()).sum()
    np.testing.assert_allclose(table["standard: Σ_j a_ij"], 1.0, atol=1e-6)
    np.testing.assert_allclose(table["article: a_j (one per element)"], pooled, atol=2e-6)
    np.testing.assert_allclose(table["article: Σ_j a_j s(i,j)"], s @ pooled, atol=2e-6)


def test_a_one_word_sentence_gets_a_friendly_error():
    at = open_page("pages/how_it_works.py")
    at.text_input(key="hiw_text").set_value("hello").run()
    assert not at.exception
    assert "at least 2 tokens" in at.error[0].value


# ------------------------------------------------------------------------------------ Similarity lab


def test_lab_metrics_are_the_measured_numbers():
    from attnviz.text import encode_text

    at = open_page("pages/lab.py")
    text = at.text_area(key="lab_text").value
    x = encode_text(text, "contextual").vectors.double().numpy()[:48]
    n = x.shape[0]

    def mean_effective(w):
        return float(np.exp(-(w * np.log(w)).sum(1)).mean())

    s, w01, _ = cosine_attention(x, 0.1)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cosine similarity: mean effective tokens"] == f"{mean_effective(w01):.2f} of {n}"
    _, w1, _ = cosine_attention(x, 1.0)
    assert metrics["cosine, T = 1: mean effective tokens"] == f"{mean_effective(w1):.2f} of {n}"
    assert mean_effective(w1) > 0.9 * n  # near-uniform at T = 1, as the page says
    assert metrics["cosine, T = 1: mean largest weight"] == f"{w1.max(1).mean():.3f}"
    # the euclidean/dot identity: measured differences are rounding only
    assert float(metrics["largest weight difference, float64"]) < 1e-12
    assert float(metrics["the same in float32"]) < 1e-4
    # changing one column's temperature changes that column's numbers
    at.select_slider(key="lab_temp_cosine").set_value(1.0).run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Cosine similarity: mean effective tokens"] == f"{mean_effective(w1):.2f} of {n}"
    table = at.dataframe[0].value
    np.testing.assert_allclose(table["cosine: effective tokens"], np.exp(-(w1 * np.log(w1)).sum(1)), atol=6e-4)
    charts = at.get("plotly_chart")
    for chart in charts:
        spec = json.loads(chart.proto.spec)
        assert spec["layout"]["xaxis"]["title"]["text"] and spec["layout"]["yaxis"]["title"]["text"]


def test_lab_wants_two_functions_and_takes_photos():
    at = open_page("pages/lab.py")
    at.multiselect(key="lab_sims").set_value(["dot"]).run()
    assert "at least two" in at.warning[0].value
    at.multiselect(key="lab_sims").set_value(["dot", "euclidean"]).run()
    at.radio(key="lab_mode").set_value("image").run()
    assert not at.exception and not at.error
    assert len(at.image) >= 2  # one overlay per similarity
    assert at.selectbox(key="lab_features").value == "dinov2"
    assert any("DINOv2" in c.value and "centres fall inside it" in c.value for c in at.caption)
    at.selectbox(key="lab_features").set_value("handcrafted").run()
    assert not at.exception and any("Hand" in c.value and "13 numbers" in c.value for c in at.caption)


def test_lab_offers_every_registered_similarity_with_its_use():
    from attnviz import SIMILARITIES
    from attnviz.text import encode_text

    at = open_page("pages/lab.py")
    assert at.multiselect(key="lab_sims").options == [s.label for s in SIMILARITIES.values()]
    at.multiselect(key="lab_sims").set_value(["manhattan", "cosine"]).run()
    assert not at.exception and not at.error
    sim = SIMILARITIES["manhattan"]
    assert at.select_slider(key="lab_temp_manhattan").value == sim.default_temperature
    assert any(sim.use in c.value for c in at.caption)
    x = encode_text(at.text_area(key="lab_text").value, "contextual").vectors.double().numpy()[:48]
    s = -np.abs(x[:, None, :] - x[None, :, :]).sum(-1) / sim.default_temperature
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    eff = float(np.exp(-(w * np.log(np.clip(w, 1e-300, None))).sum(1)).mean())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"{sim.label}: mean effective tokens"] == f"{eff:.2f} of {x.shape[0]}"


# ---------------------------------------------------------------------------------------- Hard cases


def test_ragged_batch_numbers_match_a_hand_padded_batch():
    from attnviz.text import encode_texts

    at = open_page("pages/hard_cases.py")
    texts = [line for line in at.text_area(key="hc_batch").value.splitlines() if line.strip()]
    encs = encode_texts(texts, "static")
    vecs = [e.vectors[:16].double() for e in encs]
    n_max = max(len(v) for v in vecs)
    b = int(np.argmin([len(v) for v in vecs]))  # the page inspects the shortest sentence first
    n = len(vecs[b])
    padded = torch.zeros(n_max, vecs[b].shape[1], dtype=torch.float64)
    padded[:n] = vecs[b]
    w = torch.softmax(padded @ padded.T / math.sqrt(padded.shape[1]), dim=-1)  # scaled dot, T = 1, no mask
    leak = float(w[:n, n:].sum(-1).mean())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["attention leaking onto padding"] == f"{leak:.1%}"
    assert leak > 0.3
    y_bad = (w @ padded)[:n]
    alone = torch.softmax(vecs[b] @ vecs[b].T / math.sqrt(padded.shape[1]), dim=-1) @ vecs[b]
    change = float(((y_bad - alone).norm(dim=-1) / alone.norm(dim=-1)).max())
    assert metrics["largest change of a real output"] == f"{change:.1%}"
    assert float(metrics["masked batch vs each sentence alone"]) < 1e-12


def test_the_scaling_measurement_runs_when_asked():
    at = open_page("pages/hard_cases.py")
    assert any("Press the button" in i.value for i in at.info)
    at.select_slider(key="hc_budget").set_value(1)
    at.button(key="hc_measure").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    measured = table[table["status"].str.startswith("measured")]
    assert {"full", "blocked"} <= set(measured["method"]) and 256 in set(measured["n"])
    assert (measured["seconds"] > 0).all()
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert any(t.startswith("Time of one attention call") for t in titles)
    assert any(t.startswith("Peak extra memory") for t in titles)


def test_multimodal_says_plainly_what_is_not_meaningful():
    at = open_page("pages/hard_cases.py")
    warning = " ".join(w.value for w in at.warning)
    assert "Not meaningful here" in warning and "unaligned" in warning and "NOT meaningful" in warning
    assert any("No aligned text-image model is available" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    corr = float(metrics["agreement between the two seeds' maps (correlation)"])
    assert -1.0 <= corr < 0.99
    # text -> text: the matrix is (tokens of A) x (tokens of B)
    spec = json.loads(at.get("plotly_chart")[-1].proto.spec) if at.get("plotly_chart") else None
    tt = [json.loads(c.proto.spec) for c in at.get("plotly_chart")
          if json.loads(c.proto.spec)["layout"]["title"]["text"] == "text A attends to text B"]
    assert tt and tt[0]["layout"]["xaxis"]["title"]["text"].startswith("key: token of text B")
    assert spec is not None


# ---------------------------------------------------------------------------------- classroom mode


def _toggle_app():
    import streamlit as st

    from ui.classroom import classroom_toggle, style_figure
    from attnviz.figures import clickable_heatmap as cell_figure

    classroom_toggle(st.sidebar)
    st.plotly_chart(style_figure(cell_figure([[0.5, 0.5], [0.2, 0.8]], ["a", "b"], ["a", "b"])), key="fig")


def test_classroom_toggle_injects_a_constant_stylesheet():
    from ui.classroom import CLASSROOM_CSS_DARK, CLASSROOM_CSS_LIGHT, FIGURE_FONT

    at = AppTest.from_function(_toggle_app, default_timeout=30).run()
    assert not at.exception
    assert not [m for m in at.markdown if "<style>" in m.value]
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["font"]["size"] == FIGURE_FONT[False]
    at.sidebar.toggle(key="classroom").set_value(True).run()
    styles = [m.value for m in at.markdown if "<style>" in m.value]
    assert styles == [CLASSROOM_CSS_LIGHT]  # no theme reported in tests: the light sheet
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["font"]["size"] == FIGURE_FONT[True]
    for css, fg, bg in ((CLASSROOM_CSS_LIGHT, "#000000", "#ffffff"), (CLASSROOM_CSS_DARK, "#ffffff", "#000000")):
        assert f"color: {fg} !important" in css and f"background: {bg} !important" in css  # both colours set
        assert "html { font-size: 20px; }" in css
        assert re.fullmatch(r"<style>[^<>]*</style>", css)  # a plain stylesheet, nothing else
    at.sidebar.toggle(key="classroom").set_value(False).run()
    assert not [m for m in at.markdown if "<style>" in m.value]


def test_app_sidebar_offers_the_classroom_toggle():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.sidebar.toggle(key="classroom").set_value(True).run()
    assert not at.exception
    assert any("<style>" in m.value for m in at.markdown)


def test_an_aligned_model_is_used_on_the_page_when_there_is_one(monkeypatch, tmp_path):
    from test_hardcases import make_tiny_clip

    monkeypatch.setenv("ATTNVIZ_CLIP_MODEL", str(make_tiny_clip(tmp_path / "clip")))
    at = open_page("pages/hard_cases.py")
    assert any(s.value.startswith("Aligned text-image model found locally") for s in at.success)
    words = at.selectbox(key="hc_clip_query").options
    assert words[:2] == ["0 · blue", "1 · sky"]
    assert any("aligned model" in c.value.lower() for c in at.caption)
    assert "Not meaningful here" in " ".join(w.value for w in at.warning)  # the unaligned map keeps its label


def test_an_uploaded_file_name_is_shown_as_text_not_markdown():
    """A file name is user input: '[log in](https://evil.example).png' must not become a live link."""
    import io

    from PIL import Image

    from inert import assert_page_inert

    buf = io.BytesIO()
    Image.new("RGB", (60, 60), (30, 120, 200)).save(buf, format="PNG")
    at = open_page("pages/how_it_works.py")
    at.selectbox(key="hiw_mode").set_value("image").run()
    at.selectbox(key="hiw_photo_sample").set_value("Upload a photo…").run()
    name = "[log in](https://evil.example)![x](https://tracker.example/p.png).png"
    at.file_uploader(key="hiw_photo_upload").set_value((name, buf.getvalue(), "image/png")).run()
    captions = [c for im in at.image for c in im.captions]
    assert any("log in" in c for c in captions), captions
    assert_page_inert(at)


# ------------------------------------------------------------------ matrix numbers on a narrow screen


def _css_rules(css: str) -> list[tuple[str, str, str]]:
    """``(media, selector, declarations)`` for every rule of a flat stylesheet with one level of @media."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    rules, media, i = [], "", 0
    for m in re.finditer(r"([^{}]*)\{|\}", css):
        if m.group(0) == "}":
            if media and m.start() >= i:  # a brace closing the @media block (rules' own braces are consumed)
                media = ""
            continue
        head = m.group(1).strip()
        if head.startswith("@media"):
            media, i = head, m.end()
            continue
        end = css.index("}", m.end())
        rules.append((media, head, css[m.end():end].strip()))
        i = end + 1
    return rules


def test_the_phone_stylesheet_is_built_from_the_explain_constants():
    """The narrow-screen breakpoint and the sizes a matrix's numbers get there live in attnviz.explain; the
    stylesheet has one rule per size, and a box's class matches the rule for its own size only."""
    from attnviz.explain import MIN_CELL_FONT, NARROW_SCREEN_PX, PHONE_CELL_FONTS, PHONE_MAX_CELL_FONT
    from ui.classroom import cell_box_key
    from ui.components.page_style import CSS

    rules = _css_rules(CSS)
    medias = {media for media, _, _ in rules if media}
    assert medias == {f"@media (max-width: {NARROW_SCREEN_PX}px)"}, medias
    sizes = {}
    for media, selector, decls in rules:
        m = re.fullmatch(r'\[class\*="([^"]+)"\] \.heatmap-label text', selector)
        if m:
            assert media, selector  # phone sizes only on a narrow screen
            sizes[m.group(1)] = decls
    assert PHONE_CELL_FONTS == (0, *range(MIN_CELL_FONT, PHONE_MAX_CELL_FONT + 1))
    assert len(sizes) == len(PHONE_CELL_FONTS)
    for px in PHONE_CELL_FONTS:
        cls = "st-key-" + cell_box_key("hiw_scores", px)  # the class Streamlit gives the keyed box
        matched = [decls for pattern, decls in sizes.items() if pattern in cls]
        assert matched == ["display: none;" if px == 0 else f"font-size: {px}px !important;"], (px, matched)
    narrow = [(media, decls) for media, selector, decls in rules if selector == '[class*="_cellnarrow"]']
    assert narrow == [("", "display: none;"), (f"@media (max-width: {NARROW_SCREEN_PX}px)", "display: block;")]


def _boxes_with_charts(node, found):
    """Every keyed matrix box (its key's phone size) on an AppTest page with the plotly specs inside it."""
    for child in getattr(node, "children", {}).values():
        m = re.search(r"_box_cellpx(\d+)px$", getattr(getattr(child, "proto", None), "id", "") or "")
        if m:
            found.append((int(m.group(1)), [json.loads(c.proto.spec) for c in child.get("plotly_chart")]))
        else:
            _boxes_with_charts(child, found)
    return found


def test_each_matrix_box_names_the_phone_size_its_numbers_fit():
    """Steps 2-7 of How it works (6 x 6 and 6 x 7 text matrices) and the 9 x 9 photo matrix: the size in each box's
    key is the largest whole pixel size, 7 to 12 and at most the page's own, at which the longest printed number
    fits a cell of the phone's plot width (d3's .2f printing and the width rule, recomputed here)."""
    from attnviz.explain import CELL_GAP_PX, DIGIT_WIDTH, PHONE_PLOT_WIDTH

    def values(z):  # plotly's JSON sends arrays as {"dtype", "bdata" (base64), "shape"}
        if isinstance(z, dict):
            shape = tuple(int(d) for d in str(z["shape"]).split(","))
            return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape).astype(np.float64)
        return np.asarray(z, dtype=np.float64)

    def expected(z, fmt, page_size):
        chars = max(len(f"{v:.{int(fmt[1:-1])}f}") for v in z.ravel())
        fits = [s for s in range(7, 13) if s <= page_size and chars * DIGIT_WIDTH * s + CELL_GAP_PX
                <= PHONE_PLOT_WIDTH / z.shape[1]]
        return max(fits, default=0)

    at = open_page("pages/how_it_works.py")
    seen = []
    for mode in ("text", "image"):
        at.selectbox(key="hiw_mode").set_value(mode).run()
        while not at.button(key="hiw_back").disabled:
            at.button(key="hiw_back").click().run()
        for step in range(1, 8):
            assert not at.exception
            for px, specs in _boxes_with_charts(at._tree, []):
                assert len(specs) == 1
                heat = specs[0]["data"][0]
                template = heat.get("texttemplate")
                if template:
                    fmt = re.fullmatch(r"%\{z:(\.\d+f)\}", template).group(1)
                    z = values(heat["z"])
                    assert px == expected(z, fmt, heat["textfont"]["size"]), (mode, step, px)
                    seen.append((mode, z.shape, px))
            at.button(key="hiw_next").click().run()
    assert {(mode, shape[1]) for mode, shape, _ in seen} >= {("text", 6), ("text", 7), ("image", 9)}, seen
    assert {px for *_, px in seen} >= {0, 9}, seen  # sizes that fit, and a 9-column photo matrix too dense
