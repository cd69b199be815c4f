"""swap_head_similarity: the identity swap is the model itself, other swaps change what they should and only
that, every registered similarity runs, and the shared model is never changed (also under threads)."""

from __future__ import annotations

import html
import re
import threading
from html.parser import HTMLParser

import numpy as np
import pytest
import torch

from attnviz.attention import masked_softmax
from attnviz.errors import InvalidParameter, UnknownSimilarity
from attnviz.similarity import SIMILARITIES, get_similarity
from attnviz.text import load_model
from attnviz.trace import head_trace, swap_head_similarity

TEXT = "The bank of the river flooded."


@pytest.fixture(scope="module")
def m():
    return load_model(None, "cpu")


def _plain(m, text=TEXT):
    ids = torch.tensor([list(m.prefix_ids) + m.tokenizer.encode(text, add_special_tokens=False).ids
                        + list(m.suffix_ids)])
    with torch.inference_mode():
        return m.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)


@pytest.mark.parametrize("layer,head", [(0, None), (3, None), (-1, 4)])
def test_scaled_dot_at_t1_is_the_model_itself(m, layer, head):
    r = swap_head_similarity(TEXT, layer, head, "scaled_dot", 1.0, model=m)
    assert r.last_hidden_max_diff <= 1e-5
    assert r.drift >= 1 - 1e-6
    assert np.abs(r.swapped_weights - r.original_weights).max() <= 1e-5
    assert r.overlap >= 1 - 1e-5
    plain = _plain(m)
    np.testing.assert_allclose(r.original_weights, plain.attentions[r.layer][0].numpy(), atol=0, rtol=0)


def test_cosine_swap_changes_that_head_only_and_moves_the_embedding(m):
    r = swap_head_similarity(TEXT, 2, 7, "cosine", 0.1, model=m)
    assert r.heads == (7,) and r.temperature == 0.1
    assert np.abs(r.swapped_weights[7] - r.original_weights[7]).max() > 1e-2
    others = [h for h in range(12) if h != 7]
    assert np.abs(r.swapped_weights[others] - r.original_weights[others]).max() <= 1e-5
    assert r.drift < 1 and 0 < r.overlap < 1
    assert r.last_hidden_max_diff > 1e-4
    # the new weights are softmax(cos(q, k) / T) of the head's own q and k
    tr = head_trace(TEXT, 2, 7, model=m)
    q, k = torch.from_numpy(tr.q), torch.from_numpy(tr.k)
    want = masked_softmax(get_similarity("cosine")(q, k) / 0.1).numpy()
    np.testing.assert_allclose(r.swapped_weights[7], want, atol=1e-5)
    drifts = [d for _, _, d in r.moved_tokens]
    assert drifts == sorted(drifts, reverse=True) and len(r.moved_tokens) == len(r.tokens)


def test_a_swap_in_layer_l_leaves_earlier_layers_alone(m):
    r = swap_head_similarity(TEXT, 4, None, "cosine", 0.1, model=m)
    assert r.heads == tuple(range(12))
    assert np.abs(r.swapped_weights - r.original_weights).max() > 1e-2


@pytest.mark.parametrize("name", sorted(SIMILARITIES))
def test_every_similarity_swaps(m, name):
    r = swap_head_similarity(TEXT, 1, 0, name, model=m)
    assert np.isfinite(r.swapped_weights).all()
    np.testing.assert_allclose(r.swapped_weights.sum(-1), 1.0, atol=1e-5)
    assert -1 <= r.drift <= 1 + 1e-9 and r.temperature == SIMILARITIES[name].default_temperature


def test_bad_similarity_temperature_and_layer(m):
    with pytest.raises(UnknownSimilarity):
        swap_head_similarity(TEXT, 0, 0, "nope", model=m)
    with pytest.raises(InvalidParameter):
        swap_head_similarity(TEXT, 0, 0, "cosine", 0.0, model=m)
    with pytest.raises(InvalidParameter):
        swap_head_similarity(TEXT, 9, 0, model=m)


def test_the_shared_model_is_never_changed(m):
    before = _plain(m).last_hidden_state.clone()
    impl = m.model.config._attn_implementation
    swap_head_similarity(TEXT, 2, None, "euclidean", 0.5, model=m)
    assert m.model.config._attn_implementation == impl == "eager"
    torch.testing.assert_close(_plain(m).last_hidden_state, before, atol=0, rtol=0)


def test_concurrent_swaps_and_plain_runs_do_not_mix(m):
    jobs = [("cosine", 0.1, 3), ("scaled_dot", 1.0, None), ("euclidean", 1.0, 5), ("dot", 1.0, 0)]
    serial = {j: swap_head_similarity(TEXT, 2, j[2], j[0], j[1], model=m).swapped_weights for j in jobs}
    plain = _plain(m).last_hidden_state.clone()
    got, errors = {}, []

    def work(j):
        try:
            for _ in range(3):
                got.setdefault(j, []).append(swap_head_similarity(TEXT, 2, j[2], j[0], j[1], model=m).swapped_weights)
                got.setdefault("plain", []).append(_plain(m).last_hidden_state.clone())
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for j in jobs:
        for w in got[j]:
            np.testing.assert_allclose(w, serial[j], atol=1e-6)
    for p in got["plain"]:
        torch.testing.assert_close(p, plain, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------- the notebook view


class _Page(HTMLParser):
    """Every start tag, every table (rows of cells: (tag, text, title)) and the text outside tables."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.tables, self.text = [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = [tag, "", dict(attrs).get("title")]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(tuple(self._cell))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += data
        else:
            self.text.append(data)


def _parsed(result) -> _Page:
    page = _Page()
    page.feed(result._repr_html_())
    page.close()
    return page


def _check_heat_table(table, tokens, weights):
    """A heat table: the header row and the row headers are ``tokens``; each cell's title is its weight."""
    assert [c[1] for c in table[0][1:]] == list(tokens)
    assert len(table) == len(tokens) + 1
    for i, row in enumerate(table[1:]):
        assert row[0][:2] == ("th", tokens[i])
        titles = [c[2] for c in row[1:]]
        assert titles == [f"{float(w):.4f}" for w in weights[i, : len(tokens)]]


def _header_number(text: str, label: str) -> float:
    found = re.search(re.escape(label) + r"[^0-9]*?(-?\d+\.\d+(?:e[-+]\d+)?)", text)
    assert found, (label, text[:400])
    return float(found.group(1))


HOSTILE = 'A <b>x</b> & "quoted" <script>alert(1)</script> bank.'


def test_the_swap_notebook_view_shows_the_results_own_numbers(m):
    r = swap_head_similarity(HOSTILE, 2, 7, "cosine", 0.1, model=m)
    page = _parsed(r)
    text = "".join(page.text)
    # only the view's own tags: the input's <b> and <script> are characters
    assert set(page.tags) <= {"div", "br", "table", "tr", "th", "td"}, set(page.tags)
    assert "<script" not in r._repr_html_() and "<b>" not in r._repr_html_()
    assert {"<", ">", "&", '"', "b", "script"} <= set(r.tokens)  # the word pieces of the markup
    raw = r._repr_html_()
    for t in ("<", ">", "&", '"'):  # 4: two tables, header row + row headers
        assert raw.count(f">{html.escape(t)}</th>") == 4 * r.tokens.count(t) and f">{t}</th>" not in raw
    original, swapped, moved = page.tables
    _check_heat_table(original, r.tokens, r.original_weights[7])
    _check_heat_table(swapped, r.tokens, r.swapped_weights[7])
    assert original != swapped
    assert _header_number(text, "overlap") == pytest.approx(r.overlap, abs=5e-5)
    assert _header_number(text, "before and after)") == pytest.approx(r.drift, abs=5e-7)
    assert _header_number(text, "final hidden states") == pytest.approx(r.last_hidden_max_diff, rel=5e-3)
    assert "layer 2" in text and "head 7 rescored with cosine at T = 0.1" in text
    assert "sentence embedding" in text and "[CLS] embedding" not in text
    # the most moved tokens: position, token, 1 - cos, in the result's order
    assert [c[1] for c in moved[0]] == ["position", "token", "1 − cos"]
    want = r.moved_tokens[:5]
    assert [(int(a[1]), b[1], float(c[2])) for a, b, c in moved[1:]] == [
        (i, t, pytest.approx(d, rel=1e-6)) for i, t, d in want]


def test_the_swap_view_of_a_whole_layer_names_the_head_it_shows(m):
    r = swap_head_similarity(TEXT, 3, None, "euclidean", 0.5, model=m)
    page = _parsed(r)
    text = "".join(page.text)
    assert "showing head 0, the first of the 12 rescored heads" in text
    assert _header_number(text, "its overlap") == pytest.approx(float(r.head_overlap[0]), abs=5e-5)
    _check_heat_table(page.tables[1], r.tokens, r.swapped_weights[0])


def test_a_long_swap_shows_the_first_tokens_and_says_so(m):
    from attnviz.trace import HTML_MAX_TOKENS

    text = " ".join(f"w{i}" for i in range(HTML_MAX_TOKENS))
    r = swap_head_similarity(text, 1, 0, "dot", model=m)
    n = len(r.tokens)
    assert n > HTML_MAX_TOKENS
    page = _parsed(r)
    assert f"showing the first {HTML_MAX_TOKENS} of {n} tokens" in "".join(page.text)
    _check_heat_table(page.tables[0], r.tokens[:HTML_MAX_TOKENS], r.original_weights[0])


def test_the_swap_page_is_titled_by_its_layer(m, tmp_path):
    from attnviz.export import save

    r = swap_head_similarity(TEXT, 2, 5, "cosine", 0.1, model=m)
    page = save(r, tmp_path / "swap.html").read_text(encoding="utf-8")
    assert "<title>attnviz: similarity swap, layer 2</title>" in page and "<script" not in page
    trace = head_trace(TEXT, 2, 5, model=m)
    page = save(trace, tmp_path / "trace.html").read_text(encoding="utf-8")
    assert f"<title>attnviz: layer 2, head 5 of {trace.model_name}</title>" in page


def test_a_photo_swap_view_shows_patch_labels_and_the_cls_embedding():
    from attnviz.image import load_upload, sample_path
    from attnviz.trace import swap_head_similarity_image

    photo = load_upload(str(sample_path("china.jpg")))
    r = swap_head_similarity_image(photo, 9, 2, "cosine", 0.1, resolution=168, device="cpu")  # 12 x 8 patches
    assert r.kind == "image" and r.tokens == ("[CLS]",) + tuple(f"r{i}c{j}" for i in range(8) for j in range(12))
    page = _parsed(r)
    text = "".join(page.text)
    assert "[CLS] embedding" in text and "sentence embedding" not in text
    assert f"showing the first 64 of {len(r.tokens)} tokens" in text
    _check_heat_table(page.tables[0], r.tokens[:64], r.original_weights[2])
    _check_heat_table(page.tables[1], r.tokens[:64], r.swapped_weights[2])
    assert _header_number(text, "before and after)") == pytest.approx(r.drift, abs=5e-7)
