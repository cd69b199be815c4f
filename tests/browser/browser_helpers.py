"""Helpers shared by the real-browser tests."""

from __future__ import annotations

import time


def settled_box(heat, aspect: float) -> dict:
    """The heatmap's box once the component has laid it out (column width, the photo's aspect) and it
    has stopped moving: a box measured mid-resize would put the click on the wrong patch."""
    last = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        box = heat.bounding_box()
        if box and box["height"] > 0 and abs(box["width"] / box["height"] - aspect) < 0.02 and box == last:
            return box
        last = box
        time.sleep(0.3)
    raise AssertionError(f"the heatmap never settled: {last}")
