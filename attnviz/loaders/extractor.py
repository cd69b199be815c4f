"""A user's local feature network for the image page: a ``torch.export`` ``.pt2`` or a TorchScript file.

Loaded once per file version through the one model cache (:data:`attnviz.loaders.cache.MODELS`, kind
``"extractor"``, keyed by the resolved path, its modification time and size, and the input size).
What is cached is the network itself (:class:`LoadedExtractor`: the module, its file name, the input shape a
``.pt2`` was exported for and the lock that serialises its use); applying it to an image (resized to that shape
when it is fixed) is :class:`attnviz.image.features.FeatureExtractor`'s job.

Nothing in the file may run code. ``torch.export.load`` unpickles parts of a ``.pt2`` archive and, when the
safe unpickler (``weights_only=True``) refuses one, retries with the full one; so the archive is read into
memory and checked first (:func:`check_pt2_archive`): every member torch would unpickle must load with
``weights_only=True``, and members that only the full unpickler can read (pickled tensor subclasses,
TorchBind and opaque objects) are refused. torch's own log lines about the file (a traceback when its
fallback's message fails to format) are dropped for the loading thread only.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ModelNotFound
from .cache import MODELS

#: the cache kind of these models in :data:`MODELS`
KIND = "extractor"
#: a .pt2 archive larger than this is refused before it is read (a feature network is tens of MB)
MAX_MODEL_BYTES = 2 * 1024**3

_TORCH_LOGGERS = ("torch.export", "torch._export", "torch._export.serde.serialize", "torch.export.pt2_archive._package",
                  "torch.export.pt2_archive", "torch.jit", "torch.serialization")
_quiet = threading.local()
_filter_lock = threading.Lock()
_filter_installed = False


class _QuietWhileLoading(logging.Filter):
    """Drops torch's records emitted by a thread that is loading a feature model (other threads unaffected)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "active", False)


def _install_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            f = _QuietWhileLoading()
            for name in _TORCH_LOGGERS:
                logging.getLogger(name).addFilter(f)
            _filter_installed = True


@dataclass(frozen=True, eq=False)
class LoadedExtractor:
    """A loaded feature network, shared by every caller: ``lock`` serialises its use (``.to(device)`` moves it)."""

    module: object
    name: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the one input's shape as exported (``None`` per dynamic dimension), e.g. ``(1, 3, 64, 64)`` for a program
    #: exported at a fixed 64 x 64; ``None`` when the file does not say (TorchScript)
    input_shape: tuple[int | None, ...] | None = None


def load_feature_module(path: str | os.PathLike) -> LoadedExtractor:
    """Load a local ``.pt2`` / TorchScript feature network once per file version (path, mtime, size)."""
    p = Path(path)
    if not p.is_file():
        raise ModelNotFound(f"No feature model file at {os.fspath(p)!r}: give a .pt2 (torch.export) or "
                            "TorchScript .pt file.")
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    def load() -> LoadedExtractor:
        module, shape = _load_module(p)
        return LoadedExtractor(module, p.name, input_shape=shape)

    return MODELS.get(KIND, key, load)


def _refuse(name: str, why: str) -> ModelNotFound:
    return ModelNotFound(f"The feature model {name!r} {why}, which could run code when loaded: export it again "
                         "with torch.export.save from a plain model (tensors only).")


def _safe_pickle(blob: bytes) -> bool:
    """Whether ``blob`` (a ``torch.save`` file) loads with the safe unpickler."""
    import torch

    try:
        torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception:
        return False
    return True


def check_pt2_archive(data: bytes, name: str) -> None:
    """Refuse a ``.pt2`` archive in which ``torch.export.load`` would run the full unpickler.

    Checked: every ``*.pt`` / ``*.pkl`` member (sample inputs, legacy weights and constants, the old format's
    state dict) must load with ``weights_only=True``; a weights or constants entry marked ``use_pickle`` and
    any TorchBind (``custom_obj_*``) or opaque (``opaque_obj_*``) constant is refused outright.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        members = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not an archive: torch.export.load refuses it with its own error
    with zf:
        for info in members:
            base = info.filename.rsplit("/", 1)[-1]
            if base.startswith(("custom_obj_", "opaque_obj_")):
                raise _refuse(name, f"holds a pickled Python object ({base})")
            if base.endswith("_config.json"):
                try:
                    config = json.loads(zf.read(info)).get("config", {})
                except (ValueError, AttributeError, zipfile.BadZipFile, OSError):
                    continue  # torch refuses a broken config itself
                if isinstance(config, dict) and any(isinstance(v, dict) and v.get("use_pickle")
                                                    for v in config.values()):
                    raise _refuse(name, f"stores pickled tensors ({base})")
            elif base.endswith((".pt", ".pkl")):
                try:
                    blob = zf.read(info)
                except (zipfile.BadZipFile, OSError, ValueError):
                    continue
                if not _safe_pickle(blob):
                    raise _refuse(name, f"holds pickled Python objects ({info.filename.split('/', 1)[-1]})")


def exported_input_shape(program, name: str) -> tuple[int | None, ...]:
    """The shape of an ``ExportedProgram``'s one user input, from its placeholder's ``meta["val"]``: an ``int``
    per static dimension, ``None`` per dynamic one. A program with no tensor input or several is refused."""
    inputs = set(program.graph_signature.user_inputs)
    shapes = [getattr(node.meta.get("val"), "shape", None) for node in program.graph.nodes
              if node.op == "placeholder" and node.name in inputs]
    if len(shapes) != 1 or shapes[0] is None:
        raise ModelNotFound(f"The feature model {name!r} takes {len(shapes)} inputs; attnviz gives it one image "
                            "tensor (1, 3, H, W): export it with a single input.")
    return tuple(d if isinstance(d, int) else None for d in shapes[0])


def _load_module(p: Path):
    """``(module, input shape or None)`` from a ``.pt2`` or TorchScript file."""
    import torch

    _install_filter()
    _quiet.active = True
    try:
        if p.suffix == ".pt2":
            if p.stat().st_size > MAX_MODEL_BYTES:
                raise ModelNotFound(f"The feature model {p.name!r} is larger than {MAX_MODEL_BYTES / 2**30:.0f} GB.")
            data = p.read_bytes()  # checked and loaded from the same bytes
            check_pt2_archive(data, p.name)
            program = torch.export.load(io.BytesIO(data))
            shape = exported_input_shape(program, p.name)
            module = program.module()
        else:
            shape = None
            module = torch.jit.load(str(p), map_location="cpu")  # TorchScript's own loader: no Python pickles
            module.eval()
    except ModelNotFound:
        raise
    except Exception as err:
        raise ModelNotFound(f"Cannot load the feature model {p.name!r} ({type(err).__name__}): it must be a "
                            "torch.export .pt2 file or a TorchScript module (not a pickled state_dict).") from None
    finally:
        _quiet.active = False
    return module, shape


__all__ = ["KIND", "MAX_MODEL_BYTES", "LoadedExtractor", "check_pt2_archive", "exported_input_shape",
           "load_feature_module"]
