"""The load test's fast variant: a real ``streamlit run app.py`` on loopback, a few concurrent sessions on the
text and image pages for a bounded time (the full run is ``python -m loadtest.run``: 20 sessions, 60 s).

Asserts that every page update arrived without an error, that the server stayed responsive (update
latency and its health endpoint) and that its memory stayed bounded."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # loadtest/ lives at the repository root
    sys.path.insert(0, str(ROOT))

from loadtest.run import run_load_test  # noqa: E402

SESSIONS = 6
DURATION = 20.0
THINK = 1.0  # mean seconds between a session's actions (each waits 0.5-1.5 x this)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_few_concurrent_sessions_stay_responsive_and_bounded(tmp_path):
    report = run_load_test(sessions=SESSIONS, duration=DURATION, think=THINK, log_dir=tmp_path)
    (tmp_path / "report.json").write_text(json.dumps(report, indent=1))
    errors = report["errors"]
    assert errors["count"] == 0, json.dumps(errors, indent=1)[:3000]
    # every session kept clicking: none stalled, and at least one update per session per 4.5 s (the longest
    # think time + the p50 budget below; on 2 shared cores under other jobs a cycle measured 1.5-3.5 s)
    assert report["updates_per_session"]["min"] >= 2, report["updates_per_session"]
    assert report["page_updates"] >= SESSIONS * DURATION / (1.5 * THINK + 3.0), report["page_updates"]
    lat = report["latency"]
    assert lat["text"]["n"] > 0 and lat["image"]["n"] > 0
    # responsive on 2 shared cores: budgets far above what is measured (p50 ~0.3-0.5 s), far below a hang
    assert lat["all"]["p50_ms"] < 3_000 and lat["all"]["p95_ms"] < 10_000, lat
    health = report["health"]
    assert health["answered"] == health["asked"] and health["max_ms"] < 5_000, health
    rss = report["rss_mib"]
    # bounded: the model and caches once (~0.6 GB warm), then a few MiB per session
    assert rss["peak"] < 2_000, rss
    assert rss["peak"] - rss["idle_warm"] < 400, rss


# ------------------------------------------------------------------------------------- burst mode


def test_every_burst_session_brings_its_own_input():
    import io

    from PIL import Image

    from loadtest.burst import TEXT_TOKENS, _token_counter, alone_variant, make_submissions

    subs = make_submissions(6, seed=0)
    texts = [s.payload for s in subs if s.kind == "text"]
    photos = [s.payload[1] for s in subs if s.kind == "image"]
    assert len(texts) == 3 and len(photos) == 3
    assert len(set(texts)) == 3 and len(set(photos)) == 3  # no two students send the same input
    count = _token_counter()
    assert all(TEXT_TOKENS[0] <= count(t) <= TEXT_TOKENS[1] for t in texts), [count(t) for t in texts]
    for sub in subs:  # the alone run uses a copy the server's caches have not seen, of the same size
        other = alone_variant(sub.kind, sub.payload)
        assert other != sub.payload
        if sub.kind == "text":
            assert len(other) == len(sub.payload)
        else:
            assert Image.open(io.BytesIO(other[1])).size == Image.open(io.BytesIO(sub.payload[1])).size
    assert [s.payload for s in make_submissions(2, seed=0)] == [s.payload for s in subs[:2]]  # seeded


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_quick_burst_passes_its_three_checks(tmp_path):
    """``--burst --quick``: 10 sessions submit their own input within 5 s, then click for 30 s."""
    from loadtest.burst import run_burst

    report = run_burst(sessions=10, duration=30.0, log_dir=tmp_path)
    (tmp_path / "burst.json").write_text(json.dumps(report, indent=1))
    checks = report["checks"]
    assert report["errors"]["count"] == 0 and checks["no_errors"], json.dumps(report["errors"], indent=1)[:3000]
    assert checks["every_session_got_its_result"], report["per_session"]
    assert {p["kind"] for p in report["per_session"]} == {"text", "image"}
    # the check recomputed from the per-session times: burst / alone <= 3 x sessions / cores
    allowed = 3.0 * 10 / report["cpu_count"]
    assert all(p["burst_ms"] <= allowed * p["alone_ms"] for p in report["per_session"]), report["per_session"]
    assert checks["no_wait_above_3x_alone_x_sessions_per_core"]
    rss = report["rss_mib"]
    shown = {k: v for k, v in rss.items() if k != "timeline"}
    assert rss["peak"] < 3 * 1024, rss  # docs/deploy.md sizes a process at 3 GB
    # idle = the warm server that has served both pages' shipped samples once, before anyone's own input; "after"
    # = once every session is closed, past Streamlit's disconnectedSessionTTL and one trim tick
    from loadtest.burst import session_ttl_s
    from ui.cache import RELEASE_EVERY_S

    assert report["session_ttl_s"] == session_ttl_s() and rss["after_sessions_expired_s"] >= session_ttl_s() + RELEASE_EVERY_S
    assert rss["idle_samples_served"] < rss["after_alone_runs"] and rss["idle_samples_served"] < rss["peak"], shown
    # memory comes back: own-input results (DINOv2's runs of uploads included) live with their sessions
    # (ui/cache.py), freed heap goes back to the OS (MALLOC_ARENA_MAX=2 as the Dockerfile runs the app, malloc_trim
    # every RELEASE_EVERY_S)
    assert rss["after_sessions_expired"] <= 1.2 * rss["idle_samples_served"], shown
    assert checks["memory_back_within_20pct_of_idle_once_sessions_expired"]
    assert report["all_pass"]


def test_the_burst_reads_the_session_ttl_the_app_runs_with(tmp_path, monkeypatch):
    """The wait before the memory check's read follows .streamlit/config.toml (Streamlit's default if unset)."""
    import loadtest.burst as burst
    from streamlit import config

    assert burst.session_ttl_s() == float(config.get_option("server.disconnectedSessionTTL")) == 120.0
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "config.toml").write_text("[server]\ndisconnectedSessionTTL = 45\n")
    monkeypatch.setattr(burst, "ROOT", tmp_path)
    assert burst.session_ttl_s() == 45.0


def test_the_load_tests_run_the_app_with_the_dockerfiles_malloc_setting(tmp_path):
    """What the memory check measures is how the app is deployed: the same glibc arena limit."""
    import re

    from loadtest.run import SERVER_MALLOC_ARENA_MAX

    docker = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^ENV MALLOC_ARENA_MAX={SERVER_MALLOC_ARENA_MAX}$", docker, re.M), "Dockerfile: ENV MALLOC_ARENA_MAX"
    script = tmp_path / "env_app.py"  # a one-line app that shows the environment its server got
    script.write_text("import os\nimport streamlit as st\nst.write(os.environ.get('MALLOC_ARENA_MAX', 'unset'))\n")
    from loadtest.run import Results, Session, run_async, streamlit_server

    seen: list[str] = []

    async def read(url):
        s = Session(url, 0, Results())
        await s.connect()
        try:
            await s.rerun("env", "open")
        finally:
            await s.close()
        seen.extend(s.seen)

    with streamlit_server(tmp_path / "server.log", script=script) as (url, _pid):
        run_async(read(url))
    assert SERVER_MALLOC_ARENA_MAX in seen, seen


# --------------------------------------------------------------------------------- the token view's data


def test_the_token_view_is_read_from_its_component_data():
    from streamlit.proto.Element_pb2 import Element

    from attnviz.highlight import token_view_payload
    from loadtest.run import TOKEN_VIEW, TOKEN_VIEW_MARK, Results, Session
    from ui.components.token_view import NAME

    assert TOKEN_VIEW == NAME
    text = "Cats <b>chase</b> mice & dogs."  # markup in user text is data
    tokens = ["Cats", "<b>", "chase", "</b>", "mice", "&", "dogs", "."]
    gaps = ["", " ", "", "", " ", " ", " ", "", ""]
    assert "".join(g + t for g, t in zip(gaps, tokens + [""])) == text
    payload = token_view_payload(tokens, [0.1] * 8, gaps, label="attention from the query 'cat'")
    el = Element()
    el.bidi_component.component_name = NAME
    el.bidi_component.json = json.dumps(payload)
    results = Results()
    s = Session("http://127.0.0.1:1", 0, results)
    view: dict = {}
    s._element(el, "text", "t", view)
    assert not results.errors
    assert TOKEN_VIEW_MARK in s.seen and text in s.seen and "attention from the query 'cat'" in s.seen
    assert view == {"token_views": [(text, "attention from the query 'cat'")]}
    bad = Element()  # a view whose data does not add up is an error, not a silent pass
    bad.bidi_component.component_name = NAME
    bad.bidi_component.json = json.dumps({**payload, "gaps": gaps[:-1]})
    s.seen = []
    s._element(bad, "text", "t2", {})
    assert [e["kind"] for e in results.errors] == ["bad_component_data"] and TOKEN_VIEW_MARK not in s.seen


# ------------------------------------------------------------------------------------- replicas + nginx


def test_the_generated_nginx_conf_is_valid_and_sticky(tmp_path):
    import subprocess

    from loadtest.replicas import nginx_conf, nginx_exe

    conf = nginx_conf("127.0.0.1:18080", ["127.0.0.1:18501", "127.0.0.1:18502"], tmp_path)
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / d).mkdir()
    (tmp_path / "nginx.conf").write_text(conf)
    test = subprocess.run([nginx_exe(), "-t", "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c",
                           str(tmp_path / "nginx.conf")], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    assert "hash $attnviz_route consistent;" in conf and "ip_hash" not in conf
    assert "server 127.0.0.1:18501" in conf and "server 127.0.0.1:18502" in conf
    assert "proxy_set_header Upgrade $http_upgrade;" in conf and "proxy_set_header Connection $connection_upgrade;" in conf


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_sessions_of_a_killed_replica_come_back_on_the_other_with_their_view(tmp_path):
    from loadtest.replicas import run_replicas

    report = run_replicas(replicas=2, sessions=6, duration=30.0, kill_at=12.0, log_dir=tmp_path)
    (tmp_path / "replicas.json").write_text(json.dumps(report, indent=1))
    assert report["errors"]["count"] == 0, json.dumps(report["errors"], indent=1)[:3000]
    checks = report["checks"]
    assert all(checks.values()), json.dumps({"checks": checks, "drops": report["drops"]}, indent=1)
    victim = report["killed"]["replica"]
    assert report["killed"]["sessions_on_it"] == len(report["drops"]) >= 1
    for d in report["drops"]:
        assert d["replica_before"] == victim and d["replica_after"] != victim
        assert d["back_s"] < 15, d  # the survivor is warm: a page rerun, not a model load
        if d["page"] == "text":  # the text page's link carries its text and settings: the same view comes back
            assert d["link"] and "text=" in d["link"] and d["view_restored"], d
    assert report["page_updates"] >= 6 * 30 / 4


def test_server_log_tracebacks_are_counted_when_streamlit_draws_them_in_colour(tmp_path):
    from loadtest.run import log_tracebacks

    log = tmp_path / "server.log"  # as Streamlit's rich handler writes them (copied from a replica's log)
    log.write_text("  URL: http://127.0.0.1:1\n"
                   "\x1b[31m──\x1b[0m \x1b[1;31mTraceback \x1b[0m\x1b[1;2;31m(most recent call last)\x1b[0m\x1b[31m ──\x1b[0m\n"
                   "Traceback (most recent call last):\n  File \"x.py\", line 1\nValueError: plain\n")
    assert log_tracebacks(log) == 2
    assert log_tracebacks(tmp_path / "absent.log") == 0
