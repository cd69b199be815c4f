"""Twins of a loaded transformers model that run another attention function, registered with transformers' own
``AttentionInterface``.

A twin is the model's module tree copied once, with every parameter and buffer shared (no weights are
copied), whose attention implementation is the registered name. The shared model itself is never changed,
so sessions that use the model as it is never see the twin's function. What a call of the function needs
(which heads to swap, where to write the weights) travels in a ``contextvars.ContextVar`` that the caller
sets for the duration of one forward: concurrent sessions never see each other's settings.

Users: :mod:`attnviz.trace` (``"attnviz_swap"``: one head's weights replaced by a similarity's) and
:mod:`attnviz.vit` (``"attnviz_capture"``: the weights written straight into one array for all layers).
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Callable

_LOCK = threading.Lock()
_REGISTERED: set[str] = set()
#: model -> {implementation name: (twin, layer_of)}; a twin goes with its model
_TWINS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def register_attention(name: str, function: Callable) -> None:
    """Register ``function`` as transformers attention implementation ``name`` (with the eager attention mask
    for it), once per process."""
    if name in _REGISTERED:
        return
    with _LOCK:
        if name in _REGISTERED:
            return
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        AttentionInterface.register(name, function)
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
        _REGISTERED.add(name)


def eager_weights(query, key, attention_mask=None, scaling=None, out=None):
    """transformers' eager attention weights (``eager_attention_forward`` of its BERT and DINOv2 models, no
    dropout: twins run in eval mode): ``softmax(q k^T * scaling + mask)``, the same operations in the same
    order, so the result is the model's own bit for bit. ``scaling`` defaults to ``1/sqrt(d)``; ``out``: the
    tensor to write the weights into (a capture array's slice). q, k ``(batch, heads, n, d)``."""
    import torch

    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    return torch.softmax(scores, dim=-1, out=out)


def weighted_values(weights, value):
    """The attention output as transformers' eager attention returns it: ``weights @ v``, ``(batch, n, heads,
    d)`` contiguous."""
    import torch

    return torch.matmul(weights, value).transpose(1, 2).contiguous()


def attention_twin(hf_model, name: str, function: Callable, attention_modules: Callable[[object], list]):
    """``(twin, layer_of)``: a twin of ``hf_model`` whose attention implementation is ``name`` (``function``,
    registered on first use), built once per model and name. ``attention_modules(model)``: each layer's module
    that calls the attention function (transformers passes it as the function's first argument); ``layer_of``
    maps ``id()`` of the twin's modules to their layer index."""
    found = _TWINS.get(hf_model, {}).get(name)
    if found is not None:
        return found
    register_attention(name, function)
    with _LOCK:
        per_model = _TWINS.setdefault(hf_model, {})
        if name in per_model:
            return per_model[name]
        memo = {id(t): t for t in list(hf_model.parameters()) + list(hf_model.buffers())}
        twin = copy.deepcopy(hf_model, memo)  # modules and config copied; tensors shared
        twin.set_attn_implementation(name)
        twin.eval()
        layer_of = {id(mod): i for i, mod in enumerate(attention_modules(twin))}
        per_model[name] = (twin, layer_of)
        return per_model[name]


__all__ = ["register_attention", "eager_weights", "weighted_values", "attention_twin"]
