"""CPU seconds of one page update on every page but the text page (issue 15 finding 6: every update <= ~5 s CPU).

The same harness as ``bench/text_update.py`` (its ``cpu``, ``reference_s`` and ``timed``): the real app
(app.py -> the page) in AppTest, the text model already loaded, the whole process's CPU time
(``resource.getrusage``: the script thread and torch's worker threads) around each ``AppTest.run``. Each
plan in :data:`PLANS` is a fresh session that makes the worst input within that page's limits (the longest
text its box accepts, the largest photo ``ATTNVIZ_MAX_IMAGE_PIXELS`` lets in, uploaded as a student would)
and then each action of the page in turn; every row is one action's update. ``ratio`` = update CPU /
reference CPU compares across machines. Not timed: the Hard cases page's "Measure now", which runs for its
user-chosen budget under a progress bar.

    .venv/bin/python -m bench.page_update                      # every plan, a JSON report on stdout
    .venv/bin/python -m bench.page_update --plans lab_text --json /tmp/x.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from pathlib import Path

from bench.text_update import ROOT, cpu, reference_s, timed

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: the longest texts the boxes accept: one word piece per character (the worst for every encoder)
BANG = "!"
MIXED = "The kitten 追 the car — naïve café, 注意力机制 😀 e=mc² <b>x</b> 1,234.5! "


def text_of(chars: int, unit: str = BANG) -> str:
    return (unit * (chars // len(unit) + 1))[:chars]


def big_photo(pixels: int | None = None) -> bytes:
    """A JPEG of the largest size the pixel limit lets in (8000 x 5000 at the default 40 megapixels): a
    sample photo scaled up, so it has a photo's detail and a realistic file size."""
    from PIL import Image

    from attnviz.image import SAMPLES, sample_path
    from attnviz.settings import load_settings

    limit = pixels or load_settings().max_image_pixels
    w = int((limit * 8 / 5) ** 0.5)
    h = limit // w
    first = next(iter(SAMPLES.values()))[0]
    with Image.open(sample_path(first)) as im:
        big = im.convert("RGB").resize((w, h), Image.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    return buf.getvalue()


PHOTO = "<the largest photo>"  # a placeholder in the plans, replaced by big_photo()'s bytes

#: per plan: the page and its steps (label, action, key, value); action is an AppTest widget kind
#: ("text_area", "selectbox", ...), "upload" (a file_uploader; value PHOTO), "click" (a button) or "state"
#: (a session_state key, for a chart's selection). Rows with a label of None are setup steps: run (so
#: the widgets they reveal exist) but not reported.
PLANS: dict[str, tuple[str, tuple]] = {
    "lab_text": ("pages/lab.py", (
        (None, "multiselect", "lab_sims", ["scaled_dot", "cosine", "rbf", "euclidean"]),
        ("2,000 '!' (the box's limit), 4 similarities", "text_area", "lab_text", text_of(2000)),
        ("temperature change", "select_slider", "lab_temp_cosine", 1.0),
        ("similarity change", "multiselect", "lab_sims", ["scaled_dot", "cosine", "rbf", "dot"]),
        ("query change", "selectbox", "lab_query", 20),
        ("2,000 mixed characters", "text_area", "lab_text", text_of(2000, MIXED)),
    )),
    "lab_photo": ("pages/lab.py", (
        (None, "multiselect", "lab_sims", ["scaled_dot", "cosine", "rbf", "euclidean"]),
        (None, "radio", "lab_mode", "image"),
        ("photo mode (sample, 8 patches)", "select_slider", "lab_grid", 8),
        (None, "selectbox", "lab_photo_sample", "Upload a photo…"),
        ("40 MP upload", "upload", "lab_photo_upload", PHOTO),
        ("largest grid (12)", "select_slider", "lab_grid", 12),
        ("temperature change", "select_slider", "lab_temp_cosine", 1.0),
        ("similarity change", "multiselect", "lab_sims", ["scaled_dot", "cosine", "rbf", "dot"]),
        ("hand-made features", "selectbox", "lab_features", "handcrafted"),
    )),
    "walkthrough_text": ("pages/how_it_works.py", (
        ("300 '!' (the box's limit)", "text_input", "hiw_text", text_of(300)),
        *[(f"Next (step {i + 2})", "click", "hiw_next", None) for i in range(7)],
        ("similarity change", "selectbox", "hiw_sim", "rbf"),
        ("300 mixed characters", "text_input", "hiw_text", text_of(300, MIXED)),
    )),
    "walkthrough_photo": ("pages/how_it_works.py", (
        ("photo example (sample)", "selectbox", "hiw_mode", "image"),
        (None, "selectbox", "hiw_photo_sample", "Upload a photo…"),
        ("40 MP upload", "upload", "hiw_photo_upload", PHOTO),
        *[(f"Next (step {i + 2})", "click", "hiw_next", None) for i in range(7)],
        ("similarity change", "selectbox", "hiw_sim", "rbf"),
    )),
    "head_text": ("pages/how_it_works.py", (
        ("head track (default sentence)", "radio", "hiw_track", "head"),
        ("3,000 '!' (cut to 64 pieces)", "text_input", "head_text", text_of(3000)),
        *[(f"Next (step {i + 2})", "click", "head_next", None) for i in range(6)],
        ("layer change", "selectbox", "head_layer", 5),
        ("head change", "selectbox", "head_head", 7),
        ("swap view", "segmented_control", "head_view", "swap"),
        ("swap every head", "toggle", "head_swap_all", True),
        ("swap: similarity change", "selectbox", "head_swap_sim", "rbf"),
        ("q/k view", "segmented_control", "head_view", "qk"),
        ("overview", "segmented_control", "head_view", "overview"),
        ("3,000 mixed characters (overview)", "text_input", "head_text", text_of(3000, MIXED)),
    )),
    "head_photo": ("pages/how_it_works.py", (
        (None, "radio", "hiw_track", "head"),
        ("photo track (sample)", "radio", "head_input", "image"),
        (None, "selectbox", "head_photo_sample", "Upload a photo…"),
        ("40 MP upload (steps)", "upload", "head_photo_upload", PHOTO),
        *[(f"Next (step {i + 2})", "click", "head_img_next", None) for i in range(6)],
        ("layer change", "selectbox", "head_img_layer", 3),
        ("swap view", "segmented_control", "head_img_view", "swap"),
        ("swap every head", "toggle", "head_img_swap_all", True),
        ("swap: similarity change", "selectbox", "head_img_swap_sim", "rbf"),
        ("overview", "segmented_control", "head_img_view", "overview"),
    )),
    "hard_cases": ("pages/hard_cases.py", (
        ("8 lines of 370 '!' (the box's 3,000 characters)", "text_area", "hc_batch", "\n".join([text_of(370)] * 8)),
        ("ragged: contextual encoder", "selectbox", "hc_rag_encoder", "contextual"),
        ("text -> text: 400 '!' each", "text_input", "hc_tt_b", text_of(400)),
        (None, "text_input", "hc_tt_a", text_of(400)),
        ("text -> text: both 400", "selectbox", "hc_tt_query", 0),
        ("text -> photo: 200 '!'", "text_input", "hc_ti_text", text_of(200)),
        (None, "selectbox", "hc_img_a_sample", "Upload a photo…"),
        ("photo A: 40 MP upload", "upload", "hc_img_a_upload", PHOTO),
        (None, "selectbox", "hc_img_b_sample", "Upload a photo…"),
        ("photo B: 40 MP upload", "upload", "hc_img_b_upload", PHOTO),
        ("photo -> photo: block change", "slider", "hc_ii_layer", 2),
        ("photo -> photo: temperature change", "select_slider", "hc_ii_temp", 0.5),
    )),
    "image": ("pages/image.py", (
        ("40 MP upload (DINOv2 similarity, 224 px)", "upload", "img_upload", PHOTO),
        ("518 px", "selectbox", "img_res", 518),
        ("token layer change", "slider", "img_flayer", 5),
        ("view change (received)", "radio", "img_view", "received"),
        ("heads mode", "radio", "img_mode", "heads"),
        ("head change", "selectbox", "img_head", 3),
        ("layer change", "slider", "img_layer", 4),
        ("map: the chosen patch's row", "radio", "img_hmap", "patch"),
        ("map: rollout (all layers)", "radio", "img_hmap", "rollout"),
        ("keep the patches holding most of the mass", "toggle", "img_keep", True),
        ("map: [CLS]", "radio", "img_hmap", "cls"),
        ("leave out sinks", "toggle", "img_nosinks", True),
        ("head change, sinks left out", "selectbox", "img_head", 1),
        ("map: rollout, sinks left out", "radio", "img_hmap", "rollout"),
        ("similarity mode, hand-made features", "radio", "img_mode", "similarity"),
        (None, "radio", "img_features", "handcrafted"),
        ("hand-made: most patches", "slider", "img_patch", "<lo>"),
        ("hand-made: position term", "slider", "img_pos", 0.5),
        ("hand-made: view change (query)", "radio", "img_view", "query"),
    )),
}


def _apply(at, action: str, key: str, value, photo: bytes) -> None:
    if action == "click":
        at.button(key=key).click()
    elif action == "state":
        at.session_state[key] = value
    elif action == "upload":
        at.file_uploader(key=key).set_value(("large.jpg", photo, "image/jpeg"))
    else:
        widget = getattr(at, action)(key=key)
        if value == "<lo>":  # a slider's lowest value: the most patches
            value = widget.min
        widget.set_value(value)


def measure(plan: str, photo: bytes, timeout: float = 900) -> list[dict]:
    from streamlit.testing.v1 import AppTest

    page, steps = PLANS[plan]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    at.run()
    at.switch_page(page).run()
    out, wall = [], []
    for label, action, key, value in steps:
        try:
            _apply(at, action, key, value, photo)
        except Exception as err:  # noqa: BLE001 - a missing widget is a finding of the report, not a crash
            out.append({"plan": plan, "step": label or key, "error": f"{type(err).__name__}: {err}"})
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
            continue
        cpu_s = timed(at, wall)
        if label is None:  # a setup step: run (its widgets appear), not reported
            continue
        problems = [e.value for e in at.exception] + [e.value for e in at.error]
        out.append({"plan": plan, "step": label, "cpu_s": round(cpu_s, 3), "wall_s": round(wall[-1], 3),
                    "loadavg": round(os.getloadavg()[0], 1), "problems": [str(p)[:160] for p in problems]})
        print(json.dumps(out[-1], ensure_ascii=False), file=sys.stderr, flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plans", default=",".join(PLANS))
    p.add_argument("--json", default=None, help="also write the report here")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from attnviz.text import load_model

    load_model(None, "cpu")  # the model already loaded: a page update, not a cold start
    photo = big_photo()
    ref = reference_s()
    rows = []
    for plan in args.plans.split(","):
        rows += measure(plan, photo)
    ref = min(ref, reference_s())
    for r in rows:
        if "cpu_s" in r:
            r["ratio"] = round(r["cpu_s"] / ref, 1)
    timed_rows = [r for r in rows if "cpu_s" in r]
    report = {"reference_s": round(ref, 3), "photo_bytes": len(photo),
              "max_cpu_s": max((r["cpu_s"] for r in timed_rows), default=None), "rows": rows}
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        Path(args.json).write_text(text)
    # a step that found no widget, or a page that raised, is a broken plan: never a silently shorter table
    return 1 if any("error" in r or r.get("problems") for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
