"""Hardening, round two: the Hard cases page and attnviz.hardcases / attnviz.measure.

1. Two measurements at once (two tabs, two library threads) crashed the whole server: torch.profiler is
   process-wide. Now one measurement runs at a time per process, and a waiting one says so.
2. A token reached an image caption unescaped (Markdown / HTML injection).
3. The timing chart contradicted its caption (one call per size): warm-up, repeats, median, spread.
4. The page showed server internals (the Hugging Face cache's path, environment variable names).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from attnviz import hardcases as hc
from attnviz.figures import scaling_figures
from attnviz.measure import EXCLUSIVE, Exclusive, MeasurementBusy, time_call

ROOT = Path(__file__).resolve().parents[1]


def open_page() -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90).run()
    at.switch_page("pages/hard_cases.py").run()
    assert not at.exception, at.exception
    return at


def page_text(at: AppTest) -> str:
    parts = []
    for kind in ("markdown", "caption", "info", "success", "warning", "error"):
        parts += [el.value for el in getattr(at, kind)]
    parts += [c for im in at.image for c in im.captions]
    return "\n".join(parts)


# ------------------------------------------------------------------------ 1. one measurement at a time

TWO_THREADS = textwrap.dedent("""
    import json, threading
    from attnviz.hardcases import measure_scaling
    out, errors = {}, []
    def go(i):
        try:
            out[i] = measure_scaling("cpu", "scaled_dot", d=16, budget_s=1.0, start_n=64, max_n=256)
        except BaseException as err:
            errors.append(repr(err))
    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(json.dumps({"done": sorted(out), "errors": errors,
                      "measured": [sum(p.status == "measured" for p in r.points) for r in out.values()],
                      "waited": sorted(round(r.waited_s, 3) for r in out.values())}))
""")


def test_two_concurrent_measurements_do_not_crash_the_process():
    """Before: two torch.profiler sessions at once -> SIGSEGV (exit 139 / -11), the whole server gone."""
    out = subprocess.run([sys.executable, "-c", TWO_THREADS], capture_output=True, text=True, timeout=240,
                         cwd=ROOT)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-1500:]}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["done"] == [0, 1] and report["errors"] == []
    assert all(m >= 1 for m in report["measured"]), report  # both measured (and both ran the profiler)
    assert report["waited"][0] < 0.05 < report["waited"][1]  # serialised: one ran, the other waited for it


def _hold(lock: Exclusive, seconds: float, started: threading.Event):
    with lock.hold():
        started.set()
        time.sleep(seconds)


def test_a_measurement_waits_for_another_and_says_so():
    started = threading.Event()
    other = threading.Thread(target=_hold, args=(EXCLUSIVE, 0.8, started))
    other.start()
    started.wait(5)
    assert EXCLUSIVE.busy()
    told = []
    r = hc.measure_scaling("cpu", d=8, budget_s=0.3, start_n=32, max_n=64, on_wait=told.append)
    other.join()
    assert told == [1]  # told once, before waiting, with how many wait
    assert r.waited_s >= 0.5 and "waited" in hc.scaling_caption(r)
    assert not EXCLUSIVE.busy() and EXCLUSIVE.waiting() == 0


def test_a_waiting_measurement_gives_up_with_a_typed_error():
    lock = Exclusive()
    started = threading.Event()
    other = threading.Thread(target=_hold, args=(lock, 0.6, started))
    other.start()
    started.wait(5)
    with pytest.raises(MeasurementBusy, match="again"):
        with lock.hold(timeout=0.05):
            pass
    other.join()
    with lock.hold() as slot, lock.hold() as inner:  # re-entrant: a measurement may use a tool that locks too
        assert slot.waited_s < 0.05 and inner.waited_s < 0.05 and lock.busy()
    assert not lock.busy()


def test_the_page_shows_that_a_measurement_waits_for_another():
    at = open_page()
    at.select_slider(key="hc_budget").set_value(1)
    started = threading.Event()
    other = threading.Thread(target=_hold, args=(EXCLUSIVE, 2.0, started))
    other.start()
    started.wait(5)
    at.run()
    assert any("Another measurement is running" in c.value for c in at.caption)
    at.button(key="hc_measure").click().run()
    other.join()
    assert not at.exception and not at.error
    assert any("waited" in c.value and "another measurement" in c.value for c in at.caption)
    assert at.dataframe and at.get("plotly_chart")


# ------------------------------------------------------------------------------- 2. escaped tokens


def test_a_hostile_word_stays_text_in_the_image_captions(monkeypatch, tmp_path):
    """Before: the aligned model's caption pasted the word raw: '__ZQX__' became <strong>ZQX</strong>."""
    from inert import assert_page_inert, md_to_html, parse
    from test_hardcases import make_tiny_clip

    monkeypatch.setenv("ATTNVIZ_CLIP_MODEL", str(make_tiny_clip(tmp_path / "clip")))
    at = open_page()
    at.text_input(key="hc_ti_text").set_value("sky __ZQX__ *ZQX* trees").run()
    options = at.selectbox(key="hc_clip_query").options
    at.selectbox(key="hc_clip_query").set_value(options.index("1 · __ZQX__")).run()
    captions = [c for im in at.image for c in im.captions]
    shown = [parse(md_to_html(c)).text for c in captions]
    assert any("'__ZQX__'" in s for s in shown), shown  # shown verbatim, as text
    assert_page_inert(at)


# --------------------------------------------------------------------------- 3. median and spread


def test_time_call_warms_up_repeats_and_reports_median_and_spread():
    clock = {"t": 0.0}
    costs = iter([9.0, 1.0, 5.0, 1.25, 0.75, 1.125])  # a cold first call, then one outlier among the repeats

    def fn():
        clock["t"] += next(costs)

    t = time_call(fn, repeats=5, warmup=1, clock=lambda: clock["t"], collect=False)
    assert t.samples == pytest.approx((1.0, 5.0, 1.25, 0.75, 1.125)) and t.warmup == 1  # the cold call: not counted
    assert (t.median, t.low, t.high, t.repeats) == pytest.approx((1.125, 0.75, 5.0, 5))
    clock["t"] = 0.0
    costs = iter([1.0] * 10)
    short = time_call(fn, repeats=5, min_repeats=3, warmup=1, clock=lambda: clock["t"], budget_s=3.5, collect=False)
    assert short.repeats == 3  # the budget stops the repeats, never below min_repeats


def test_each_size_is_the_median_of_warm_repeats_and_the_figure_shows_the_spread(monkeypatch):
    """Before: one (possibly cold) call per size: n = 1k took 56 ms and n = 2k 27 ms, against the caption."""
    clock = {"t": 0.0}
    seen: dict = {}

    def fake_run(method, x, similarity, block):
        n = x.shape[0]
        k = seen[(n, method)] = seen.get((n, method), 0) + 1
        base = 1e-3 * (n / 64) ** 2 * (2 if method == "blocked" else 1)
        clock["t"] += base * (30 if k == 1 else 6 if k == 3 else 1)  # cold first call, one outlier repeat

    monkeypatch.setattr(hc, "_run", fake_run)
    monkeypatch.setattr(hc, "cpu_peak_bytes", lambda jobs, **kw: {})
    r = hc.measure_scaling("cpu", d=8, budget_s=60.0, start_n=64, max_n=512, clock=lambda: clock["t"])
    for method in ("full", "blocked"):
        pts = r.measured(method)
        assert [p.n for p in pts] == [64, 128, 256, 512]
        for p in pts:
            base = 1e-3 * (p.n / 64) ** 2 * (2 if method == "blocked" else 1)
            assert p.repeats >= hc.MIN_REPEATS
            assert p.seconds == pytest.approx(base) and p.low == pytest.approx(base)
            assert p.high == pytest.approx(6 * base)  # the outlier is the spread, not the measurement
        assert r.growth(method) == pytest.approx(4.0)
    assert "×4.0 (full) and ×4.0 (blocked)" in hc.time_caption(r) and "median" in hc.time_caption(r)
    tfig, _ = scaling_figures(r)
    for trace in tfig.data:
        assert trace.error_y.visible and not trace.error_y.symmetric
        ys = list(trace.y)
        assert list(trace.error_y.array) == pytest.approx([5 * y for y in ys])  # up to the slowest repeat
        assert list(trace.error_y.arrayminus) == pytest.approx([0.0] * len(ys))


# -------------------------------------------------------------------------- 4. no server internals


def test_the_page_says_how_to_add_an_aligned_model_without_server_internals(monkeypatch, tmp_path, caplog):
    monkeypatch.delenv("ATTNVIZ_CLIP_MODEL", raising=False)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "secret-hf-home"))
    with caplog.at_level(logging.INFO, logger="attnviz"):
        at = open_page()
    text = page_text(at)
    for internal in ("secret-hf-home", str(tmp_path), "ATTNVIZ_CLIP_MODEL", "not set", "Hugging Face cache",
                     "open_clip"):
        assert internal not in text, internal
    info = " ".join(i.value for i in at.info)
    assert "No aligned text-image model is available" in info
    assert "teacher" in info and "docs/deploy.md" in info
    assert any("secret-hf-home" in r.getMessage() for r in caplog.records)  # the detail is in the server log
    assert "An aligned text–image model" in (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_a_found_model_is_named_without_its_server_path(monkeypatch, tmp_path):
    from test_hardcases import make_tiny_clip

    folder = make_tiny_clip(tmp_path / "models" / "tiny-clip")
    monkeypatch.setenv("ATTNVIZ_CLIP_MODEL", str(folder))
    status = hc.aligned_text_image_model()
    assert status.available and status.message == "Aligned text-image model found locally: tiny-clip."
    assert str(tmp_path) in status.reason  # the full detail stays available for logs
    at = open_page()
    assert str(tmp_path) not in page_text(at)
