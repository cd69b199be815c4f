"""CPU seconds of one text-page update, per input and action (issue 15 finding 6: every update <= ~5 s CPU).

Runs the real page (app.py -> pages/text.py) in AppTest with the model already loaded, and reads the whole
process's CPU time (``resource.getrusage``: the script thread and torch's worker threads) around each
``AppTest.run``. Each input gets a fresh session: first the text (the encoder), then view changes, then a
similarity and a temperature change in the matrix view. A reference workload (a fixed float32 matmul) is
timed in the same process, so a slower or busier machine reads as a larger ``reference_s``:
``ratio = update CPU / reference CPU`` is what compares across machines.

    .venv/bin/python -m bench.text_update            # prints a JSON report
    .venv/bin/python -m bench.text_update --inputs bang --json /tmp/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _mixed(n: int) -> str:
    unit = "The kitten 追 the car — naïve café, 注意力机制 😀 e=mc² <b>x</b> 1,234.5! "
    return (unit * (n // len(unit) + 1))[:n]


#: the worst inputs within the page's character limit (50,000): one token per character, mixed, CJK
INPUTS = {
    "bang": lambda n: "!" * n,
    "mixed": _mixed,
    "cjk": lambda n: ("注意力机制是深度学习中的一种方法。" * (n // 17 + 1))[:n],
}
#: (label, widget kind, key, value) applied in order after the text is entered (in the query view)
STEPS = [("row view", "radio", "view", "row"), ("matrix view", "radio", "view", "matrix"),
         ("similarity change", "selectbox", "txt_sim", "dot"), ("temperature change", "select_slider", "txt_temp", 0.5),
         ("heads view", "radio", "view", "model"), ("query view", "radio", "view", "query")]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def reference_s() -> float:
    """CPU seconds of a fixed workload (20 matmuls of 1024 x 1024 float32): this machine's speed right now."""
    import torch

    a = torch.randn(1024, 1024)
    t0 = cpu()
    for _ in range(20):
        a @ a
    return cpu() - t0


def timed(at, wall: list) -> float:
    t0, w0 = cpu(), time.perf_counter()
    at.run()
    wall.append(time.perf_counter() - w0)
    return cpu() - t0


def measure(name: str, chars: int, steps=STEPS) -> list[dict]:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.run()
    at.switch_page("pages/text.py").run()
    text = INPUTS[name](chars)
    out, wall = [], []
    at.text_area(key="text").set_value(text)
    for label, kind, key, value in [("new text (query view)", None, None, None), *steps]:
        if kind is not None:
            getattr(at, kind)(key=key).set_value(value)
        cpu_s = timed(at, wall)
        out.append({"input": name, "chars": len(text), "step": label, "cpu_s": round(cpu_s, 3),
                    "wall_s": round(wall[-1], 3), "exception": bool(at.exception) or bool(at.error)})
        print(json.dumps(out[-1]), file=sys.stderr, flush=True)  # as it goes: a slow baseline still reports
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", default=",".join(INPUTS))
    p.add_argument("--chars", type=int, default=50_000)
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from attnviz.text import load_model

    load_model(None, "cpu")  # the model already loaded: a page update, not a cold start
    ref = reference_s()
    rows = []
    for name in args.inputs.split(","):
        rows += measure(name, args.chars)
    ref = min(ref, reference_s())
    for r in rows:
        r["ratio"] = round(r["cpu_s"] / ref, 1)
    report = {"reference_s": round(ref, 3), "max_cpu_s": max(r["cpu_s"] for r in rows), "rows": rows}
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
