"""attnviz: see where attention goes, in text and images, under any similarity function.

The library never imports streamlit. Quick start::

    import torch, attnviz
    x = torch.randn(5, 8)
    res = attnviz.attend(x, similarity="cosine", temperature=0.1)
    res.weights.sum(-1)  # tensor([1., 1., 1., 1., 1.])

``import attnviz`` is cheap: only the typed errors are imported here. Every other public name is
imported on first use (PEP 562), so ``attnviz --help`` and ``import attnviz`` never load torch,
transformers, Pillow or plotly (tests/test_cold_start.py checks it).
"""

from __future__ import annotations

import importlib
import importlib.util

from .errors import *  # noqa: F401,F403  (the typed errors are part of the API; errors.py is standard library only)
from .errors import AttnvizError

__version__ = "0.1.0"

#: public name -> the sub-module that defines it (imported on first use)
_LAZY = {
    **dict.fromkeys(("BLOCK_ELEMENTS", "AttentionResult", "BlockedResult", "attend", "attend_blocked",
                     "attention_received", "attention_row", "effective_tokens", "masked_softmax", "row_entropy",
                     "scores", "top_pairs", "resolve_temperature"), "attention"),
    **dict.fromkeys(("available_devices", "best_device", "resolve_device", "run_with_fallback"), "devices"),
    **dict.fromkeys(("ParallelAttention", "SequentialAttention"), "models"),
    **dict.fromkeys(("SIMILARITIES", "Similarity", "get_similarity"), "similarity"),
    "analyze_text": "text",
    "analyze_image": "image",
    **dict.fromkeys(("model_attentions", "ModelAttention"), "text"),
    "from_attention": "byo",
    "register_model": "loaders.hf",
    "save": "export",
    "sample_files": "cli",  # the photos and texts in attnviz/assets, by name (also `attnviz samples`)
}


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f".{name}", __name__)  # `attnviz.text` without `import attnviz.text`
    raise AttributeError(f"module 'attnviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "SIMILARITIES", "Similarity", "get_similarity", "scores", "attend", "masked_softmax", "attend_blocked",
    "attention_row", "attention_received", "row_entropy", "effective_tokens", "top_pairs", "AttentionResult",
    "BlockedResult", "BLOCK_ELEMENTS", "SequentialAttention", "ParallelAttention", "available_devices",
    "best_device", "resolve_device", "run_with_fallback", "AttnvizError", "analyze_text", "analyze_image",
    "model_attentions", "ModelAttention", "from_attention", "register_model", "save", "resolve_temperature",
    "sample_files",
]
