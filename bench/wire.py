#!/usr/bin/env python
"""Bytes on the wire per view change of the text page: ``python bench/wire.py [--json] [--sample long]``.

Starts ``streamlit run app.py`` on a free loopback port, opens the text page in headless Chromium with the
sample (``long``: the ~1,800-token essay ``attnviz/assets/text_en_long.txt``), then switches the view to each
of the page's views in turn. For each switch it adds up the websocket frames the browser itself received
(CDP ``Network.webSocketFrameReceived``; binary frames arrive base64-encoded, so 3/4 of their length counts)
from the click until the page has been quiet for a while. ``--json`` prints one JSON object and nothing else.

bertviz's ``model_view`` for the same text (its HTML with every layer and head's full matrix inlined) is
quoted as ``BERTVIZ_BYTES`` (the figure of the issue "The visualisation is the interface": 869 MB).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/wire.py` puts bench/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CHROMIUM = os.environ.get("ATTNVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BERTVIZ_BYTES = 869_000_000  # bertviz model_view HTML for the same ~1,800-token input (the figure)
LIMIT_BYTES = 1_000_000  # the budget per view change
VIEW_LABELS = {"row": "One token's row", "matrix": "Self-attention matrix", "model": "MiniLM's own heads",
               "query": "Query attention"}


class FrameCounter:
    """Bytes of the websocket frames a page receives, read from the browser's own CDP events."""

    def __init__(self, page):
        self.bytes, self.frames, self.last = 0, 0, time.monotonic()
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Network.webSocketFrameReceived", self._frame)
        self.cdp.send("Network.enable")

    def _frame(self, event) -> None:
        r = event.get("response", {})
        data = r.get("payloadData", "")
        self.bytes += len(data) * 3 // 4 if r.get("opcode") == 2 else len(data.encode("utf-8"))
        self.frames += 1
        self.last = time.monotonic()

    def reset(self) -> None:
        self.bytes, self.frames, self.last = 0, 0, time.monotonic()

    def settle(self, page, quiet: float = 2.0, timeout: float = 120.0) -> None:
        """Wait until no script runs and no frame has arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page.wait_for_timeout(250)
            running = page.locator('[data-testid="stStatusWidget"]').count() > 0
            if not running and time.monotonic() - self.last >= quiet:
                return
        raise TimeoutError("the page never settled")


def pick_view(page, view: str) -> None:
    """Switch the text page's view through its own widget (the radio labelled "View")."""
    page.get_by_test_id("stRadio").filter(has_text=VIEW_LABELS["query"]).get_by_text(
        VIEW_LABELS[view], exact=True).click()


def measure_views(page, base: str, sample: str = "long", views=("row", "matrix", "model", "query")) -> dict:
    """``{view: {"bytes": ..., "frames": ...}}`` for each switch, on a page already open or opened here."""
    counter = FrameCounter(page)
    page.goto(f"{base}/text?sample={sample}")
    page.locator(".tv-tok").first.wait_for(timeout=120_000)
    counter.settle(page)
    out = {"first_load": {"bytes": counter.bytes, "frames": counter.frames}}
    for view in views:
        counter.reset()
        pick_view(page, view)
        counter.settle(page)
        out[view] = {"bytes": counter.bytes, "frames": counter.frames}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--sample", default="long", help="the text page's sample (default: long)")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from loadtest.run import streamlit_server

    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        base, _pid = stack.enter_context(streamlit_server(Path(tmp) / "server.log"))
        pw = stack.enter_context(sync_playwright())
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.set_default_timeout(120_000)
        t0 = time.perf_counter()
        views = measure_views(page, base, args.sample)
        result = {"sample": args.sample, "views": views, "limit_bytes": LIMIT_BYTES,
                  "bertviz_bytes": BERTVIZ_BYTES, "seconds": round(time.perf_counter() - t0, 1),
                  "within_limit": all(v["bytes"] <= LIMIT_BYTES for k, v in views.items() if k != "first_load")}
    if args.json:
        print(json.dumps(result))
    else:
        for name, v in result["views"].items():
            print(f"{name:>12}: {v['bytes']:>10,} bytes in {v['frames']} frames")
        print(f"{'bertviz':>12}: {BERTVIZ_BYTES:>10,} bytes (model_view HTML, same text)")
    return 0 if result["within_limit"] else 1


if __name__ == "__main__":
    sys.exit(main())
