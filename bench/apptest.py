"""One page of the app under AppTest, cold then warm: ``python bench/apptest.py '{"page": "pages/text.py"}'``.

Run by ``bench/run.py`` in a fresh process per page. This file imports only streamlit before the first
run, so "cold" holds what a student waits for on a freshly started server: the app's own imports
(torch, attnviz), the model load and the page itself. "warm" is a new session landing on the same
page in the same process (the ``st.cache_resource`` / ``st.cache_data`` caches are filled).
Prints one JSON object ``{"cold": s, "warm": s, "warm_runs": [...], "switches": {...}}`` on stdout.

"switches" (pages with a plan in :data:`SWITCHES`): on a warm session, each view switch a student makes,
timed as the AppTest run after the widget changes (the whole script rerun, as in the browser). One round of
the plan warms the page's data caches first; then ``{name: {"median": s, "runs": [...], "first": s}}`` over
``switch_rounds`` more rounds (at least 3), ``first`` being the warm-up round's time.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def land(page: str, timeout: float = 120, app: Path = ROOT / "app.py") -> float:
    """Seconds of one AppTest run of a new session that opens ``page`` directly."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(app), default_timeout=timeout)
    if Path(page).name != "home.py":
        # before the first run AppTest finds a page by its file's stem, which is app.py's url_path
        at.switch_page(page)
    t0 = time.perf_counter()
    at.run()
    seconds = time.perf_counter() - t0
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception[0].message}")
    return seconds


#: per page, one round of view switches: (name, widget kind, key, value), applied in order and repeated
SWITCHES: dict[str, tuple[tuple[str, str, str, object], ...]] = {
    "pages/text.py": (("to_matrix", "radio", "view", "matrix"), ("to_heads", "radio", "view", "model"),
                      ("to_highlight", "radio", "view", "query")),
    "pages/image.py": (("to_heads", "radio", "img_mode", "heads"), ("head", "selectbox", "img_head", 3),
                       ("head", "selectbox", "img_head", 0), ("to_similarity", "radio", "img_mode", "similarity")),
}


def _session(page: str, timeout: float, app: Path = ROOT / "app.py"):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(app), default_timeout=timeout)
    if Path(page).name != "home.py":
        at.switch_page(page)
    at.run()
    if at.exception:
        raise RuntimeError(f"{page} raised: {at.exception[0].message}")
    return at


def switches(page: str, rounds: int = 3, timeout: float = 120) -> dict:
    """``{name: {"median", "runs", "first"}}`` seconds of each warm view switch of ``page`` (see the module
    docstring); ``{}`` for a page without a plan."""
    plan = SWITCHES.get(page, ())
    if not plan:
        return {}
    at = _session(page, timeout)
    times: dict[str, list[float]] = {}
    first: dict[str, float] = {}
    for i in range(1 + max(3, int(rounds))):
        for name, kind, key, value in plan:
            getattr(at, kind)(key=key).set_value(value)
            t0 = time.perf_counter()
            at.run()
            seconds = time.perf_counter() - t0
            if at.exception:
                raise RuntimeError(f"{page}: switch {name} ({key}={value!r}) raised: {at.exception[0].message}")
            if i == 0:
                first.setdefault(name, seconds)
            else:
                times.setdefault(name, []).append(seconds)
    return {name: {"median": round(statistics.median(ts), 3), "runs": [round(t, 3) for t in ts],
                   "first": round(first[name], 3)} for name, ts in times.items()}


def measure(page: str, warm_runs: int = 3, timeout: float = 120, switch_rounds: int = 3) -> dict:
    from ui.shell import navigation_only  # AppTest would otherwise run a page without app.py (see there)

    navigation_only()
    cold = land(page, timeout)
    warm = [land(page, timeout) for _ in range(max(1, warm_runs))]
    out = {"cold": round(cold, 2), "warm": round(statistics.median(warm), 3),
           "warm_runs": [round(w, 3) for w in warm]}
    if page in SWITCHES:
        out["switches"] = switches(page, switch_rounds, timeout)
    return out


def main(argv: list[str]) -> int:
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    args = json.loads(argv[1]) if len(argv) > 1 else {}
    os.chdir(ROOT)  # app.py and the pages import `ui` from the repository root
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    print(json.dumps(measure(args.get("page", "pages/home.py"), int(args.get("warm_runs", 3)),
                             float(args.get("timeout", 120)), int(args.get("switch_rounds", 3)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
