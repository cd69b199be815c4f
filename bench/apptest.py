"""One page of the app under AppTest, cold then warm: ``python bench/apptest.py '{"page": "pages/text.py"}'``.

Run by ``bench/run.py`` in a fresh process per page. This file imports only streamlit before the first
run, so "cold" holds what a student waits for on a freshly started server: the app's own imports
(torch, attnviz), the model load and the page itself. "warm" is a new session landing on the same
page in the same process (the ``st.cache_resource`` / ``st.cache_data`` caches are filled).
Prints one JSON object ``{"cold": s, "warm": s, "warm_runs": [...]}`` on stdout.
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


def measure(page: str, warm_runs: int = 3, timeout: float = 120) -> dict:
    from ui.shell import navigation_only  # AppTest would otherwise run a page without app.py (see there)

    navigation_only()
    cold = land(page, timeout)
    warm = [land(page, timeout) for _ in range(max(1, warm_runs))]
    return {"cold": round(cold, 2), "warm": round(statistics.median(warm), 3),
            "warm_runs": [round(w, 3) for w in warm]}


def main(argv: list[str]) -> int:
    logging.getLogger("streamlit").setLevel(logging.ERROR)
    args = json.loads(argv[1]) if len(argv) > 1 else {}
    os.chdir(ROOT)  # app.py and the pages import `ui` from the repository root
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    print(json.dumps(measure(args.get("page", "pages/home.py"), int(args.get("warm_runs", 3)),
                             float(args.get("timeout", 120)))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
