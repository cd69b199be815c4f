"""pages/text.py driven through app.py with AppTest: widgets in, rendered HTML and numbers out."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

import attnviz.text as tx
from attnviz.pages import page
from attnviz.state import text as ts
from attnviz.text import analyze_text

ROOT = Path(__file__).resolve().parents[1]
KITTEN = (ROOT / "attnviz" / "assets" / "text_en_kitten.txt").read_text(encoding="utf-8")


class Tokens(HTMLParser):
    """Token spans grouped by highlighted text (one ``div.attnviz-text`` each)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks, self._cur = [], None

    @property
    def spans(self):
        return self.blocks[-1]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div" and a.get("class") == "attnviz-text":
            self.blocks.append([])
        if tag == "span" and a.get("class") == "attnviz-tok":
            self._cur = {"w": float(a["data-w"]), "rank": int(a["data-rank"]), "i": int(a["data-i"]),
                         "title": a["title"], "style": a["style"], "text": ""}

    def handle_data(self, data):
        if self._cur is not None:
            self._cur["text"] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._cur is not None:
            self.spans.append(self._cur)
            self._cur = None


def views(at) -> list[dict]:
    """The token views on the page: each one's data, as the component received it."""
    return [json.loads(el.proto.json) for el in at.get("bidi_component")
            if el.proto.component_name == "attnviz_token_view"]


def highlights(at) -> list[list[dict]]:
    """Every highlighted text on the page (static HTML highlights first, then the token views), each a list
    of tokens in text order: text, weight (``w``: for a token view the hover's 3 significant digits), rank."""
    out = []
    for el in at.get("html"):
        body = el.proto.body
        if "attnviz-tok" in body:
            p = Tokens()
            p.feed(body)
            out += p.blocks
    for v in views(at):
        out.append([{"text": t, "w": float(w), "rank": r, "i": i, "q": q}
                    for i, (t, w, r, q) in enumerate(zip(v["tokens"], v["wt"], v["rank"], v["q"]))])
    return out


def click_token(at, i: int, which: int = 0) -> AppTest:
    """Rerun the page as if the browser had reported a click on token ``i`` of token view ``which``."""
    el = [e for e in at.get("bidi_component") if e.proto.component_name == "attnviz_token_view"][which]
    ws = at._tree.get_widget_states()  # every other widget keeps its value
    w = ws.widgets.add()
    w.id = el.proto.id
    w.json_value = json.dumps({"selected": i})
    return at._run(ws)  # AppTest has no public setter for a custom component's state


HOVER = dict(rtol=5.1e-3, atol=1e-9)  # the hover's weights have 3 significant digits


def heat_z(chart) -> np.ndarray:
    """The z matrix of a plotly heatmap as AppTest sees it (plain lists or plotly's base64 typed array)."""
    z = json.loads(chart.proto.spec)["data"][0]["z"]
    if isinstance(z, dict):
        import base64

        shape = tuple(int(v) for v in str(z["shape"]).split(","))
        z = np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape)
    return np.asarray(z, dtype=np.float64)


def open_page(query_params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    if query_params:
        at.query_params.update(query_params)
    at.run()
    at.switch_page("pages/text.py").run()
    assert not at.exception, at.exception
    return at


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption)


@pytest.fixture(scope="module")
def at():
    return open_page()


def test_opens_with_a_sample_and_a_query(at):
    assert at.title[0].value == page("pages/text.py").heading == ":material/article: Text attention"
    assert at.text_area(key="text").value == KITTEN
    (spans,) = highlights(at)
    ref = analyze_text(KITTEN, "cosine", 0.1, "contextual", query="cat")
    assert [s["text"].lower() for s in spans] == ref.tokens
    np.testing.assert_allclose([s["w"] for s in spans], ref.scores, **HOVER)
    (v,) = views(at)
    np.testing.assert_array_equal(v["q"], np.rint(ref.scores / ref.scores.max() * 255))  # 0 to the view's max
    top = min(spans, key=lambda s: s["rank"])
    assert top["text"] == "cat" and v["labels"][top["i"]] == "cat"
    second = [s for s in spans if s["rank"] == 2][0]
    assert second["text"] == "kitten"  # the related word comes right after the word itself
    assert "one pass of 41 tokens" in captions(at)
    assert at.session_state["device"] == "cpu"


def test_type_text_switch_similarity_and_query(at):
    at.text_area(key="text").set_value("The kitten sat next to the car. <b>bold?</b>").run()
    assert not at.exception
    (spans,) = highlights(at)
    assert [s["text"] for s in spans][:7] == ["The", "kitten", "sat", "next", "to", "the", "car"]
    assert "<b>" not in "".join(el.proto.body for el in at.get("html"))  # no HTML carries the user's tag
    assert "".join(views(at)[0]["tokens"]).endswith("<b>bold?</b>")  # it travels as plain strings (textContent)
    cos = np.array([s["w"] for s in spans])
    assert spans[int(cos.argmax())]["text"] == "kitten"

    at.selectbox(key="txt_sim").set_value("euclidean").run()
    assert not at.exception
    assert at.select_slider(key="txt_temp").value == 1.0  # the function's own default temperature
    (spans,) = highlights(at)
    euc = np.array([s["w"] for s in spans])
    ref = analyze_text("The kitten sat next to the car. <b>bold?</b>", "euclidean", 1.0, query="cat")
    np.testing.assert_allclose(euc, ref.scores, **HOVER)
    assert not np.allclose(euc, cos, atol=1e-3)  # the highlight changed with the similarity
    assert at.query_params["s"] == ["euclidean"] or at.query_params["s"] == "euclidean"  # the shareable link follows

    at.text_input(key="query").set_value("automobile").run()
    (spans,) = highlights(at)
    ref = analyze_text("The kitten sat next to the car. <b>bold?</b>", "euclidean", 1.0, query="automobile")
    np.testing.assert_allclose([s["w"] for s in spans], ref.scores, **HOVER)
    assert views(at)[0]["label"] == "attention from the query 'automobile'"
    at.selectbox(key="txt_sim").set_value("cosine").run()


def test_pick_a_token_row(at):
    at.text_area(key="text").set_value(KITTEN).run()
    at.radio(key="view").set_value("row").run()
    at.selectbox(key="token").set_value(2).run()  # 'kitten'
    assert not at.exception
    (spans,) = highlights(at)
    ref = analyze_text(KITTEN, "cosine", 0.1, token=2)
    np.testing.assert_allclose([s["w"] for s in spans], ref.scores, **HOVER)
    assert sum(s["w"] for s in spans) == pytest.approx(1, abs=1e-2)
    assert views(at)[0]["label"] == "what token 2 ('kitten') attends to" and views(at)[0]["selected"] == 2
    eff = float(np.exp(-(ref.scores * np.log(ref.scores)).sum()))
    assert float(re.search(r"Effective tokens ([\d.]+)", captions(at)).group(1)) == pytest.approx(eff, abs=0.05)


def test_matrix_view_heatmap_pairs_and_entropy(at):
    at.radio(key="view").set_value("matrix").run()
    assert not at.exception
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    z = heat_z(at.get("plotly_chart")[0])
    ref = analyze_text(KITTEN, "cosine", 0.1)
    assert z.shape == (41, 41)
    np.testing.assert_allclose(z, ref.weights, atol=1e-5)
    assert spec["data"][0]["y"][2] == "2·kitten"
    pairs = at.dataframe[0].value
    assert list(pairs.columns) == ["query", "key", "weight"] and len(pairs) == 10
    i, j, w = ref.top_pairs(1)[0]
    assert pairs.iloc[0]["weight"] == pytest.approx(w, abs=1e-4)
    ent = at.dataframe[1].value
    np.testing.assert_allclose(ent["entropy (nats)"], ref.entropy, atol=2e-3)
    assert len(highlights(at)) == 2  # attention received + the picked token's row
    k = at.selectbox(key="token").value
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Matrix shown, tokens 0–40 (CSV)", "Matrix shown, tokens 0–40 (PNG)", f"Row of token {k} (JSON)",
                      f"Row of token {k}, highlighted text (HTML)"]


def test_model_heads_beside_similarity(at):
    at.radio(key="view").set_value("model").run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 2
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert titles[0].startswith("Similarity: cosine") and "layer 6, average of heads" in titles[1]
    at.selectbox(key="layer").set_value(2).run()
    at.selectbox(key="head").set_value(4).run()
    spec = json.loads(at.get("plotly_chart")[1].proto.spec)
    assert "layer 3, head 5" in spec["layout"]["title"]["text"]
    ma = tx.model_attentions(tx.encode_text(KITTEN, "static"))
    ref = analyze_text(KITTEN, "cosine", 0.1).weights  # the whole text fits the model's window
    hi = max(ref.max(), ma.matrix(2, 4).max())  # one scale for both panels: 0 to the larger maximum
    np.testing.assert_allclose(heat_z(at.get("plotly_chart")[1]) / 255 * hi, ma.matrix(2, 4), atol=hi / 510 + 1e-9)
    np.testing.assert_allclose(heat_z(at.get("plotly_chart")[0]) / 255 * hi, ref, atol=hi / 510 + 1e-9)
    assert "shared by the 2 panels" in captions(at)
    assert "[CLS]/[SEP] take" in captions(at)
    at.selectbox(key="head").set_value("rollout").run()
    assert not at.exception and "rollout" in json.loads(at.get("plotly_chart")[1].proto.spec)["layout"]["title"]["text"]
    at.toggle(key="special").set_value(True).run()
    assert json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]["y"][0] == "0·[CLS]"
    at.toggle(key="special").set_value(False).run()
    at.toggle(key="grid").set_value(True).run()
    assert not at.exception
    assert "Rows: layers 1–6" in at.image[0].proto.imgs[0].caption
    at.toggle(key="grid").set_value(False).run()
    at.radio(key="view").set_value("query").run()


def test_switching_settings_never_reruns_the_encoder(at, monkeypatch):
    at.text_area(key="text").set_value("A fresh sentence about kittens and cars.").run()
    calls = []
    real = tx.encode_text

    def counting(text, *a, **k):
        calls.append(text)
        return real(text, *a, **k)

    import sys

    for name, module in list(sys.modules.items()):  # every module that calls it by name (embed_query's too)
        if name.startswith("attnviz") and getattr(module, "encode_text", None) is real:
            monkeypatch.setattr(module, "encode_text", counting)
    at.selectbox(key="txt_sim").set_value("dot").run()
    at.select_slider(key="txt_temp").set_value(0.5).run()
    at.radio(key="view").set_value("row").run()
    at.radio(key="view").set_value("matrix").run()
    at.radio(key="view").set_value("query").run()
    at.text_input(key="query").set_value("vehicle").run()
    assert not at.exception
    assert "A fresh sentence about kittens and cars." not in calls  # only the new query phrase was encoded
    assert calls == ["vehicle"]
    at.selectbox(key="txt_sim").set_value("cosine").run()


def test_merge_toggle_and_random_encoder(at):
    at.text_area(key="text").set_value("Unbelievably good tokenization.").run()
    at.toggle(key="merge").set_value(True).run()
    (spans,) = highlights(at)
    assert [s["text"] for s in spans] == ["Unbelievably", "good", "tokenization", "."]
    assert "4 words" in captions(at)
    at.toggle(key="merge").set_value(False).run()
    at.selectbox(key="encoder").set_value("random").run()
    assert not at.exception
    assert any("Untrained vectors" in w.value for w in at.warning)
    at.selectbox(key="encoder").set_value("contextual").run()


def test_batch_lines_one_under_another(at):
    at.selectbox(key="sample").set_value("batch").run()
    assert at.toggle(key="batch").value is True
    blocks = highlights(at)
    assert len(blocks) == 5  # four lines, then the inspected line below
    body = at.get("html")[0].proto.body
    assert body.count("line ") >= 4 and body.count("attnviz-legend") == 1
    lines = [ln for ln in (ROOT / "attnviz/assets/text_en_batch.txt").read_text().splitlines() if ln.strip()]
    for spans, line in zip(blocks, lines):
        ref = analyze_text(line, "cosine", 0.1, query=at.session_state["query"])
        np.testing.assert_allclose([s["w"] for s in spans], ref.scores, rtol=1e-3, atol=1e-5)  # the HTML's exact data-w
    assert any("padded to" in m.value for m in at.markdown)
    at.selectbox(key="sample").set_value("kitten").run()
    assert at.toggle(key="batch").value is False


def test_errors_are_one_friendly_sentence(at):
    at.text_area(key="text").set_value("   ").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The text is empty: type or paste some words first."]
    at.text_area(key="text").set_value(KITTEN).run()
    assert not at.error


def test_long_text_is_truncated_with_a_notice():
    at = open_page({"e": "static", "v": "query", "q": "kitten"})
    long_text = "word " * 12_000  # 60,000 characters
    at.text_area(key="text").set_value(long_text).run()
    assert not at.exception
    notice = " ".join(w.value for w in at.warning)
    assert "60,000 characters" in notice and "first 49,999" in notice  # cut at a space
    assert "10,000 word pieces; this page reads the first 4,096 (20,479 characters)" in notice  # then to the pieces
    (spans,) = highlights(at)
    assert len(spans) == ts.PAGE_MAX_TOKENS
    assert "text" not in at.query_params  # too long for the link


def test_url_keeps_settings_and_validates_them():
    at = open_page({"s": "rbf", "t": "0.3", "e": "static", "v": "row", "k": "2", "m": "0",
                    "text": ts.encode_text_param("A kitten, a car and a cat.")})
    assert at.session_state["txt_sim"] == "rbf" and at.select_slider(key="txt_temp").value == 0.3
    assert at.selectbox(key="token").value == 2
    (spans,) = highlights(at)
    ref = analyze_text("A kitten, a car and a cat.", "rbf", 0.3, "static", token=2)
    np.testing.assert_allclose([s["w"] for s in spans], ref.scores, **HOVER)
    assert ts.decode_text_param(at.query_params["text"]) == "A kitten, a car and a cat." and at.query_params["k"] == "2"
    assert "sample" not in at.query_params and at.selectbox(key="sample").value == ts.OWN  # never "kitten"

    bad = open_page({"s": "evil<script>", "t": "-5", "e": "glove", "v": "nope", "k": "²", "text": "y" * 5000,
                     "h": "'; drop", "w": "9" * 40})
    assert not bad.exception
    assert bad.session_state["txt_sim"] == "cosine" and bad.session_state["encoder"] == "contextual"
    assert bad.text_area(key="text").value == KITTEN
    warning = captions(bad)
    assert "were not valid and were ignored" in warning and "s, t, e, v, k, h, w, text" in warning


def test_long_sample_is_windowed_and_said_on_screen():
    at = open_page({"sample": "long", "v": "matrix"})
    assert not at.exception
    assert re.search(r"windowed: 5 windows of 512 positions", captions(at))
    assert at.slider(key="win").max == 1782 - 512
    at.slider(key="win").set_value(1000).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["data"][0]["y"][0].startswith("1000·") and len(spec["data"][0]["y"]) == 512
    assert "tokens 1000–1511 of 1782" in spec["layout"]["title"]["text"]
    at.radio(key="view").set_value("model").run()
    assert not at.exception
    assert "shown for tokens 1000-1509" in captions(at)


def test_model_window_reaches_the_last_token_of_a_long_text():
    """The model reads 510 word pieces at a time: the window slider must reach the text's end."""
    text = " ".join(f"word{i % 50} is here." for i in range(160))  # > 510 pieces
    at = open_page()
    at.text_area(key="text").set_value(text).run()
    at.radio(key="view").set_value("model").run()
    assert not at.exception
    n = len(tx.encode_text(text, "contextual").tokens)
    slider = at.slider(key="win")
    slider.set_value(slider.max).run()
    assert not at.exception
    ticks = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]["x"]
    assert ticks[-1].startswith(f"{n - 1}·"), (ticks[-1], n)


# ------------------------------------------------------------ bounded updates (issue 15, finding 6)


def count_score_cells(monkeypatch) -> list[int]:
    """Every similarity score the library computes from now on, counted (query rows x keys per call)."""
    import attnviz.attention as attention_mod
    from attnviz.similarity import Similarity

    cells, call, scorer = [], Similarity.__call__, attention_mod.block_scorer

    def counted_call(self, q, k, **params):
        cells.append(q.shape[-2] * k.shape[-2])
        return call(self, q, k, **params)

    def counted_scorer(sim, k, scale=1.0, **params):
        score = scorer(sim, k, scale, **params)
        return lambda q: cells.append(q.shape[-2] * k.shape[-2]) or score(q)

    monkeypatch.setattr(Similarity, "__call__", counted_call)
    monkeypatch.setattr(attention_mod, "block_scorer", counted_scorer)
    return cells


def test_fifty_thousand_marks_are_cut_to_the_page_limit_and_every_update_is_bounded(monkeypatch):
    """50,000 '!' are 50,000 word pieces: the page reads the first PAGE_MAX_TOKENS (and says so), and no view
    or setting change computes more than the shown window's rows (before: 50,000 x 50,000 for the statistics)."""
    at = open_page({"e": "static", "v": "matrix"})
    at.text_area(key="text").set_value("!" * 50_000).run()
    assert not at.exception
    notice = " ".join(w.value for w in at.warning)
    assert f"50,000 word pieces; this page reads the first {ts.PAGE_MAX_TOKENS:,}" in notice
    n = ts.PAGE_MAX_TOKENS
    assert len(highlights(at)[-1]) == n  # the token views hold the cut text's pieces, no more
    assert at.slider(key="win").max == n - ts.HEATMAP_TOKENS
    cells = count_score_cells(monkeypatch)
    bound = (ts.HEATMAP_TOKENS + 1) * n  # the window's rows + the picked token's row, each over n keys
    for kind, key, value in [("selectbox", "txt_sim", "dot"), ("select_slider", "txt_temp", 0.5),
                             ("radio", "view", "row"), ("radio", "view", "query"), ("radio", "view", "matrix"),
                             ("slider", "win", 2000)]:
        cells.clear()
        getattr(at, kind)(key=key).set_value(value).run()
        assert not at.exception
        assert 0 < sum(cells) <= bound, (key, sum(cells), bound)
    ent = at.dataframe[1].value  # the window's rows' entropy against float64 softmax(x x^T / T) (dot, T = 0.5)
    x = tx.encode_text(at.text_area(key="text").value, "static", max_chars=60_000).vectors.double()[:n]
    p = torch.softmax(x[2000:2000 + ts.HEATMAP_TOKENS] @ x.T / 0.5, dim=-1)
    assert len(ent) == ts.HEATMAP_TOKENS and ent["index"].iloc[0] == 2000
    np.testing.assert_allclose(ent["entropy (nats)"], -(p * p.log()).sum(-1).numpy(), atol=2e-3)


def test_a_rerun_or_a_closed_session_stops_the_encoding(monkeypatch):
    """The encoder's progress bar is a Streamlit call between windows, so a rerun request (the next change)
    or a stop request (the tab closed) raised there ends the job: the windows after it never run."""
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    import attnviz.text.encoders as text_mod

    text = " ".join(["!"] * 1_700)  # 1,700 word pieces: 5 windows of 510
    total = len(tx.window_spans(1_700, 510))
    assert total == 5
    at = open_page({"e": "contextual", "v": "query"})
    windows, real, request = [], text_mod._forward_hidden, {}

    def counting(m, rows):
        windows.append(len(rows))
        if len(windows) == 2 and request:  # the user acts while window 2 runs
            requests = get_script_run_ctx().script_requests
            requests.request_stop() if request["what"] == "stop" else requests.request_rerun(RerunData())
            request.clear()
        return real(m, rows)

    monkeypatch.setattr(text_mod, "_forward_hidden", counting)
    request["what"] = "rerun"
    at.text_area(key="text").set_value(text).run()
    assert sum(windows) == 2  # the old job stopped after window 2 (AppTest leaves the rerun itself to us)
    again = open_page({"e": "contextual", "v": "query", "text": ts.encode_text_param(text)})
    assert sum(windows) == 2 + total  # a stopped job cached nothing: the next run encodes the text once, whole
    assert "windowed: 5 windows" in captions(again)
    windows.clear()
    request["what"] = "stop"
    at = open_page({"e": "contextual", "v": "query"})
    at.text_area(key="text").set_value(text + " ?").run()
    assert sum(windows) == 2  # a closed session: nothing after window 2 ran


def test_the_matrix_gives_one_cell_s_exact_weight_on_demand():
    """The 512-token heatmap travels as 8-bit colour levels (<= 1 MB a view): its hover names the level, and
    the exact weight of a cell comes on demand, under the matrix, with both tokens, against float64."""
    at = open_page({"v": "matrix", "s": "cosine", "t": "0.1"})
    at.selectbox(key="token").set_value(2).run()
    at.selectbox(key="cell_key").set_value(5).run()
    assert not at.exception
    x = torch.nn.functional.normalize(tx.encode_text(KITTEN, "contextual").vectors.double(), dim=-1)
    p = torch.softmax(x @ x.T / 0.1, dim=-1)
    toks = tx.encode_text(KITTEN, "contextual").tokens
    (cap,) = [c.value for c in at.caption if c.value.startswith("Query 2")]
    m = re.search(r"Query 2 · '(.+)' → key 5 · '(.+)': weight ([0-9.e-]+) \(exact", cap.replace("\\", ""))
    assert m and (m[1], m[2]) == (toks[2], toks[5])
    assert float(m[3]) == pytest.approx(float(p[2, 5]), rel=1e-5)


def test_the_cell_caption_quotes_tokens_as_data():
    at = open_page({"v": "matrix", "e": "static"})
    at.text_area(key="text").set_value("**bold** <b>x</b> [a](javascript:alert(1))").run()
    tokens = tx.encode_text(at.text_area(key="text").value, "static").tokens
    k, j = tokens.index("<"), tokens.index("[")  # the query '<', the key '['
    at.selectbox(key="token").set_value(k).run()
    at.selectbox(key="cell_key").set_value(j).run()
    assert not at.exception
    (cap,) = [c.value for c in at.caption if c.value.startswith(f"Query {k} ")]
    assert f"Query {k} · '\\<' → key {j} · '\\['" in cap  # both tokens backslash-escaped
    assert "'<'" not in cap and "'['" not in cap  # and never raw Markdown / HTML


def test_the_matrix_view_downloads_the_matrix_shown_and_the_picked_row(monkeypatch):
    """The matrix view's files hold what their names say: the shown window's matrix (CSV with "index:token"
    labels, PNG) and, named for it, the picked token's row (JSON, HTML) - checked against float64 softmax."""
    import csv
    import io

    import streamlit
    from PIL import Image

    files, real = {}, streamlit.download_button

    def record(label, data, file_name=None, mime=None, **kw):
        files[file_name] = (label, data)
        return real(label, data, file_name, mime, **kw)

    monkeypatch.setattr(streamlit, "download_button", record)
    at = open_page({"v": "matrix", "s": "cosine", "t": "0.1"})
    files.clear()
    at.selectbox(key="token").set_value(7).run()
    assert not at.exception
    enc = tx.encode_text(KITTEN, "contextual")
    x = torch.nn.functional.normalize(enc.vectors.double(), dim=-1)
    p = torch.softmax(x @ x.T / 0.1, dim=-1).numpy()
    n = len(enc.tokens)
    assert sorted(files) == sorted([f"self_attention_0-{n - 1}.csv", f"self_attention_0-{n - 1}.png",
                                    "row_7.json", "row_7.html"])
    assert [b.label for b in at.get("download_button")] == [
        f"Matrix shown, tokens 0–{n - 1} (CSV)", f"Matrix shown, tokens 0–{n - 1} (PNG)", "Row of token 7 (JSON)",
        "Row of token 7, highlighted text (HTML)"]
    rows = list(csv.reader(io.StringIO(files[f"self_attention_0-{n - 1}.csv"][1]())))
    labels = [f"{i}:{t}" for i, t in enumerate(enc.tokens)]
    assert rows[0] == ["query \\ key", *labels] and [r[0] for r in rows[1:]] == labels
    np.testing.assert_allclose(np.array([[float(v) for v in r[1:]] for r in rows[1:]]), p, rtol=1e-5, atol=1e-9)
    png = Image.open(io.BytesIO(files[f"self_attention_0-{n - 1}.png"][1]())).convert("RGB")
    pixels = np.asarray(png).reshape(-1, 3)
    assert min(png.size) >= n and len(np.unique(pixels, axis=0)) > 20  # cells drawn in many colours
    row = json.loads(files["row_7.json"][1]())
    assert row["tokens"] == list(enc.tokens) and row["weights"] is None
    np.testing.assert_allclose(row["scores"], p[7], atol=1e-6)
    saved = Tokens()
    saved.feed(files["row_7.html"][1]())
    assert [s["text"] for s in saved.spans] == [KITTEN[a:b] for a, b in enc.offsets]
    np.testing.assert_allclose([s["w"] for s in saved.spans], p[7], rtol=5.1e-3, atol=1e-9)
