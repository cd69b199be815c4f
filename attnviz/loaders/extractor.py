"""A user's local feature network for the image page: a ``torch.export`` ``.pt2`` or a TorchScript file.

Loaded once per file version through the one model cache (:data:`attnviz.loaders.cache.MODELS`, kind
``"extractor"``, keyed by the resolved path, its modification time and size, and the input size).
Applying the network to an image is :class:`attnviz.image.features.FeatureExtractor`'s job.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import ModelNotFound
from ..image.features import FeatureExtractor
from .cache import MODELS

#: the cache kind of these models in :data:`MODELS`
KIND = "extractor"


def load_extractor(path: str | os.PathLike, input_size: tuple[int, int] | None = None) -> FeatureExtractor:
    """Load a local feature network (see :class:`FeatureExtractor` for the formats); cached per file."""
    p = Path(path)
    if not p.is_file():
        raise ModelNotFound(f"No feature model file at {os.fspath(p)!r}: give a .pt2 (torch.export) or "
                            "TorchScript .pt file.")
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, tuple(input_size) if input_size else None)
    return MODELS.get(KIND, key, lambda: FeatureExtractor(_load_module(p), p.name, input_size))


def _load_module(p: Path):
    import torch

    try:
        with warnings.catch_warnings():  # torch.jit's deprecation notice is not the user's problem
            warnings.simplefilter("ignore", DeprecationWarning)
            if p.suffix == ".pt2":
                module = torch.export.load(str(p)).module()
            else:
                module = torch.jit.load(str(p), map_location="cpu")
                module.eval()
    except Exception as err:
        raise ModelNotFound(f"Cannot load the feature model {p.name!r} ({type(err).__name__}): it must be a "
                            "torch.export .pt2 file or a TorchScript module (not a pickled state_dict).") from None
    return module


__all__ = ["KIND", "load_extractor"]
