"""Burst mode of the load test: a whole class submits its own input within the same 5 seconds.

N sessions (half on the text page, half on the image page) open their page; then, within one 5 s window,
each submits its **own** input — a text of 200–500 tokens in words of its own (sentences drawn at random
from a long English article, so no two sessions send the same text), or its own photo (a crop of a sample
photo at its own size, brightness and colour, uploaded through Streamlit's upload endpoint as a browser
does) — and then clicks through the page's views until the run ends.

Reported per session: **time to first result** (sending the input -> the page's ``script_finished``) in the
burst, against the **same input alone** on the warm server (measured one session at a time before the
burst, on a copy that differs by one character or one pixel so the server's caches cannot answer it, after
one untimed first run at that size); the server's RSS; every error. Checks:

- no session waits more than ``3 x its alone time x (sessions / cores)``;
- 0 errors;
- the server's RSS is back within 20 % of **idle** once the sessions are gone.

RSS (``rss_mib``), each key named for when it is read:

- ``idle_samples_served``: THE idle level. The warm server after one visitor has opened both pages with their
  shipped samples (models loaded, the samples' results in the class-wide cache: the same for 1 or 100
  students), before any user's own input.
- ``after_alone_runs``: just before the burst, after the alone runs (their sessions closed but still kept by
  Streamlit); a diagnosis only, not a baseline.
- ``peak`` during the burst; ``ten_s_after_close``: 10 s after the last session closed.
- ``after_sessions_expired``: once the sessions are closed AND past what Streamlit keeps for them
  (``server.disconnectedSessionTTL``, :func:`session_ttl_s`, counted from the last close) AND one
  :data:`ui.cache.RELEASE_EVERY_S` trim tick later. Streamlit drops expired sessions only on its next write to
  its session store, so one visitor opens the home page first (as the next student would). The memory check
  compares this with ``idle_samples_served``.
- ``after_cache_clear``: after asking the server to clear its Streamlit caches (a diagnosis).

    .venv/bin/python -m loadtest.run --burst            # 30 sessions, 60 s
    .venv/bin/python -m loadtest.run --burst --quick    # 10 sessions, 30 s
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import re
import statistics
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .run import (IMAGE_VIEWS, ROOT, SIMILARITY_LABELS, TEXT_VIEWS, TOKEN_VIEW_MARK, Results, Sampler, Session,
                  _drive, log_tracebacks, rss_mib, run_async, streamlit_server, summary, warm_up)

#: every session submits its input within this many seconds of the first
WINDOW_S = 5.0
#: tokens of a session's own text
TEXT_TOKENS = (200, 500)
#: the checks' constants (see the module docstring)
WAIT_FACTOR = 3.0
MEMORY_SLACK = 0.20
#: seconds after Streamlit's session TTL before the one visitor and the read (a trim tick + margin)
TRIM_MARGIN_S = 2.0
PHOTOS = ("china.jpg", "flower.jpg")

_SENTENCE = re.compile(r"[^.!?]+[.!?]")


def _sentences() -> list[str]:
    source = (ROOT / "attnviz" / "assets" / "text_en_long.txt").read_text(encoding="utf-8")
    return [s.strip() for s in _SENTENCE.findall(" ".join(source.split())) if len(s.split()) >= 5]


def _token_counter():
    """Word pieces of the bundled model's tokenizer (what the text page counts), or a words x 1.3 estimate."""
    try:
        from attnviz import text as T

        return lambda t: len(T.tokenize(t).tokens)
    except Exception:  # noqa: BLE001 - the client may run where the model is not installed
        return lambda t: int(len(t.split()) * 1.3)


def own_text(index: int, rng: random.Random, count=None, sentences: list[str] | None = None) -> str:
    """A text of its own for session ``index``: random sentences of a long article, 200-500 tokens."""
    count = count or _token_counter()
    pool = sentences or _sentences()
    target = rng.randint(*TEXT_TOKENS)
    text = f"Student {index} writes:"
    for _ in range(500):
        candidate = text + " " + rng.choice(pool)
        n = count(candidate)
        if n > TEXT_TOKENS[1]:
            continue  # too long with this sentence: try another
        text = candidate
        if n >= target:
            break
    return text


def own_photo(index: int, rng: random.Random) -> tuple[str, bytes]:
    """A photo of its own for session ``index`` (JPEG): a crop of a sample at its own size and colours."""
    from PIL import Image, ImageEnhance

    src = Image.open(ROOT / "attnviz" / "assets" / rng.choice(PHOTOS)).convert("RGB")
    w, h = src.size
    f = rng.uniform(0.55, 0.9)
    cw, ch = int(w * f), int(h * f)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    side = rng.randint(640, 1024)
    img = src.crop((x, y, x + cw, y + ch)).resize((side, max(16, int(side * ch / cw))), Image.BICUBIC)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.8, 1.2))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return f"student-{index}.jpg", buf.getvalue()


def alone_variant(kind: str, payload, k: int = 1):
    """The same input with one character / one pixel changed (``k`` picks which): as costly, but not in the
    server's caches."""
    if kind == "text":
        marks = [m for m in "!?;:" if m != payload[-1]]
        return payload[:-1] + marks[k % len(marks)]
    from PIL import Image

    name, data = payload
    img = Image.open(io.BytesIO(data)).convert("RGB")
    r, g, b = img.getpixel((k, 0))
    img.putpixel((k, 0), ((r + 128) % 256, g, b))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=88)
    return name.replace(".jpg", f"-alone{k}.jpg"), buf.getvalue()


# ------------------------------------------------------------------------------------------- upload


class UploadingSession(Session):
    """A session that can also upload a file into an ``st.file_uploader``, the way the browser does: ask for
    an upload URL over the websocket, PUT the file (multipart, with an XSRF cookie and header), then send
    the widget's state."""

    xsrf = uuid.uuid4().hex  # a V1 token: the server compares the header with the cookie

    async def connect(self):
        import websockets

        host = self.base.split("://", 1)[1]
        self.ws = await websockets.connect(
            f"ws://{host}/_stcore/stream", subprotocols=["streamlit", self.xsrf], origin=self.base, max_size=None,
            open_timeout=60, additional_headers={"Cookie": f"_streamlit_xsrf={self.xsrf}"})

    async def upload(self, key: str, name: str, data: bytes, mime: str = "image/jpeg") -> bool:
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.Common_pb2 import FileURLs
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        wid = self.widget_ids.get(key)
        if wid is None or not self.session_id:
            return False
        msg = BackMsg()
        request_id = uuid.uuid4().hex
        msg.file_urls_request.request_id = request_id
        msg.file_urls_request.session_id = self.session_id
        msg.file_urls_request.file_names.append(name)
        await self.ws.send(msg.SerializeToString())
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(await asyncio.wait_for(self.ws.recv(), 60))
            if fm.WhichOneof("type") == "file_urls_response" and fm.file_urls_response.response_id == request_id:
                break
        urls = fm.file_urls_response.file_urls[0]
        await asyncio.to_thread(self._put, self.base + urls.upload_url, name, data, mime)
        state = WidgetState(id=wid)
        info = state.file_uploader_state_value.uploaded_file_info.add()
        info.name, info.size, info.file_id = name, len(data), urls.file_id
        info.file_urls.CopyFrom(FileURLs(file_id=urls.file_id, upload_url=urls.upload_url,
                                         delete_url=urls.delete_url))
        self.states[wid] = state
        return True

    def _put(self, url: str, name: str, data: bytes, mime: str) -> None:
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                f"Content-Type: {mime}\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        req = urllib.request.Request(url, data=body, method="PUT", headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Xsrftoken": self.xsrf,
            "Cookie": f"_streamlit_xsrf={self.xsrf}", "Origin": self.base})
        with urllib.request.urlopen(req, timeout=60) as r:
            if r.status not in (200, 204):
                raise RuntimeError(f"upload answered {r.status}")


# ------------------------------------------------------------------------------------------ sessions


@dataclass
class Submission:
    index: int
    kind: str  # "text" or "image"
    payload: object  # the text, or (file name, bytes)
    alone_s: float | None = None
    burst_s: float | None = None
    offset_s: float = 0.0  # when, within the window, it was submitted
    tokens: int | None = None
    extra: dict = field(default_factory=dict)


async def submit(s: UploadingSession, sub: Submission, payload) -> float | None:
    """Open the page, then send ``payload`` as this session's input; the seconds to its first result."""
    page = sub.kind
    await s.rerun(page, "open", page_name=page)
    return await _send(s, sub, payload)


async def _send(s: UploadingSession, sub: Submission, payload) -> float | None:
    if sub.kind == "text":
        if not s.set("text", string_value=payload):
            s.results.error(s.index, "text", "submit", "missing_widget", "no text area")
            return None
        return await s.rerun("text", "submit", expect=payload[-20:])
    name, data = payload
    if not await s.upload("img_upload", name, data):
        s.results.error(s.index, "image", "submit", "missing_widget", "no file uploader or session id")
        return None
    from PIL import Image

    w, h = Image.open(io.BytesIO(data)).size
    return await s.rerun("image", "submit", expect=f"{w} × {h} px")  # the page shows the uploaded photo's size


async def measure_alone(base: str, subs: list[Submission], results: Results) -> None:
    """Each input alone on the warm server, one session at a time, on variants the caches have not seen: a
    first one (``alone_cold``: torch's first call at a new sequence length or photo size is slower) and then
    the one that counts (``alone``), as in the burst, where the alone runs have already met that size."""
    for sub in subs:
        for k in (1, 2):
            s = UploadingSession(base, sub.index, results)
            try:
                await s.connect()
                seconds = await submit(s, sub, alone_variant(sub.kind, sub.payload, k))
                if k == 1:
                    sub.extra["alone_cold_s"] = seconds
                else:
                    sub.alone_s = seconds
            except Exception as err:  # noqa: BLE001 - a result, not a crash
                results.error(sub.index, sub.kind, "alone", "connection", f"{type(err).__name__}: {err}")
            finally:
                await s.close()


async def clear_caches(base: str) -> None:
    """Ask the server to clear its Streamlit caches (the BackMsg behind the browser menu's "Clear cache")."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    s = UploadingSession(base, -2, Results())
    await s.connect()
    try:
        msg = BackMsg()
        msg.clear_cache = True
        await s.ws.send(msg.SerializeToString())
        await asyncio.sleep(1.0)
    finally:
        await s.close()


async def burst(base: str, subs: list[Submission], duration: float, think: float, seed: int,
                results: Results) -> None:
    """Every session opens its page; then each submits within WINDOW_S and clicks through views."""
    clients = [UploadingSession(base, sub.index, results) for sub in subs]
    opened = []

    async def open_page(s, sub):
        await s.connect()
        await s.rerun(sub.kind, "open", page_name=sub.kind)
        opened.append(s)

    await asyncio.gather(*(open_page(s, sub) for s, sub in zip(clients, subs)), return_exceptions=True)
    t0 = time.monotonic()
    stop_at = t0 + duration

    async def one(s: UploadingSession, sub: Submission):
        rng = random.Random(seed * 1000 + sub.index)
        try:
            if s not in opened:
                raise RuntimeError("the page did not open")
            sub.offset_s = rng.uniform(0, WINDOW_S)
            await asyncio.sleep(max(0.0, t0 + sub.offset_s - time.monotonic()))
            sub.burst_s = await _send(s, sub, sub.payload)
            views = TEXT_VIEWS if sub.kind == "text" else IMAGE_VIEWS
            key, sim_key = ("view", "txt_sim") if sub.kind == "text" else ("img_view", "img_sim")
            mark = TOKEN_VIEW_MARK if sub.kind == "text" else "Computed on"
            actions = [(f"view {v}", lambda v=v: s.set(key, string_value=v) and mark) for v in views]
            actions.append(("similarity", lambda: s.set(sim_key, string_value=rng.choice(SIMILARITY_LABELS)) and mark))
            await _drive(s, sub.kind, actions, rng, stop_at, think)
        except Exception as err:  # noqa: BLE001 - a dropped connection is a result, not a crash
            results.error(sub.index, sub.kind, "burst", "connection", f"{type(err).__name__}: {err}")
        finally:
            await s.close()

    await asyncio.gather(*(one(s, sub) for s, sub in zip(clients, subs)))


def make_submissions(sessions: int, seed: int) -> list[Submission]:
    count, pool = _token_counter(), _sentences()
    subs = []
    for i in range(sessions):
        rng = random.Random(seed * 7919 + i)
        if i % 2 == 0:
            text = own_text(i, rng, count, pool)
            subs.append(Submission(i, "text", text, tokens=count(text)))
        else:
            subs.append(Submission(i, "image", own_photo(i, rng)))
    return subs


def session_ttl_s() -> float:
    """``server.disconnectedSessionTTL`` as the app runs it: .streamlit/config.toml's, else Streamlit's default."""
    import tomllib

    from streamlit import config

    conf = ROOT / ".streamlit" / "config.toml"
    server = tomllib.loads(conf.read_text(encoding="utf-8")).get("server", {}) if conf.exists() else {}
    return float(server.get("disconnectedSessionTTL", config.get_option("server.disconnectedSessionTTL")))


async def visit_home(base: str) -> None:
    """One visitor opens the home page: Streamlit's next write to its session store drops expired sessions."""
    s = Session(base, -3, Results())
    await s.connect()
    try:
        await s.rerun("home", "open")
    finally:
        await s.close()


def run_burst(sessions: int = 30, duration: float = 60.0, think: float = 1.0, url: str | None = None,
              pid: int | None = None, seed: int = 0, log_dir: Path | None = None) -> dict:
    """The burst run; returns the report (see the module docstring)."""
    from ui.cache import RELEASE_EVERY_S

    log_dir = Path(log_dir or os.environ.get("TMPDIR", "/tmp"))
    log_path = log_dir / f"attnviz-burst-{os.getpid()}.log"
    subs = make_submissions(sessions, seed)
    cores = os.cpu_count() or 1
    ttl = session_ttl_s()
    expire_after = ttl + RELEASE_EVERY_S + TRIM_MARGIN_S
    with contextlib.ExitStack() as stack:
        if url is None:
            url, pid = stack.enter_context(streamlit_server(log_path))
        warm = Results()
        run_async(warm_up(url, warm))  # both pages' shipped samples, once
        time.sleep(RELEASE_EVERY_S + TRIM_MARGIN_S)  # the warm-up session closed; one trim tick
        idle = rss_mib(pid)[0] if pid else None
        alone = Results()
        t_alone = time.monotonic()
        run_async(measure_alone(url, subs, alone))
        alone_wall = time.monotonic() - t_alone
        time.sleep(2.0)
        before = rss_mib(pid)[0] if pid else None
        results = Results()
        sampler = Sampler(url, pid)
        sampler.start()
        t_run = time.monotonic()
        run_async(burst(url, subs, duration, think, seed, results))
        wall = time.monotonic() - t_run
        settle = []  # (seconds after the last session closed, RSS)
        t_left = time.monotonic()
        visited = False
        while pid and time.monotonic() - t_left < expire_after:
            if not visited and time.monotonic() - t_left > ttl + 1.0:
                run_async(visit_home(url))  # expired sessions are dropped on the store's next write
                visited = True
            settle.append((round(time.monotonic() - t_left, 1), round(rss_mib(pid)[0], 1)))
            time.sleep(1.0)
        if pid:
            settle.append((round(time.monotonic() - t_left, 1), round(rss_mib(pid)[0], 1)))
        sampler.halt.set()
        sampler.join(15)
        cleared = None
        if pid:  # diagnosis: how much of what stayed is the bounded caches' content
            run_async(clear_caches(url))
            time.sleep(3.0)
            cleared = round(rss_mib(pid)[0], 1)
        n_tracebacks = log_tracebacks(log_path)
    per = []
    for sub in subs:
        ratio = (sub.burst_s / sub.alone_s) if sub.burst_s and sub.alone_s else None
        per.append({"session": sub.index, "kind": sub.kind, "tokens": sub.tokens,
                    "bytes": len(sub.payload[1]) if sub.kind == "image" else None,
                    "submitted_at_s": round(sub.offset_s, 2),
                    "alone_cold_ms": _ms(sub.extra.get("alone_cold_s")),
                    "alone_ms": None if sub.alone_s is None else round(sub.alone_s * 1000),
                    "burst_ms": None if sub.burst_s is None else round(sub.burst_s * 1000),
                    "ratio": None if ratio is None else round(ratio, 2)})
    allowed = WAIT_FACTOR * sessions / cores
    ratios = [p["ratio"] for p in per if p["ratio"] is not None]
    errors = results.errors + alone.errors + warm.errors
    rss_values = [v for _, v in sampler.rss]
    after = settle[-1][1] if settle else None
    ten_s = next((v for t, v in settle if t >= 10.0), None)
    checks = {
        "every_session_got_its_result": all(p["burst_ms"] is not None and p["alone_ms"] is not None for p in per),
        "no_wait_above_3x_alone_x_sessions_per_core": bool(ratios) and max(ratios) <= allowed,
        "no_errors": not errors and not n_tracebacks,
        "memory_back_within_20pct_of_idle_once_sessions_expired":
            after is not None and idle is not None and after <= (1 + MEMORY_SLACK) * idle,
    }
    by_kind = {k: {"alone": summary([p["alone_ms"] / 1000 for p in per if p["kind"] == k and p["alone_ms"]]),
                   "burst": summary([p["burst_ms"] / 1000 for p in per if p["kind"] == k and p["burst_ms"]]),
                   "ratio_median": _median([p["ratio"] for p in per if p["kind"] == k and p["ratio"]]),
                   "ratio_max": max([p["ratio"] for p in per if p["kind"] == k and p["ratio"]], default=None)}
               for k in ("text", "image")}
    return {
        "mode": "burst", "sessions": sessions, "duration_s": duration, "window_s": WINDOW_S, "cpu_count": cores,
        "wall_s": round(wall, 1), "alone_wall_s": round(alone_wall, 1),
        "allowed_ratio": round(allowed, 2), "ratio_max": max(ratios, default=None), "ratio_median": _median(ratios),
        "time_to_first_result": by_kind,
        "clicks_after": {"updates": results.updates,
                         "latency": summary(results.latencies["text"] + results.latencies["image"])},
        "session_ttl_s": ttl,
        "rss_mib": {"idle_samples_served": _r1(idle), "after_alone_runs": _r1(before),
                    "peak": max(rss_values, default=None), "ten_s_after_close": ten_s,
                    "after_sessions_expired": after, "after_sessions_expired_s": settle[-1][0] if settle else None,
                    "after_over_idle": None if not (after and idle) else round(after / idle, 3),
                    "after_cache_clear": cleared,
                    "settle": settle[:: max(1, len(settle) // 30)] + settle[-1:],
                    "timeline": sampler.rss[:: max(1, len(sampler.rss) // 60)]},
        "errors": {"count": len(errors) + n_tracebacks, "server_log_tracebacks": n_tracebacks,
                   "samples": errors[:20]},
        "checks": checks, "all_pass": all(checks.values()), "per_session": per,
    }


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000)


def _median(values):
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 2) if values else None


def _r1(v):
    return None if v is None else round(v, 1)


__all__ = ["WINDOW_S", "TEXT_TOKENS", "own_text", "own_photo", "alone_variant", "make_submissions", "run_burst",
           "session_ttl_s", "UploadingSession"]
