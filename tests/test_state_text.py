"""attnviz.state.text without Streamlit: the text page's state object, its link form and its policies.

(The fuzzing of every link parameter, through the state object and through the page, is in
tests/test_hardening_url.py.)
"""

from __future__ import annotations

import base64
import string
import zlib

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz import SIMILARITIES
from attnviz import text as tx
from attnviz.attention import effective_tokens, row_entropy
from attnviz.errors import InvalidParameter
from attnviz.state import TEMPERATURES, nearest_temperature
from attnviz.state import text as ts
from attnviz.state.text import QUERY_PARAMS, TextPageState


def test_defaults_are_the_page_s_first_view():
    s = TextPageState()
    assert (s.sample, s.similarity, s.encoder, s.view, s.query, s.token, s.head, s.window) == (
        "kitten", "cosine", "contextual", "query", "cat", 0, "average", 0)
    assert s.temperature == nearest_temperature(SIMILARITIES["cosine"].default_temperature) == 0.1
    assert s.text is None and s.shown_text == ts.sample_text("kitten") and s.layer is None and s.batch is False
    assert TextPageState.from_query({}) == s and TextPageState.from_query({}).ignored == ()
    assert s.to_query() == {"s": "cosine", "t": "0.1", "e": "contextual", "v": "query", "m": "0", "b": "0",
                            "sample": "kitten"}


def test_the_state_is_frozen_and_ignored_is_not_a_setting():
    s = TextPageState.from_query({"s": "nope"})
    with pytest.raises(AttributeError):
        s.view = "row"
    assert s.ignored == ("s",) and s == TextPageState()  # equal settings, whatever the link got wrong
    assert "ignored" not in TextPageState.field_names()


def test_a_text_equal_to_the_sample_s_is_the_sample():
    assert TextPageState(sample="bank", text=ts.sample_text("bank")).text is None
    assert "text" not in TextPageState(sample="bank", text=ts.sample_text("bank")).to_query()
    own = TextPageState(text="my own").to_query()
    assert ts.decode_text_param(own["text"]) == "my own"
    assert "sample" not in own and TextPageState(text="my own").sample == ts.OWN  # never sample=kitten
    assert TextPageState.from_query({"sample": "kitten", "text": own["text"]}).sample == ts.OWN


def test_the_text_travels_compressed_and_bounded():
    text = "The kitten chased a red ball. " * 666 + "End."  # 19,984 characters
    param = ts.encode_text_param(text)
    assert len(text) <= ts.URL_MAX_TEXT_CHARS and len(param) < len(text) / 5  # repetitive text compresses well
    assert zlib.decompress(base64.urlsafe_b64decode(param + "=" * (-len(param) % 4))).decode() == text  # plain zlib
    assert ts.decode_text_param(param) == text and set(param) <= set(string.ascii_letters + string.digits + "-_")
    worst = "".join(chr(0x1F600 + i % 80) for i in range(ts.URL_MAX_TEXT_CHARS))  # 4-byte characters, no repeats
    assert len(ts.encode_text_param(worst)) <= ts.URL_MAX_TEXT_PARAM and ts.decode_text_param(ts.encode_text_param(worst)) == worst
    over = "y" * (ts.URL_MAX_TEXT_CHARS + 1)
    assert ts.decode_text_param(ts.encode_text_param(over)) is None  # one character too many
    assert "text" not in TextPageState(text=over).to_query() and TextPageState(text=over).to_query()["sample"] == ts.OWN
    assert "20,001 characters" in ts.link_note(over) and ts.link_note(text) is None


def test_a_decompression_bomb_is_refused_unread():
    bomb = base64.urlsafe_b64encode(zlib.compress(b"a" * 50_000_000, 9)).decode()  # 50 MB from ~49 kB
    assert len(bomb) <= ts.URL_MAX_TEXT_PARAM and ts.decode_text_param(bomb) is None
    assert TextPageState.from_query({"text": bomb}).ignored == ("text",)
    cut = ts.encode_text_param("a cut stream")[:-4]
    for bad in (cut, "not base64!", "", "=" * 8, "eJw" * 50_000, base64.urlsafe_b64encode(b"\xff\xfe").decode(),
                base64.urlsafe_b64encode(zlib.compress("é".encode("latin-1"))).decode()):
        assert ts.decode_text_param(bad) is None, bad[:20]


def test_a_link_query_longer_than_the_box_is_said():
    long_q = "q" * (ts.URL_MAX_QUERY_CHARS + 1)
    state = TextPageState.from_query({"q": long_q})
    assert state.ignored == ("q",) and state.query == "cat"
    assert f"{len(long_q):,} characters" in ts.query_note(state.ignored, {"q": long_q})
    assert ts.query_note((), {"q": "cat"}) is None
    assert ts.URL_MAX_QUERY_CHARS == tx.MAX_QUERY_CHARS  # every query the box takes fits in a link


def test_what_does_not_fit_in_a_link_stays_out_of_it():
    s = TextPageState(text="x" * (ts.URL_MAX_TEXT_CHARS + 1), query="q" * (ts.URL_MAX_QUERY_CHARS + 1),
                      token=ts.URL_MAX_INDEX, view="row")
    assert not {"text", "q", "k"} & set(s.to_query())
    assert TextPageState(query="tab\there").to_query().get("q") is None  # not printable: a link would refuse it
    assert TextPageState(query="").to_query()["q"] == ""  # an emptied query travels too
    assert TextPageState.from_query({"q": ""}).query == ""


settings_strategy = st.builds(
    TextPageState,
    sample=st.sampled_from(list(ts.SAMPLES)),
    text=st.none() | st.text(min_size=1, max_size=60),
    scale=st.sampled_from(list(ts.SCALES)),
    similarity=st.sampled_from(list(SIMILARITIES)),
    temperature=st.none() | st.sampled_from(TEMPERATURES),
    encoder=st.sampled_from(list(tx.ENCODERS)),
    view=st.sampled_from(list(ts.VIEWS)),
    merge=st.booleans(),
    batch=st.none() | st.booleans(),
    query=st.text(max_size=40).filter(str.isprintable),
    token=st.integers(0, ts.URL_MAX_INDEX - 1),
    layer=st.none() | st.integers(0, ts.MAX_LAYERS - 1),
    head=st.sampled_from(ts.HEADS_SPECIAL) | st.integers(0, ts.MAX_LAYERS - 1),
    window=st.integers(0, ts.URL_MAX_INDEX - 1),
)


@settings(max_examples=300, deadline=None)
@given(settings_strategy)
def test_the_link_reopens_the_same_state(state):
    link = state.to_query()
    assert set(link) <= set(QUERY_PARAMS) and all(isinstance(v, str) for v in link.values())
    again = TextPageState.from_query(link)
    assert again.ignored == ()
    assert again == state


# ------------------------------------------------------------------------------------------ policies


def test_samples_are_the_assets():
    for key, (label, name, times) in ts.SAMPLES.items():
        text = ts.sample_text(key)
        assert label and text.strip() and (ts.ASSETS / name).is_file()
        if times > 1:
            assert text.count((ts.ASSETS / name).read_text(encoding="utf-8").strip()) == times
    with pytest.raises(InvalidParameter):
        ts.sample_text("../../etc/passwd")


def test_truncation_cuts_at_a_space_near_the_limit():
    assert ts.truncate_text("short", 10) == ("short", False)
    assert ts.truncate_text("x" * 10, 10) == ("x" * 10, False)
    text, cut = ts.truncate_text("word " * 12_000, 50_000)
    assert cut and len(text) == 49_999 and text.endswith("word")
    text, cut = ts.truncate_text("y" * 1000, 300)  # no space within 200 characters: a hard cut
    assert cut and text == "y" * 300
    text, cut = ts.truncate_text("a " + "y" * 1000, 300)  # the only space is too far back
    assert text == ("a " + "y" * 1000)[:300]
    with pytest.raises(InvalidParameter):
        ts.truncate_text("x", 0)


def test_heatmap_window_positions():
    assert ts.heatmap_last_start(41) == 0 and ts.heatmap_last_start(ts.HEATMAP_TOKENS) == 0
    assert ts.heatmap_last_start(1782) == 1782 - ts.HEATMAP_TOKENS
    assert ts.clamp_start(5000, 1270) == 1270 and ts.clamp_start(-3, 10) == 0 and ts.clamp_start(None, 4) == 0
    assert ts.clamp_start(7, 0) == 0


@pytest.mark.parametrize("pieces_per_token", [[1] * 600, [1, 3, 2] * 250, [2] * 255, [1] * 510, [5] + [1] * 600])
def test_the_model_window_slider_reaches_the_last_token_and_no_further(pieces_per_token):
    groups, at = [], 0
    for p in pieces_per_token:
        groups.append((at, at + p))
        at += p
    max_pieces = 510

    def fits(start):  # the window from token `start` holds the text's last piece
        return groups[-1][1] - groups[start][0] <= max_pieces

    last = ts.model_last_start(groups, max_pieces)
    assert fits(last) or last == 0 and groups[-1][1] <= max_pieces
    assert last == 0 or not fits(last - 1)  # the smallest such start: no window shorter than it must be
    if groups[-1][1] <= max_pieces:
        assert last == 0
    assert ts.model_last_start([], 510) == 0


def test_window_share_and_text():
    rows = np.array([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0]])
    assert ts.window_share(rows, 0, 2) == pytest.approx((0.75 + 1.0) / 2)
    assert ts.window_share(np.zeros((0, 3)), 0, 2) == 0.0
    snippet, offsets = ts.window_text("Hello kitten world", [(6, 12), (13, 18)])
    assert snippet == "kitten world" and offsets == [(0, 6), (7, 12)]
    assert ts.window_text("abc", []) == ("", [])


# ------------------------------------------------------------------------------- what the views show


def test_entropy_tables_are_the_library_s_metrics():
    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.ones(12) * 0.3, size=5)  # a window of 5 rows over 12 tokens, from token 4
    ent = row_entropy(torch.from_numpy(rows)).numpy()
    tokens = [f"t{i}" for i in range(12)]
    table = ts.entropy_rows(rows, ent, tokens, first=4)
    eff = effective_tokens(torch.from_numpy(rows)).numpy()
    assert [r["index"] for r in table] == [4, 5, 6, 7, 8] and table[0]["token"] == "t4"
    np.testing.assert_allclose([r["effective tokens"] for r in table], eff, atol=0.005)
    assert [r["strongest key"] for r in table] == [tokens[int(i)] for i in rows.argmax(1)]
    mean, (lo, lo_eff), (hi, hi_eff) = ts.entropy_summary(ent)
    assert mean == pytest.approx(eff.mean()) and lo == int(eff.argmin()) and hi_eff == pytest.approx(eff.max())


def test_top_tables():
    w = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    w.setflags(write=False)  # the cached matrix is read-only: the table must not write into it
    pairs = ts.top_pair_rows(w, ["a", "b", "c"], first=10, k=2)
    assert pairs == [{"query": "12 · c", "key": "10 · a", "weight": 0.6},
                     {"query": "11 · b", "key": "12 · c", "weight": 0.5}]
    a = tx.analyze_text("The kitten sat by the car.", "cosine", 0.1, "static", query="cat")
    rows = ts.top_token_rows(a, 3)
    assert [r["rank"] for r in rows] == [1, 2, 3] and rows[0]["weight"] == pytest.approx(float(a.scores.max()), abs=1e-5)
    assert rows[0]["text"] == a.text[slice(*a.offsets[rows[0]["index"]])]


def test_head_labels():
    assert ts.head_view_label(2, 4) == "layer 3, head 5"
    assert ts.head_view_label(5, "average") == "layer 6, average of heads"
    assert ts.head_view_label(0, "rollout").startswith("rollout")


# ------------------------------------------------------------------------------------- colour scales


def test_panels_share_one_scale_unless_asked():
    a, b = np.array([[0.2, 0.8], [0.5, 0.5]]), np.array([[0.1, 0.3], [0.6, 0.4]])
    assert ts.shared_scale([a, b], "view") == [(0.0, 0.8), (0.0, 0.8)]
    assert ts.shared_scale([a, b], "view", shared=False) == [(0.0, 0.8), (0.0, 0.6)]
    assert ts.shared_scale([a, b], "absolute") == [(0.0, 1.0), (0.0, 1.0)]
    assert "shared by the 2 panels" in ts.scale_words("view", 0, 0.8, 2) and "0.8" in ts.scale_words("view", 0, 0.8, 2)
    assert "0 to 1 (absolute)" in ts.scale_words("absolute", 0, 1) and "maximum, 0.8" in ts.scale_words("view", 0, 0.8)


def test_the_heatmap_travels_as_bytes_and_decodes_to_the_weights():
    import json

    import plotly.io as pio

    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(512), size=512)
    fig = ts.heatmap_figure(w, [f"t{i}" for i in range(512)], 100, lo=0.0, hi=float(w.max()), uniform=1 / 512)
    spec = json.loads(pio.to_json(fig, validate=False))
    z = spec["data"][0]["z"]
    assert z["dtype"] == "u1" and len(z["bdata"]) <= 4 * 512 * 512 / 3 + 4  # one byte per cell
    levels = np.frombuffer(base64.b64decode(z["bdata"]), dtype=np.uint8).reshape(512, 512)
    assert np.abs(levels / 255 * w.max() - w).max() <= w.max() / 510 + 1e-12  # within half a level
    assert spec["data"][0]["y"][0] == "100·t0" and spec["layout"]["height"] < 700  # wider than tall in a column
    assert len(pio.to_json(fig, validate=False)) < 400_000
    assert ts.tick_labels(['<b>"x"</b>', "a&b"]) == ['0·&lt;b&gt;"x"&lt;/b&gt;', "1·a&amp;b"]


def test_truncate_tokens_keeps_the_first_page_limit_word_pieces():
    from attnviz.text import tokenize

    text = "The kitten 追 the car. " * 2_000  # ~14,000 word pieces, mixed scripts
    kept, pieces, cut = ts.truncate_tokens(text)
    assert cut and pieces == len(tokenize(text).ids) > ts.PAGE_MAX_TOKENS
    assert text.startswith(kept) and kept.endswith(" ") is False and text[len(kept)] == " "  # cut at a space
    assert ts.PAGE_MAX_TOKENS - 8 <= len(tokenize(kept).ids) <= ts.PAGE_MAX_TOKENS
    bang, pieces, cut = ts.truncate_tokens("!" * 50_000)  # one piece per mark, no space: a hard cut
    assert (bang, pieces, cut) == ("!" * ts.PAGE_MAX_TOKENS, 50_000, True)
    assert ts.truncate_tokens("A short text.") == ("A short text.", 4, False)
    assert ts.truncate_tokens("   ") == ("   ", 0, False)  # the encoder refuses it with its own sentence
    with pytest.raises(InvalidParameter):
        ts.truncate_tokens("x", limit=0)
    note = ts.token_cut_note(50_000, bang)
    assert note.startswith("Your text has 50,000 word pieces; this page reads the first 4,096 (4,096 characters)")
    assert ts.encoding_progress(2, 11) == (2 / 11, "Encoding window 3 of 11 (512 word pieces each)…")


def test_matrix_window_statistics_are_the_window_rows():
    enc_rows = np.random.default_rng(0).dirichlet(np.ones(40), size=10)  # 10 rows over 40 keys

    w = ts.MatrixWindow(5, 15, 40, enc_rows, [str(i) for i in range(5, 15)])
    np.testing.assert_allclose(w.entropy, [-(r * np.log(r)).sum() for r in enc_rows])
    np.testing.assert_allclose(w.received, enc_rows.sum(0) / 10)
    assert ts.received_title(w).endswith("the window's rows 5–14)")
    whole = ts.MatrixWindow(0, 10, 10, enc_rows[:, :10] / enc_rows[:, :10].sum(1, keepdims=True), list("abcdefghij"))
    assert ts.received_title(whole) == "Attention received by each token (mean over all rows)"


def test_heatmap_hover_names_the_level_and_the_caption_gives_the_exact_weight():
    w = np.random.default_rng(1).dirichlet(np.ones(600), size=600)
    fig = ts.heatmap_figure(w, [f"t{i}" for i in range(600)], lo=0.0, hi=float(w.max()))
    hover = fig.data[0].hovertemplate
    assert "colour level %{z} of 255" in hover and "×" not in hover  # a number the reader can use, no formula
    z = np.asarray(fig.data[0].z)
    assert z.dtype == np.uint8  # still one byte a cell on the wire
    cap = ts.cell_caption([f"t{i}" for i in range(600)], 3, 7, float(w[3, 7]), (0.0, float(w.max())))
    assert cap.startswith(f"Query 3 · 't3' → key 7 · 't7': weight {w[3, 7]:.7g} (exact")
    assert cap.endswith(f"; colour level {int(z[3, 7])} of 255).")  # the level the heatmap draws that cell with
    assert ts.cell_caption(["a", "b"], 0, 1, 0.25) == "Query 0 · 'a' → key 1 · 'b': weight 0.25 (exact, of the row's total 1)."


def test_matrix_downloads_hold_the_window_shown_and_the_picked_row():
    """A partial window's files: its (w, w) block of the full float64 softmax (not renormalised), labelled
    with absolute indices, and the picked row named for its token."""
    import csv
    import io
    import json

    from PIL import Image

    enc = tx.encode_text("The kitten chased the red car down the street. " * 70, "static")
    n = len(enc.tokens)
    assert n > ts.HEATMAP_TOKENS + 100
    w = ts.matrix_window(enc, None, "cosine", 0.1, 100)
    x = torch.nn.functional.normalize(enc.vectors.double(), dim=-1)
    p = torch.softmax(x @ x.T / 0.1, dim=-1).numpy()
    row = tx.analyze_encoding(enc, "cosine", 0.1, token=130, include_matrix=False)
    files = ts.matrix_downloads(w, row, 130, 0.0, float(w.square.max()))
    assert [f[2] for f in files] == ["self_attention_100-611.csv", "self_attention_100-611.png", "row_130.json",
                                     "row_130.html"]
    assert files[0][0] == "Matrix shown, tokens 100–611 (CSV)" and files[2][0] == "Row of token 130 (JSON)"
    rows = list(csv.reader(io.StringIO(files[0][1]())))
    assert rows[0][1] == f"100:{enc.tokens[100]}" and rows[-1][0] == f"611:{enc.tokens[611]}" and len(rows) == 513
    got = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
    np.testing.assert_allclose(got, p[100:612, 100:612], rtol=1e-5, atol=1e-12)
    png = Image.open(io.BytesIO(files[1][1]())).convert("RGB")
    assert min(png.size) >= 512 and len(np.unique(np.asarray(png).reshape(-1, 3), axis=0)) > 20
    np.testing.assert_allclose(json.loads(files[2][1]())["scores"], p[130], atol=1e-6)
    assert 'class="attnviz-tok"' in files[3][1]()


def test_one_rule_says_when_a_heatmap_is_drawn_in_levels():
    assert [ts.drawn_in_levels(n) for n in (1, ts.CLICK_MAX_TOKENS, ts.CLICK_MAX_TOKENS + 1, 512)] == [
        False, False, True, True]
    assert ts.drawn_in_levels(2, clickable=False)  # the model view's heatmaps are always 8-bit
