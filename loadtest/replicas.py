"""More than one process: N ``streamlit run`` replicas behind nginx with sticky sessions, one killed mid-run.

Starts ``--replicas`` (default 2) servers on loopback ports, waits for each one's ``/_stcore/health``, warms
each one up (model load), then writes an ``nginx.conf`` into a temporary folder and runs Debian's ``nginx``
in the foreground on another loopback port (stopped by its PID at the end). Sticky sessions use a cookie of
nginx's own (``attnviz_route``: set on a browser's first request to ``$request_id``, then hashed with
``hash ... consistent``), because every client of a class behind one router — and every client of this test
— has the same IP address, so ``ip_hash`` would send them all to one replica.

Then ``--sessions`` sessions (half on the text page, half on the image page, as in ``loadtest/run.py``)
click through nginx. Each first loads ``/`` (the cookie) and opens the websocket with it; nginx's response
header ``X-Attnviz-Replica`` says which replica it reached. At ``--kill-at`` seconds the replica with the
most sessions is killed (SIGKILL: a machine that dies, not one that shuts down). Its sessions lose their
websocket; each then does what Streamlit's browser client does — polls ``/_stcore/health`` and reconnects
to the same address (same cookie: nginx moves it to a live replica) — and reruns its page with **only its
link** (the query string the page last wrote into the address bar; no widget state is resent). Reported
per session: the replica before and after, the seconds from the drop to the page drawn again, and whether
the view drawn is the one before the drop (the token view's text and legend label on the text page, the
images' captions on the image page). Checks: every session on the killed replica came back on another one,
with its view where its link carried one (both pages keep their settings in the link; a page whose link is
empty comes back to its defaults, which the report lists under ``links_empty``); the sessions on the other replicas
never dropped; 0 errors (the dropped action itself is Streamlit's "Connecting" notice in a browser, not an
error).

    .venv/bin/python -m loadtest.replicas                               # 2 replicas, 10 sessions, 40 s
    .venv/bin/python -m loadtest.replicas --replicas 3 --sessions 20 --duration 60 --kill-at 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from .run import (Results, Session, free_port, healthy, image_session, log_tracebacks, run_async,
                  streamlit_server, summary, text_session, warm_up)

#: a session that lost its replica must be back within this many seconds (else: an error)
RECONNECT_TIMEOUT = 60.0
#: how often a dropped session asks the health endpoint (Streamlit's client backs off from ~0.5 s)
RECONNECT_POLL = 0.25
ROUTE_COOKIE = "attnviz_route"
REPLICA_HEADER = "X-Attnviz-Replica"

NGINX_CONF = """\
# attnviz behind nginx: {n} replicas, sticky sessions by cookie, websockets passed through.
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_max_body_size 64m;                  # Streamlit's server.maxUploadSize (.streamlit/config.toml)

    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    # sticky sessions: a browser without the cookie gets a random one; the cookie picks its replica
    map $cookie_{cookie} $attnviz_route {{ "" $request_id; default $cookie_{cookie}; }}
    map $cookie_{cookie} $attnviz_set_route {{
        "" "{cookie}=$request_id; Path=/; HttpOnly; SameSite=Lax";
        default "";
    }}
    upstream attnviz {{
        hash $attnviz_route consistent;        # a dead replica's sessions move, the others stay
{servers}
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://attnviz;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Upgrade $http_upgrade;            # the session's websocket, /_stcore/stream
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;                          # a lesson lasts an hour
            proxy_send_timeout 3600s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 http_503;
            add_header Set-Cookie $attnviz_set_route always;
            add_header {header} $upstream_addr always;         # for the load test: which replica answered
        }}
    }}
}}
"""


def nginx_conf(listen: str, upstreams: list[str], tmp: str | Path) -> str:
    """nginx.conf for ``upstreams`` (``host:port`` each) behind ``listen`` (``host:port``); paths under ``tmp``."""
    servers = "\n".join(f"        server {u} max_fails=1 fail_timeout=30s;" for u in upstreams)
    return NGINX_CONF.format(n=len(upstreams), tmp=tmp, servers=servers, listen=listen, cookie=ROUTE_COOKIE,
                             header=REPLICA_HEADER)


def nginx_exe() -> str:
    """Debian's nginx (``apt-get install -y nginx``); /usr/sbin is not on every user's PATH."""
    exe = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.path.exists(p)),
                                        None)
    if exe is None:
        raise RuntimeError("nginx is not installed: apt-get install -y nginx")
    return exe


@contextlib.contextmanager
def nginx_proxy(upstreams: list[str], start_timeout: float = 20.0):
    """nginx in the foreground on a free loopback port in front of ``upstreams``. Yields (url, conf path, tmp
    folder); stops it by its own PID."""
    exe = nginx_exe()
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="attnviz-nginx-"))
    tmp.chmod(0o755)  # workers may run as another user: they read nothing here but the temp folders below
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir()
        (tmp / d).chmod(0o777)
    conf = tmp / "nginx.conf"
    conf.write_text(nginx_conf(f"127.0.0.1:{port}", upstreams, tmp))
    test = subprocess.run([exe, "-t", "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)],
                          capture_output=True, text=True)
    if test.returncode:
        raise RuntimeError(f"nginx refused its configuration: {test.stderr[-1500:]}")
    log = open(tmp / "nginx.out", "wb")
    proc = subprocess.Popen([exe, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)], stdout=log,
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while healthy(base, 2) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {(tmp / 'error.log').read_text(errors='replace')[-1500:]}")
            time.sleep(0.2)
        yield base, conf, tmp
    finally:
        proc.send_signal(signal.SIGQUIT)  # graceful stop of master and workers
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


# ------------------------------------------------------------------------------------------ sessions


class ReconnectingSession(Session):
    """A browser tab behind the proxy: it keeps nginx's route cookie, and when its websocket drops it does
    what Streamlit's client does — waits for the health endpoint, reconnects, reruns its page from its
    link alone."""

    def __init__(self, base: str, index: int, results: Results, page: str):
        super().__init__(base, index, results)
        self.page = page
        self.cookie = ""
        self.replicas: list[str] = []  # the replica of each connection, in order
        self.drops: list[dict] = []

    def _get(self, path: str) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + path, headers={"Cookie": self.cookie} if self.cookie else {})
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
            return r.status, dict(r.headers.items())

    async def connect(self):
        import websockets

        if not self.cookie:  # the browser's first request: the page itself, which sets the route cookie
            _, headers = await asyncio.to_thread(self._get, "/")
            set_cookie = headers.get("Set-Cookie", "")
            if not set_cookie.startswith(ROUTE_COOKIE + "="):
                raise RuntimeError(f"the proxy set no {ROUTE_COOKIE} cookie: {headers}")
            self.cookie = set_cookie.split(";", 1)[0]
        host = self.base.split("://", 1)[1]
        self.ws = await websockets.connect(f"ws://{host}/_stcore/stream", subprotocols=["streamlit"],
                                           origin=self.base, max_size=None, open_timeout=10,
                                           additional_headers={"Cookie": self.cookie})
        self.replicas.append(self.ws.response.headers.get(REPLICA_HEADER, "?"))

    async def rerun(self, page: str, action: str, **kw) -> float | None:
        from websockets.exceptions import ConnectionClosed

        pending = self.last_set
        try:
            return await super().rerun(page, action, **kw)
        except (ConnectionClosed, OSError):
            if not await self.recover(action):
                return None
        # the click the drop cut off (in a browser: under Streamlit's "Connecting" notice) is made again
        if pending is not None and pending.id in self.widget_ids.values():
            self.states[pending.id] = pending
        return await Session.rerun(self, page, action, **kw)

    async def recover(self, action: str) -> bool:
        """Reconnect and rebuild the page from its link; whether the page is back."""
        t_drop = time.monotonic()
        before, link = dict(self.view), self.query_string
        drop = {"session": self.index, "page": self.page, "action": action, "replica_before": self.replicas[-1],
                "link": link}
        self.drops.append(drop)
        with contextlib.suppress(Exception):
            await self.ws.close()
        deadline = t_drop + RECONNECT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                status, _ = await asyncio.to_thread(self._get, "/_stcore/health")
                if status == 200:
                    await self.connect()
                    break
            except Exception:  # noqa: BLE001 - not back yet
                pass
            await asyncio.sleep(RECONNECT_POLL)
        else:
            self.results.error(self.index, self.page, "reconnect", "no_reconnect",
                               f"not back within {RECONNECT_TIMEOUT:.0f} s")
            return False
        drop["reconnected_s"] = round(time.monotonic() - t_drop, 2)
        drop["replica_after"] = self.replicas[-1]
        self.states.clear()  # a new server session: only the link carries the view
        self.page_hash = ""
        dt = await Session.rerun(self, self.page, "reconnect", page_name=self.page, query_string=link)
        if dt is None:
            return False
        drop["back_s"] = round(time.monotonic() - t_drop, 2)
        drop["rerun_s"] = round(dt, 2)
        drop["view_restored"] = self.view == before
        # a page whose link keeps nothing (the image page) comes back to its defaults: reported, not an error
        if link and not drop["view_restored"]:
            self.results.error(self.index, self.page, "reconnect", "view_lost",
                               f"before {json.dumps(before)[:140]} after {json.dumps(self.view)[:140]}")
        return True


async def run_through_proxy(base: str, sessions: int, duration: float, think: float, seed: int, results: Results,
                            clients: list[ReconnectingSession], connected: threading.Event) -> None:
    import random

    stop_at = time.monotonic() + duration
    clients += [ReconnectingSession(base, i, results, "text" if i % 2 == 0 else "image") for i in range(sessions)]

    async def one(s: ReconnectingSession):
        rng = random.Random(seed * 1000 + s.index)
        try:
            await s.connect()
            await asyncio.sleep(rng.uniform(0, 1.0))
            await (text_session if s.page == "text" else image_session)(s, rng, stop_at, think)
        except Exception as err:  # noqa: BLE001 - a result, not a crash
            results.error(s.index, s.page, "session", "connection", f"{type(err).__name__}: {err}")
        finally:
            await s.close()

    tasks = [asyncio.create_task(one(s)) for s in clients]
    await asyncio.sleep(2.0)  # every session has connected (and been routed) by now
    connected.set()
    await asyncio.gather(*tasks)


# ---------------------------------------------------------------------------------------------- main


def run_replicas(replicas: int = 2, sessions: int = 10, duration: float = 40.0, kill_at: float = 15.0,
                 think: float = 1.0, seed: int = 0, log_dir: Path | None = None) -> dict:
    """Start the replicas and nginx, run the sessions through it, kill one replica at ``kill_at`` s; the
    report (see the module docstring)."""
    if replicas < 2 or sessions < 1 or not 0 < kill_at < duration:
        raise ValueError("need replicas >= 2, sessions >= 1 and 0 < kill_at < duration")
    log_dir = Path(log_dir or os.environ.get("TMPDIR", "/tmp"))
    with contextlib.ExitStack() as stack:
        servers = []  # (url, pid, log)
        t0 = time.monotonic()
        for r in range(replicas):
            log = log_dir / f"attnviz-replica{r}-{os.getpid()}.log"
            url, pid = stack.enter_context(streamlit_server(log))
            servers.append((url, pid, log))
        warm = Results()
        for url, _, _ in servers:
            run_async(warm_up(url, warm))
        ready_s = time.monotonic() - t0
        base, conf, tmp = stack.enter_context(nginx_proxy([u.split("://", 1)[1] for u, _, _ in servers]))
        results, clients, connected = Results(), [], threading.Event()
        killed: dict = {}

        def killer():
            connected.wait(60)
            time.sleep(max(0.0, kill_at - 2.0))
            counts = {u.split("://", 1)[1]: sum(1 for c in clients if c.replicas and c.replicas[0] ==
                                                u.split("://", 1)[1]) for u, _, _ in servers}
            victim = max(counts, key=counts.get)
            pid = next(p for u, p, _ in servers if u.endswith(victim))
            os.kill(pid, signal.SIGKILL)
            killed.update(replica=victim, pid=pid, sessions_on_it=counts[victim], at_s=kill_at, split=counts)

        k = threading.Thread(target=killer, daemon=True)
        k.start()
        t_run = time.monotonic()
        run_async(run_through_proxy(base, sessions, duration, think, seed, results, clients, connected))
        wall = time.monotonic() - t_run
        k.join(30)
        conf_text = conf.read_text()
        nginx_errors = (tmp / "error.log").read_text(errors="replace") if (tmp / "error.log").exists() else ""
        tracebacks = {u: log_tracebacks(lg) for u, _, lg in servers}
    shutil.rmtree(tmp, ignore_errors=True)
    victim = killed.get("replica")
    on_victim = [c for c in clients if c.replicas and c.replicas[0] == victim]
    others = [c for c in clients if c not in on_victim]
    drops = [d for c in clients for d in c.drops]
    back = [d["back_s"] for d in drops if "back_s" in d]
    errors = results.errors + warm.errors
    n_tracebacks = sum(tracebacks.values())
    checks = {
        "a_replica_was_killed_with_sessions_on_it": bool(on_victim),
        "every_session_on_it_came_back_elsewhere": bool(on_victim) and all(
            c.drops and "back_s" in c.drops[0] and c.drops[0]["replica_after"] != victim for c in on_victim),
        "with_its_view_from_the_link": bool(on_victim) and all(
            c.drops and c.drops[0].get("view_restored") for c in on_victim if c.drops and c.drops[0]["link"]),
        "the_other_sessions_never_dropped": all(not c.drops for c in others),
        "no_errors": not errors and not n_tracebacks,
    }
    return {
        "mode": "replicas", "replicas": replicas, "sessions": sessions, "duration_s": duration, "kill_at_s": kill_at,
        "cpu_count": os.cpu_count(), "replicas_ready_s": round(ready_s, 1), "wall_s": round(wall, 1),
        "killed": killed,
        "sessions_per_replica": {u.split("://", 1)[1]: sum(1 for c in clients if c.replicas and c.replicas[0] ==
                                                           u.split("://", 1)[1]) for u, _, _ in servers},
        "page_updates": results.updates,
        "latency": {"all": summary(results.latencies["text"] + results.latencies["image"]),
                    "text": summary(results.latencies["text"]), "image": summary(results.latencies["image"])},
        "back_after_kill_s": {"n": len(back), "median": round(statistics.median(back), 2) if back else None,
                              "max": max(back, default=None)},
        "drops": drops,
        # pages whose link held nothing when their replica died: they came back to the page's defaults
        "links_empty": sorted({d["page"] for d in drops if not d["link"]}),
        "errors": {"count": len(errors) + n_tracebacks, "server_log_tracebacks": tracebacks,
                   "samples": errors[:20]},
        "nginx": {"conf": conf_text, "error_log_lines": len(nginx_errors.splitlines()),
                  "error_log_tail": nginx_errors.splitlines()[-5:]},
        "checks": checks, "all_pass": all(checks.values()),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.replicas", description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--sessions", type=int, default=10)
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load after the warm-up")
    p.add_argument("--kill-at", type=float, default=15.0, help="seconds into the run to kill a replica")
    p.add_argument("--think", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the JSON report here")
    p.add_argument("--print-conf", action="store_true", help="print the nginx.conf for two replicas and stop")
    args = p.parse_args(argv)
    if args.print_conf:
        print(nginx_conf("0.0.0.0:80", ["10.0.0.11:8501", "10.0.0.12:8501"], "/var/lib/attnviz-nginx"))
        return 0
    try:
        report = run_replicas(args.replicas, args.sessions, args.duration, args.kill_at, args.think, args.seed)
    except ValueError as err:
        p.error(str(err))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0 if report["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
