"""A local transformers CLIP model (text -> image), found and loaded through the one model cache.

Nothing is downloaded: :func:`find_clip_folder` looks at the folder named by ``ATTNVIZ_CLIP_MODEL`` and at
CLIP / SigLIP snapshots already in the local Hugging Face cache; :func:`load_clip` reads one folder with
``local_files_only=True``, once per process (``MODELS.get("clip", folder, ...)``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelNotFound
from .cache import MODELS, from_transformers

#: the environment variable naming a local CLIP folder
ENV = "ATTNVIZ_CLIP_MODEL"
#: CLIP's published pixel normalisation (the same for every released CLIP checkpoint)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ClipSearch:
    """Where a CLIP model was looked for, and what was found (server-side detail, for logs and docs)."""

    folder: Path | None  # a transformers CLIP folder (config.json with model_type "clip"), or None
    candidates: tuple[Path, ...]  # every folder looked at
    hub: Path  # the local Hugging Face hub cache
    env: str  # the value of ATTNVIZ_CLIP_MODEL ("" when not set)

    @property
    def name(self) -> str | None:
        if self.folder is None:
            return None
        return self.folder.name if self.folder.name != "model" else self.folder.parent.name


def hub_cache() -> Path:
    return Path(os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
                or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")


def _model_type(folder: Path) -> str | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None


def find_clip_folder() -> ClipSearch:
    """The first local transformers CLIP folder: ``ATTNVIZ_CLIP_MODEL``, then CLIP / SigLIP snapshots in the
    local Hugging Face cache (only ``model_type == "clip"`` is usable)."""
    env = os.environ.get(ENV, "").strip()
    found: list[Path] = []
    if env and (Path(env).expanduser() / "config.json").is_file():
        found.append(Path(env).expanduser())
    hub = hub_cache()
    if hub.is_dir():
        for repo in sorted(hub.glob("models--*")):
            if "clip" in repo.name.lower() or "siglip" in repo.name.lower():
                found += sorted(c.parent for c in repo.glob("snapshots/*/config.json"))
    usable = next((f for f in found if _model_type(f) == "clip"), None)
    return ClipSearch(usable, tuple(found), hub, env)


def _load(key: str):
    try:
        AutoTokenizer, CLIPModel = from_transformers("", "AutoTokenizer", "CLIPModel")

        model = CLIPModel.from_pretrained(key, local_files_only=True).eval()
        tok = AutoTokenizer.from_pretrained(key, local_files_only=True)
    except Exception as err:
        raise ModelNotFound(f"Cannot load the CLIP model in {key!r} ({type(err).__name__}): it needs "
                            "config.json, the weights and the tokenizer files.") from None
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tok


def load_clip(path: str | os.PathLike):
    """``(CLIPModel, tokenizer)`` from a local folder, loaded once per process; never downloaded."""
    key = str(Path(path).expanduser().resolve())
    return MODELS.get("clip", key, lambda: _load(key))


__all__ = ["CLIP_MEAN", "CLIP_STD", "ClipSearch", "ENV", "find_clip_folder", "hub_cache", "load_clip"]
