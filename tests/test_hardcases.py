"""attnviz.hardcases: the three hard cases, each checked against numbers computed here independently."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
import torch

from pathlib import Path

from attnviz import EmptyText, InvalidParameter, ModelNotFound
from attnviz import hardcases as hc
from attnviz.hardcases import (
    ALIGNMENT_STATEMENT,
    CLIP_NOTE,
    MEMORY_GRACE_S,
    aligned_text_image_model,
    clip_text_to_image,
    cross_attention,
    image_to_image,
    joint_patch_features,
    measure_scaling,
    ragged_batch,
    ragged_text_batch,
    text_to_image,
    text_to_text,
)
from attnviz.figures import scaling_figures
from attnviz.image import sample_path
from attnviz.measure import cpu_peak_bytes

# ----------------------------------------------------------------------------------- long sequences


def test_scaling_is_measured_within_the_budget():
    budget = 2.5
    cpu_peak_bytes([("start-up", lambda: torch.ones(1))])  # torch.profiler's start-up (seconds, once per process)
    r = measure_scaling("cpu", "scaled_dot", d=32, budget_s=budget, start_n=128)
    assert r.elapsed_s < budget + MEMORY_GRACE_S + 1.5
    measured = {(p.n, p.method): p for p in r.points if p.status == "measured"}
    assert {(128, "full"), (128, "blocked")} <= set(measured)  # (how far n grows depends on the machine's load)
    assert all(p.repeats >= 3 and p.low <= p.seconds <= p.high for p in measured.values())
    assert all(p.status == "measured" or p.status.startswith(("stopped", "skipped")) for p in r.points)
    assert all(p.seconds > 0 for p in measured.values())
    # memory: full attention returns an n x n score matrix AND an n x n weight matrix, so its measured peak
    # is at least 2 n^2 float32s; the blocked path holds one block of at most block_elements scores
    both = sorted(n for (n, m), p in measured.items() if m == "full" and p.peak_bytes is not None
                  and (n, "blocked") in measured and measured[(n, "blocked")].peak_bytes is not None)
    assert both, r.points
    n = both[-1]
    full, blocked = measured[(n, "full")].peak_bytes, measured[(n, "blocked")].peak_bytes
    assert full >= 2 * n * n * 4
    assert blocked < full
    assert blocked <= 2 * r.block_elements * 4 + 4 * n * r.d * 4 + (1 << 20)
    t_fig, m_fig = scaling_figures(r)
    for fig in (t_fig, m_fig):
        assert fig.layout.xaxis.type == "log" and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
        assert len(fig.data) == 2


def test_full_attention_is_skipped_when_it_would_not_fit(monkeypatch):
    monkeypatch.setattr(hc, "_available_bytes", lambda dev: 1 << 20)  # pretend only 1 MiB is free
    r = measure_scaling("cpu", budget_s=3.0, start_n=256, max_n=512)
    full = [p for p in r.points if p.method == "full"]
    assert full and full[0].status.startswith("skipped") and "MiB" in full[0].status
    assert any(p.method == "blocked" and p.status == "measured" for p in r.points)


def test_the_budget_stops_the_growth():
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.01  # noqa: E731 - a fake clock: every reading is 10 ms later
    r = measure_scaling("cpu", budget_s=0.3, start_n=64, max_n=1 << 20, clock=clock)
    stopped = [p for p in r.points if p.status.startswith("stopped")]
    assert {p.method for p in stopped} == {"full", "blocked"}  # both lines end with a reason
    assert max(p.n for p in r.points) < 1 << 14  # it did not run on to a million


def test_the_measurement_reports_its_progress_through_the_budget():
    """What runs now and the share of the budget spent: one call before each timed size and method, one
    before the memory runs, then 1.0; the share never goes back."""
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.01  # noqa: E731 - a fake clock: every reading is 10 ms later
    seen = []
    r = measure_scaling("cpu", budget_s=0.5, start_n=64, max_n=256, clock=clock,
                        on_progress=lambda f, text: seen.append((f, text)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and all(0.0 <= f <= 1.0 for f in fractions) and seen[-1] == (1.0, "Done")
    timed = [(p.method, p.n) for p in r.points if p.status == "measured"]
    announced = [re.match(r"Timing (\w+) attention at n = ([\d,]+) \(", t) for _, t in seen if t.startswith("Timing")]
    assert timed and [(m.group(1), int(m.group(2).replace(",", ""))) for m in announced] == timed
    assert any(t.startswith("Measuring the peak memory") for _, t in seen)
    assert any("of 0.5 s)" in t for _, t in seen)


def test_cpu_peak_is_measured_from_the_allocator():
    peaks = cpu_peak_bytes([("8MiB", lambda: torch.ones(2 * 1024 * 1024)),
                            ("two", lambda: (torch.ones(1024 * 1024), torch.ones(1024 * 1024)))])
    assert 8 << 20 <= peaks["8MiB"] < (8 << 20) + (256 << 10)
    assert 8 << 20 <= peaks["two"] < (8 << 20) + (256 << 10)


def test_bad_budgets_are_refused():
    with pytest.raises(InvalidParameter, match="budget"):
        measure_scaling("cpu", budget_s=0)


# ---------------------------------------------------------------------------------------- ragged


def _softmax(v):
    e = np.exp(v - v.max())
    return e / e.sum()


def test_the_mask_stops_the_leak_onto_padding():
    a = np.array([[1.0, 0.0, 0.5], [0.2, 1.0, -0.3]])  # 2 tokens
    b = np.array([[0.3, 0.3, 0.3], [1.0, -1.0, 0.0], [0.0, 0.5, 1.0], [-0.4, 0.1, 0.9]])  # 4 tokens
    demo = ragged_batch([a, b], [["a0", "a1"], ["b0", "b1", "b2", "b3"]], similarity="dot", temperature=1.0)
    assert demo.lengths == [2, 4] and demo.n_max == 4
    assert demo.padded_labels(0) == ["a0", "a1", "[PAD]", "[PAD]"]
    # with the mask: padding columns exactly 0, real rows sum to 1, padded rows empty
    assert np.all(demo.weights_masked[0, :, 2:] == 0.0) and np.all(demo.weights_masked[0, 2:] == 0.0)
    np.testing.assert_allclose(demo.weights_masked[0, :2].sum(-1), 1.0)
    # without the mask, computed by hand: a zero padding vector scores 0 with everything
    padded = np.vstack([a, np.zeros((2, 3))])
    for i in range(2):
        w = _softmax(padded @ padded[i])
        np.testing.assert_allclose(demo.weights_unmasked[0, i], w, rtol=1e-12)
        assert demo.leaked[0, i] == pytest.approx(w[2:].sum(), rel=1e-12)
        y_bad, y_good = w @ padded, _softmax(a @ a[i]) @ a
        assert demo.output_change[0, i] == pytest.approx(np.linalg.norm(y_bad - y_good) / np.linalg.norm(y_good))
    assert demo.leaked[0, 2:].tolist() == [0.0, 0.0]  # padding rows are not counted as leaks
    assert np.all(demo.leaked[1] == 0.0) and demo.pooled_change[1] == pytest.approx(0.0, abs=1e-12)
    assert demo.alone_max_diff < 1e-12  # masked batch == each sequence alone
    assert demo.unmasked_alone_max_diff > 0.05  # unmasked: the result depends on the batch-mates
    assert demo.pooled_change[0] > 0.05


def test_a_ragged_batch_of_real_sentences():
    texts = ["The kitten sleeps on the sofa.", "A dog barks at the postman every single morning.", "Rates rose."]
    demo = ragged_text_batch(texts, "static", "scaled_dot", 1.0)
    assert demo.lengths == [7, 12, 3]  # "every single morning" is more than one piece per word
    assert demo.labels[2] == ["rates", "rose", "."]
    assert demo.mean_leak(2) > demo.mean_leak(0) > 0.05 and demo.mean_leak(1) == 0.0  # more padding, more leak
    assert demo.alone_max_diff < 1e-12
    with pytest.raises(InvalidParameter, match="at least two"):
        ragged_text_batch(["only one"], "static")


# ------------------------------------------------------------------------------------ multimodal


def test_cross_attention_rows_are_distributions_over_the_other_input():
    q, k = np.eye(3), np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0], [1.0, 1.0, 0]])
    res = cross_attention(q, k, list("abc"), list("wxyz"), "dot", 0.1)
    assert res.weights.shape == (3, 4)
    np.testing.assert_allclose(res.weights.sum(1), 1.0)
    np.testing.assert_allclose(res.weights[1], _softmax(k @ q[1] / 0.1), rtol=1e-12)
    np.testing.assert_allclose(res.effective, np.exp(-(res.weights * np.log(res.weights)).sum(1)), rtol=1e-10)


def test_text_to_text_finds_the_related_words():
    res, a, b = text_to_text("The cat sat on the mat.", "A kitten slept on the rug by the door.", "contextual",
                             "cosine", 0.1)
    best = {a.tokens[i]: b.tokens[j] for i, j in enumerate(res.weights.argmax(1))}
    assert best["cat"] == "kitten" and best["mat"] == "rug" and best["on"] == "on"
    assert res.meaningful


def test_photo_features_are_standardised_together():
    from PIL import Image

    from attnviz.image import load_image, patch_features, patch_grid

    fa, fb, g, (a, b) = joint_patch_features(sample_path("china.jpg"), sample_path("china.jpg"), grid=6)
    np.testing.assert_array_equal(fa, fb)  # the same photo twice: the same features, no seam effect
    alone = patch_features(load_image(sample_path("china.jpg")).resize((384, 256), Image.BILINEAR),
                           patch_grid((384, 256), grid=6))
    np.testing.assert_allclose(fa, alone, atol=1e-6)  # twice the same photo = the image module's own pipeline
    res, grid, _ = image_to_image(sample_path("china.jpg"), sample_path("china.jpg"), 6, "cosine", 0.1)
    assert (res.weights.argmax(1) == np.arange(grid.n)).all()  # every patch finds itself in the copy
    res, _, _ = image_to_image(sample_path("china.jpg"), sample_path("flower.jpg"), 6, "cosine", 0.1)
    assert res.weights.shape == (grid.n, grid.n) and res.query_labels[0] == "A:r0c0"


def test_text_to_image_is_flagged_unaligned_and_seed_dependent():
    res, grid, _ = text_to_image("blue sky above green trees", sample_path("china.jpg"), 4, "general")
    assert not res.meaningful and res.note == ALIGNMENT_STATEMENT
    assert res.extra["dims"] == (384, 13)
    assert res.weights.shape == (len(res.query_labels), grid.n)
    other = res.extra["weights_other_seed"]
    corr = np.corrcoef(res.weights.ravel(), other.ravel())[0, 1]
    assert res.extra["seed_correlation"] == pytest.approx(corr)
    assert not np.allclose(res.weights, other, atol=1e-3)  # another random seed, another map
    assert "NOT meaningful" in ALIGNMENT_STATEMENT and "unaligned" in ALIGNMENT_STATEMENT
    with pytest.raises(InvalidParameter, match="general' or 'additive"):
        text_to_image("sky", sample_path("china.jpg"), 4, "cosine")


def make_tiny_clip(folder: Path) -> Path:
    """A randomly initialised, tiny transformers CLIP (character-level tokenizer) saved to ``folder``:
    it exercises the aligned-model code path offline (its maps mean nothing: its weights are random)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for ch in bytes_to_unicode().values():
            vocab[ch + suffix] = len(vocab)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(folder)
    CLIPTokenizer(vocab=vocab, merges=[]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    return make_tiny_clip(tmp_path_factory.mktemp("tiny-clip"))


def test_aligned_model_detection(monkeypatch, tmp_path, tiny_clip):
    monkeypatch.delenv("ATTNVIZ_CLIP_MODEL", raising=False)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    status = aligned_text_image_model()
    assert not status.available and status.reason.startswith("No aligned text-image model")
    assert "downloads nothing" in status.reason and status.path is None
    snapshot = tmp_path / "hf" / "hub" / "models--openai--clip-vit-base-patch32" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text('{"model_type": "clip"}')
    status = aligned_text_image_model()
    assert status.available and status.path == str(snapshot)
    (snapshot / "config.json").write_text('{"model_type": "siglip"}')  # not one attnviz can use
    status = aligned_text_image_model()
    assert not status.available and "not a transformers CLIP model" in status.reason
    monkeypatch.setenv("ATTNVIZ_CLIP_MODEL", str(tiny_clip))
    assert aligned_text_image_model().path == str(tiny_clip)


def test_an_aligned_model_is_used_when_there_is_one(tiny_clip):
    res, grid, img = clip_text_to_image("blue sky, green trees", sample_path("china.jpg"), tiny_clip)
    assert res.meaningful and res.note == CLIP_NOTE
    assert res.query_labels == ["blue", "sky", "green", "trees", "(the whole text)"]
    assert grid.shape == (4, 4) and (grid.width, grid.height) == img.size  # 32 px input, 8 px patches
    assert res.weights.shape == (5, 16)
    np.testing.assert_allclose(res.weights.sum(1), 1.0)
    assert res.temperature == pytest.approx(1.0 / math.exp(2.6592), rel=1e-3)  # CLIP's initial logit scale
    with pytest.raises(EmptyText):
        clip_text_to_image("  ", sample_path("china.jpg"), tiny_clip)
    with pytest.raises(ModelNotFound):
        clip_text_to_image("sky", sample_path("china.jpg"), tiny_clip.parent / "nowhere")


def test_no_aligned_model_on_this_machine():
    """The honest default: nothing CLIP-like is installed or cached here (the page says so)."""
    import importlib.util
    import os

    if os.environ.get("ATTNVIZ_CLIP_MODEL") or importlib.util.find_spec("open_clip"):
        pytest.skip("this machine has an aligned model configured")
    found = aligned_text_image_model()
    assert not found.available, found.reason
    assert found.reason  # the page says where it looked


# ------------------------------------------------------------------------------------ one clear house


def test_clip_is_loaded_once_through_the_one_model_cache(tiny_clip):
    from attnviz.loaders.cache import MODELS
    from attnviz.loaders.clip import load_clip

    model = load_clip(tiny_clip)
    assert load_clip(str(tiny_clip)) is model
    assert MODELS.peek("clip", str(tiny_clip.resolve())) is model
    assert not [n for n in vars(hc) if "CLIP_MODELS" in n or n.endswith("_LOCK")]  # no cache of its own


def test_one_measurement_module_serves_the_library_the_benchmark_and_the_tests():
    """Timing and peak-memory code (imports and definitions, read with ast; code strings run in child
    processes do not count) lives in attnviz.measure only."""
    import ast

    root = Path(__file__).resolve().parents[1]
    for path in ("bench/run.py", "tests/memory.py", "attnviz/hardcases.py"):
        tree = ast.parse((root / path).read_text(encoding="utf-8"))
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assert imported & {"attnviz.measure", "measure"}, path
        assert "torch.profiler" not in imported, path
        assert not defined & {"timed", "paired", "median_time", "cpu_peak_bytes", "_reset_peak", "_vm_hwm_mib"}, path


def test_the_page_only_reads_widgets_calls_the_library_and_shows():
    import re

    from attnviz.similarity import SIMILARITIES

    src = (Path(__file__).resolve().parents[1] / "pages" / "hard_cases.py").read_text(encoding="utf-8")
    assert len(src.splitlines()) <= 250
    names = "|".join(map(re.escape, SIMILARITIES))
    assert not re.search(rf'\[\s*"({names})"\s*,', src), "a hard-coded list of similarity names"
    assert "hc._" not in src and not re.search(r"import .*\b_[a-z]", src)


# ------------------------------------------------------------------------- photo -> photo with DINOv2 tokens


@pytest.fixture(scope="module")
def temple_and_mirror():
    from PIL import ImageOps

    from attnviz.image import load_image
    from attnviz.vit import vit_attentions

    a = load_image(sample_path("china.jpg"))
    b = ImageOps.mirror(a)  # every point of A is at a known place of B
    return a, b, vit_attentions(a), vit_attentions(b)


def cross_weights(va, vb, layer: int, temperature: float = 0.1) -> np.ndarray:
    """float64 recomputation: tokens after block ``layer``, each dimension z-scored over its own photo's patches
    (the one definition of DINOv2 features, attnviz.image.dinov2_features), cosine / T, softmax."""
    fa, fb = ((f - f.mean(0)) / np.maximum(f.std(0), 1e-3)
              for f in (v.hidden_states[layer + 1, 1:].astype(np.float64) for v in (va, vb)))
    s = (fa / np.linalg.norm(fa, axis=1, keepdims=True)) @ (fb / np.linalg.norm(fb, axis=1, keepdims=True)).T
    w = np.exp((s - s.max(1, keepdims=True)) / temperature)
    return w / w.sum(1, keepdims=True)


def mirrored_hits(weights: np.ndarray, rows: int, cols: int) -> float:
    """Share of A's patches whose strongest patch of B lies within 1.5 patches of the mirrored place."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    br, bc = np.divmod(weights.argmax(1), cols)
    return float((np.hypot(br - r, bc - (cols - 1 - c)) <= 1.5).mean())


def test_photo_to_photo_matches_dinov2_tokens_and_finds_points_in_a_mirrored_photo(temple_and_mirror):
    a, b, va, vb = temple_and_mirror
    ci = hc.photo_to_photo(a, b)
    assert ci.features == "dinov2" and ci.notice is None and ci.grid_a.shape == va.grid == (11, 16)
    expected = cross_weights(va, vb, hc.CROSS_IMAGE_LAYER)
    np.testing.assert_allclose(ci.result.weights, expected, atol=2e-5)
    hits = mirrored_hits(ci.result.weights, 11, 16)
    last = mirrored_hits(cross_weights(va, vb, 11), 11, 16)
    assert hits >= 0.5 and hits > last + 0.2  # why the demo's default block is not the last one
    q = ci.default_query
    assert ci.map_b(q).shape == (11, 16) and ci.map_b(q).sum() == pytest.approx(1.0, abs=1e-9)
    assert ci.best_b(q) == divmod(int(expected[q].argmax()), 16)
    assert f"strongest at patch {ci.best_b(q)}" in ci.caption_b(q)
    assert ci.picture_a(q).shape == ci.photo_a.shape and ci.photo_a.shape[1] == hc.CROSS_IMAGE_DISPLAY


def test_photo_to_photo_reads_uploads_and_falls_back_without_the_vision_model(monkeypatch):
    import io

    from PIL import Image

    import attnviz.loaders.dinov2 as dinov2
    from attnviz.image import VIT_RUNS

    buf = io.BytesIO()
    Image.open(sample_path("flower.jpg")).save(buf, "PNG")
    ci = hc.photo_to_photo(str(sample_path("china.jpg")), buf.getvalue(), layer=4)
    assert ci.result.weights.shape == (ci.grid_a.n, ci.grid_b.n) and "block 4" in ci.result.note

    def missing(*args, **kwargs):
        raise dinov2.VisionModelMissing()

    monkeypatch.setattr(dinov2, "load_dinov2", missing)
    VIT_RUNS.clear()  # the forwards above are cached: without the model nothing new can run
    ci = hc.photo_to_photo(str(sample_path("china.jpg")), buf.getvalue())
    assert ci.features == "handcrafted" and ci.notice == hc.NO_VISION_MODEL
    hand, _, _ = image_to_image(sample_path("china.jpg"), sample_path("flower.jpg"), 6, "cosine", 0.1)
    np.testing.assert_allclose(ci.result.weights, hand.weights, atol=1e-5)  # the hand-made version exactly


def test_a_click_on_photo_a_picks_the_patch_under_it(temple_and_mirror):
    a, b, _, _ = temple_and_mirror
    ci = hc.photo_to_photo(a, b)
    h, w = ci.photo_a.shape[:2]
    # shown at twice the display size: a click at (0.75 w, 0.5 h) of the photo -> row 5 of 11, column 12 of 16
    up = ci.click_updates({"hc_ii_query": 3, "hc_ii_click": {"x": 1.5 * w, "y": 1.0 * h, "width": 2 * w,
                                                             "height": 2 * h, "unix_time": 7}})
    assert up == {"hc_ii_query": 5 * 16 + 12, "_hc_ii_done": 7}
    seen = {"hc_ii_query": 4, "hc_ii_click": {"x": 1, "y": 1, "width": w, "height": h, "unix_time": 7}, "_hc_ii_done": 7}
    assert ci.click_updates(seen) == {}  # a click counts once: a query picked afterwards stays
    assert ci.click_updates({"hc_ii_query": 10_000}) == {"hc_ii_query": ci.default_query}  # stale: back inside
    assert ci.click_updates({"hc_ii_query": 2, "hc_ii_click": {"x": "a", "unix_time": 9}}) == {"_hc_ii_done": 9}


def test_the_hard_cases_page_follows_a_click_on_photo_a_into_photo_b(monkeypatch):
    import base64
    import io
    import json

    from PIL import Image
    from streamlit.testing.v1 import AppTest

    drawn = []
    real = hc.CrossImage.picture_b
    monkeypatch.setattr(hc.CrossImage, "picture_b", lambda self, i: drawn.append((i, real(self, i))) or drawn[-1][1])
    root = Path(__file__).resolve().parents[1]
    at = AppTest.from_file(str(root / "app.py"), default_timeout=120).run()
    at.switch_page("pages/hard_cases.py").run()
    assert not at.exception, at.exception
    comp = [c for c in at.get("component_instance") if c.proto.id.endswith("hc_ii_click")]
    assert comp, "photo A is clickable"
    src = json.loads(comp[0].proto.json_args)["src"]
    photo_a = np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))))
    h, w = photo_a.shape[:2]
    first_query, before = drawn[-1]
    assert at.selectbox(key="hc_ii_query").value == first_query
    at.session_state["hc_ii_click"] = {"x": 0.9 * w, "y": 0.9 * h, "width": w, "height": h, "unix_time": 42}
    at.run()
    assert not at.exception and not at.error
    query, after = drawn[-1]
    from attnviz.image import load_image
    from attnviz.vit import vit_attentions

    va, vb = vit_attentions(load_image(sample_path("china.jpg"))), vit_attentions(load_image(sample_path("flower.jpg")))
    rows, cols = va.grid
    assert query == int(0.9 * rows) * cols + int(0.9 * cols) != first_query  # the patch under the click
    assert at.selectbox(key="hc_ii_query").value == query
    assert np.abs(after.astype(int) - before.astype(int)).mean() > 3  # photo B's map changed
    expected = cross_weights(va, vb, hc.CROSS_IMAGE_LAYER)[query]
    r, c = divmod(int(expected.argmax()), vb.grid[1])
    caption = [cap for img in at.image for cap in img.captions if cap.startswith("Photo B")][0]
    assert f"strongest at patch ({r}, {c})" in caption


# ------------------------------------------------------------------ the page-update bench (issue 15 finding 6)


def test_the_update_bench_reaches_every_hard_cases_widget():
    """bench/page_update.py's Hard cases plan drives the real page (the ragged batch, text -> text,
    text -> photo, two uploads for photo -> photo): every step finds its widget and no update raises."""
    import io

    from PIL import Image

    from attnviz.image import SAMPLES, sample_path
    from bench.page_update import PLANS, measure

    with Image.open(sample_path(next(iter(SAMPLES.values()))[0])) as im:
        small = im.convert("RGB").resize((640, 400))
    buf = io.BytesIO()
    small.save(buf, "JPEG")
    rows = measure("hard_cases", buf.getvalue())
    assert [r.get("error") for r in rows if "error" in r] == []
    assert [r["step"] for r in rows] == [label for label, *_ in PLANS["hard_cases"][1] if label is not None]
    assert all(r["problems"] == [] and r["cpu_s"] > 0 for r in rows)


def test_the_largest_ragged_batch_the_page_accepts_is_8_by_16_pieces():
    """The page's bound on the ragged batch: its box holds 3,000 characters; 8 lines of 370 '!' (370 pieces
    each) are attended over 16 pieces each, so the padded batch is 8 x 16 x 16 whatever the lines hold."""
    demo = hc.ragged_text_batch(["!" * 370] * 8, "static")
    assert list(demo.lengths) == [16] * 8
