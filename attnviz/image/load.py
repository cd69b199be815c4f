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
import math
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import CorruptImage, ImageFileNotFound, ImageTooLarge, ImageTooSmall, InvalidParameter, NotAnImage

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
            raise ImageFileNotFound(f"There is no file at {os.fspath(path)!r}: check the path.")
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


# ------------------------------------------------------------------------------- file structure checks
# Walked before Pillow parses anything: files built to exhaust the decoder are refused by their structure.

#: at most this many scans (SOS segments) in a JPEG; libjpeg writes 10 for a progressive colour photo
MAX_JPEG_SCANS = 100
#: at most this many metadata segments (APP0-APP15 and comments) in a JPEG; a camera writes under 20
MAX_JPEG_METADATA_SEGMENTS = 100
#: at most this many bytes of them in all (EXIF, XMP, ICC profiles, thumbnails)
MAX_JPEG_METADATA_BYTES = 4 * 1024 * 1024

# a marker inside entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart marker or more fill bytes
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg_structure(data: bytes) -> tuple[int, int, int]:
    """``(scans, metadata segments, metadata bytes)`` of the first picture of a JPEG, by walking its
    markers (nothing is decoded). Walks until the end of the picture or the first damaged segment."""
    scans = meta = meta_bytes = 0
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            break  # damaged: Pillow says so
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # end of the picture (an MPO's next pictures are not decoded)
            break
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = (data[i + 2] << 8) | data[i + 3]
        if length < 2:
            break
        end = i + 2 + length
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            meta += 1
            meta_bytes += length - 2
        if marker == 0xDA:
            scans += 1
            found = _NEXT_MARKER.search(data, end)
            if found is None:
                break
            end = found.start()
        i = end
    return scans, meta, meta_bytes


def _check_structure(data: bytes, what: str) -> None:
    """Refuse a JPEG with absurdly many scans (each a full decoding pass: 20,000 take minutes) or metadata
    segments (hundreds of EXIF blocks), before Pillow parses it."""
    if not data.startswith(b"\xff\xd8\xff"):
        return
    scans, meta, meta_bytes = jpeg_structure(data)
    if scans > MAX_JPEG_SCANS:
        raise CorruptImage(f"{_cap(what)} is a JPEG of {scans:,} scans (an ordinary one has at most a few dozen, "
                           f"the limit is {MAX_JPEG_SCANS}): re-save it as an ordinary JPEG or PNG.")
    if meta > MAX_JPEG_METADATA_SEGMENTS or meta_bytes > MAX_JPEG_METADATA_BYTES:
        raise CorruptImage(f"{_cap(what)} carries {meta:,} metadata blocks ({meta_bytes / 2**20:.1f} MB; the limit "
                           f"is {MAX_JPEG_METADATA_SEGMENTS} blocks and {MAX_JPEG_METADATA_BYTES / 2**20:.0f} MB): "
                           "re-save it without its metadata, e.g. as PNG.")


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


# ------------------------------------------------------------------------------- conversion to RGB
# Peak memory is bounded (docs/limits.md): every conversion that needs temporaries (16/32-bit and float
# scaling, transparency, colour profiles) runs in strips of about STRIP_PIXELS pixels into one RGB output,
# so a 40-megapixel float TIFF needs its decoded pixels + the RGB result + a few MiB, not 10x the picture.

#: pixels per strip of the conversions above (1 M pixels: float64 temporaries of ~8 MiB)
STRIP_PIXELS = 1 << 20


def _strips(width: int, height: int):
    """``(top, bottom)`` row ranges of about :data:`STRIP_PIXELS` pixels each."""
    rows = max(1, STRIP_PIXELS // max(1, width))
    for top in range(0, height, rows):
        yield top, min(height, top + rows)


def _uint8_rule(dtype: np.dtype, lo: float, hi: float, sixteen_bit: bool = False):
    """The map ``block -> uint8`` that places numbers the same way over the whole picture (see
    :func:`_scale_to_uint8`), given the picture's finite ``lo``/``hi`` (non-finite values count as 0)."""
    if dtype == np.bool_:
        return lambda b: b.astype(np.uint8) * 255
    if sixteen_bit or dtype == np.uint16:
        # rint(v / 257) in integers (257 is odd: never a tie); v in 0..65535
        return lambda b: ((b.astype(np.uint32) * 2 + 257) // 514).astype(np.uint8)

    def clean(b):
        f = b.astype(np.float64)
        finite = np.isfinite(f)
        if not finite.all():
            f[~finite] = 0.0
        return f

    if np.issubdtype(dtype, np.integer):
        if lo >= 0 and hi <= 255:
            return lambda b: clean(b).astype(np.uint8)
        if lo >= 0 and hi <= 65535:
            return lambda b: np.rint(clean(b) / 257.0).astype(np.uint8)
    elif lo >= 0 and hi <= 1.0:
        return lambda b: np.rint(clean(b) * 255.0).astype(np.uint8)
    elif lo >= 0 and hi <= 255.0:
        return lambda b: np.rint(clean(b)).astype(np.uint8)
    if hi <= lo:
        return lambda b: np.zeros(b.shape, dtype=np.uint8)
    return lambda b: np.rint((clean(b) - lo) / (hi - lo) * 255.0).astype(np.uint8)


def _finite_range(blocks) -> tuple[float, float]:
    """min and max over numpy ``blocks``; non-finite values count as 0 (as :func:`_scale_to_uint8` does)."""
    lo, hi = math.inf, -math.inf
    for b in blocks:
        if not b.size:
            continue
        if np.issubdtype(b.dtype, np.floating):
            finite = np.isfinite(b)
            if not finite.all():
                lo, hi = min(lo, 0.0), max(hi, 0.0)
                b = b[finite]
                if not b.size:
                    continue
        lo, hi = min(lo, float(b.min())), max(hi, float(b.max()))
    return (lo, hi) if lo <= hi else (0.0, 0.0)


def _scale_to_uint8(a: np.ndarray, sixteen_bit: bool = False) -> np.ndarray:
    """Greyscale numbers -> uint8 without clipping: 16-bit data spans 0..65535; others are placed by range.

    ``sixteen_bit``: divide by 257 (0..65535 -> 0..255). Otherwise integers in 0..255 stay, integers
    in 0..65535 are treated as 16-bit, floats in [0, 1] are scaled by 255, and anything else is
    stretched from its min to its max. Converted in row strips (bounded temporaries).
    """
    a = np.asarray(a)
    if a.ndim == 0 or not a.size:
        return np.zeros(a.shape, dtype=np.uint8)
    width = int(np.prod(a.shape[1:])) if a.ndim > 1 else 1
    spans = list(_strips(width, a.shape[0]))
    simple = a.dtype == np.bool_ or sixteen_bit or a.dtype == np.uint16
    lo, hi = (0.0, 0.0) if simple else _finite_range(a[t:b] for t, b in spans)
    rule = _uint8_rule(a.dtype, lo, hi, sixteen_bit)
    out = np.empty(a.shape, dtype=np.uint8)
    for t, b in spans:
        out[t:b] = rule(a[t:b])
    return out


def _grey_to_rgb(im: Image.Image, sixteen_bit: bool) -> Image.Image:
    """A 16/32-bit or float greyscale image -> RGB, strip by strip (one pass for the range, one to convert)."""
    w, h = im.size
    spans = list(_strips(w, h))

    def strip(t, b):
        return np.asarray(im.crop((0, t, w, b)))

    if sixteen_bit:
        dtype, lo, hi = np.dtype(np.uint16), 0.0, 0.0
    else:
        dtype = strip(0, min(h, 1)).dtype
        lo, hi = _finite_range(strip(t, b) for t, b in spans)
    rule = _uint8_rule(dtype, lo, hi, sixteen_bit)
    out = Image.new("RGB", (w, h))
    for t, b in spans:
        out.paste(Image.fromarray(rule(strip(t, b)), "L").convert("RGB"), (0, t))
    return out


def _by_strips(im: Image.Image, convert) -> Image.Image:
    """``convert(strip) -> RGB strip`` applied to row strips of ``im``, pasted into one RGB image."""
    w, h = im.size
    out = Image.new("RGB", (w, h))
    for t, b in _strips(w, h):
        out.paste(convert(im.crop((0, t, w, b))), (0, t))
    return out


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    out = Image.new("RGB", rgba.size, (255, 255, 255))
    out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return out


def _to_rgba(im: Image.Image) -> Image.Image:
    try:
        return im.convert("RGBA")
    except ValueError:  # La (premultiplied) has no direct path
        return im.convert("LA").convert("RGBA")


def _profile_transform(im: Image.Image, mode: str):
    """A LittleCMS transform of ``im`` to sRGB (its embedded profile; CIELAB's own for LAB), or None."""
    try:
        from PIL import ImageCms

        if mode == "LAB":
            src = ImageCms.createProfile("LAB")
        else:
            icc = im.info.get("icc_profile")
            if not icc:
                return None
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.buildTransform(src, ImageCms.createProfile("sRGB"), mode, "RGB")
    except Exception:  # a broken or unusual profile: fall back to Pillow's plain conversion
        return None


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, correctly: transparency on white, 16/32-bit and float scaled (not clipped),
    1-bit to black/white, CMYK through its ICC profile when present, CIELAB through LittleCMS.

    Peak memory: the input, the RGB output and a strip of temporaries (:data:`STRIP_PIXELS`)."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode.startswith("I;16"):
        return _grey_to_rgb(im, sixteen_bit=True)
    if mode in ("I", "F"):
        return _grey_to_rgb(im, sixteen_bit=False)
    if mode == "1":
        return im.convert("L").convert("RGB")
    if mode == "P":
        if "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA"):
            return _by_strips(im, lambda s: _composite_on_white(s.convert("RGBA")))
        return im.convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _by_strips(im, lambda s: _composite_on_white(_to_rgba(s)))
    if mode in ("CMYK", "LAB"):
        transform = _profile_transform(im, mode)
        if transform is not None:
            try:
                from PIL import ImageCms

                return _by_strips(im, lambda s: ImageCms.applyTransform(s, transform))
            except Exception:
                pass
        return im.convert("RGB")
    try:
        return im.convert("RGB")
    except ValueError:
        raise CorruptImage(f"This image uses the colour mode {mode!r}, which cannot be shown in colour: "
                           "re-save it as an ordinary RGB image.") from None


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _orientation(im: Image.Image) -> int:
    """The EXIF (or XMP) orientation, 1-8; 1 when absent or unreadable."""
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # a damaged EXIF block: the picture as stored
        return 1
    return value if value in _TRANSPOSE else 1


def _upright(im: Image.Image, orientation: int | None = None) -> Image.Image:
    """Apply the EXIF orientation (1-8): the same image when there is nothing to do (no copy)."""
    o = _orientation(im) if orientation is None else orientation
    return im.transpose(_TRANSPOSE[o]) if o in _TRANSPOSE else im


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
        return _by_strips(Image.fromarray(a, "RGBA"), _composite_on_white)
    return Image.fromarray(a, "RGB")


def _detached(im: Image.Image) -> Image.Image:
    """A plain image sharing ``im``'s pixels (no copy), free of its file object and metadata."""
    try:
        out = im._new(im.im)
    except Exception:  # a Pillow without _new: one copy
        out = im.copy()
    out.info = {}
    return out


def load_image(source, *, max_pixels: int = MAX_IMAGE_PIXELS, max_bytes: int = MAX_FILE_BYTES) -> Image.Image:
    """Open ``source`` as an upright RGB PIL image at full resolution.

    ``source``: a path, bytes, a binary file object (e.g. a streamlit upload), a PIL image or a numpy
    array. Raises :class:`NotAnImage` (empty file, not an image, missing file), :class:`CorruptImage`
    (damaged, truncated, or built to exhaust the decoder), :class:`ImageTooLarge` (more than ``max_pixels``
    pixels or ``max_bytes`` bytes) or :class:`ImageTooSmall` (no pixels), each with a sentence that says
    what to do. Peak memory: the decoded picture + twice its RGB size + a few MiB (docs/limits.md).
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _check_pixels(source.width, source.height, max_pixels)
        try:
            source.load()
        except _DECODE_ERRORS as err:
            raise CorruptImage(f"The image is damaged and cannot be decoded ({type(err).__name__}).") from None
        out = _upright(to_rgb(source), _orientation(source))
        return out.copy() if out is source else out
    data, what = _read_source(source, max_bytes)
    _check_structure(data, what)
    im = _open_bytes(data, what, max_pixels)
    orientation = _orientation(im)
    rgb = to_rgb(im)
    rgb = _detached(rgb) if rgb is im else rgb  # RGB as decoded: keep those pixels, drop the file
    im.close()
    del im  # the decoded pixels go before the upright copy is made
    return _upright(rgb, orientation)  # a fresh image (or rgb itself) without EXIF/ICC: they no longer apply


def configured_max_pixels(env=None) -> int:
    """The deployment's decompression-bomb limit: ``ATTNVIZ_MAX_IMAGE_PIXELS`` (:mod:`attnviz.settings`), else
    :data:`MAX_IMAGE_PIXELS`. Only that variable is read, so a bad setting of another feature cannot stop
    images from loading; a malformed value raises :class:`InvalidParameter` naming the variable."""
    from ..settings import load_settings

    env = os.environ if env is None else env
    raw = env.get("ATTNVIZ_MAX_IMAGE_PIXELS")
    return load_settings({} if raw is None else {"ATTNVIZ_MAX_IMAGE_PIXELS": raw}).max_image_pixels


def load_upload(source, name: str | None = None, *, env=None, max_bytes: int = MAX_FILE_BYTES) -> Image.Image:
    """The one loader for what users upload (pages, the CLI): :func:`load_image` under the deployment's
    limits (:func:`configured_max_pixels`: ``ATTNVIZ_MAX_IMAGE_PIXELS``), with ``name`` in its messages.

    ``source``: bytes, a binary file object (a streamlit upload) or a path. ``env``: the environment to read
    the settings from (default ``os.environ``). Errors as :func:`load_image`."""
    max_pixels = configured_max_pixels(env)
    label = _name_label(name) if name else None
    try:
        return load_image(source, max_pixels=max_pixels, max_bytes=max_bytes)
    except (NotAnImage, CorruptImage, ImageTooLarge, ImageTooSmall) as err:
        if label is None:
            raise
        text = str(err)
        for generic in ("The upload", "the upload"):
            if generic in text:
                raise type(err)(text.replace(generic, label, 1)) from None
        raise


def _name_label(name: str) -> str:
    """A file name fit for an error sentence: its base name, printable characters only, quoted, at most 60."""
    base = re.split(r"[\\/]", str(name))[-1]
    clean = "".join(ch if ch.isprintable() else "_" for ch in base)[:60] or "the upload"
    return f"'{clean}'"


def image_digest(data: bytes) -> str:
    """A content hash of the file bytes (the page's cache key)."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()

