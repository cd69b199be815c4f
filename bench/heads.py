#!/usr/bin/env python
"""Inside-a-head benchmark: ``python bench/heads.py [--json] [--repeats N] [--device cpu]``.

Times one ``head_trace`` and one ``swap_head_similarity`` (one head, cosine at T = 0.1) at 64 and 512
positions (special tokens included), each the median of ``--repeats`` runs after one warm-up (and the fastest run, under ``fastest``), next to the
bare model forward with ``output_attentions`` on the same ids (the floor both stand on). The identity swap
(scaled_dot, T = 1, all heads) and the trace's difference to the model's attention are reported too.
Under ``photo``: the same for DINOv2-small on china.jpg at 224 px (11 x 16 patches + [CLS]: 177 tokens),
``head_trace_image`` and ``swap_head_similarity_image`` of layer 9, head 2, and ``heads_overview_image``
(all 12 x 6 heads' metrics and [CLS] maps), next to the bare DINOv2 forward.
``--json`` prints one JSON object and nothing else on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/heads.py` puts bench/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: positions per size, special tokens included: 512 is all-MiniLM-L6-v2's whole window
SIZES = (64, 512)
LAYER, HEAD = 2, 5
#: the photo part: DINOv2-small's default head on the How it works page, at its default resolution
IMAGE_LAYER, IMAGE_HEAD, IMAGE_RESOLUTION = 9, 2, 224


def _median(fn, repeats: int, best: dict, name: str) -> float:
    """The median of ``repeats`` timed runs after one warm-up; the fastest goes into ``best[name]`` (on a
    shared machine the minimum is the steadier number: load only ever adds time)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    best[name] = round(min(times), 4)
    return statistics.median(times)


def run(repeats: int = 3, device: str = "cpu") -> dict:
    import torch

    from attnviz.text import load_model
    from attnviz.trace import head_trace, swap_head_similarity

    m = load_model(None, device)
    pieces = m.content_length
    text = " ".join(["the river bank flooded after the storm and the town"] * 200)  # > 512 word pieces
    results = {"machine": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": torch.get_num_threads(), "device": str(m.device),
                           "load_average_1m": round(os.getloadavg()[0], 2)},
               "repeats": repeats, "layer": LAYER, "head": HEAD, "sizes": {}}
    for n in SIZES:
        k = min(n - len(m.prefix_ids) - len(m.suffix_ids), pieces)
        ids = torch.tensor([list(m.prefix_ids) + m.tokenizer.encode(text, add_special_tokens=False).ids[:k]
                            + list(m.suffix_ids)], device=next(m.model.parameters()).device)

        def forward():
            with torch.inference_mode():
                m.model(input_ids=ids, attention_mask=torch.ones_like(ids), output_attentions=True)

        trace = head_trace(text, LAYER, HEAD, model=m, max_tokens=k)
        ident = swap_head_similarity(text, LAYER, None, "scaled_dot", 1.0, model=m, max_tokens=k)
        best: dict = {}
        results["sizes"][str(n)] = {
            "positions": trace.n,
            "forward_s": round(_median(forward, repeats, best, "forward_s"), 4),
            "head_trace_s": round(_median(lambda: head_trace(text, LAYER, HEAD, model=m, max_tokens=k), repeats,
                                          best, "head_trace_s"), 4),
            "swap_s": round(_median(lambda: swap_head_similarity(text, LAYER, HEAD, "cosine", 0.1, model=m,
                                                                 max_tokens=k), repeats, best, "swap_s"), 4),
            "fastest": best,
            "trace_max_abs_diff": trace.max_abs_diff,
            "identity_swap_last_hidden_max_diff": ident.last_hidden_max_diff,
            "identity_swap_drift": ident.drift,
        }
    results["photo"] = run_photo(repeats, device)
    return results


def run_photo(repeats: int = 3, device: str = "cpu") -> dict:
    """One photo head trace, one swap and the 12 x 6 overview at 224 px, beside the bare forward."""
    import torch

    from attnviz.image import load_upload, sample_path
    from attnviz.loaders.dinov2 import load_dinov2, preprocess
    from attnviz.trace import head_trace_image, heads_overview_image, swap_head_similarity_image

    photo = load_upload(str(sample_path("china.jpg")))
    model = load_dinov2(device).model
    pv, _size = preprocess(photo, IMAGE_RESOLUTION)
    pv = pv.to(next(model.parameters()).device)

    def forward():
        with torch.inference_mode():
            model(pixel_values=pv, output_attentions=True)

    trace = head_trace_image(photo, IMAGE_LAYER, IMAGE_HEAD, resolution=IMAGE_RESOLUTION, device=device)
    ident = swap_head_similarity_image(photo, IMAGE_LAYER, None, "scaled_dot", 1.0, resolution=IMAGE_RESOLUTION,
                                       device=device)
    best: dict = {}
    return {
        "photo": "china.jpg", "resolution": IMAGE_RESOLUTION, "grid": list(trace.grid), "positions": trace.n,
        "layer": IMAGE_LAYER, "head": IMAGE_HEAD,
        "forward_s": round(_median(forward, repeats, best, "forward_s"), 4),
        "head_trace_s": round(_median(lambda: head_trace_image(photo, IMAGE_LAYER, IMAGE_HEAD, device=device),
                                      repeats, best, "head_trace_s"), 4),
        "swap_s": round(_median(lambda: swap_head_similarity_image(photo, IMAGE_LAYER, IMAGE_HEAD, "cosine", 0.1,
                                                                   device=device), repeats, best, "swap_s"), 4),
        "overview_s": round(_median(lambda: heads_overview_image(photo, device=device), repeats, best,
                                    "overview_s"), 4),
        "fastest": best,
        "trace_max_abs_diff": trace.max_abs_diff,
        "identity_swap_last_hidden_max_diff": ident.last_hidden_max_diff,
        "identity_swap_drift": ident.drift,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median; default 3)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    args = ap.parse_args(argv)
    res = run(max(1, args.repeats), args.device)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{'positions':>9}  {'forward':>9}  {'trace':>9}  {'swap':>9}  {'trace |Δ|':>10}  {'identity |Δ|':>12}")
    for n, r in res["sizes"].items():
        print(f"{r['positions']:>9}  {r['forward_s']:>8.4f}s  {r['head_trace_s']:>8.4f}s  {r['swap_s']:>8.4f}s  "
              f"{r['trace_max_abs_diff']:>10.1e}  {r['identity_swap_last_hidden_max_diff']:>12.1e}")
    p = res["photo"]
    print(f"photo {p['photo']} at {p['resolution']} px ({p['positions']} tokens): forward {p['forward_s']:.4f}s, "
          f"trace {p['head_trace_s']:.4f}s, swap {p['swap_s']:.4f}s, 12 x 6 overview {p['overview_s']:.4f}s, "
          f"trace |Δ| {p['trace_max_abs_diff']:.1e}, identity |Δ| {p['identity_swap_last_hidden_max_diff']:.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
