"""Load test: N concurrent sessions on loopback against ``streamlit run app.py``, for a bounded time.

Each session is a real Streamlit client speaking the browser's own websocket protocol (``/_stcore/stream``,
protobuf BackMsg/ForwardMsg): it opens a page, then changes widgets the way a student does — half of the
sessions on the text page (own text, similarity, query, view, new text), half on the image page (similarity,
query patch, a click on the heatmap, view, sample) — with a think time between actions. No browser renders
anything, so the numbers are the server's: the latency of one page update is the time from sending the
widget change to Streamlit's ``script_finished`` (all of the page's new elements have been sent by then).

Reported (JSON on stdout): latency p50/p95/max per page and overall, the server's RSS over time (VmRSS from
/proc/PID/status, sampled every 0.5 s) with idle / peak / end and the growth per session, how fast the
health endpoint answered during the run, and every error (exception elements, st.error alerts, time-outs,
dropped connections, tracebacks in the server log).

    .venv/bin/python -m loadtest.run --sessions 20 --duration 60          # starts its own server
    .venv/bin/python -m loadtest.run --url http://127.0.0.1:8501 --pid 1234 # an already running server
    .venv/bin/python -m loadtest.run --burst [--quick]                      # a class submitting at once
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import itertools
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP_TIMEOUT = 120.0  # one page update slower than this counts as an error (a hang)
#: the text page's token view (ui/components/token_view.py, NAME): a Custom Components v2 element whose data
#: (tokens, gaps, weights, the legend's label) travels as JSON in the ForwardMsg, not as HTML
TOKEN_VIEW = "attnviz_token_view"
#: what a session's ``seen`` holds for each token view drawn with well-formed data
TOKEN_VIEW_MARK = f"component:{TOKEN_VIEW}"

SENTENCES = [
    "The kitten chased a red ball while the old car rusted in the garage",
    "She sat on the river bank and watched the money flow into the bank",
    "Attention lets every word look at every other word and decide what matters",
    "Students in the classroom pasted their own essays about cats and cars",
    "A transformer mixes token vectors with weights that sum to one",
    "The dahlia opened in the sun while clouds drifted over the temple",
]
QUERIES = ["cat", "money", "water", "car", "word", "flower", "sky", "school"]
SIMILARITY_LABELS = ["Cosine similarity", "Euclidean (negative distance)", "Scaled dot product",
                     "RBF (Gaussian) kernel", "Dot product"]
TEXT_VIEWS = ["Query attention", "One token's row", "Self-attention matrix", "Query attention"]
#: the image page's samples -> a file name its photo caption shows
IMAGE_SAMPLES = {"Summer Palace, Beijing (photo)": "Summer Palace", "Dahlia (photo)": "Dahlia",
                 "Shapes (synthetic)": "Shapes"}
IMAGE_VIEWS = ["What the chosen patch attends to", "Attention each patch receives",
               "Pooling weights (vs the image's mean)"]


# ------------------------------------------------------------------------------------------ results


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"text": [], "image": []})
    first_load: dict[str, list[float]] = field(default_factory=lambda: {"text": [], "image": []})
    errors: list[dict] = field(default_factory=list)
    updates: int = 0
    updates_by_session: dict[int, int] = field(default_factory=dict)

    def error(self, session: int, page: str, action: str, kind: str, detail: str) -> None:
        self.errors.append({"session": session, "page": page, "action": action, "kind": kind,
                            "detail": detail[:300]})


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float]) -> dict:
    r = lambda v: None if v is None else round(v * 1000)  # noqa: E731 - milliseconds
    return {"n": len(values), "p50_ms": r(percentile(values, 0.5)), "p95_ms": r(percentile(values, 0.95)),
            "max_ms": r(max(values) if values else None),
            "mean_ms": r(statistics.fmean(values) if values else None)}


# ------------------------------------------------------------------------------------------ protocol


class Session:
    """One browser tab: a websocket to /_stcore/stream, the widgets' ids, the values it has set."""

    def __init__(self, base: str, index: int, results: Results):
        self.base, self.index, self.results = base, index, results
        self.ws = None
        self.page_hash = ""
        self.widget_ids: dict[str, str] = {}  # user key -> element id ("$$ID-<hash>-<key>")
        self.states: dict[str, object] = {}  # element id -> WidgetState proto (what the client has set)
        self.seen: list[str] = []  # text of the elements of the current update
        self.session_id = ""  # the server's id of this session (new_session), for uploads
        self.query_string = ""  # the page's link as the browser's address bar shows it (page_info_changed)
        self.view: dict[str, object] = {}  # what the last update drew: the token view's text and label, captions
        self.last_set = None  # the WidgetState the last set() made

    async def connect(self):
        import websockets

        host = self.base.split("://", 1)[1]
        self.ws = await websockets.connect(f"ws://{host}/_stcore/stream", subprotocols=["streamlit"],
                                           origin=self.base, max_size=None, open_timeout=60)

    async def close(self):
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def rerun(self, page: str, action: str, *, page_name: str = "", query_string: str = "",
                    expect: str | None = None) -> float | None:
        """Send a rerun with the current widget states; wait for the script to finish. Returns seconds.

        ``expect``: a string the updated page must contain (in an st.html body, a caption or an image
        caption), so an action that silently did nothing counts as an error."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = query_string
        cs.page_name = page_name
        cs.page_script_hash = self.page_hash if not page_name else ""
        for state in self.states.values():
            cs.widget_states.widgets.append(state)
        self.seen = []
        view: dict[str, object] = {}
        t0 = time.monotonic()
        await self.ws.send(msg.SerializeToString())
        deadline = t0 + STEP_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.results.error(self.index, page, action, "timeout", f"no script_finished in {STEP_TIMEOUT:.0f} s")
                return None
            try:
                raw = await asyncio.wait_for(self.ws.recv(), remaining)
            except asyncio.TimeoutError:
                continue
            fm = ForwardMsg()
            fm.ParseFromString(raw)
            kind = fm.WhichOneof("type")
            if kind == "new_session":
                self.session_id = fm.new_session.initialize.session_id or self.session_id
            elif kind == "navigation":  # the page this run shows (new_session carries app.py's hash)
                self.page_hash = fm.navigation.page_script_hash or self.page_hash
            elif kind == "page_info_changed":  # the page wrote st.query_params: the new link
                self.query_string = fm.page_info_changed.query_string
            elif kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                self._element(fm.delta.new_element, page, action, view)
            elif kind == "script_finished":
                status = fm.script_finished
                if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue  # e.g. the deep-link shell guard reruns through app.py: keep waiting
                elapsed = time.monotonic() - t0
                if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                    self.results.error(self.index, page, action, "compile_error", "script failed to compile")
                if expect is not None and not any(expect in t for t in self.seen):
                    self.results.error(self.index, page, action, "stale_page", f"the update does not show {expect!r}")
                if status == ForwardMsg.FINISHED_SUCCESSFULLY:
                    self.view = view
                return elapsed

    def _element(self, el, page: str, action: str, view: dict | None = None) -> None:
        view = {} if view is None else view
        which = el.WhichOneof("type")
        if which == "exception":
            self.results.error(self.index, page, action, "exception", f"{el.exception.type}: {el.exception.message}")
        elif which == "alert" and el.alert.format == 1:  # Alert.Format.ERROR
            self.results.error(self.index, page, action, "st.error", el.alert.body)
        if which == "html":  # the markup and its visible text (tokens are split over many spans)
            self.seen += [el.html.body, html.unescape(re.sub(r"<[^>]+>", "", el.html.body))]
        elif which == "markdown":
            self.seen.append(el.markdown.body)
        elif which == "imgs":
            self.seen += [i.caption for i in el.imgs.imgs]
            view.setdefault("captions", []).extend(i.caption for i in el.imgs.imgs)
        elif which == "bidi_component":
            self._component(el.bidi_component, page, action, view)
        inner = getattr(el, which, None) if which else None
        wid = getattr(inner, "id", "") if inner is not None else ""
        if isinstance(wid, str) and wid.startswith("$$ID-") and wid.count("-") >= 2:
            self.widget_ids[wid.split("-", 2)[2]] = wid

    def _component(self, comp, page: str, action: str, view: dict) -> None:
        """A Custom Components v2 element: its name, and for the token view the text it draws (its gaps and
        tokens joined, as the browser writes them) and its legend's label; malformed data is an error."""
        self.seen.append(f"component:{comp.component_name}")
        if comp.component_name != TOKEN_VIEW:
            return
        raw = comp.json or comp.mixed.json
        try:
            data = json.loads(raw)
            tokens, gaps, n = data["tokens"], data["gaps"], data["n"]
            ok = (isinstance(tokens, list) and isinstance(gaps, list) and n == len(tokens) == len(data["q"])
                  == len(gaps) - 1 and all(isinstance(t, str) for t in tokens + gaps))
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            self.seen.pop()
            self.results.error(self.index, page, action, "bad_component_data",
                               f"{TOKEN_VIEW}: {raw[:200]!r}")
            return
        text, label = "".join(g + t for g, t in zip(gaps, tokens + [""])), str(data.get("label", ""))
        self.seen += [TOKEN_VIEW_MARK, text, label]
        view.setdefault("token_views", []).append((text, label))

    def set(self, key: str, **value) -> bool:
        """Set a widget by its user key, e.g. ``set("txt_sim", string_value="Cosine similarity")``."""
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        wid = self.widget_ids.get(key)
        if wid is None:
            return False
        state = WidgetState(id=wid)
        self.last_set = state  # the action's own change (a reconnecting session sends it again)
        (name, v), = value.items()
        if name == "double_array_value":
            state.double_array_value.data.extend(v)
        else:
            setattr(state, name, v)
        self.states[wid] = state
        return True


# ----------------------------------------------------------------------------------------- sessions


async def _drive(s: "Session", page: str, actions: list, rng: random.Random, stop_at: float, think: float) -> None:
    """Play ``actions`` in turn, a think time apart, until ``stop_at``; record each update's latency."""
    n = 0
    while time.monotonic() < stop_at:
        name, act = actions[n % len(actions)]
        n += 1
        await asyncio.sleep(rng.uniform(0.5, 1.5) * think)
        if time.monotonic() >= stop_at:
            break
        expect = act()
        if not expect:
            s.results.error(s.index, page, name, "missing_widget", f"no widget for {name}")
            continue
        dt = await s.rerun(page, name, expect=expect)
        if dt is not None:
            s.results.latencies[page].append(dt)
            s.results.updates += 1
            s.results.updates_by_session[s.index] = s.results.updates_by_session.get(s.index, 0) + 1


def text_link_param(text: str) -> str:
    """The text as the text page's link carries it (zlib + urlsafe base64: attnviz.state.text)."""
    from attnviz.state.text import encode_text_param

    return encode_text_param(text)


async def text_session(s: Session, rng: random.Random, stop_at: float, think: float) -> None:
    page = "text"
    rounds = itertools.count()

    def own_text() -> str:
        return f"{rng.choice(SENTENCES)}, said student {s.index} in round {next(rounds)}."

    opening = own_text()
    first = await s.rerun(page, "open", page_name="text", expect=opening[-25:],  # the link's text is shown
                          query_string=f"text={text_link_param(opening)}&q={rng.choice(QUERIES)}")
    if first is not None:
        s.results.first_load[page].append(first)
    def new_text():
        text = own_text()
        return s.set("text", string_value=text) and text[-25:]  # the highlight shows the new text

    def query():
        q = rng.choice(QUERIES)
        return s.set("query", string_value=q) and f"attention from the query '{q}'"  # the legend's label

    actions = [
        ("similarity", lambda: s.set("txt_sim", string_value=rng.choice(SIMILARITY_LABELS)) and TOKEN_VIEW_MARK),
        ("query", query),
        ("view", lambda: s.set("view", string_value=rng.choice(TEXT_VIEWS)) and TOKEN_VIEW_MARK),
        ("new_text", new_text),
        ("view_back", lambda: s.set("view", string_value="Query attention") and TOKEN_VIEW_MARK),
    ]
    await _drive(s, page, actions, rng, stop_at, think)


async def image_session(s: Session, rng: random.Random, stop_at: float, think: float) -> None:
    page = "image"
    clicks = itertools.count()
    first = await s.rerun(page, "open", page_name="image")
    if first is not None:
        s.results.first_load[page].append(first)

    def click():
        value = {"x": rng.uniform(5, 630), "y": rng.uniform(5, 420), "width": 640, "height": 427,
                 "unix_time": int(time.time() * 1000) + s.index * 1000 + next(clicks)}
        return s.set("img_click", json_value=json.dumps(value)) and "Computed on"

    def sample():
        name = rng.choice(list(IMAGE_SAMPLES))
        return s.set("img_sample", string_value=name) and IMAGE_SAMPLES[name]  # the photo's caption

    actions = [
        ("similarity", lambda: s.set("img_sim", string_value=rng.choice(SIMILARITY_LABELS)) and "Computed on"),
        ("click_patch", click),
        ("query_row", lambda: s.set("img_row", double_value=float(rng.randint(0, 10))) and "Computed on"),
        ("view", lambda: s.set("img_view", string_value=rng.choice(IMAGE_VIEWS)) and "Computed on"),
        ("sample", sample),
        ("opacity", lambda: s.set("img_opacity", double_array_value=[rng.choice([0.3, 0.55, 0.8])]) and "Computed on"),
    ]
    await _drive(s, page, actions, rng, stop_at, think)


async def run_sessions(base: str, sessions: int, duration: float, think: float, seed: int, results: Results,
                       connected: threading.Event) -> None:
    stop_at = time.monotonic() + duration
    clients = [Session(base, i, results) for i in range(sessions)]

    async def one(s: Session):
        rng = random.Random(seed * 1000 + s.index)
        try:
            await s.connect()
            await asyncio.sleep(rng.uniform(0, 1.0))  # students do not all click in the same millisecond
            if s.index % 2 == 0:
                await text_session(s, rng, stop_at, think)
            else:
                await image_session(s, rng, stop_at, think)
        except Exception as err:  # noqa: BLE001 - a dropped connection is a result, not a crash
            results.error(s.index, "?", "session", "connection", f"{type(err).__name__}: {err}")
        finally:
            await s.close()

    tasks = [asyncio.create_task(one(s)) for s in clients]
    await asyncio.sleep(0)
    connected.set()
    await asyncio.gather(*tasks)


# ------------------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(base: str, timeout: float = 5.0) -> float | None:
    """Seconds the health endpoint took, or None if it did not answer."""
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=timeout) as r:
            return time.monotonic() - t0 if r.status == 200 else None
    except OSError:
        return None


#: glibc malloc arenas of the app's process (the Dockerfile's and README's setting): a Streamlit session runs
#: its script in a thread of its own, and with glibc's default (8 per core) each busy thread's freed memory
#: stays in its own arena; 2 brought RSS back to 1.05 x idle after a 10-session burst (docs/limits.md)
SERVER_MALLOC_ARENA_MAX = "2"


@contextlib.contextmanager
def streamlit_server(log_path: Path, start_timeout: float = 120.0, script: Path | None = None,
                     extra: tuple[str, ...] = ()):
    """``streamlit run app.py`` (or ``script``, with ``extra`` options) on a free loopback port.
    Yields (url, pid); stops it by its own PID."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env.setdefault("MALLOC_ARENA_MAX", SERVER_MALLOC_ARENA_MAX)  # as the Dockerfile and README run the app
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(script or ROOT / "app.py"), "--server.headless", "true",
             "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", *extra],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while healthy(base, 2) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not start: {log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(0.3)
        yield base, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_tracebacks(path: Path) -> int:
    """Tracebacks in a server log (Streamlit draws them with rich: colour codes are stripped first)."""
    if not path.exists():
        return 0
    return _ANSI.sub("", path.read_text(errors="replace")).count("Traceback (most recent call last)")


def rss_mib(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a process in MiB, from /proc/PID/status."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    except OSError:
        return None
    kib = lambda k: int(fields[k].split()[0]) if k in fields else 0  # noqa: E731
    return kib("VmRSS") / 1024, kib("VmHWM") / 1024


class Sampler(threading.Thread):
    """Every ``every`` seconds: the server's RSS and how long its health endpoint takes."""

    def __init__(self, base: str, pid: int | None, every: float = 0.5):
        super().__init__(daemon=True)
        self.base, self.pid, self.every = base, pid, every
        self.t0 = time.monotonic()
        self.rss: list[tuple[float, float]] = []
        self.health: list[float | None] = []
        self.halt = threading.Event()

    def run(self):
        n = 0
        while not self.halt.is_set():
            if self.pid is not None and (m := rss_mib(self.pid)):
                self.rss.append((round(time.monotonic() - self.t0, 1), round(m[0], 1)))
            if n % 2 == 0:
                self.health.append(healthy(self.base, 10))
            n += 1
            self.halt.wait(self.every)


async def warm_up(base: str, results: Results) -> None:
    """One visitor opens both pages first (model load, imports): the run measures the warm server."""
    s = Session(base, -1, results)
    await s.connect()
    try:
        await s.rerun("text", "warm-up", page_name="text")
        await s.rerun("image", "warm-up", page_name="image")
    finally:
        await s.close()


def run_async(coro) -> None:
    """``asyncio.run`` in a thread of its own: the caller's thread may already run an event loop (pytest
    with playwright's sync API, a notebook)."""
    failure: list[BaseException] = []

    def target():
        try:
            asyncio.run(coro)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(err)

    t = threading.Thread(target=target, name="loadtest-clients")
    t.start()
    t.join()
    if failure:
        raise failure[0]


# ---------------------------------------------------------------------------------------------- main


def run_load_test(sessions: int = 20, duration: float = 60.0, think: float = 1.0, url: str | None = None,
                  pid: int | None = None, seed: int = 0, log_dir: Path | None = None) -> dict:
    """Run the load test and return the report (see the module docstring)."""
    log_dir = Path(log_dir or os.environ.get("TMPDIR", "/tmp"))
    log_path = log_dir / f"attnviz-loadtest-{os.getpid()}.log"
    with contextlib.ExitStack() as stack:
        if url is None:
            url, pid = stack.enter_context(streamlit_server(log_path))
        startup = rss_mib(pid) if pid else None
        warm = Results()
        t0 = time.monotonic()
        run_async(warm_up(url, warm))
        warm_s = time.monotonic() - t0
        time.sleep(1.0)
        idle = rss_mib(pid) if pid else None
        results = Results()
        sampler = Sampler(url, pid)
        sampler.start()
        connected = threading.Event()
        t_run = time.monotonic()
        run_async(run_sessions(url, sessions, duration, think, seed, results, connected))
        wall = time.monotonic() - t_run
        time.sleep(1.0)
        sampler.halt.set()
        sampler.join(15)
        end = rss_mib(pid) if pid else None
        n_tracebacks = log_tracebacks(log_path)
    rss_values = [v for _, v in sampler.rss]
    health = [h for h in sampler.health if h is not None]
    report = {
        "sessions": sessions,
        "duration_s": duration,
        "wall_s": round(wall, 1),
        "think_time_s": think,
        "cpu_count": os.cpu_count(),
        "page_updates": results.updates,
        "updates_per_s": round(results.updates / wall, 2) if wall else None,
        "updates_per_session": {"min": min((results.updates_by_session.get(i, 0) for i in range(sessions)), default=0),
                                "max": max(results.updates_by_session.values(), default=0)},
        "latency": {"all": summary(results.latencies["text"] + results.latencies["image"]),
                    "text": summary(results.latencies["text"]), "image": summary(results.latencies["image"])},
        "first_page_load": {"text": summary(results.first_load["text"]), "image": summary(results.first_load["image"])},
        "warm_up_s": round(warm_s, 1),
        "health": {"answered": len(health), "asked": len(sampler.health), **summary(health)},
        "rss_mib": {
            "startup": round(startup[0], 1) if startup else None,
            "idle_warm": round(idle[0], 1) if idle else None,
            "peak": round(max(rss_values), 1) if rss_values else None,
            "end": round(end[0], 1) if end else None,
            "high_water_mark": round(end[1], 1) if end else None,
            "growth_per_session": (round((max(rss_values) - idle[0]) / sessions, 1)
                                   if rss_values and idle and sessions else None),
            "timeline": sampler.rss[:: max(1, len(sampler.rss) // 60)],  # at most ~60 points
        },
        "errors": {"count": len(results.errors) + n_tracebacks + len(warm.errors),
                   "server_log_tracebacks": n_tracebacks, "warm_up": warm.errors[:10],
                   "samples": results.errors[:20],
                   "by_kind": {k: sum(1 for e in results.errors if e["kind"] == k)
                               for k in sorted({e["kind"] for e in results.errors})}},
    }
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--sessions", type=int, default=None,
                   help="concurrent sessions, half text, half image (default 20; --burst: 30; --quick: 10)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds of load after the warm-up (default 60; --quick: 30)")
    p.add_argument("--burst", action="store_true",
                   help="burst mode (loadtest/burst.py): every session submits its own text or photo within "
                        "the same 5 s, then clicks through views; time to first result vs the same input alone")
    p.add_argument("--quick", action="store_true", help="10 sessions for 30 s (unless given)")
    p.add_argument("--think", type=float, default=1.0, help="mean think time between a session's actions, seconds")
    p.add_argument("--url", default=None, help="an already running server (default: start one on loopback)")
    p.add_argument("--pid", type=int, default=None, help="that server's PID, for its memory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON report here")
    args = p.parse_args(argv)
    sessions = args.sessions if args.sessions is not None else 10 if args.quick else 30 if args.burst else 20
    duration = args.duration if args.duration is not None else 30.0 if args.quick else 60.0
    if sessions < 1 or duration <= 0:
        p.error("--sessions must be >= 1 and --duration > 0")
    if args.burst:
        from .burst import run_burst

        report = run_burst(sessions, duration, args.think, args.url, args.pid, args.seed)
    else:
        report = run_load_test(sessions, duration, args.think, args.url, args.pid, args.seed)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    if args.burst:
        return 0 if report["all_pass"] else 1
    return 0 if report["errors"]["count"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
