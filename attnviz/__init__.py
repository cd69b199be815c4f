"""attnviz: see where attention goes, in text and images, under any similarity function.

The library never imports streamlit. Quick start::

    import torch, attnviz
    x = torch.randn(5, 8)
    res = attnviz.attend(x, similarity="cosine", temperature=0.1)
    res.weights.sum(-1)  # tensor([1., 1., 1., 1., 1.])
"""

from __future__ import annotations

from .attention import (
    BLOCK_ELEMENTS,
    AttentionResult,
    BlockedResult,
    attend,
    attend_blocked,
    attention_received,
    attention_row,
    effective_tokens,
    masked_softmax,
    row_entropy,
    scores,
    top_pairs,
)
from .devices import available_devices, best_device, resolve_device, run_with_fallback
from .errors import *  # noqa: F401,F403  (the typed errors are part of the API)
from .errors import AttnvizError
from .models import ParallelAttention, SequentialAttention
from .similarity import SIMILARITIES, Similarity, get_similarity

__version__ = "0.1.0"

# analyze_text / analyze_image pull in the tokenizer, transformers and Pillow: imported on first use
_LAZY = {"analyze_text": ("text", "analyze_text"), "analyze_image": ("image", "analyze_image")}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'attnviz' has no attribute {name!r}")


__all__ = [
    "SIMILARITIES", "Similarity", "get_similarity", "scores", "attend", "masked_softmax", "attend_blocked",
    "attention_row", "attention_received", "row_entropy", "effective_tokens", "top_pairs", "AttentionResult",
    "BlockedResult", "BLOCK_ELEMENTS", "SequentialAttention", "ParallelAttention", "available_devices",
    "best_device", "resolve_device", "run_with_fallback", "AttnvizError", "analyze_text", "analyze_image",
]
