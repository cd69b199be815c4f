"""head_trace_image / swap_head_similarity_image against DINOv2-small's own modules: q, k, v and the attention
output projection read through forward hooks (here only), h = norm1 of the residual stream read by a pre-hook,
weights vs output_attentions, the identity swap vs the unchanged model, a cosine swap vs softmax(cos(q, k) / T)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnviz.attention import masked_softmax
from attnviz.errors import InvalidParameter, NotAnImage
from attnviz.image import load_upload, patch_label, sample_path
from attnviz.loaders.dinov2 import load_dinov2, preprocess
from attnviz.similarity import get_similarity
from attnviz.trace import WINDOW_SIZE, head_trace_image, swap_head_similarity_image

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def photo():
    return load_upload(str(sample_path("china.jpg")))


@pytest.fixture(scope="module")
def vit():
    return load_dinov2("cpu").model


def _hooked(vit, photo, layer):
    """What the layer's attention saw and computed, read by hooks on the model's own modules."""
    att = vit.encoder.layer[layer].attention
    seen = {}
    hooks = [mod.register_forward_hook(lambda _m, _i, out, name=name: seen.__setitem__(name, out[0].clone()))
             for name, mod in (("q", att.q_proj), ("k", att.k_proj), ("v", att.v_proj), ("out", att.o_proj))]
    hooks.append(att.register_forward_pre_hook(lambda _m, inp: seen.__setitem__("h", inp[0][0].clone())))
    hooks.append(vit.encoder.layer[layer].register_forward_pre_hook(
        lambda _m, inp: seen.__setitem__("stream", inp[0][0].clone())))
    try:
        pv, _ = preprocess(photo, 224)
        with torch.inference_mode():
            out = vit(pixel_values=pv, output_attentions=True, output_hidden_states=True)
    finally:
        for h in hooks:
            h.remove()
    return seen, out


@pytest.mark.parametrize("layer,head", [(0, 0), (9, 2), (11, 5)])
def test_q_k_v_weights_output_match_dinov2(vit, photo, layer, head):
    tr = head_trace_image(photo, layer, head, device="cpu")
    seen, out = _hooked(vit, photo, layer)
    d = 64
    cols = slice(head * d, (head + 1) * d)
    assert tr.kind == "image" and tr.d_head == d and tr.num_heads == 6 and tr.num_layers == 12
    assert tr.grid == (11, 16) and tr.n == 1 + 11 * 16  # 427 x 640 -> 154 x 224 pixels
    assert tr.tokens[0] == "[CLS]" and tr.tokens[1] == patch_label(0, 0) and tr.tokens[-1] == patch_label(10, 15)
    # h is norm1 of the residual stream, exactly what the attention module was given
    np.testing.assert_allclose(tr.h, seen["h"].numpy(), atol=1e-6, rtol=0)
    ln = vit.encoder.layer[layer].norm1
    stream = seen["stream"].double()
    by_hand = (stream - stream.mean(-1, keepdim=True)) / torch.sqrt(stream.var(-1, unbiased=False, keepdim=True)
                                                                      + ln.eps) * ln.weight.detach().double() + ln.bias.detach().double()
    np.testing.assert_allclose(tr.h, by_hand.numpy(), atol=1e-4, rtol=0)
    assert np.abs(by_hand.numpy() - out.hidden_states[layer][0].numpy()).max() > 0.1  # h is not the raw stream
    for name in "qkv":
        np.testing.assert_allclose(getattr(tr, name), seen[name][:, cols].numpy(), atol=1e-4, rtol=0)
    model_w = out.attentions[layer][0, head].numpy()
    assert np.abs(tr.weights - model_w).max() <= 1e-5 and tr.max_abs_diff <= 1e-5
    np.testing.assert_allclose(tr.output, seen["out"].numpy(), atol=1e-4, rtol=0)
    q, k = tr.q.astype(np.float64), tr.k.astype(np.float64)
    s = q @ k.T / math.sqrt(d)
    np.testing.assert_allclose(tr.scores, s, atol=1e-4)
    e = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(tr.weights, e / e.sum(1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(tr.context, tr.weights.astype(np.float64) @ tr.v, atol=1e-4)
    hn = tr.h.astype(np.float64) / np.linalg.norm(tr.h.astype(np.float64), axis=1, keepdims=True)
    seed = np.exp((hn @ hn.T - 1) / tr.seed_temperature)
    np.testing.assert_allclose(tr.seed_weights, seed / seed.sum(1, keepdims=True), atol=1e-5)


def test_the_explanations_carry_the_numbers(vit, photo):
    tr = head_trace_image(photo, 9, 2, device="cpu")
    said = tr.explain("weights", 5, 7)
    assert said.startswith("weights[5,7] ('r0c4' -> 'r0c6')") and f"= {tr.weights[5, 7]:.4f}, over the scores" in said
    assert "before the layer scale and the residual connection" in tr.explain("output", 3, 4)
    assert "norm1(hidden_states[9])" in tr.explain("h", 3, 4)
    ds = tr.diagonal_share()
    assert ds["model"] == pytest.approx(float(np.diagonal(tr.weights).mean()))
    assert ds["seed"] > ds["model"]  # the seed stares at itself; the head need not


def test_window_is_a_block_of_patches_inside_the_grid(photo):
    tr = head_trace_image(photo, 0, 0, device="cpu")
    rows, cols = tr.grid
    w = tr.window(5, 7)
    assert w[0] == 0 and len(w) == 1 + WINDOW_SIZE ** 2
    labels = [tr.tokens[i] for i in w[1:]]
    assert labels[0] == patch_label(4, 6) and labels[-1] == patch_label(7, 9)
    assert patch_label(5, 7) in labels
    corner = [tr.tokens[i] for i in tr.window(rows - 1, cols - 1)[1:]]
    assert corner[0] == patch_label(rows - 4, cols - 4) and corner[-1] == patch_label(rows - 1, cols - 1)
    assert [tr.tokens[i] for i in tr.window(0, 0)[1:5]] == [patch_label(0, c) for c in range(4)]
    sub = tr.weights[np.ix_(w, w)]
    assert sub.shape == (17, 17) and (sub.sum(1) <= 1 + 1e-6).all()
    with pytest.raises(InvalidParameter):
        tr.window(rows, 0)
    with pytest.raises(InvalidParameter):
        tr.window(0, 0, size=0)


def test_identity_swap_is_the_unchanged_model(vit, photo):
    pv, _ = preprocess(photo, 224)
    with torch.inference_mode():
        plain = vit(pixel_values=pv, output_attentions=True)
    for layer, head in ((3, None), (9, 2)):
        r = swap_head_similarity_image(photo, layer, head, "scaled_dot", 1.0, device="cpu")
        assert r.kind == "image" and r.tokens[0] == "[CLS]"
        assert r.last_hidden_max_diff <= 1e-5
        assert np.abs(r.swapped_weights - plain.attentions[layer][0].numpy()).max() <= 1e-5
        assert r.drift >= 1 - 1e-6 and r.overlap >= 1 - 1e-5
    with torch.inference_mode():  # the shared model was never changed
        again = vit(pixel_values=pv)
    assert vit.config._attn_implementation == "eager"
    torch.testing.assert_close(again.last_hidden_state, plain.last_hidden_state, atol=0, rtol=0)


def test_a_cosine_swap_changes_the_head_and_moves_the_cls_embedding(vit, photo):
    r = swap_head_similarity_image(photo, 9, 2, "cosine", 0.1, device="cpu")
    assert r.heads == (2,)
    tr = head_trace_image(photo, 9, 2, device="cpu")
    want = masked_softmax(get_similarity("cosine")(torch.from_numpy(tr.q), torch.from_numpy(tr.k)) / 0.1).numpy()
    np.testing.assert_allclose(r.swapped_weights[2], want, atol=1e-5)
    assert np.abs(r.swapped_weights[2] - r.original_weights[2]).max() > 1e-2
    others = [h for h in range(6) if h != 2]
    assert np.abs(r.swapped_weights[others] - r.original_weights[others]).max() <= 1e-5
    assert r.drift < 1
    # drift is the cosine of the final LayerNorm's [CLS] output: 1 - drift = that token's own moved share
    assert 1 - r.drift == pytest.approx(float(r.token_drift[0]), abs=1e-6)


def test_bad_inputs_are_typed_errors(photo):
    with pytest.raises(NotAnImage):
        head_trace_image("china.jpg", 0, 0, device="cpu")
    with pytest.raises(InvalidParameter):
        head_trace_image(photo, 12, 0, device="cpu")
    with pytest.raises(InvalidParameter):
        swap_head_similarity_image(photo, 0, 6, device="cpu")


def test_the_cli_traces_a_photo(capsys, photo):
    import json

    from attnviz.cli import main

    path = str(sample_path("china.jpg"))
    assert main(["head", "--image", path, "-l", "9", "-H", "2", "-s", "cosine", "-t", "0.1", "--json",
                 "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    tr = head_trace_image(photo, 9, 2, device="cpu")
    assert out["kind"] == "image" and out["tokens"] == list(tr.tokens) and out["d_head"] == 64
    np.testing.assert_allclose(out["weights"], tr.weights, atol=1e-5)
    r = swap_head_similarity_image(photo, 9, 2, "cosine", 0.1, device="cpu")
    np.testing.assert_allclose(out["swapped_weights"], r.swapped_weights[2], atol=1e-5)
    assert out["drift"] == pytest.approx(r.drift)
    assert main(["head", "some text", "--image", path, "-l", "0", "-H", "0"]) == 2


# ------------------------------------------------------------------ every head of DINOv2 at a glance (12 x 6)


def _metrics_by_hand(vit, photo) -> tuple[dict[str, np.ndarray], np.ndarray, tuple[int, int]]:
    """Each overview metric of every head, in float64 loops over the model's own output_attentions and the last
    block's hidden states (not attnviz.vit): entropy, sink share (top ceil(1 %) patches by norm), [CLS] share,
    mean patch distance (weights on the patches renormalised); plus the [CLS] rows and the grid."""
    pv, (h, w) = preprocess(photo, 224)
    rows, cols = h // 14, w // 14
    with torch.inference_mode():
        out = vit(pixel_values=pv, output_attentions=True, output_hidden_states=True)
    att = [a[0].double().numpy() for a in out.attentions]  # 12 x (6, N, N)
    norms = np.linalg.norm(out.hidden_states[-1][0, 1:].double().numpy(), axis=1)  # the last block, before the final LN
    sinks = np.argsort(-norms, kind="stable")[:math.ceil(0.01 * rows * cols)]
    got = {k: np.zeros((12, 6)) for k in ("entropy", "sink_share", "cls_share", "mean_distance")}
    pos = [(p // cols, p % cols) for p in range(rows * cols)]
    far = np.array([[math.dist(a, b) for b in pos] for a in pos])
    for li in range(12):
        for hi in range(6):
            a = att[li][hi]
            got["entropy"][li, hi] = np.mean([-sum(x * math.log(x) for x in row if x > 0) for row in a])
            cls_row = a[0, 1:]
            got["sink_share"][li, hi] = cls_row[sinks].sum() / cls_row.sum()
            got["cls_share"][li, hi] = a[:, 0].mean()
            pp = a[1:, 1:]
            got["mean_distance"][li, hi] = np.mean((pp * far).sum(1) / pp.sum(1))
    cls_maps = np.stack([a[:, 0, 1:] for a in att]).reshape(12, 6, rows, cols)
    return got, cls_maps, (rows, cols)


def test_the_photo_overview_is_every_heads_metrics_from_the_models_own_attention(vit, photo):
    from attnviz.trace import IMAGE_METRIC_DEFINITIONS, heads_overview_image

    ov = heads_overview_image(photo, device="cpu")
    want, cls_maps, grid = _metrics_by_hand(vit, photo)
    assert ov.kind == "image" and (ov.num_layers, ov.num_heads) == (12, 6) and ov.grid == grid == (11, 16)
    assert set(ov.metrics) == set(IMAGE_METRIC_DEFINITIONS) == set(ov.definitions) == set(ov.labels)
    for name, value in want.items():
        np.testing.assert_allclose(ov.metrics[name], value, atol=2e-5, rtol=1e-4, err_msg=name)
    np.testing.assert_allclose(ov.pictures, cls_maps, atol=1e-6)  # the thumbnails: each head's [CLS] -> patch map
    assert ov.attentions is None  # 9 MB a photo: not kept
    by_sink = ov.order("sink_share")
    assert by_sink[0] == np.unravel_index(want["sink_share"].argmax(), (12, 6)) and len(set(by_sink)) == 72
    assert ov.order("mean_distance", descending=False)[0] == np.unravel_index(want["mean_distance"].argmin(), (12, 6))
    assert want["entropy"].min() < 0.5 < 4 < want["entropy"].max()  # sharp heads and spread ones: the sort means something
    with pytest.raises(NotAnImage):
        heads_overview_image("china.jpg")


def test_the_photo_overview_figure_draws_the_cls_maps_12_by_6(photo):
    from attnviz.figures import heads_overview_figure
    from attnviz.trace import heads_overview_image

    ov = heads_overview_image(photo, device="cpu")
    order = ov.order(None)
    fig = heads_overview_figure(ov.pictures, order, ov.metrics["entropy"], "entropy", cols=6, selected=(9, 2))
    canvas = np.asarray(fig.data[0].z, dtype=np.float64)
    gap = 6  # label rows above each 11-row thumbnail: max(2, ceil(16 / 3))
    assert canvas.shape == (12 * (11 + gap) - gap, 6 * 17 - 1)  # 12 rows of layers, 6 heads a row
    m = ov.pictures[3, 4].astype(np.float64)
    y0, x0 = 3 * (11 + gap), 4 * 17
    np.testing.assert_allclose(canvas[y0:y0 + 11, x0:x0 + 16], m / m.max(), atol=1e-6)
    assert [tuple(c[:2]) for c in fig.data[1].customdata] == order
    ys = sorted(set(fig.data[1].y))
    assert len(ys) == 12 and len(set(fig.data[1].x)) == 6


def test_the_window_q_k_picture_joins_each_query_to_its_top_keys_by_q_dot_k(photo):
    from attnviz.figures import qk_figure
    from attnviz.trace import qk_projection

    tr = head_trace_image(photo, 9, 2, device="cpu")
    qs, ks, note = qk_projection(tr)
    win = tr.window(5, 8)
    fig = qk_figure(qs, ks, tr.tokens, tr.weights, selected=win[3], shown=win)
    assert [c[0] for c in fig.data[0].customdata] == list(win) and len(fig.data[1].x) == tr.n
    s = tr.q.astype(np.float64) @ tr.k.astype(np.float64).T  # the ranking of a row is that of q . k
    faint = fig.data[2]
    xs, ys = list(faint.x), list(faint.y)
    assert len(xs) == 3 * 3 * len(win)
    for n, i in enumerate(win):
        best = np.argsort(-s[i])[:3]
        for r, j in enumerate(best):
            seg = 3 * (3 * n + r)
            assert (xs[seg], ys[seg]) == pytest.approx((qs[i, 0], qs[i, 1]), abs=1e-6)
            assert (xs[seg + 1], ys[seg + 1]) == pytest.approx((ks[j, 0], ks[j, 1]), abs=1e-6)
    bold = [t for t in fig.data[3:] if t.mode == "lines"]
    best = np.argsort(-s[win[3]])[:3]
    assert [t.x[1] for t in bold] == pytest.approx([float(ks[j, 0]) for j in best], abs=1e-6)
    widths = [t.line.width for t in bold]
    assert widths == sorted(widths, reverse=True)  # width by weight, heaviest first
