"""Safe image loading: bytes, files, uploads, PIL images and arrays -> an upright RGB PIL image.

JPEG, PNG, WebP, GIF (first frame), BMP, TIFF; nothing else is even parsed (Pillow can open formats such
as EPS that run external programs). The EXIF orientation is applied; every mode becomes RGB
(transparency composited on white, 16-bit scaled rather than clipped, CMYK through its ICC profile when
it has one). Limits: :data:`MAX_IMAGE_PIXELS` pixels (a decompression-bomb guard, checked from the
header before any pixel is decoded) and :data:`MAX_FILE_BYTES` bytes. Pages and the CLI call
:func:`load_upload`, which applies the deployment's limit (``ATTNVIZ_MAX_IMAGE_PIXELS``).

Nothing here changes process-wide state: the header is read through Pillow's format plugins directly, so
Pillow's own ``DecompressionBombWarning`` is never raised (our limit is checked first, on every call).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import CorruptImage, ImageTooLarge, ImageTooSmall, InvalidParameter, NotAnImage

#: the only formats Pillow may parse (the JPEG reader also opens phones' multi-picture MPO files)
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
#: what the file chooser accepts
UPLOAD_TYPES = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")
#: decompression-bomb guard: at most 40 megapixels (e.g. 8000 x 5000); Pillow's own limit is 89.5 MP
MAX_IMAGE_PIXELS = 40_000_000
#: files above this many bytes are refused before decoding (64 MiB)
MAX_FILE_BYTES = 64 * 1024 * 1024

_FORMATS_TEXT = "JPEG, PNG, WebP, GIF, BMP or TIFF"


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


def _open_header(data: bytes) -> Image.Image | None:
    """Pillow's ``Image.open`` restricted to :data:`SUPPORTED_FORMATS`, minus its bomb check.

    That check reads the process-wide ``Image.MAX_IMAGE_PIXELS`` and warns (a ``DecompressionBombWarning``
    that only a global warning filter could stop) between 89 and 179 megapixels; ours runs right after,
    on the header's size, before any pixel is decoded. Returns None when no supported format accepts the bytes.
    """
    fp = io.BytesIO(data)
    prefix = data[:16]
    for fmt in SUPPORTED_FORMATS:
        if fmt not in Image.OPEN:
            Image.init()
        factory, accept = Image.OPEN[fmt]
        accepted = not accept or accept(prefix)
        if isinstance(accepted, str) or not accepted:  # a str is Pillow's "looks like it, but" warning
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # what Image.open does: try the next format
    return None


def _open_bytes(data: bytes, what: str, max_pixels: int) -> Image.Image:
    head = data[:32]
    try:
        im = _open_header(data)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        # Pillow's own message names its internal limit (178956970 pixels), not ours: say ours, in megapixels
        declared = re.search(r"\((\d+) pixels\)", str(err))
        size = f"{int(declared.group(1)) / 1e6:,.0f} megapixels" if declared else "more pixels than allowed"
        raise ImageTooLarge(f"{_cap(what)} declares {size}; the limit is {max_pixels / 1e6:g} megapixels "
                            "(a guard against decompression bombs). Downscale it first.") from None
    except _DECODE_ERRORS as err:
        raise CorruptImage(f"{_cap(what)} is damaged or cut short and cannot be opened ({type(err).__name__}): "
                           "re-export or re-download it.") from None
    if im is None:
        fmt = _sniff(head)
        if fmt:
            raise CorruptImage(f"{_cap(what)} starts like a {fmt} file but its header is damaged: "
                               "re-export or re-download it.") from None
        raise NotAnImage(f"{_cap(what)} is not an image this app can read: choose a {_FORMATS_TEXT} file."
                         + _unsupported_hint(head)) from None
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


def configured_max_pixels(env=None) -> int:
    """The deployment's decompression-bomb limit: ``ATTNVIZ_MAX_IMAGE_PIXELS`` (:mod:`attnviz.settings`), else
    :data:`MAX_IMAGE_PIXELS`. Only that variable is read, so a bad setting of another feature cannot stop
    images from loading; a malformed value raises :class:`InvalidParameter` naming the variable."""
    from ..settings import load_settings

    env = os.environ if env is None else env
    raw = env.get("ATTNVIZ_MAX_IMAGE_PIXELS")
    return load_settings({} if raw is None else {"ATTNVIZ_MAX_IMAGE_PIXELS": raw}).max_image_pixels


def image_digest(data: bytes) -> str:
    """A content hash of the file bytes (the page's cache key)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()

