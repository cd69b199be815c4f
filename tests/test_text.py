"""attnviz.text against independent computations: transformers called directly, numpy by hand."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attnviz import SIMILARITIES, attend, get_similarity
from attnviz.errors import (
    EmptyText,
    InvalidParameter,
    ModelHasNoAttentions,
    ModelNotFound,
    TextTooLong,
    UnknownSimilarity,
)
from attnviz.text import (
    ENCODERS,
    MATRIX_MAX_TOKENS,
    WINDOW_BATCH,
    analyze_encoding,
    analyze_text,
    analyze_texts,
    attention_rollout,
    default_model_path,
    embed_query,
    encode_text,
    encode_texts,
    load_model,
    merge_attention,
    merge_word_pieces,
    model_attentions,
    model_attentions_batch,
    split_lines,
    stitch_owner,
    tokenize,
    window_spans,
    word_groups,
)

ASSETS = Path(__file__).resolve().parents[1] / "attnviz" / "assets"
KITTEN = "The little kitten chased a ball, while the car stayed in the garage."


@pytest.fixture(scope="session")
def model():
    return load_model()


@pytest.fixture(scope="session")
def hf_tokenizer(model):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model.path, local_files_only=True)


@pytest.fixture(scope="session")
def long_text():
    base = (ASSETS / "text_en_long.txt").read_text(encoding="utf-8")
    return "\n\n".join([base] * 5)  # ~8,900 word pieces


@pytest.fixture(scope="session")
def long_encoding(model, long_text):
    return encode_text(long_text, "contextual", "cpu")


# ------------------------------------------------------------------------------------ tokens, offsets


@pytest.mark.parametrize("text, pieces", [
    ("The kitten sat.", ["the", "kitten", "sat", "."]),
    ("naïve café Zürich", ["naive", "cafe", "zurich"]),
    ("I ❤ tokenization 🙂!", ["i", "[UNK]", "token", "##ization", "[UNK]", "!"]),
    ("深度学习 is 学习", ["[UNK]", "[UNK]", "学", "[UNK]", "is", "学", "[UNK]"]),
])
def test_offsets_map_back_to_the_text(model, text, pieces):
    tk = tokenize(text)
    assert list(tk.tokens) == pieces
    for tok, (s, e) in zip(tk.tokens, tk.offsets):
        assert 0 <= s < e <= len(text)
        if tok != "[UNK]":  # the normaliser lower-cases and strips accents; the span is the user's own text
            import unicodedata

            plain = "".join(c for c in unicodedata.normalize("NFD", text[s:e].lower()) if unicodedata.category(c) != "Mn")
            assert plain == tok.removeprefix("##")


def test_emoji_and_cjk_offsets_are_python_character_indices(model):
    text = "a 🙂 b 学习 a🙂b"
    tk = tokenize(text)
    spans = [text[s:e] for s, e in tk.offsets]
    # an emoji inside a word makes the whole word one unknown piece (BERT's WordPiece gives up on it)
    assert spans == ["a", "🙂", "b", "学", "习", "a🙂b"]
    assert tk.tokens[-1] == "[UNK]"


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60))
def test_offsets_are_ordered_in_range_and_non_overlapping(text):
    try:
        tk = tokenize(text)
    except EmptyText:
        return
    prev = 0
    for s, e in tk.offsets:
        assert prev <= s < e <= len(text)
        prev = e
    assert len(tk.tokens) == len(tk.ids) == len(tk.word_ids)
    assert list(tk.word_ids) == sorted(tk.word_ids)


def test_empty_and_too_long_text_are_refused(model):
    with pytest.raises(EmptyText):
        tokenize("   \n\t ")
    with pytest.raises(TextTooLong):
        tokenize("a" * 11, max_chars=10)
    with pytest.raises(InvalidParameter):
        tokenize(b"bytes")  # type: ignore[arg-type]


def test_word_groups_and_merging(model):
    assert word_groups([0, 0, 1, 2, 2, 2]) == ((0, 2), (2, 3), (3, 6))
    enc = encode_text("Unbelievably, tokenization works.", "static")
    assert list(enc.tokens) == ["un", "##bel", "##ie", "##va", "##bly", ",", "token", "##ization", "works", "."]
    merged = merge_word_pieces(enc)
    assert merged.tokens == ("Unbelievably", ",", "tokenization", "works", ".")
    assert merged.offsets == ((0, 12), (12, 13), (14, 26), (27, 32), (32, 33))
    assert merged.groups == ((0, 5), (5, 6), (6, 8), (8, 9), (9, 10))
    torch.testing.assert_close(merged.vectors[0], enc.vectors[0:5].mean(0))
    torch.testing.assert_close(merged.vectors[2], enc.vectors[6:8].mean(0))
    assert merged.merged and merge_word_pieces(merged) is merged
    assert encode_text("Unbelievably, tokenization works.", "static", merge_words=True).tokens == merged.tokens


# ------------------------------------------------------------------------------------------ encoders


@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_encoders_shapes_and_determinism(model, encoder):
    a = encode_text(KITTEN, encoder, "cpu")
    b = encode_text(KITTEN, encoder, "cpu")
    assert a.vectors.shape == (len(a.tokens), model.hidden_size) == (15, 384)
    assert a.vectors.dtype == torch.float32 and torch.isfinite(a.vectors).all()
    assert torch.equal(a.vectors, b.vectors)
    assert a.encoder == encoder and a.device == "cpu"


def test_static_is_the_embedding_table_row(model):
    enc = encode_text("river bank and money bank", "static")
    table = model.model.embeddings.word_embeddings.weight
    torch.testing.assert_close(enc.vectors, table[list(enc.ids)])
    i, j = [k for k, t in enumerate(enc.tokens) if t == "bank"]
    assert torch.equal(enc.vectors[i], enc.vectors[j])  # no context: both banks are one vector


def test_contextual_equals_a_direct_transformers_call(model, hf_tokenizer):
    text = "She sat on the river bank, then went to the bank for a loan."
    enc = encode_text(text, "contextual", "cpu")
    inputs = hf_tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        direct = model.model(**inputs).last_hidden_state[0, 1:-1]
    torch.testing.assert_close(enc.vectors, direct, atol=1e-5, rtol=1e-4)
    i, j = [k for k, t in enumerate(enc.tokens) if t == "bank"]
    cos = torch.nn.functional.cosine_similarity(enc.vectors[i], enc.vectors[j], dim=0)
    assert cos < 0.95  # context pulls the two banks apart


def test_random_encoder_is_seeded_and_only_matches_identical_pieces(model):
    a = encode_text("cat kitten cat", "random")
    assert torch.equal(a.vectors[0], a.vectors[2])
    assert abs(float(torch.nn.functional.cosine_similarity(a.vectors[0], a.vectors[1], dim=0))) < 0.3
    assert torch.equal(encode_text("cat", "random", seed=1).vectors[0], encode_text("cat", "random", seed=1).vectors[0])
    assert not torch.equal(encode_text("cat", "random", seed=1).vectors[0], a.vectors[0])
    assert any("untrained" in n for n in a.notes)
    assert not ENCODERS["random"].trained and ENCODERS["static"].trained
    seeded = analyze_encoding(encode_text("a dog and a cat", "random", seed=3), "cosine", 0.1, "cat")
    assert seeded.top_tokens(1)[0][1] == "cat" and seeded.top_tokens(1)[0][2] > 0.9  # same seed for the query


def test_unknown_encoder(model):
    with pytest.raises(InvalidParameter, match="encoder"):
        encode_text("x", "glove")


def test_chinese_text_says_how_much_is_unknown(model):
    text = (ASSETS / "text_zh_attention.txt").read_text(encoding="utf-8")
    enc = encode_text(text, "static")
    assert any("[UNK]" in n for n in enc.notes)
    assert "".join(text[s:e] for s, e in enc.offsets[:3]) == text[:3]


# ------------------------------------------------------------------------------------------ windows


def test_window_spans_cover_everything_with_overlap():
    assert window_spans(10, 510) == [(0, 10)]
    spans = window_spans(2000, 510, 128)
    assert spans[0][0] == 0 and spans[-1][1] == 2000
    assert all(e - s == 510 for s, e in spans)
    assert all(b[0] < a[1] and a[1] - b[0] >= 128 for a, b in zip(spans, spans[1:]))
    runs = stitch_owner(spans)
    assert runs[0][1] == 0 and runs[-1][2] == 2000
    assert all(r1[2] == r2[1] for r1, r2 in zip(runs, runs[1:]))
    for w, lo, hi in runs:  # each token's window contains it, with context on both sides where possible
        s, e = spans[w]
        assert s <= lo < hi <= e


def test_more_than_8000_tokens_are_windowed_and_stitched(model, long_encoding):
    enc = long_encoding
    n = len(enc.tokens)
    assert n > 8000
    assert enc.vectors.shape == (n, 384) and torch.isfinite(enc.vectors).all()
    spans = window_spans(n, model.content_length)
    assert any(f"windowed: {len(spans)} windows of 512" in note for note in enc.notes)
    pre, suf = list(model.prefix_ids), list(model.suffix_ids)
    for w, lo, hi in [stitch_owner(spans)[k] for k in (0, len(spans) // 2, len(spans) - 1)]:
        s, e = spans[w]
        ids = torch.tensor([pre + list(enc.ids[s:e]) + suf])
        with torch.inference_mode():
            direct = model.model(input_ids=ids).last_hidden_state[0, 1:-1]
        torch.testing.assert_close(enc.vectors[lo:hi], direct[lo - s:hi - s], atol=1e-4, rtol=1e-4)


def test_long_text_query_uses_blocked_paths(long_encoding):
    a = analyze_encoding(long_encoding, "cosine", query="cat", row_stats=False)
    n = len(long_encoding.tokens)
    assert a.weights is None and a.scores.shape == (n,)
    assert a.scores.sum() == pytest.approx(1.0, abs=1e-4)
    assert any("no" in note and "matrix" in note for note in a.notes)
    top = [a.tokens[i] for i, _, _ in a.top_tokens(5)]
    assert "cat" in top  # the essay mentions "cat"; the query finds it among 8,900 tokens
    with pytest.raises(TextTooLong):
        analyze_encoding(long_encoding, include_matrix=True)


def test_received_without_matrix_equals_the_matrix_mean(model):
    enc = encode_text((ASSETS / "text_en_long.txt").read_text(encoding="utf-8")[:3000], "static")
    full = analyze_encoding(enc, "dot", 1.0)
    blocked = analyze_encoding(enc, "dot", 1.0, include_matrix=False)
    x = enc.vectors.double().numpy()
    s = x @ x.T
    w = np.exp(s - s.max(1, keepdims=True))
    w /= w.sum(1, keepdims=True)
    np.testing.assert_allclose(full.weights, w, atol=1e-5)
    np.testing.assert_allclose(full.scores, w.mean(0), atol=1e-6)
    np.testing.assert_allclose(blocked.scores, w.mean(0), atol=1e-6)  # one blocked pass: entropy + received
    lean = analyze_encoding(enc, "dot", 1.0, include_matrix=False, row_stats=False)  # attention_received
    assert lean.entropy is None
    np.testing.assert_allclose(lean.scores, w.mean(0), atol=1e-6)
    ent = -(w * np.log(np.where(w > 0, w, 1))).sum(1)
    np.testing.assert_allclose(blocked.entropy, ent, atol=1e-3)
    np.testing.assert_allclose(full.entropy, ent, atol=1e-3)


# ------------------------------------------------------------------------------- similarity attention


def test_query_attention_lights_up_the_related_word(model):
    # with trained vectors, 'cat' -> 'kitten' (not 'car', though the spelling is closer)
    for encoder in ("contextual", "static"):
        a = analyze_text(KITTEN, "cosine", encoder=encoder, query="cat")
        assert a.score_kind == "query" and a.temperature == get_similarity("cosine").default_temperature
        assert a.top_tokens(1)[0][1] == "kitten"
        assert a.scores[a.tokens.index("kitten")] > 5 * a.scores[a.tokens.index("car")]
        assert a.scores.sum() == pytest.approx(1.0, abs=1e-5)
    # random vectors know nothing: kitten is not singled out
    r = analyze_text(KITTEN, "cosine", encoder="random", query="cat")
    assert r.scores[r.tokens.index("kitten")] < 0.3


def test_query_weights_are_softmax_of_similarity_over_temperature(model):
    enc = encode_text(KITTEN, "static")
    q = embed_query("small cat", "static")
    torch.testing.assert_close(q, encode_text("small cat", "static").vectors.mean(0))
    for sim in ("cosine", "euclidean", "additive"):
        a = analyze_encoding(enc, sim, 0.5, "small cat")
        s = get_similarity(sim)(q[None], enc.vectors)[0].double() / 0.5
        np.testing.assert_allclose(a.scores, torch.softmax(s, 0).numpy(), atol=1e-5)


def test_self_attention_row_and_matrix(model):
    enc = encode_text(KITTEN, "contextual")
    a = analyze_encoding(enc, "scaled_dot", 2.0)
    ref = attend(enc.vectors, "scaled_dot", 2.0).weights.numpy()
    np.testing.assert_allclose(a.weights, ref, atol=1e-6)
    np.testing.assert_allclose(a.weights.sum(1), 1, atol=1e-5)
    row = analyze_encoding(enc, "scaled_dot", 2.0, token=2)
    assert row.score_kind == "row"
    np.testing.assert_allclose(row.scores, ref[2], atol=1e-6)
    np.testing.assert_allclose(a.effective_tokens, np.exp(a.entropy))
    pairs = a.top_pairs(3)
    assert len(pairs) == 3 and all(i != j for i, j, _ in pairs)
    with pytest.raises(InvalidParameter):
        analyze_encoding(enc, token=99)
    with pytest.raises(UnknownSimilarity):
        analyze_text(KITTEN, "nope")
    with pytest.raises(InvalidParameter):
        analyze_text(KITTEN, temperature=0)


def test_switching_similarity_never_reencodes(model, monkeypatch):
    enc = encode_text(KITTEN, "contextual")
    import attnviz.text.encoders as text_mod  # where the forward pass lives

    def boom(*a, **k):
        raise AssertionError("the encoder ran again")

    monkeypatch.setattr(text_mod, "_forward_hidden", boom)
    for sim in SIMILARITIES:
        a = analyze_encoding(enc, sim, None, token=1)
        assert a.scores.shape == (15,)


# ------------------------------------------------------------------------------------------- batches


def test_batched_texts_equal_texts_alone(model):
    lines = split_lines((ASSETS / "text_en_batch.txt").read_text(encoding="utf-8"))
    assert len(lines) == 4
    batch = encode_texts(lines, "contextual")
    for line, enc in zip(lines, batch):
        alone = encode_text(line, "contextual")
        assert enc.tokens == alone.tokens
        torch.testing.assert_close(enc.vectors, alone.vectors, atol=1e-4, rtol=1e-4)
    analyses = analyze_texts(lines, "cosine", query="money")
    for line, a in zip(lines, analyses):
        alone = analyze_text(line, "cosine", query="money")
        np.testing.assert_allclose(a.scores, alone.scores, atol=1e-4)
        np.testing.assert_allclose(a.weights, analyze_text(line, "cosine").weights, atol=1e-4)
        assert a.weights.shape == (len(a.tokens), len(a.tokens))
    bank = analyses[2]
    assert bank.top_tokens(1)[0][1] in ("bank", "interest", "rates")


def test_split_lines():
    assert split_lines("a\n\n b \n") == ["a", " b "]
    with pytest.raises(EmptyText):
        split_lines("\n \n")
    with pytest.raises(TextTooLong):
        split_lines("x\n" * 5, max_texts=4)


# -------------------------------------------------------------------------------- the model's heads


def test_model_attentions_match_the_model_and_rows_sum_to_one(model, hf_tokenizer):
    text = "The kitten chased the ball because it was bored."
    enc = encode_text(text, "static")
    ma = model_attentions(enc)
    inputs = hf_tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        direct = torch.stack(model.model(**inputs, output_attentions=True).attentions)[:, 0].numpy()
    assert ma.attentions.shape == (6, 12, len(enc.tokens) + 2, len(enc.tokens) + 2)
    np.testing.assert_allclose(ma.attentions, direct, atol=1e-5)
    np.testing.assert_allclose(ma.attentions.sum(-1), 1, atol=1e-5)
    np.testing.assert_allclose(ma.raw(3, 5), direct[3, 5], atol=1e-5)
    np.testing.assert_allclose(ma.raw(2, "average"), direct[2].mean(0), atol=1e-5)
    inner = ma.matrix(3, 5)  # [CLS]/[SEP] dropped, rows renormalised over the text
    ref = direct[3, 5, 1:-1, 1:-1]
    np.testing.assert_allclose(inner, ref / ref.sum(1, keepdims=True), atol=1e-5)
    assert ma.matrix(3, 5, include_special=True).shape == (len(enc.tokens) + 2,) * 2
    share = ma.special_share(3, 5)
    assert share == pytest.approx(float((direct[3, 5, 1:-1, 0] + direct[3, 5, 1:-1, -1]).mean()), abs=1e-5)
    with pytest.raises(InvalidParameter):
        ma.raw(6, 0)
    with pytest.raises(InvalidParameter):
        ma.raw(0, 12)


def test_rollout_against_a_hand_computed_product():
    rng = np.random.default_rng(0)
    a = rng.random((3, 2, 4, 4))
    a /= a.sum(-1, keepdims=True)
    expected = np.eye(4)
    for layer in range(3):
        m = 0.5 * a[layer].mean(0) + 0.5 * np.eye(4)
        m /= m.sum(-1, keepdims=True)
        expected = m @ expected
    # written out: R = Â3 Â2 Â1
    hats = [(0.5 * a[k].mean(0) + 0.5 * np.eye(4)) / (0.5 * a[k].mean(0) + 0.5 * np.eye(4)).sum(-1, keepdims=True) for k in range(3)]
    np.testing.assert_allclose(expected, hats[2] @ hats[1] @ hats[0])
    np.testing.assert_allclose(attention_rollout(a), expected, atol=1e-6)
    np.testing.assert_allclose(attention_rollout(a).sum(-1), 1, atol=1e-6)


def test_all_heads_grid(model):
    ma = model_attentions("The cat sat on the mat because it was tired.")
    n = len(ma.tokens)
    grid = ma.head_grid(gap=2)
    assert grid.shape == (6 * (n + 2) - 2, 12 * (n + 2) - 2)
    cell = n + 2
    block = grid[2 * cell:2 * cell + n, 7 * cell:7 * cell + n]  # layer 3, head 8
    np.testing.assert_allclose(block, ma.matrix(2, 7) / ma.matrix(2, 7).max(), atol=1e-6)
    assert np.isnan(grid[n, 0]) and np.nanmax(grid) == pytest.approx(1.0)
    assert ma.head_grid(max_tokens=4).shape == (6 * 6 - 2, 12 * 6 - 2)


def test_rollout_of_the_real_model(model):
    ma = model_attentions("The cat sat on the mat.")
    r = ma.raw(None, "rollout")
    np.testing.assert_allclose(r, attention_rollout(ma.attentions), atol=1e-6)
    np.testing.assert_allclose(ma.matrix(None, "rollout").sum(-1), 1, atol=1e-5)


def test_merged_model_attention_sums_to_words_and_averages_from_words(model):
    w = np.array([[0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.5, 0.25, 0.25]])
    m = merge_attention(w, [(0, 2), (2, 3)])
    np.testing.assert_allclose(m, [[(0.3 + 0.6) / 2, (0.7 + 0.4) / 2], [0.75, 0.25]])
    enc = encode_text("Unbelievably good tokenization", "static", merge_words=True)
    ma = model_attentions(enc)
    assert ma.tokens == ("Unbelievably", "good", "tokenization")
    assert ma.matrix(0, 0).shape == (3, 3)
    np.testing.assert_allclose(ma.matrix(0, 0).sum(-1), 1, atol=1e-5)


def test_model_attention_of_a_long_text_reads_one_window(model, long_encoding):
    ma = model_attentions(long_encoding, start=1000)
    assert ma.unit_start == 1000 and ma.unit_end == 1000 + model.content_length
    assert ma.attentions.shape[-1] == model.max_length
    assert any("shown for tokens 1000-1509" in n for n in ma.notes)
    with pytest.raises(InvalidParameter):
        model_attentions(long_encoding, start=len(long_encoding.tokens))


def test_model_attentions_batched_with_padding_masks(model):
    texts = ["A short one.", "A rather longer sentence that needs padding in the batch."]
    encs = encode_texts(texts, "static")
    batch = model_attentions_batch(encs)
    for enc, ma in zip(encs, batch):
        alone = model_attentions(enc)
        np.testing.assert_allclose(ma.attentions, alone.attentions, atol=1e-5)


# ----------------------------------------------------------------------------------- loading models


def test_model_loads_once_and_threads_share_it(model):
    results = []

    def work():
        m = load_model()
        enc = encode_text(KITTEN, "contextual", "cpu")
        results.append((m, enc.vectors))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(m is model for m, _ in results)
    for _, v in results:
        torch.testing.assert_close(v, results[0][1])
    assert load_model(default_model_path()) is model  # the same folder by path is the same model
    assert not model.model.training


def test_missing_or_invalid_model_folders(tmp_path):
    with pytest.raises(ModelNotFound, match="does not exist"):
        load_model(tmp_path / "nope")
    with pytest.raises(ModelNotFound, match="config.json"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelNotFound, match="weights"):
        load_model(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not weights")
    shutil.copy(Path(default_model_path()) / "tokenizer.json", tmp_path)
    with pytest.raises(ModelNotFound):
        load_model(tmp_path)


def test_a_model_without_attentions_is_refused(tmp_path):
    from transformers import MambaConfig, MambaModel

    torch.manual_seed(0)
    MambaModel(MambaConfig(vocab_size=30522, hidden_size=16, state_size=4, num_hidden_layers=1,
                           intermediate_size=32)).save_pretrained(tmp_path)
    shutil.copy(Path(default_model_path()) / "tokenizer.json", tmp_path)
    with pytest.raises(ModelHasNoAttentions, match="no attention"):
        load_model(tmp_path)


def test_any_local_bert_folder_works(tmp_path):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).save_pretrained(tmp_path)
    shutil.copy(Path(default_model_path()) / "tokenizer.json", tmp_path)
    m = load_model(tmp_path)
    assert (m.num_layers, m.num_heads, m.hidden_size, m.max_length, m.content_length) == (2, 4, 32, 64, 62)
    text = " ".join(["word"] * 150)  # more than one 64-position window
    a = analyze_text(text, "cosine", encoder="contextual", model_path=tmp_path, query="word")
    assert len(a.tokens) == 150 and a.scores.shape == (150,)
    assert any("windows of 64" in n for n in a.notes)
    ma = model_attentions(encode_text(text, "static", model_path=tmp_path))
    assert ma.attentions.shape == (2, 4, 64, 64) and ma.unit_end == 62


# ---------------------------------------------------------------------------------------- exports


def test_analysis_exports(model, tmp_path):
    a = analyze_text('Tom said "<script>alert(1)</script>" & left.', "cosine", query="boy")
    d = json.loads(a.to_json())
    assert set(d) >= {"tokens", "offsets", "weights", "scores", "similarity", "encoder", "device"}
    assert d["similarity"] == "cosine" and d["encoder"] == "contextual" and d["device"] == "cpu"
    assert len(d["weights"]) == len(d["tokens"]) == len(d["scores"]) == len(d["offsets"])
    assert json.loads(a.to_json(include_matrix=False))["weights"] is None
    page = a.to_html()
    assert "<script" not in page.lower() and "&amp;" in page
    import html as html_mod
    import re

    visible = html_mod.unescape(re.sub(r"<[^>]+>", "", page))
    assert 'Tom said "<script>alert(1)</script>" & left.' in visible  # shown verbatim, as inert text
    assert a._repr_html_().count('class="attnviz-tok"') == len(a.tokens)
    for suffix in (".html", ".json", ".csv"):
        p = a.save(tmp_path / f"out{suffix}")
        assert p.stat().st_size > 100
    assert (tmp_path / "out.csv").read_text().splitlines()[0].startswith("query \\ key,tom,said")
    with pytest.raises(InvalidParameter):
        a.save(tmp_path / "out.pdf")


def test_matrix_limit_is_documented_constant():
    assert MATRIX_MAX_TOKENS >= 512


# ------------------------------------------------------------------- in-memory models, negative indices


@pytest.fixture(scope="module")
def in_memory():
    """The bundled model loaded by transformers itself (sdpa attention, as from_pretrained gives it) and its
    fast tokenizer: objects a notebook user already holds."""
    import transformers

    from attnviz.loaders.hf import default_model_path

    folder = default_model_path()
    return transformers.AutoModel.from_pretrained(folder), transformers.AutoTokenizer.from_pretrained(folder)


def test_in_memory_model_and_tokenizer_give_the_folders_numbers(model, in_memory):
    import attnviz

    m, tok = in_memory
    impl, padding = m.config._attn_implementation, tok.backend_tokenizer.padding
    text = "The bank of the river flooded."
    a = attnviz.analyze_text(text, "cosine", encoder="contextual", model=m, tokenizer=tok)
    b = attnviz.analyze_text(text, "cosine", encoder="contextual")
    assert a.tokens == b.tokens and a.model_name == "all-MiniLM-L6-v2"
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-6)
    ma = attnviz.model_attentions(text, model=m, tokenizer=tok)
    np.testing.assert_allclose(ma.attentions, attnviz.model_attentions(text).attentions, atol=1e-6)
    # the caller's objects are untouched: same attention kernel, same tokenizer settings
    assert m.config._attn_implementation == impl and tok.backend_tokenizer.padding == padding
    # a tokenizers.Tokenizer works as well
    from tokenizers import Tokenizer

    raw = Tokenizer.from_str(tok.backend_tokenizer.to_str())
    c = attnviz.analyze_text(text, "cosine", encoder="static", model=m, tokenizer=raw)
    np.testing.assert_allclose(c.weights, attnviz.analyze_text(text, "cosine", encoder="static").weights, atol=1e-6)


def test_in_memory_mistakes_are_typed(in_memory):
    import attnviz
    from attnviz.loaders.hf import default_model_path

    m, tok = in_memory
    with pytest.raises(InvalidParameter, match="model_path must be a folder.*model="):
        attnviz.analyze_text("hi", model_path=m)
    with pytest.raises(InvalidParameter, match="needs its tokenizer"):
        attnviz.analyze_text("hi", model=m)
    with pytest.raises(InvalidParameter, match="fast transformers tokenizer"):
        attnviz.analyze_text("hi", model=m, tokenizer=object())
    with pytest.raises(InvalidParameter, match="PreTrainedModel"):
        attnviz.analyze_text("hi", model=object(), tokenizer=tok)
    with pytest.raises(ModelNotFound, match="give the folder, not config.json"):
        attnviz.analyze_text("hi", model_path=Path(default_model_path()) / "config.json")


def test_negative_layer_and_head_and_the_default_layer(model):
    ma = model_attentions("The cat sat on the mat.")
    np.testing.assert_array_equal(ma.raw(-1, -1), ma.attentions[5, 11])
    np.testing.assert_array_equal(ma.raw(-6, 0), ma.attentions[0, 0])
    np.testing.assert_array_equal(ma.matrix(), ma.matrix(5))  # layer=None: the last layer, never an error
    np.testing.assert_array_equal(ma.matrix(-2, -3), ma.matrix(4, 9))
    assert ma.special_share(-1) == ma.special_share(5)
    for bad in (6, -7, 1.5, True):
        with pytest.raises(InvalidParameter, match="layer must be"):
            ma.raw(bad)
    with pytest.raises(InvalidParameter, match="head must be"):
        ma.raw(0, 12)


def test_an_in_memory_decoder_with_a_head_is_found_causal_and_left_as_it_was(in_memory):
    """A GPT-2 LM built in memory (training mode, as a fresh module is): its base model is run in eval mode
    on a copy, found causal by the probe, and its attention is the model's own output_attentions."""
    import transformers

    import attnviz

    _, tok = in_memory
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=16, vocab_size=tok.vocab_size, n_positions=64,
                                  bos_token_id=0, eos_token_id=0)
    lm = transformers.GPT2LMHeadModel(cfg)
    assert lm.training
    ma = attnviz.model_attentions("The cat sat.", model=lm, tokenizer=tok)
    assert lm.training  # the caller's model is unchanged
    assert ma.causal and (ma.num_layers, ma.num_heads) == (2, 2)
    assert np.all(np.triu(ma.raw(-1, -1), 1) == 0)
    ids = tok("The cat sat.", return_tensors="pt")["input_ids"]
    import copy

    reference = copy.deepcopy(lm.transformer).eval()
    reference.set_attn_implementation("eager")  # sdpa returns no weights; eager is the same maths
    with torch.no_grad():
        ref = reference(input_ids=ids, output_attentions=True).attentions
    np.testing.assert_allclose(ma.attentions, torch.stack(ref)[:, 0].detach().numpy(), atol=1e-6)


# -------------------------------------------------------------------------- progress and cancellation


class _Stop(Exception):
    """What Streamlit's StopException / RerunException stand for here: raised by the progress callback."""


def test_progress_reports_every_window_and_its_raise_stops_the_encoder(model, monkeypatch):
    """A long text's contextual encoding runs window by window with ``progress(done, total)`` before each one;
    an exception from ``progress`` (a rerun or a closed session on the page) stops it: no later window runs."""
    import attnviz.text.encoders as text_mod

    text = " ".join(f"word{i % 97} is here" for i in range(700))  # 2,800+ word pieces: several windows
    n = len(tokenize(text).ids)
    total = len(window_spans(n, model.content_length))
    assert total >= 6
    passes, real = [], text_mod._forward_hidden
    monkeypatch.setattr(text_mod, "_forward_hidden", lambda m, rows: passes.append(len(rows)) or real(m, rows))
    seen = []
    enc = encode_text(text, "contextual", progress=lambda done, all_: seen.append((done, all_)))
    assert seen == [(i, total) for i in range(total + 1)] and passes == [1] * total  # one window a pass
    passes.clear()
    plain = encode_text(text, "contextual")  # no progress: windows batched WINDOW_BATCH at a time
    assert passes == [min(WINDOW_BATCH, total - b) for b in range(0, total, WINDOW_BATCH)]
    torch.testing.assert_close(enc.vectors, plain.vectors, atol=1e-5, rtol=1e-4)

    def stop_at_3(done, all_):
        if done == 3:
            raise _Stop
    passes.clear()
    with pytest.raises(_Stop):
        encode_text(text, "contextual", progress=stop_at_3)
    assert passes == [1, 1, 1]  # windows 0-2 ran, the other total - 3 never did
    passes.clear()
    encode_text(KITTEN, "contextual", progress=stop_at_3)  # one window: no progress to report, nothing to stop
    assert passes == [1]
