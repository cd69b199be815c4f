"""The one model cache: each (kind, key) is loaded once per process, thread-safely.

Two sessions asking for the same model at once wait for one load (a lock per key), while loads of different
models run side by side. A loader that raises leaves nothing in the cache, so a later call tries again.
"""

from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class ModelCache:
    """``get(kind, key, load)``: the cached value for ``(kind, key)``, calling ``load()`` at most once."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, Hashable], object] = {}
        self._locks: dict[tuple[str, Hashable], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, kind: str, key: Hashable, load: Callable[[], T]) -> T:
        slot = (kind, key)
        try:
            return self._values[slot]  # type: ignore[return-value]
        except KeyError:
            pass
        with self._guard:
            lock = self._locks.setdefault(slot, threading.Lock())
        with lock:
            if slot in self._values:
                return self._values[slot]  # type: ignore[return-value]
            value = load()
            self._values[slot] = value
            return value

    def peek(self, kind: str, key: Hashable):
        """The cached value, or None when it has not been loaded (never loads)."""
        return self._values.get((kind, key))

    def keys(self, kind: str | None = None) -> list[tuple[str, Hashable]]:
        return [slot for slot in list(self._values) if kind is None or slot[0] == kind]

    def clear(self, kind: str | None = None) -> None:
        """Forget cached models (tests; a server never needs it)."""
        with self._guard:
            for slot in self.keys(kind):
                self._values.pop(slot, None)


#: the process-wide cache every loader uses
MODELS = ModelCache()

_IMPORTS = threading.RLock()


def from_transformers(module: str, *names: str) -> tuple:
    """``from transformers[.module] import *names`` under one process-wide lock.

    transformers is a lazy package: two threads resolving its names at once (the app's preload thread and
    a session's first load) can meet a half-initialised module and fail with an ImportError.
    """
    import importlib

    with _IMPORTS:
        mod = importlib.import_module("transformers" + (f".{module}" if module else ""))
        return tuple(getattr(mod, name) for name in names)
