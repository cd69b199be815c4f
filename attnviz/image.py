"""Images: safe loading, the patch grid, patch features, parallel attention over the patches.

The pipeline, each step cacheable on its own::

    image = load_image(source)                 # upright RGB PIL image, full resolution
    feats = compute_features(image, patch=32)  # PatchFeatures: grid + (rows*cols, d) features   (slow part)
    res = attend_patches(image, feats, similarity="cosine", temperature=0.1, query=(3, 4))  # fast part
    res.to_png(); res.to_json(); res.to_html(); res.save("overlay.png")

    res = analyze_image("photo.jpg", similarity="cosine", query=(3, 4))   # all of it in one call

Loading (:func:`load_image`)
    JPEG, PNG, WebP, GIF (first frame), BMP, TIFF; nothing else is even parsed (Pillow can open
    formats such as EPS that run external programs). The EXIF orientation is applied; every mode
    becomes RGB (transparency composited on white, 16-bit scaled rather than clipped, CMYK through
    its ICC profile when it has one). Limits: :data:`MAX_IMAGE_PIXELS` pixels (a decompression-bomb
    guard, checked from the header before any pixel is decoded; Pillow's own
    ``DecompressionBombWarning`` is turned into an error too) and :data:`MAX_FILE_BYTES` bytes.

Computing
    Features are computed on a copy whose long side is at most :data:`MAX_COMPUTE_SIDE` pixels
    (never fewer than 4 pixels per patch); overlays are drawn on the full-resolution image.

The patch grid (:func:`patch_grid`)
    ``rows = round(height / patch)``, ``cols = round(width / patch)`` (at least 1, at most one patch
    per pixel), with cell edges spread evenly, so the cells cover the whole picture and are all about
    ``patch`` pixels (a photo smaller than a patch is one cell; a 1-pixel-high strip is one row).
    At most :data:`MAX_PATCHES` cells.

Features (:func:`patch_features`, the default ``"handcrafted"`` extractor; deterministic)
    per patch, computed on the compute copy:

    * colour: mean CIELAB L*, a*, b* (D65) — a perceptual space, where distance ~ visible difference;
    * texture: standard deviation of L*, a*, b*; mean log gradient magnitude of L*; a 6-bin
      histogram of gradient orientations (0-180°, weighted by magnitude; flat patches get a uniform one);
    * position (optional): the patch centre's (y, x), weighted by ``position_weight`` (default 0).

    Each feature is standardised over the image's patches (z-score, with a floor on the spread so
    that invisible differences are not blown up); then each group is scaled by
    ``weight / sqrt(group size)`` so that colour and texture count equally by default.

    A local pretrained network can be used instead (``extractor="path/to/model.pt2"``), see
    :func:`load_extractor` for the accepted formats.

Attention (:func:`attend_patches`)
    :class:`attnviz.models.ParallelAttention` over all patches at once, with the chosen similarity
    and temperature. Views: ``"query"`` (a patch's row: what it attends to), ``"received"``
    (attention each patch receives, averaged over all queries) and ``"pooling"`` (the pooling
    weights against the image's mean feature).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import math
import os
import re
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CorruptImage, ImageTooLarge, ImageTooSmall, InvalidParameter, ModelNotFound, NotAnImage

#: the only formats Pillow may parse (the JPEG reader also opens phones' multi-picture MPO files)
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: what the file chooser accepts
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
#: decompression-bomb guard: at most 40 megapixels (e.g. 8000 x 5000); Pillow's own limit is 89.5 MP
MAX_IMAGE_PIXELS = 40_000_000
#: files above this many bytes are refused before decoding (64 MiB)
MAX_FILE_BYTES = 64 * 1024 * 1024
#: features are computed on a copy whose long side is at most this many pixels
MAX_COMPUTE_SIDE = 1024
#: at least this many compute pixels per patch along each axis (when the image has them)
MIN_COMPUTE_CELL = 4
#: most patches in a grid (the attention matrix is patches x patches)
MAX_PATCHES = 4096
#: default grid: this many patches along the image's long side
DEFAULT_PATCHES_LONG_SIDE = 24
#: names of the views
VIEWS = ("query", "received", "pooling")

# Pillow warns (DecompressionBombWarning) above its own limit; a warning does not stop decoding, so we
# make it an error. This filter is installed once at import (not per call: warnings.catch_warnings is
# not thread-safe), and our own check (MAX_IMAGE_PIXELS, far below Pillow's) runs on every call anyway.
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

_FORMATS_TEXT = "JPEG, PNG, WebP, GIF, BMP or TIFF"


# --------------------------------------------------------------------------------------------- loading

def _sniff(head: bytes) -> str | None:
    """The format the first bytes announce (to tell a damaged image from a non-image), or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head[:2] == b"BM" and len(head) >= 14:
        return "BMP"
    return None


def _unsupported_hint(head: bytes) -> str:
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"):
        return " It looks like a HEIC/AVIF photo: export it as JPEG or PNG first."
    stripped = head.lstrip()
    if stripped[:4] == b"<svg" or stripped[:5] == b"<?xml":
        return " It looks like an SVG drawing: export it as PNG first."
    if head[:4] == b"%PDF":
        return " It looks like a PDF document."
    return ""


def _describe(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return f"'{os.path.basename(os.fspath(source))}'"
    return "the upload"


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _read_source(source, max_bytes: int) -> tuple[bytes, str]:
    """Bytes of a path, bytes-like or binary file object (refusing more than ``max_bytes``)."""
    what = _describe(source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise NotAnImage(f"There is no file at {os.fspath(path)!r}: check the path.")
        if path.is_dir():
            raise NotAnImage(f"{os.fspath(path)!r} is a folder, not an image file.")
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise ImageTooLarge(f"{what} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB. "
                                    "Save a smaller copy first.")
            with open(path, "rb") as f:
                data = f.read(max_bytes + 1)
        except OSError as err:
            raise NotAnImage(f"Cannot read {what}: {err.strerror or err}.") from None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        try:
            if hasattr(source, "seek"):
                try:
                    source.seek(0)
                except (OSError, ValueError):
                    pass
            data = source.read(max_bytes + 1)
        except (OSError, ValueError) as err:
            raise NotAnImage(f"Cannot read the upload: {err}.") from None
        if isinstance(data, str):
            raise InvalidParameter("Open the image file in binary mode ('rb'), not as text.")
        data = bytes(data)
    else:
        raise InvalidParameter(f"Cannot load an image from a {type(source).__name__}: give a path, bytes, a binary "
                               "file, a PIL image or a numpy array.")
    if len(data) > max_bytes:
        raise ImageTooLarge(f"{_cap(what)} is larger than {max_bytes / 2**20:.0f} MB: save a smaller copy first.")
    if not data:
        raise NotAnImage(f"{_cap(what)} is empty (0 bytes): choose a {_FORMATS_TEXT} image.")
    return data, what


def _check_pixels(width: int, height: int, max_pixels: int, what: str = "The image") -> None:
    if width < 1 or height < 1:
        raise ImageTooSmall(f"{what} has no pixels ({width} x {height}).")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"{what} is {width} x {height} = {width * height / 1e6:.1f} megapixels; the limit is "
            f"{max_pixels / 1e6:g} megapixels (a guard against decompression bombs). Downscale it first.")


_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError,
                  TypeError, ZeroDivisionError, AttributeError, RuntimeError, Image.DecompressionBombError,
                  Image.DecompressionBombWarning)


def _open_bytes(data: bytes, what: str, max_pixels: int) -> Image.Image:
    head = data[:32]
    try:
        im = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # Pillow's own message names its internal limit (178956970 pixels), not ours: say ours, in megapixels
        declared = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(declared.group(1)) / 1e6:,.0f} megapixels" if declared else "more pixels than allowed"
        raise ImageTooLarge(f"{_cap(what)} declares {size}; the limit is {max_pixels / 1e6:g} megapixels "
                            "(a guard against decompression bombs). Downscale it first.") from None
    except UnidentifiedImageError:
        fmt = _sniff(head)
        if fmt:
            raise CorruptImage(f"{_cap(what)} starts like a {fmt} file but its header is damaged: "
                               "re-export or re-download it.") from None
        raise NotAnImage(f"{_cap(what)} is not an image this app can read: choose a {_FORMATS_TEXT} file."
                         + _unsupported_hint(head)) from None
    except _DECODE_ERRORS as err:
        raise CorruptImage(f"{_cap(what)} is damaged or cut short and cannot be opened ({type(err).__name__}): "
                           "re-export or re-download it.") from None
    _check_pixels(im.width, im.height, max_pixels, _cap(what))
    try:
        im.seek(0)  # animated GIF / WebP / APNG, multi-page TIFF: the first frame
        im.load()
    except _DECODE_ERRORS as err:
        reason = "cut short" if "truncated" in str(err).lower() else "damaged"
        raise CorruptImage(f"{_cap(what)} is {reason} and cannot be decoded ({type(err).__name__}): "
                           "re-export or re-download it.") from None
    return im


def _scale_to_uint8(a: np.ndarray, sixteen_bit: bool = False) -> np.ndarray:
    """Greyscale numbers -> uint8 without clipping: 16-bit data spans 0..65535; others are placed by range.

    ``sixteen_bit``: divide by 257 (0..65535 -> 0..255). Otherwise integers in 0..255 stay, integers
    in 0..65535 are treated as 16-bit, floats in [0, 1] are scaled by 255, and anything else is
    stretched from its min to its max.
    """
    a = np.asarray(a)
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if sixteen_bit or a.dtype == np.uint16:
        return np.rint(a.astype(np.float32) / 257.0).astype(np.uint8)
    f = a.astype(np.float64)
    finite = np.isfinite(f)
    if not finite.all():
        f = np.where(finite, f, 0.0)
    lo, hi = (float(f.min()), float(f.max())) if f.size else (0.0, 0.0)
    if np.issubdtype(a.dtype, np.integer):
        if lo >= 0 and hi <= 255:
            return f.astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return np.rint(f / 257.0).astype(np.uint8)
    elif lo >= 0 and hi <= 1.0:
        return np.rint(f * 255.0).astype(np.uint8)
    elif lo >= 0 and hi <= 255.0:
        return np.rint(f).astype(np.uint8)
    if hi <= lo:
        return np.zeros(f.shape, dtype=np.uint8)
    return np.rint((f - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _icc_to_srgb(im: Image.Image, mode_in: str) -> Image.Image | None:
    icc = im.info.get("icc_profile")
    if not icc:
        return None
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception:  # a broken or unusual profile: fall back to Pillow's plain conversion
        return None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, correctly: transparency on white, 16/32-bit and float scaled (not clipped),
    1-bit to black/white, CMYK through its ICC profile when present, CIELAB through LittleCMS."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16"):
        return Image.fromarray(_scale_to_uint8(np.asarray(im), sixteen_bit=True), "L").convert("RGB")
    if mode in ("I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(im)), "L").convert("RGB")
    if mode == "1":
        return im.convert("L").convert("RGB")
    if mode == "P":
        if "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA"):
            return _composite_on_white(im.convert("RGBA"))
        return im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        try:
            rgba = im.convert("RGBA")
        except ValueError:  # La (premultiplied) has no direct path
            rgba = im.convert("LA").convert("RGBA")
        return _composite_on_white(rgba)
    if mode == "CMYK":
        return _icc_to_srgb(im, mode) or im.convert("RGB")
    if mode == "LAB":
        try:
            from PIL import ImageCms

            return ImageCms.profileToProfile(im, ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"),
                                             outputMode="RGB")
        except Exception:
            return im.convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        raise CorruptImage(f"This image uses the colour mode {mode!r}, which cannot be shown in colour: "
                           "re-save it as an ordinary RGB image.") from None


def _upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation (1-8); a damaged EXIF block leaves the picture as stored."""
    try:
        return ImageOps.exif_transpose(im)
    except Exception:
        return im


def _from_array(a: np.ndarray, max_pixels: int) -> Image.Image:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise InvalidParameter(f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got {a.shape}.")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageTooSmall(f"The image array has no pixels (shape {a.shape}).")
    _check_pixels(a.shape[1], a.shape[0], max_pixels, "The image array")
    if a.dtype != np.uint8:
        a = _scale_to_uint8(a)  # all channels together, so colours keep their balance
    a = np.ascontiguousarray(a)
    if a.ndim == 2:
        return Image.fromarray(a, "L").convert("RGB")
    if a.shape[2] == 4:
        return _composite_on_white(Image.fromarray(a, "RGBA"))
    return Image.fromarray(a, "RGB")


def load_image(source, *, max_pixels: int = MAX_IMAGE_PIXELS, max_bytes: int = MAX_FILE_BYTES) -> Image.Image:
    """Open ``source`` as an upright RGB PIL image at full resolution.

    ``source``: a path, bytes, a binary file object (e.g. a streamlit upload), a PIL image or a numpy
    array. Raises :class:`NotAnImage` (empty file, not an image, missing file), :class:`CorruptImage`
    (damaged or truncated), :class:`ImageTooLarge` (more than ``max_pixels`` pixels or ``max_bytes``
    bytes) or :class:`ImageTooSmall` (no pixels), each with a sentence that says what to do.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, max_pixels)
        try:
            source.load()
        except _DECODE_ERRORS as err:
            raise CorruptImage(f"The image is damaged and cannot be decoded ({type(err).__name__}).") from None
        out = to_rgb(_upright(source))
        return out.copy() if out is source else out
    data, what = _read_source(source, max_bytes)
    with _open_bytes(data, what, max_pixels) as im:
        upright = _upright(im)
        _check_pixels(upright.width, upright.height, max_pixels, _cap(what))
        out = to_rgb(upright)
        if out is im:
            out = im.copy()
    out.info.clear()  # EXIF/ICC no longer describe these pixels
    return out


def image_digest(data: bytes) -> str:
    """A content hash of the file bytes (the page's cache key)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def compute_size(width: int, height: int, rows: int = 1, cols: int = 1,
                 max_side: int = MAX_COMPUTE_SIDE) -> tuple[int, int]:
    """``(w, h)`` of the copy features are computed on: long side <= ``max_side``, but at least
    :data:`MIN_COMPUTE_CELL` pixels per patch (never more than the original)."""
    scale = min(1.0, max_side / max(width, height))
    w = min(width, max(round(width * scale), cols * MIN_COMPUTE_CELL, 1))
    h = min(height, max(round(height * scale), rows * MIN_COMPUTE_CELL, 1))
    return int(w), int(h)


def downscale(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """A high-quality smaller copy (antialiased); the same image when ``size`` is its size."""
    if image.size == tuple(size):
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def thumbnail(image: Image.Image, max_side: int) -> Image.Image:
    """A copy whose long side is at most ``max_side`` (for display)."""
    w, h = image.size
    s = min(1.0, max_side / max(w, h))
    return downscale(image, (max(1, round(w * s)), max(1, round(h * s))))


# ------------------------------------------------------------------------------------------ patch grid

def _edges(n_cells: int, length: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.floor(np.linspace(0, length, n_cells + 1) + 0.5))


@dataclass(frozen=True)
class PatchGrid:
    """``rows x cols`` cells covering a ``width x height`` picture; cell (r, c) spans
    ``row_edges[r]:row_edges[r+1]`` and ``col_edges[c]:col_edges[c+1]`` (pixels)."""

    width: int
    height: int
    rows: int
    cols: int
    row_edges: tuple[int, ...]
    col_edges: tuple[int, ...]

    @classmethod
    def of(cls, width: int, height: int, rows: int, cols: int) -> "PatchGrid":
        rows, cols = max(1, min(int(rows), height)), max(1, min(int(cols), width))
        return cls(int(width), int(height), rows, cols, _edges(rows, height), _edges(cols, width))

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def n(self) -> int:
        return self.rows * self.cols

    @property
    def patch_size(self) -> tuple[float, float]:
        """Mean cell ``(height, width)`` in pixels."""
        return self.height / self.rows, self.width / self.cols

    def box(self, row: int, col: int) -> tuple[int, int, int, int]:
        """``(left, top, right, bottom)`` of a cell, right/bottom exclusive."""
        self.check(row, col)
        return self.col_edges[col], self.row_edges[row], self.col_edges[col + 1], self.row_edges[row + 1]

    def check(self, row: int, col: int) -> tuple[int, int]:
        try:
            r, c = int(row), int(col)
        except (TypeError, ValueError):
            raise InvalidParameter(f"A patch is (row, col) in whole numbers, got ({row!r}, {col!r}).") from None
        if not (0 <= r < self.rows and 0 <= c < self.cols):
            raise InvalidParameter(f"Patch ({r}, {c}) is outside the {self.rows} x {self.cols} grid: rows go "
                                   f"from 0 to {self.rows - 1} and columns from 0 to {self.cols - 1}.")
        return r, c

    def index(self, row: int, col: int) -> int:
        r, c = self.check(row, col)
        return r * self.cols + c

    def locate(self, x: float, y: float) -> tuple[int, int]:
        """The cell under pixel ``(x, y)`` (clamped to the grid)."""
        r = int(np.searchsorted(self.row_edges, y, side="right")) - 1
        c = int(np.searchsorted(self.col_edges, x, side="right")) - 1
        return min(max(r, 0), self.rows - 1), min(max(c, 0), self.cols - 1)

    def locate_display(self, x: float, y: float, shown_width: float, shown_height: float) -> tuple[int, int]:
        """The cell under a click at ``(x, y)`` on a copy shown at ``shown_width x shown_height``."""
        if shown_width <= 0 or shown_height <= 0:
            raise InvalidParameter("The displayed image size must be positive.")
        return self.locate(x * self.width / shown_width, y * self.height / shown_height)

    def scaled(self, width: int, height: int) -> "PatchGrid":
        """The same rows x cols laid over a resized copy of the picture."""
        if (width, height) == (self.width, self.height):
            return self
        return PatchGrid.of(width, height, self.rows, self.cols)

    def centres(self) -> np.ndarray:
        """``(rows*cols, 2)`` cell centres ``(y, x)`` in [0, 1] (row-major)."""
        ys = (np.asarray(self.row_edges[:-1]) + np.asarray(self.row_edges[1:])) / (2 * self.height)
        xs = (np.asarray(self.col_edges[:-1]) + np.asarray(self.col_edges[1:])) / (2 * self.width)
        yy, xx = np.meshgrid(ys, xs, indexing="ij")
        return np.stack([yy.ravel(), xx.ravel()], axis=1)

    def to_dict(self) -> dict:
        return {"rows": self.rows, "cols": self.cols, "width": self.width, "height": self.height,
                "row_edges": list(self.row_edges), "col_edges": list(self.col_edges)}


def _size_of(image) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        return int(image.shape[1]), int(image.shape[0])
    if isinstance(image, (tuple, list)) and len(image) == 2:
        return int(image[0]), int(image[1])
    raise InvalidParameter("patch_grid takes a PIL image, an (H, W[, C]) array or a (width, height) size.")


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool):
        raise InvalidParameter(f"{what} must be a whole number of at least 1, got {value!r}.")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidParameter(f"{what} must be a whole number of at least 1, got {value!r}.") from None
    if not math.isfinite(v) or v < 1 or v != int(v):
        raise InvalidParameter(f"{what} must be a whole number of at least 1, got {value!r}.")
    return int(v)


def patch_grid(image, patch: int | None = None, grid: int | tuple[int, int] | None = None,
               max_patches: int = MAX_PATCHES) -> PatchGrid:
    """Cut ``image`` (PIL image, array or ``(width, height)``) into a grid of patches.

    ``patch``: the patch side in pixels (cells of about that size; ``rows = round(h / patch)``, at
    least 1). ``grid``: ``(rows, cols)``, or one number = patches along the long side (square-ish
    cells). Neither: :data:`DEFAULT_PATCHES_LONG_SIDE` along the long side. Rows/cols never exceed
    the pixels available, so a picture smaller than a patch is a single cell and a 1 x N strip is one row.
    """
    width, height = _size_of(image)
    if width < 1 or height < 1:
        raise ImageTooSmall(f"The image has no pixels ({width} x {height}).")
    if patch is not None and grid is not None:
        raise InvalidParameter("Give a patch size or a grid size, not both.")
    if patch is not None:
        p = _positive_int(patch, "The patch size")
        rows, cols = math.floor(height / p + 0.5), math.floor(width / p + 0.5)
    else:
        if grid is None:
            grid = DEFAULT_PATCHES_LONG_SIDE
        if isinstance(grid, (tuple, list)):
            if len(grid) != 2:
                raise InvalidParameter(f"The grid is (rows, cols), got {grid!r}.")
            rows, cols = _positive_int(grid[0], "The number of rows"), _positive_int(grid[1], "The number of columns")
        else:
            g = _positive_int(grid, "The grid size")
            side = max(width, height) / g
            rows, cols = math.floor(height / side + 0.5), math.floor(width / side + 0.5)
    g = PatchGrid.of(width, height, max(1, rows), max(1, cols))
    if g.n > max_patches:
        smallest = smallest_patch(width, height, max_patches)
        raise InvalidParameter(f"{g.rows} x {g.cols} = {g.n} patches is more than the {max_patches} allowed for a "
                               f"{width} x {height} image: use patches of {smallest} pixels or more.")
    return g


def smallest_patch(width: int, height: int, max_patches: int = MAX_PATCHES) -> int:
    """The smallest patch size (pixels) that keeps a ``width x height`` grid within ``max_patches``."""
    p = max(1, math.ceil(math.sqrt(width * height / max_patches)))
    while True:
        rows = min(height, max(1, math.floor(height / p + 0.5)))
        cols = min(width, max(1, math.floor(width / p + 0.5)))
        if rows * cols <= max_patches:
            return p
        p += 1


# ------------------------------------------------------------------------------------------- features

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
_COLOUR = slice(0, 3)
_TEXTURE = slice(3, 7 + ORIENTATION_BINS)
# spreads below these are invisible (about one just-noticeable colour difference): not blown up by z-scoring
_FLOORS = np.array([2.0, 2.0, 2.0] + [1.0, 1.0, 1.0, 0.1] + [0.05] * ORIENTATION_BINS)


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
        z = standardise(raw, _FLOORS)
        z[:, _COLOUR] *= colour_weight / math.sqrt(3)
        z[:, _TEXTURE] *= texture_weight / math.sqrt(_TEXTURE.stop - _TEXTURE.start)
    else:
        model = extractor if isinstance(extractor, FeatureExtractor) else load_extractor(extractor)
        raw = model.patch_features(image, grid, device=device)
        z = standardise(raw, 1e-3) / math.sqrt(raw.shape[1])
    if position_weight > 0:
        pos = standardise(grid.centres(), 1e-6) * (position_weight / math.sqrt(2))
        z = np.concatenate([z, pos], axis=1)
    return np.ascontiguousarray(z, dtype=np.float32)


# ------------------------------------------------------------------------ pretrained feature extractor

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
    ``None`` feeds the compute copy at its own size. Each patch's feature is the feature map averaged
    over the patch (the map is bilinearly resized onto the patch grid).
    """

    def __init__(self, module, name: str, input_size: tuple[int, int] | None = None):
        self.module = module
        self.name = name
        self.input_size = input_size
        self._lock = threading.Lock()

    def feature_map(self, image, device=None):
        import torch

        rgb = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32) / 255.0
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        if self.input_size is not None:
            x = torch.nn.functional.interpolate(x, size=tuple(self.input_size), mode="bilinear", align_corners=False,
                                                antialias=True)
        from .devices import run_with_fallback
        from .errors import AttnvizError

        def forward(dev):
            with self._lock, torch.inference_mode():  # one call at a time: .to() moves the shared module
                mod = self.module.to(dev) if hasattr(self.module, "to") else self.module
                return mod(x.to(dev))

        try:  # a GPU that runs out of memory falls back to the CPU
            y, _, _ = run_with_fallback(forward, "cpu" if device is None else device)
        except AttnvizError:
            raise
        except Exception as err:
            raise InvalidParameter(f"The feature model {self.name!r} failed on a {tuple(x.shape)} input "
                                   f"({type(err).__name__}: {str(err)[:200]}).") from None
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


_EXTRACTORS: dict[tuple, FeatureExtractor] = {}
_EXTRACTORS_LOCK = threading.Lock()


def load_extractor(path: str | os.PathLike, input_size: tuple[int, int] | None = None) -> FeatureExtractor:
    """Load a local feature network (see :class:`FeatureExtractor` for the formats); cached per file."""
    p = Path(path)
    if not p.is_file():
        raise ModelNotFound(f"No feature model file at {os.fspath(p)!r}: give a .pt2 (torch.export) or "
                            "TorchScript .pt file.")
    st = p.stat()
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size, tuple(input_size) if input_size else None)
    with _EXTRACTORS_LOCK:
        if key in _EXTRACTORS:
            return _EXTRACTORS[key]
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
    fe = FeatureExtractor(module, p.name, input_size)
    with _EXTRACTORS_LOCK:
        _EXTRACTORS[key] = fe
    return fe


# --------------------------------------------------------------------------- features of a whole image

@dataclass
class PatchFeatures:
    """What :func:`compute_features` returns: the grid (full-resolution pixels) and its features.

    Small and picklable (no pixels), so a page can cache it with ``st.cache_data``.
    """

    grid: PatchGrid
    features: np.ndarray  # (rows*cols, d) float32
    extractor: str
    compute_size: tuple[int, int]  # (w, h) of the copy the features came from
    position_weight: float = 0.0
    names: tuple[str, ...] = ()


def compute_features(image: Image.Image, patch: int | None = None, grid=None, *, position_weight: float = 0.0,
                     colour_weight: float = 1.0, texture_weight: float = 1.0, extractor=None, device=None,
                     max_compute_side: int = MAX_COMPUTE_SIDE, max_patches: int = MAX_PATCHES) -> PatchFeatures:
    """Grid the upright image and compute every patch's features on a downscaled copy (the slow step)."""
    if not isinstance(image, Image.Image):
        image = load_image(image)
    full = patch_grid(image, patch=patch, grid=grid, max_patches=max_patches)
    cw, ch = compute_size(image.width, image.height, full.rows, full.cols, max_compute_side)
    small = downscale(image if image.mode == "RGB" else image.convert("RGB"), (cw, ch))
    feats = patch_features(small, full.scaled(cw, ch), colour_weight=colour_weight, texture_weight=texture_weight,
                           position_weight=position_weight, extractor=extractor, device=device)
    if extractor is None or extractor == "handcrafted":
        name, names = "handcrafted", HANDCRAFTED_FEATURES
    else:
        name = extractor.name if isinstance(extractor, FeatureExtractor) else Path(extractor).name
        names = tuple(f"f{i}" for i in range(feats.shape[1] - (2 if position_weight > 0 else 0)))
    if position_weight > 0:
        names = tuple(names) + ("pos_y", "pos_x")
    return PatchFeatures(full, feats, name, (cw, ch), float(position_weight), tuple(names))


# ----------------------------------------------------------------------------------------- attention

def _run_parallel(device, features: np.ndarray, similarity: str, temperature: float, query_index: int | None):
    import torch

    from .models import ParallelAttention

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
    ``scores`` is the map of the current ``view``.
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
    cmap: str = "cividis"
    opacity: float = 0.5
    show_grid: bool = False

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

    def overlay(self, image: Image.Image | None = None, *, cmap: str | None = None, opacity: float | None = None,
                show_grid: bool | None = None, outline_query: bool = True, max_side: int | None = None) -> np.ndarray:
        """The heatmap over the photo, ``(H, W, 3)`` uint8: on ``image`` (a resized copy of the same
        photo, e.g. for display), else on the full-resolution image (or a copy with long side ``max_side``)."""
        from .overlay import show_attention_on_image

        base = image if image is not None else (thumbnail(self.image, max_side) if max_side else self.image)
        g = self.grid.scaled(base.width, base.height)
        outline = g.box(*self.query) if (outline_query and self.view == "query" and self.query is not None) else None
        return show_attention_on_image(
            base, self.scores, cmap=cmap or self.cmap, opacity=self.opacity if opacity is None else opacity,
            grid_lines=(g.row_edges, g.col_edges) if (self.show_grid if show_grid is None else show_grid) else None,
            outline=outline)

    def colorbar(self, cmap: str | None = None, **kw) -> np.ndarray:
        from .overlay import colorbar

        s = self.scores
        return colorbar(float(s.min()), float(s.max()), cmap or self.cmap, label=kw.pop("label", "weight"), **kw)

    def to_png(self, **kw) -> bytes:
        """The overlay as PNG bytes at the image's full size (keywords as :meth:`overlay`)."""
        from .overlay import png_bytes

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
        if self.warning:
            d["warning"] = self.warning
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

    def to_html(self, max_side: int = 1024) -> str:
        """A self-contained figure: the overlay (long side <= ``max_side``) and its colour bar as base64
        PNG data URIs, a caption with every user-visible string escaped. No JavaScript, no CDN."""
        from .overlay import png_bytes

        overlay = base64.b64encode(png_bytes(self.overlay(max_side=max_side), compress_level=6)).decode("ascii")
        bar = base64.b64encode(png_bytes(self.colorbar(length=200), compress_level=6)).decode("ascii")
        caption = (f"{self.view_label} — similarity {self.similarity}, T = {self.temperature:g}, "
                   f"{self.grid.rows} × {self.grid.cols} patches, {self.width} × {self.height} px, {self.device}")
        return ('<figure class="attnviz-image" style="margin:0;display:inline-block">'
                '<div style="display:flex;align-items:flex-start;gap:8px">'
                f'<img alt="{html.escape(caption, quote=True)}" style="max-width:100%;height:auto" '
                f'src="data:image/png;base64,{overlay}">'
                f'<img alt="colour bar" src="data:image/png;base64,{bar}"></div>'
                f'<figcaption style="font-size:0.85em">{html.escape(caption)}</figcaption></figure>')

    def _repr_html_(self) -> str:
        return self.to_html(max_side=640)

    def save(self, path: str | os.PathLike) -> Path:
        """Write by extension: ``.png`` (full-size overlay), ``.json``, ``.csv``, ``.html``."""
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix == ".png":
            data: bytes | str = self.to_png()
        elif suffix == ".json":
            data = self.to_json(all_views=True, indent=1)
        elif suffix == ".csv":
            data = self.to_csv()
        elif suffix in (".html", ".htm"):
            data = "<!doctype html><meta charset='utf-8'><title>attnviz</title>" + self.to_html()
        else:
            raise InvalidParameter(f"Cannot save as {suffix or 'a file without extension'}: use .png, .json, .csv "
                                   "or .html.")
        try:
            if isinstance(data, bytes):
                p.write_bytes(data)
            else:
                p.write_text(data, encoding="utf-8")
        except OSError as err:
            raise InvalidParameter(f"Cannot write {os.fspath(p)!r}: {err.strerror or err}.") from None
        return p


def _round_list(a: np.ndarray) -> list:
    return np.round(np.asarray(a, dtype=np.float64), 8).tolist()


def attend_patches(image: Image.Image, features: PatchFeatures, similarity: str = "cosine",
                   temperature: float | None = None, query: tuple[int, int] | None = None, view: str | None = None,
                   device=None, cmap: str = "cividis", opacity: float = 0.5, show_grid: bool = False) -> ImageAnalysis:
    """Parallel attention over cached ``features`` (the fast step: switching similarity, temperature or
    query only runs this). ``view`` defaults to ``"query"`` when a query is given, else ``"received"``."""
    from .attention import check_temperature
    from .devices import run_with_fallback
    from .overlay import check_opacity
    from .render import colormap
    from .similarity import get_similarity

    sim = get_similarity(similarity)
    t = check_temperature(sim.default_temperature if temperature is None else temperature)
    if not isinstance(image, Image.Image):
        image = load_image(image)
    grid = features.grid
    if (image.width, image.height) != (grid.width, grid.height):
        raise InvalidParameter(f"The features are for a {grid.width} x {grid.height} image, not "
                               f"{image.width} x {image.height}.")
    q = grid.check(*query) if query is not None else None
    view = view or ("query" if q is not None else "received")
    if view not in VIEWS:
        raise InvalidParameter(f"Unknown view {view!r}: choose one of {', '.join(VIEWS)}.")
    if view == "query" and q is None:
        raise InvalidParameter("The 'query' view needs a query patch: give (row, col).")
    colormap(cmap)  # validate early
    check_opacity(opacity)
    qi = grid.index(*q) if q is not None else None
    (row, received, pooling), used, warning = run_with_fallback(
        _run_parallel, device, features.features, sim.name, t, qi)
    shape = grid.shape
    return ImageAnalysis(
        image=image, grid=grid, similarity=sim.name, temperature=t, device=used, view=view, query=q,
        row=None if row is None else row.reshape(shape), received=received.reshape(shape),
        pooling=pooling.reshape(shape), extractor=features.extractor, warning=warning, cmap=cmap,
        opacity=float(opacity), show_grid=bool(show_grid))


def analyze_image(image_or_path, similarity: str = "cosine", temperature: float | None = None,
                  patch: int | None = None, grid=None, query: tuple[int, int] | None = None, view: str | None = None,
                  device=None, *, position_weight: float = 0.0, extractor=None, cmap: str = "cividis",
                  opacity: float = 0.5, show_grid: bool = False, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageAnalysis:
    """Load, grid, featurise and attend in one call (see the module docstring).

    ``temperature=None`` uses the similarity's default; ``query=(row, col)`` selects a patch;
    ``view`` is ``"query"``, ``"received"`` or ``"pooling"``.
    """
    image = load_image(image_or_path, max_pixels=max_pixels)
    feats = compute_features(image, patch=patch, grid=grid, position_weight=position_weight, extractor=extractor,
                             device=device)
    return attend_patches(image, feats, similarity=similarity, temperature=temperature, query=query, view=view,
                          device=device, cmap=cmap, opacity=opacity, show_grid=show_grid)


# ------------------------------------------------------------------------------------------- samples

#: the sample photos shipped in attnviz/assets (credits in attnviz/assets/LICENSES.md)
SAMPLES = {
    "Summer Palace, Beijing (photo)": (
        "china.jpg", "Sky, a temple, trees and a lake: click the sky and see it attend to sky."),
    "Dahlia (photo)": (
        "flower.jpg", "An orange flower on dark leaves: click the flower and see it attend to the flower."),
    "Shapes (synthetic)": (
        "shapes.png", "Red discs and yellow squares on sky and grass, drawn by attnviz.image.synthetic_scene."),
}


def sample_path(name: str) -> Path:
    """Path of a sample by its :data:`SAMPLES` name or file name."""
    from importlib.resources import files

    fname = SAMPLES[name][0] if name in SAMPLES else name
    if fname not in {f for f, _ in SAMPLES.values()}:
        raise InvalidParameter(f"Unknown sample {name!r}: choose one of {', '.join(SAMPLES)}.")
    return Path(str(files("attnviz.assets").joinpath(fname)))


def synthetic_scene(width: int = 480, height: int = 320, seed: int = 4) -> np.ndarray:
    """A deterministic test picture ``(height, width, 3)`` uint8: a sky gradient over textured grass,
    three red discs and two yellow squares (alike shapes should attend to each other)."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - y) * np.array([110, 160, 230]) + y * np.array([190, 215, 245])
    img = np.broadcast_to(sky, (height, width, 3)).copy()
    horizon = int(height * 0.55)
    grass = np.array([70, 140, 60]) + rng.normal(0, 12, (height - horizon, width, 1))
    img[horizon:] = grass
    yy, xx = np.mgrid[0:height, 0:width]
    r = max(4, round(min(width, height) * 0.09))
    for cx, cy in ((0.18, 0.25), (0.62, 0.2), (0.4, 0.78)):
        img[(xx - cx * width) ** 2 + (yy - cy * height) ** 2 <= r * r] = (200, 40, 40)
    s = max(4, round(min(width, height) * 0.16))
    for cx, cy in ((0.85, 0.3), (0.75, 0.75)):
        x0, y0 = round(cx * width - s / 2), round(cy * height - s / 2)
        img[max(0, y0):y0 + s, max(0, x0):x0 + s] = (240, 200, 40)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


__all__ = [
    "SUPPORTED_FORMATS", "UPLOAD_TYPES", "MAX_IMAGE_PIXELS", "MAX_FILE_BYTES", "MAX_COMPUTE_SIDE", "MAX_PATCHES",
    "DEFAULT_PATCHES_LONG_SIDE", "VIEWS", "HANDCRAFTED_FEATURES", "load_image", "to_rgb", "image_digest",
    "compute_size", "downscale", "thumbnail", "PatchGrid", "patch_grid", "smallest_patch", "rgb_to_lab",
    "handcrafted_features", "standardise", "patch_features", "FeatureExtractor", "load_extractor",
    "PatchFeatures", "compute_features", "ImageAnalysis", "attend_patches", "analyze_image", "SAMPLES",
    "sample_path", "synthetic_scene",
]
