"""head_trace against the model's own modules (read through forward hooks, here only), head metrics against
an independent numpy computation, and the AttentionViz projection's invariants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnviz.errors import EmptyText, InvalidParameter
from attnviz.text import load_model
from attnviz.trace import METRIC_DEFINITIONS, head_metrics, head_trace, qk_projection

TEXT = "The kitten sat on the mat."


@pytest.fixture(scope="module")
def m():
    return load_model(None, "cpu")


def _hooked(m, layer, text=TEXT):
    """The outputs of query/key/value and the attention output dense of ``layer``, plus the model's outputs."""
    sa = m.model.encoder.layer[layer].attention.self
    dense = m.model.encoder.layer[layer].attention.output.dense
    seen = {}
    handles = [mod.register_forward_hook(lambda _mod, _inp, out, name=name: seen.__setitem__(name, out[0].clone()))
               for name, mod in (("q", sa.query), ("k", sa.key), ("v", sa.value), ("out", dense))]
    try:
        ids = torch.tensor([list(m.prefix_ids) + m.tokenizer.encode(text, add_special_tokens=False).ids
                            + list(m.suffix_ids)])
        with torch.inference_mode():
            out = m.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True,
                          output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    return seen, out


@pytest.mark.parametrize("layer,head", [(0, 0), (2, 5), (5, 11)])
def test_q_k_v_scores_weights_output_match_the_model(m, layer, head):
    tr = head_trace(TEXT, layer, head, model=m)
    seen, out = _hooked(m, layer)
    cols = slice(head * 32, (head + 1) * 32)
    assert tr.tokens[0] == "[CLS]" and tr.tokens[-1] == "[SEP]" and tr.d_head == 32
    for name in "qkv":
        np.testing.assert_allclose(getattr(tr, name), seen[name][:, cols].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(tr.h, out.hidden_states[layer][0].numpy(), atol=0, rtol=0)
    model_w = out.attentions[layer][0, head].numpy()
    assert np.abs(tr.weights - model_w).max() <= 1e-5
    assert tr.max_abs_diff <= 1e-5
    np.testing.assert_allclose(tr.output, seen["out"].numpy(), atol=1e-5, rtol=0)
    e = np.exp(tr.scores - tr.scores.max(1, keepdims=True))
    np.testing.assert_allclose(tr.weights, e / e.sum(1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(tr.scores, tr.q @ tr.k.T / np.sqrt(32), atol=1e-5)
    np.testing.assert_allclose(tr.context, tr.weights @ tr.v, atol=1e-5)


def test_negative_layer_and_head_count_from_the_end(m):
    a, b = head_trace(TEXT, -1, -1, model=m), head_trace(TEXT, 5, 11, model=m)
    assert (a.layer, a.head) == (5, 11)
    np.testing.assert_array_equal(a.weights, b.weights)


@pytest.mark.parametrize("layer,head", [(6, 0), (-7, 0), (0, 12), (0, 1.5)])
def test_out_of_range_layer_or_head_is_a_typed_error(m, layer, head):
    with pytest.raises(InvalidParameter):
        head_trace(TEXT, layer, head, model=m)


def test_empty_text_and_bad_max_tokens(m):
    with pytest.raises(EmptyText):
        head_trace("   ", 0, 0, model=m)
    with pytest.raises(InvalidParameter):
        head_trace(TEXT, 0, 0, model=m, max_tokens=0)


def test_long_text_is_cut_with_a_notice(m):
    tr = head_trace("word " * 100, 1, 1, model=m, max_tokens=10)
    assert tr.n == 12 and tr.notice and "first 10" in tr.notice
    assert tr.max_abs_diff <= 1e-5
    assert head_trace(TEXT, 1, 1, model=m).notice is None


def test_seed_stares_at_itself_and_the_head_does_not(m):
    tr = head_trace(TEXT, 2, 5, model=m)
    # cos(h_i, h_i) = 1 is the largest score of its row: the seed's diagonal is every row's maximum
    assert (np.argmax(tr.seed_weights, 1) == np.arange(tr.n)).all()
    share = tr.diagonal_share()
    assert share["seed"] > 0.5 > share["model"]
    rows = tr.diagonal_share(per_row=True)
    assert rows["model"].shape == (tr.n,) and abs(rows["model"].mean() - share["model"]) < 1e-12


def test_explain_gives_the_cell_with_its_numbers(m):
    tr = head_trace(TEXT, 2, 5, model=m)
    s = tr.explain("scores", 1, 2)
    assert "√32" in s and f"{tr.scores[1, 2]:.4f}" in s and f"{float(tr.q[1] @ tr.k[2]):.4f}" in s
    assert f"{tr.weights[1, 2]:.4f}" in tr.explain("weights", 1, 2)
    for name in ("seed_weights", "q", "k", "v", "context", "output", "h"):
        assert tr.explain(name, -1, 0)
    with pytest.raises(InvalidParameter):
        tr.explain("nope", 0, 0)
    with pytest.raises(InvalidParameter):
        tr.explain("weights", 0, 99)


def test_html_is_escaped_and_has_no_script(m):
    tr = head_trace("<script>alert(1)</script> & <b>bold</b>", 0, 0, model=m)
    page = tr._repr_html_()
    assert "<script" not in page.lower() and "<b>bold" not in page and "&lt;" in page


def test_head_metrics_match_numpy_from_output_attentions(m):
    got = head_metrics(TEXT, model=m)
    assert set(got) == set(METRIC_DEFINITIONS)
    _seen, out = _hooked(m, 0)
    a = np.stack([x[0].numpy().astype(np.float64) for x in out.attentions])  # (layers, heads, n, n)
    n = a.shape[-1]
    want = {"entropy": np.zeros(a.shape[:2]), "sink_share": np.zeros(a.shape[:2]),
            "previous_token_share": np.zeros(a.shape[:2]), "next_token_share": np.zeros(a.shape[:2]),
            "mean_distance": np.zeros(a.shape[:2])}
    for li in range(a.shape[0]):
        for hi in range(a.shape[1]):
            w = a[li, hi]
            want["entropy"][li, hi] = np.mean([-sum(p * np.log(p) for p in row if p > 0) for row in w])
            want["sink_share"][li, hi] = np.mean(w[:, 0] + w[:, n - 1])
            want["previous_token_share"][li, hi] = np.mean([w[i, i - 1] for i in range(1, n)])
            want["next_token_share"][li, hi] = np.mean([w[i, i + 1] for i in range(n - 1)])
            want["mean_distance"][li, hi] = np.mean([sum(w[i, j] * abs(i - j) for j in range(n)) for i in range(n)])
    for name, arr in want.items():
        assert got[name].shape == (6, 12)
        np.testing.assert_allclose(got[name], arr, atol=1e-6, err_msg=name)


def test_qk_projection_keeps_rankings_then_projects(m):
    tr = head_trace(TEXT, 2, 5, model=m)
    pq, pk, note = qk_projection(tr)
    assert pq.shape == (tr.n, 2) and pk.shape == (tr.n, 2) and np.isfinite(pq).all() and np.isfinite(pk).all()
    np.testing.assert_allclose(pq.mean(0), pk.mean(0), atol=1e-4)  # one centroid for queries and keys
    assert "Yeh" in note and "PCA" in note


def test_the_docs_example_runs(capsys):
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "inside-a-head.md").read_text(encoding="utf-8")
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {"__name__": "docs_inside_a_head"}
    exec(compile(code, "docs/inside-a-head.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "'[CLS]', 'the', 'kitten'" in out and "(9, 32) True" in out and "(6, 12)" in out
    assert namespace["tr"].diagonal_share()["seed"] > namespace["tr"].diagonal_share()["model"]


# ------------------------------------------------------------------- the overview of every head (How it works)


def test_heads_overview_is_the_models_attention_and_sorts_by_each_metric(m):
    from attnviz.trace import heads_overview

    ov = heads_overview(TEXT, model=m)
    _seen, out = _hooked(m, 0)
    att = np.stack([a[0].numpy() for a in out.attentions])  # (6, 12, n, n)
    np.testing.assert_allclose(ov.attentions, att, atol=1e-6, rtol=0)
    assert (ov.num_layers, ov.num_heads) == (6, 12)
    prev = np.array([[np.diagonal(a, -1).mean() for a in layer] for layer in att.astype(np.float64)])
    np.testing.assert_allclose(ov.metrics["previous_token_share"], prev, atol=1e-6)
    order = ov.order("previous_token_share")
    assert order[0] == np.unravel_index(prev.argmax(), prev.shape) and len(set(order)) == 72
    assert ov.order("previous_token_share", descending=False)[0] == np.unravel_index(prev.argmin(), prev.shape)
    assert ov.order(None)[:13] == [(0, h) for h in range(12)] + [(1, 0)]
    with pytest.raises(InvalidParameter):
        ov.order("loudness")


def test_thumbnails_are_block_means_each_scaled_to_its_own_maximum():
    from attnviz.figures import block_mean, heads_overview_figure, thumbnail_grid

    rng = np.random.default_rng(0)
    p = rng.random((2, 3, 10, 10))
    small = block_mean(p[1, 2], 4)  # blocks 0:2, 2:5, 5:7, 7:10
    edges = [0, 2, 5, 7, 10]
    for r in range(4):
        for c in range(4):
            assert small[r, c] == pytest.approx(p[1, 2, edges[r]:edges[r + 1], edges[c]:edges[c + 1]].mean())
    order = [(1, 2), (0, 0), (0, 1), (1, 1), (1, 0), (0, 2)]
    canvas, centres = thumbnail_grid(p, order, cols=4, size=4)
    assert canvas.shape == (2 * 5 - 1, 4 * 5 - 1)
    np.testing.assert_allclose(canvas[0:4, 0:4], small / small.max())  # order[0] at the top left
    t = block_mean(p[1, 0], 4)
    np.testing.assert_allclose(canvas[5:9, 0:4], t / t.max())  # order[4]: second row, first column
    assert np.isnan(canvas[4]).all() and np.isnan(canvas[:, 4]).all()  # the gaps
    assert np.isnan(canvas[5:9, 10:]).all()  # two places of the second row stay empty
    assert centres[1] == (6.5, 1.5)
    fig = heads_overview_figure(p, order, rng.random((2, 3)), "entropy", cols=4, selected=(0, 1), size=4)
    assert [tuple(c[:2]) for c in fig.data[1].customdata] == order
    assert len(fig.layout.shapes) == 2  # the selected thumbnail framed (black under white)
    x0 = fig.layout.shapes[0].x0
    assert x0 == pytest.approx(centres[2][0] - 2)


def test_the_qk_figure_joins_the_selected_query_to_its_top_keys(m):
    from attnviz.figures import qk_figure, top_keys

    tr = head_trace(TEXT, 2, 5, model=m)
    qs, ks, _note = qk_projection(tr)
    fig = qk_figure(qs, ks, tr.tokens, tr.weights, selected=3)
    assert fig.data[2].mode == "lines" and fig.data[2].name == "top 3 keys of every query"
    s = tr.q.astype(np.float64) @ tr.k.astype(np.float64).T  # a row's ranking is that of q . k
    faint = list(fig.data[2].x)
    for i in range(tr.n):  # every query's segments go to its 3 largest q . k
        ends = faint[9 * i + 1:9 * i + 9:3]
        assert ends == pytest.approx([float(ks[j, 0]) for j in np.argsort(-s[i])[:3]], abs=1e-6)
        assert faint[9 * i] == pytest.approx(float(qs[i, 0]), abs=1e-6)
    lines = [t for t in fig.data[3:] if t.mode == "lines"]
    best = np.argsort(-s[3])[:3]
    assert [tuple(t.x) for t in lines] == [(float(qs[3, 0]), float(ks[j, 0])) for j in best]
    assert top_keys(tr.weights, 3).tolist()[3] == best.tolist()
    assert [c[0] for c in fig.data[0].customdata] == list(range(tr.n))


def test_a_clicked_point_is_read_from_its_own_trace_only():
    from ui.clicks import parse_clicked_point

    ev = {"selection": {"points": [{"curve_number": 1, "customdata": [2]}, {"curve_number": 0, "customdata": [4, "x"]}]}}
    assert parse_clicked_point(ev, curve=0, size=9) == 4
    assert parse_clicked_point(ev, curve=0, size=4) is None
    assert parse_clicked_point({"selection": {"points": [{"curve_number": 0, "point_index": 6}]}}, 0, 9) == 6
    assert parse_clicked_point(None, 0, 9) is None
