"""The app's cache policy: what the whole class shares, what lives and dies with one session.

- **Shipped inputs** (the sample texts and photos in ``attnviz/assets``, and a page's default text passed as
  ``shipped=``) give the same result for every student: one copy per process, shared, in Streamlit's global
  cache, at most :data:`SHARED_ENTRIES` per function for :data:`SHARED_TTL_S`.
- **A user's own input** (typed text, an upload) is cached in that session only (Streamlit's
  ``scope="session"``): at most :data:`SESSION_ENTRIES` per function and session, so a layer, head or view
  switch never recomputes, and **dropped when the session's websocket closes** (``disconnect_session`` ->
  ``AppSession.clear_session_caches``; checked in streamlit 1.67). A student who reconnects recomputes
  once.
- **DINOv2's runs** (``attnviz.image.vit_features.VIT_RUNS``, process-wide, up to 4 runs / 1.5 GiB) hold only
  the shipped samples' runs: a call on a user's own input runs inside ``vit_runs_in(<its session's
  ViTCache>)`` (:func:`session_vit_runs`: at most :data:`SESSION_VIT_RUNS` runs and
  :data:`SESSION_VIT_BYTES`), so an upload's forward is kept in its session, shared by that session's
  pages and views, and dropped with the session's caches (tests/test_concurrency.py checks that nothing
  in the process holds it afterwards).
- So when a session closes its own results go at once; Streamlit keeps only its widget state and upload
  for ``server.disconnectedSessionTTL`` (120 s) in case the browser reconnects, and drops them on its
  session store's next write after that. Once that has happened, nothing of the closed session stays.
- Model objects are not cached here: they live in ``attnviz.loaders``' process cache (one per process).

Why (docs/limits.md, "Classroom burst"): with one shared cache (ttl 3600 s) the process kept the class's
own-input results for an hour, and RSS stayed 20-25 % above idle after a burst of 10 sessions.

Use ``@memo_data(...)`` where ``st.cache_data`` was (results are pickled: each caller gets a copy) and
``@memo_resource(...)`` where ``st.cache_resource`` was (one object, never modified by its callers). Which
arguments carry the input is ``inputs=`` (parameter names; default: the first parameter): a call is shared
only when every one of them is shipped (:func:`is_shipped`).

:func:`start_memory_release` (called once from app.py) hands freed heap back to the OS after the class
leaves (glibc keeps freed memory in its arenas otherwise).
"""

from __future__ import annotations

import functools
import inspect
import threading
from pathlib import Path

import streamlit as st

from attnviz.image.vit_features import ViTCache, vit_runs_in
from attnviz.measure import release_memory

#: per cached function: results of shipped inputs kept for the whole class
SHARED_ENTRIES = 16
#: seconds a shared result stays (a lesson)
SHARED_TTL_S = 3600
#: per cached function and session: results of the session's own inputs (the current input + a few back)
SESSION_ENTRIES = 4
#: seconds between two :func:`attnviz.measure.release_memory` calls of the app's release thread
RELEASE_EVERY_S = 20.0
#: per session: DINOv2 runs of the session's own photos (its current photo at two resolutions)
SESSION_VIT_RUNS = 2
#: per session: bytes of those runs (one 518 px run is ~600 MB; the newest run always stays)
SESSION_VIT_BYTES = 640 * 2 ** 20


# ---------------------------------------------------------------------------------- what is shipped


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[frozenset, frozenset, frozenset]:
    """(shipped strings, lengths of the shipped photo files, digests of the shipped photo files)."""
    from attnviz.image import SAMPLES as PHOTOS, image_digest, sample_path
    from attnviz.state.text import SAMPLES as TEXTS, sample_text

    strings: set[str] = set()
    for key in TEXTS:
        text = sample_text(key)
        strings.add(text)
        strings.update(line.strip() for line in text.splitlines() if line.strip())  # the batch sample's lines
    sizes, digests = set(), set()
    for name, (filename, _) in PHOTOS.items():
        path = sample_path(name)
        data = path.read_bytes()
        strings.update({name, filename, str(path)})
        sizes.add(len(data))
        digests.add(image_digest(data))
    return frozenset(strings), frozenset(sizes), frozenset(digests)


def is_shipped(value, extra: tuple = ()) -> bool:
    """Whether ``value`` is a shipped input: a sample text (or one of its lines), a sample photo's name, file
    name, path, bytes or :func:`attnviz.image.image_digest`, one of ``extra``, or a non-empty tuple/list of
    such values. Anything else (a user's text or upload) is the user's own."""
    if isinstance(value, (tuple, list)):
        return bool(value) and all(is_shipped(v, extra) for v in value)
    if isinstance(value, Path):
        value = str(value)
    strings, sizes, digests = _shipped()
    if isinstance(value, str):
        return value in strings or value in digests or value in extra
    if isinstance(value, (bytes, bytearray, memoryview)):
        from attnviz.image import image_digest

        return len(value) in sizes and image_digest(bytes(value)) in digests  # hash only a sample-sized file
    return False


# ---------------------------------------------------------------------------------------- decorators


@st.cache_resource(max_entries=1, scope="session", show_spinner=False)
def session_vit_runs() -> ViTCache:
    """This session's cache of DINOv2 runs of its own photos (dropped with the session's caches)."""
    return ViTCache(entries=SESSION_VIT_RUNS, max_bytes=SESSION_VIT_BYTES)


def _memo(kind: str, show_spinner, inputs: tuple[str, ...] | None, shipped: tuple, hash_funcs):
    make = st.cache_data if kind == "data" else st.cache_resource

    def decorate(func):
        names = list(inspect.signature(func).parameters)
        chosen = tuple(inputs or names[:1])
        unknown = [n for n in chosen if n not in names]
        if unknown:
            raise TypeError(f"{func.__qualname__} has no parameter {unknown[0]!r} (inputs=)")
        signature = inspect.signature(func)
        extra = tuple(shipped)
        shared = make(max_entries=SHARED_ENTRIES, ttl=SHARED_TTL_S, show_spinner=show_spinner,
                      hash_funcs=hash_funcs)(func)
        own = make(max_entries=SESSION_ENTRIES, ttl=SHARED_TTL_S, show_spinner=show_spinner, scope="session",
                   hash_funcs=hash_funcs)(func)

        @functools.wraps(func)
        def call(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            if all(is_shipped(bound.arguments.get(n), extra) for n in chosen):
                return shared(*args, **kwargs)
            with vit_runs_in(session_vit_runs()):  # a DINOv2 run of the user's photo stays in the session
                return own(*args, **kwargs)

        def clear() -> None:
            shared.clear()
            own.clear()

        call.clear, call.shared, call.own = clear, shared, own
        return call

    return decorate


def memo_data(show_spinner: bool | str = False, *, inputs: tuple[str, ...] | None = None, shipped: tuple = (),
              hash_funcs=None):
    """``st.cache_data`` under this module's policy (see the module docstring)."""
    return _memo("data", show_spinner, inputs, shipped, hash_funcs)


def memo_resource(show_spinner: bool | str = False, *, inputs: tuple[str, ...] | None = None, shipped: tuple = (),
                  hash_funcs=None):
    """``st.cache_resource`` under this module's policy: the value is shared by its session's reruns (or by the
    class for a shipped input) and must not be modified."""
    return _memo("resource", show_spinner, inputs, shipped, hash_funcs)


def shared_data(show_spinner: bool | str = False):
    """``st.cache_data`` for a function of shipped inputs only (a sample's bytes): always class-wide."""
    return st.cache_data(max_entries=SHARED_ENTRIES, ttl=SHARED_TTL_S, show_spinner=show_spinner)


# ------------------------------------------------------------------------------------ memory release

_release_lock = threading.Lock()
_release_thread: list[threading.Thread] = []


def start_memory_release(every_s: float = RELEASE_EVERY_S) -> bool:
    """Start (once per process) a daemon thread that calls :func:`attnviz.measure.release_memory` every
    ``every_s`` seconds: what the closed sessions freed goes back to the OS. True if it started now."""
    with _release_lock:
        if _release_thread and _release_thread[0].is_alive():
            return False

        def loop():
            stop = threading.Event()
            while not stop.wait(every_s):
                release_memory()

        thread = threading.Thread(target=loop, name="attnviz-memory-release", daemon=True)
        thread.start()
        _release_thread[:] = [thread]
        return True


__all__ = ["SHARED_ENTRIES", "SHARED_TTL_S", "SESSION_ENTRIES", "RELEASE_EVERY_S", "SESSION_VIT_RUNS",
           "SESSION_VIT_BYTES", "is_shipped", "memo_data", "memo_resource", "shared_data", "session_vit_runs",
           "start_memory_release"]
