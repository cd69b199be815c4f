"""A heatmap drawn over a photo: pure functions, arrays in, arrays (or PNG bytes) out.

Like pytorch-grad-cam's ``show_cam_on_image``, nothing here knows about the UI::

    rgb = show_attention_on_image(photo, scores, cmap="cividis", opacity=0.5)   # (H, W, 3) uint8
    rgb = show_attention_on_image(photo, weights, grid=res.grid, show_grid=True, query=(2, 3))  # patches
    rgb, scale = show_attention_on_image(photo, weights, grid=res.grid, query=(2, 3), exclude_query=True,
                                         return_scale=True)   # scale.vmax: the top of the other patches
    png = png_bytes(rgb)

* ``photo``: ``(H, W, 3)`` uint8 RGB (or a PIL image); ``scores``: a ``(rows, cols)`` map, one value per patch.
* The map is upsampled smoothly (bicubic, clipped to the map's range so it cannot overshoot) to the
  photo's full size, so each patch's value sits at the patch's centre.
* Colours come from :func:`attnviz.render.colormap` (colour-blind-safe ``cividis`` by default).
* Weight is also the colour's alpha, like the token view where a weight of 0 reads as plain text: a pixel
  at the bottom of the scale is the photo's own pixel, and the colour's alpha rises linearly to
  ``opacity`` at ``fade`` (default :data:`FADE`, a fifth of the scale) and stays there up to the top. So
  the photo stays clear where attention is low instead of lying under a uniform veil. ``fade=0`` gives
  the old uniform blend.
* ``opacity`` 0 returns the photo's pixels unchanged; 1 shows the colour map alone above ``fade``.
* ``exclude_query=True`` scales the colours over the other patches only (the query patch, often the
  largest weight of its own row by far, is outlined; a value off the scale is drawn at the scale's nearer
  end, the top colour above it, the bottom below it): see :func:`attention_scale`.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import InvalidParameter
from .render import DEFAULT_COLORMAP, colormap, legend, normalise

#: the part of the colour scale over which the colour's alpha rises from 0 (the photo) to ``opacity``
FADE = 0.2

#: resampling filters for :func:`upsample`
UPSAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
              "nearest": Image.Resampling.NEAREST}


def as_rgb_array(image) -> np.ndarray:
    """A PIL image or an ``(H, W, 3)`` array -> ``(H, W, 3)`` uint8 (no copy when it already is one)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB") if image.mode != "RGB" else image)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise InvalidParameter(f"Expected an (H, W, 3) uint8 RGB image, got shape {arr.shape} and dtype {arr.dtype}.")
    return arr


def _as_map(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    if v.ndim != 2 or v.size == 0:
        raise InvalidParameter(f"The score map must be a non-empty (rows, cols) array, got shape {v.shape}.")
    if not np.isfinite(v).all():
        raise InvalidParameter("The score map contains NaN or infinite values.")
    return v


def upsample(values, height: int, width: int, method: str = "bicubic") -> np.ndarray:
    """``(rows, cols) -> (height, width)`` float32, each cell's value centred on its cell.

    Bicubic overshoot is clipped to the map's own [min, max], so no pixel is hotter than the hottest patch.
    """
    v = _as_map(values)
    if method not in UPSAMPLING:
        raise InvalidParameter(f"Unknown upsampling {method!r}: choose one of {', '.join(UPSAMPLING)}.")
    if height < 1 or width < 1:
        raise InvalidParameter(f"The output size must be at least 1 x 1, got {height} x {width}.")
    if v.shape == (height, width):
        return v.copy()
    big = np.asarray(Image.fromarray(v, mode="F").resize((int(width), int(height)), UPSAMPLING[method]))
    return np.clip(big, v.min(), v.max())


def colorize(values01, cmap=DEFAULT_COLORMAP) -> np.ndarray:
    """Values in [0, 1] ``(...)`` -> ``(..., 3)`` uint8 through a 256-entry lookup table."""
    lut = colormap(cmap).lut if isinstance(cmap, str) else np.asarray(getattr(cmap, "lut", cmap), dtype=np.uint8)
    if lut.shape != (256, 3):
        raise InvalidParameter("A colour map must be a name or a (256, 3) uint8 lookup table.")
    t = np.clip(np.asarray(values01, dtype=np.float32), 0.0, 1.0)  # a fresh array: safe to edit in place
    np.nan_to_num(t, copy=False)
    t *= 255.0
    t += 0.5  # non-negative, so truncation after +0.5 rounds
    idx = t.astype(np.uint8)
    return lut[idx]


def blend(image, heat, opacity: float = 0.5) -> np.ndarray:
    """``image * (1 - opacity) + heat * opacity`` in exact integer arithmetic (opacity 0 -> ``image``)."""
    img, hm = as_rgb_array(image), as_rgb_array(heat)
    if img.shape != hm.shape:
        raise InvalidParameter(f"Image {img.shape} and heatmap {hm.shape} must have the same shape.")
    a = check_opacity(opacity)
    if a == 0.0:
        return img.copy()
    if a == 1.0:
        return hm.copy()
    w = int(round(a * 256))
    out = img.astype(np.uint16)
    out *= 256 - w
    out += hm.astype(np.uint16) * w
    out >>= 8
    return out.astype(np.uint8)


def check_opacity(opacity) -> float:
    try:
        a = float(opacity)
    except (TypeError, ValueError):
        raise InvalidParameter(f"The opacity must be a number between 0 and 1, got {opacity!r}.") from None
    if not 0.0 <= a <= 1.0:
        raise InvalidParameter(f"The opacity must be between 0 and 1, got {opacity!r}.")
    return a


def line_width(height: int, width: int) -> int:
    """A line width that stays visible when the picture is shown scaled to ~800 px."""
    return max(1, round(max(height, width) / 800))


def draw_grid_lines(image, row_edges: Sequence[int], col_edges: Sequence[int], color=(255, 255, 255),
                    width: int | None = None) -> np.ndarray:
    """Thin lines on the inner patch borders (``row_edges``/``col_edges`` in pixels, outer edges included)."""
    out = as_rgb_array(image).copy()
    h, w = out.shape[:2]
    lw = width or line_width(h, w)
    c = np.asarray(color, dtype=np.uint8)
    for y in list(row_edges)[1:-1]:
        y0 = int(np.clip(y - lw // 2, 0, h - 1))
        out[y0:y0 + lw, :] = c
    for x in list(col_edges)[1:-1]:
        x0 = int(np.clip(x - lw // 2, 0, w - 1))
        out[:, x0:x0 + lw] = c
    return out


def outline_box(image, box: tuple[int, int, int, int], width: int | None = None,
                color=(255, 255, 255), border=(0, 0, 0)) -> np.ndarray:
    """A rectangle around ``box = (left, top, right, bottom)`` (right/bottom exclusive): a light line
    inside a dark one, so it shows on any photo and any colour map."""
    out = as_rgb_array(image).copy()
    h, w = out.shape[:2]
    lw = width or max(2, line_width(h, w) * 2)
    left, top, right, bottom = (int(v) for v in box)
    left, top = max(0, left), max(0, top)
    right, bottom = min(w, right), min(h, bottom)
    if right <= left or bottom <= top:
        raise InvalidParameter(f"The box {box} lies outside the {w} x {h} image.")
    for inset, col in ((0, border), (lw, color), (2 * lw, border)):
        x0, y0, x1, y1 = left + inset, top + inset, right - inset, bottom - inset
        if x1 - x0 < 1 or y1 - y0 < 1:
            break
        k = lw if inset < 2 * lw else max(1, lw // 2)
        c = np.asarray(col, dtype=np.uint8)
        out[y0:min(y1, y0 + k), x0:x1] = c
        out[max(y0, y1 - k):y1, x0:x1] = c
        out[y0:y1, x0:min(x1, x0 + k)] = c
        out[y0:y1, max(x0, x1 - k):x1] = c
    return out


def _levels(values01, height: int, width: int, method: str) -> Image.Image:
    """Values in [0, 1] ``(rows, cols)`` -> an 8-bit "L" image of ``width x height`` (0..255 = the scale)."""
    # +0.5: Pillow's float -> 8-bit conversion truncates; interpolation weights sum to 1, so the shift survives
    v = np.clip(_as_map(values01), 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)
    if method not in UPSAMPLING:
        raise InvalidParameter(f"Unknown upsampling {method!r}: choose one of {', '.join(UPSAMPLING)}.")
    f = Image.fromarray(np.ascontiguousarray(v, dtype=np.float32), mode="F")
    if f.size != (width, height):
        f = f.resize((int(width), int(height)), UPSAMPLING[method])
    return f.convert("L")  # clips to 0..255: no bicubic overshoot past the map's range


def _lut(cmap) -> np.ndarray:
    lut = colormap(cmap).lut if isinstance(cmap, str) else np.asarray(getattr(cmap, "lut", cmap), dtype=np.uint8)
    if lut.shape != (256, 3):
        raise InvalidParameter("A colour map must be a name or a (256, 3) uint8 lookup table.")
    return lut.astype(np.uint8)


def _coloured(levels: Image.Image, lut: np.ndarray) -> Image.Image:
    idx = levels.copy()
    idx.putpalette(lut.tobytes())  # L -> P
    return idx.convert("RGB")


def heat_image(values01, height: int, width: int, cmap=DEFAULT_COLORMAP, method: str = "bicubic") -> Image.Image:
    """Values in [0, 1] ``(rows, cols)`` -> an RGB PIL heatmap of ``width x height``, all in Pillow's C code.

    The same result as ``colorize(upsample(values01 * 255 ...))`` up to rounding, but ~5x faster on a
    12-megapixel photo: the map is scaled to 0..255 first (interpolation is linear, so the order does not
    matter), upsampled as a float image, clipped and rounded to 8 bits by Pillow, then coloured through
    the 256-entry palette.
    """
    return _coloured(_levels(values01, height, width, method), _lut(cmap))


def check_fade(fade) -> float:
    try:
        f = float(fade)
    except (TypeError, ValueError):
        raise InvalidParameter(f"The fade must be a number between 0 and 1, got {fade!r}.") from None
    if not 0.0 <= f <= 1.0:
        raise InvalidParameter(f"The fade must be between 0 and 1, got {fade!r}.")
    return f


def alpha_table(opacity: float, fade: float = FADE) -> np.ndarray:
    """``(256,)`` uint8: the colour's alpha (0..255) at each level of the scale (level 0 = the bottom).

    ``alpha(level) = 255 * opacity * min(1, level / (255 * fade))``: 0 (the photo itself) at the bottom,
    ``opacity`` from ``fade`` up; ``fade = 0`` is a uniform ``opacity``."""
    a, f = check_opacity(opacity), check_fade(fade)
    ramp = np.ones(256) if f == 0.0 else np.minimum(1.0, np.arange(256) / (255.0 * f))
    return np.round(255.0 * a * ramp).astype(np.uint8)


@dataclass(frozen=True)
class OverlayScale:
    """The colour scale an overlay was drawn with: what its legend should say.

    ``vmin``/``vmax``: the values at the bottom and top colour. ``query_excluded``: the scale was taken over
    the patches other than the query; ``query_value`` is then the query patch's own value (it may lie
    above ``vmax``: "off the scale"), else ``None``."""

    vmin: float
    vmax: float
    query_excluded: bool = False
    query_value: float | None = None

    @property
    def query_off_scale(self) -> bool:
        return self.query_value is not None and self.query_value > self.vmax


def attention_scale(values, *, vmin: float | None = None, vmax: float | None = None,
                    exclude: int | None = None) -> OverlayScale:
    """The overlay's colour scale for a map (any shape): its min and max, or those of every value but the
    flat (row-major) index ``exclude``. ``vmin``/``vmax`` given fix that end."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if exclude is None:
        others = v
    else:
        if not 0 <= int(exclude) < v.size:
            raise InvalidParameter(f"The query patch {exclude} is not one of the map's {v.size} patches.")
        if v.size < 2:
            raise InvalidParameter("Leaving the query patch out of the scale needs at least two patches.")
        others = np.delete(v, int(exclude))
    others = others[np.isfinite(others)]
    lo = float(vmin) if vmin is not None else (float(others.min()) if others.size else 0.0)
    hi = float(vmax) if vmax is not None else (float(others.max()) if others.size else 1.0)
    return OverlayScale(lo, hi, exclude is not None, None if exclude is None else float(v[int(exclude)]))


def show_attention_on_image(image, values, *, cmap=DEFAULT_COLORMAP, opacity: float = 0.5,
                            vmin: float | None = None, vmax: float | None = None, method: str = "bicubic",
                            grid=None, show_grid: bool = False, query=None, exclude_query: bool = False,
                            fade: float = FADE, return_scale: bool = False,
                            grid_lines: tuple[Sequence[int], Sequence[int]] | None = None,
                            outline: tuple[int, int, int, int] | None = None):
    """The photo with the per-patch map drawn over it: ``(H, W, 3)`` uint8 at the photo's size.

    The one function every photo view draws with (the image page, the lab, the hard cases, How it works).

    ``values``: a ``(rows, cols)`` map, or the ``rows * cols`` weights in row-major order when ``grid`` is
    given. ``grid``: the :class:`attnviz.image.PatchGrid` the values belong to, at any resolution (it is laid
    over the photo's own size); with it, ``show_grid`` draws the patch borders and ``query`` — ``(row, col)``
    or a row-major index — frames that patch. ``vmin``/``vmax`` fix the colour scale (default: the map's min
    and max). Without a grid, ``grid_lines = (row_edges, col_edges)`` and ``outline = (left, top, right,
    bottom)`` are in the photo's pixels.

    Each pixel is ``photo * (1 - alpha) + colour * alpha`` with ``alpha`` from :func:`alpha_table`
    (``opacity`` at the top part of the scale, falling to 0 — the photo as it is — at the bottom over
    ``fade``). ``exclude_query=True`` (needs ``grid`` and ``query``) takes the scale over the other patches
    only: the brightest of them gets the top colour, and the query patch is outlined; its own value is
    clipped to the scale like any other (above the top: the top colour; below the bottom: the bottom, i.e.
    the photo itself). ``return_scale=True`` returns ``(rgb, OverlayScale)``, the scale the legend should state.
    """
    a = check_opacity(opacity)
    alphas = alpha_table(a, fade)
    if isinstance(image, Image.Image):
        base = image if image.mode == "RGB" else image.convert("RGB")
    else:
        base = Image.fromarray(as_rgb_array(image), "RGB")
    g = None
    qi = None
    if grid is not None:
        g = grid.scaled(base.width, base.height)
        flat = np.asarray(values)
        if flat.size != g.rows * g.cols:
            raise InvalidParameter(f"{flat.size} values do not fit a {g.rows} x {g.cols} patch grid.")
        values = flat.reshape(g.rows, g.cols)
        if query is not None:
            r, c = g.check(*(divmod(int(query), g.cols) if np.ndim(query) == 0 else query))
            qi = r * g.cols + c
    elif show_grid or query is not None:
        raise InvalidParameter("show_grid and query need the patch grid: pass grid=.")
    if exclude_query and qi is None:
        raise InvalidParameter("exclude_query leaves the query patch out of the scale: pass grid= and query=.")
    v = _as_map(values)
    scale = attention_scale(v, vmin=vmin, vmax=vmax, exclude=qi if exclude_query else None)
    scaled, _, _ = normalise(v, scale.vmin, scale.vmax)
    if g is not None and show_grid:
        grid_lines = (g.row_edges, g.col_edges)
    if qi is not None:
        outline = g.box(*divmod(qi, g.cols))
    # np.asarray(PIL image) is one copy (read-only); the lines and the outline below copy it again anyway
    pixels = np.asarray if grid_lines is not None or outline is not None else np.array
    if a == 0.0:
        out = pixels(base)
    else:
        levels = _levels(scaled, base.height, base.width, method)
        heat = _coloured(levels, _lut(cmap))
        if alphas.min() == alphas.max() == 255:
            out = pixels(heat)
        elif alphas.min() == alphas.max():  # a uniform veil (fade = 0)
            out = pixels(Image.blend(base, heat, a))
        else:
            out = pixels(Image.composite(heat, base, levels.point(alphas.tolist())))
    if grid_lines is not None:
        out = draw_grid_lines(out, grid_lines[0], grid_lines[1])
    if outline is not None:
        out = outline_box(out, outline)
    return (out, scale) if return_scale else out


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def colorbar(vmin: float, vmax: float, cmap=DEFAULT_COLORMAP, *, length: int = 256, thickness: int = 18,
             ticks: int = 5, label: str | None = None, vertical: bool = True, font_size: int = 12,
             fade: float = 0.0) -> np.ndarray:
    """A colour bar with numeric tick labels as an RGB array (white background, grey frame).

    Vertical: low values at the bottom, labels on the right. Horizontal: low values on the left,
    labels below (fewer ticks when the labels would not fit). ``fade``: draw the bottom of the scale fading
    into the white background as :func:`show_attention_on_image` fades it into the photo (pass the same
    ``fade``, e.g. :data:`FADE`); 0 draws every colour in full.
    """
    if length < 8 or thickness < 2:
        raise InvalidParameter("A colour bar needs length >= 8 and thickness >= 2.")
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def labels_for(n: int) -> list[str]:  # the ticks of the one legend model, which legend_html draws too
        return [t.text for t in legend(vmin, vmax, getattr(cmap, "name", cmap), label or "", n).ticks]

    ticks = max(2, int(ticks))
    labels = labels_for(ticks)
    text_w = max(int(probe.textlength(t, font=font)) for t in labels)
    if not vertical:
        while ticks > 2 and (length / (ticks - 1)) < text_w + 6:
            ticks -= 1
        labels = labels_for(ticks)
        text_w = max(int(probe.textlength(t, font=font)) for t in labels)
    label_w = int(probe.textlength(label, font=font)) + 4 if label else 0
    title_h = font_size + 6 if label else 0
    pad = font_size // 2 + 2
    ramp = np.linspace(0.0, 1.0, length, dtype=np.float32)
    strip = colorize(ramp, cmap).astype(np.float64)  # (length, 3), low to high
    alpha = alpha_table(1.0, fade)[np.floor(ramp * 255 + 0.5).astype(int)][:, None] / 255.0
    strip = np.round(strip * alpha + 255.0 * (1 - alpha)).astype(np.uint8)
    if vertical:
        bar = np.repeat(strip[::-1, None, :], thickness, axis=1)
        x0, y0 = 1, pad + title_h
        size = (max(x0 + thickness + 7 + text_w + 4, label_w), y0 + length + pad)
    else:
        bar = np.repeat(strip[None, :, :], thickness, axis=0)
        x0, y0 = max(1, text_w // 2 + 2), title_h + 1
        size = (max(x0 + length + text_w // 2 + 4, label_w + x0), y0 + thickness + 6 + font_size + 6)
    canvas = Image.new("RGB", size, "white")
    canvas.paste(Image.fromarray(bar), (x0, y0))
    d = ImageDraw.Draw(canvas)
    bw, bh = bar.shape[1], bar.shape[0]
    d.rectangle([x0 - 1, y0 - 1, x0 + bw, y0 + bh], outline=(96, 96, 96))  # frame outside the colours
    for i, t in enumerate(labels):
        f = i / (len(labels) - 1)
        if vertical:
            y = y0 + round((length - 1) * (1 - f))
            d.line([x0 + bw + 1, y, x0 + bw + 5, y], fill=(0, 0, 0))
            d.text((x0 + bw + 7, y), t, fill=(0, 0, 0), font=font, anchor="lm")
        else:
            x = x0 + round((length - 1) * f)
            d.line([x, y0 + bh + 1, x, y0 + bh + 5], fill=(0, 0, 0))
            d.text((x, y0 + bh + 6), t, fill=(0, 0, 0), font=font, anchor="mt")
    if label:
        d.text((x0 if not vertical else 0, 1), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_strategy(level: int) -> int:
    """The stdlib fallback's zlib strategy: Huffman codes alone at level 1 (on the Up-filtered rows of a photo
    overlay, 17-27 % less CPU time than run-length matching for 0.4-1.7 % more bytes, china.jpg and flower.jpg
    at 427 x 640), run-length matching at levels 2 and 3 (level 0 stores)."""
    return zlib.Z_HUFFMAN_ONLY if level == 1 else zlib.Z_RLE


@functools.cache
def isal_zlib():
    """ISA-L's zlib (the ``isal`` package) when it is installed, else ``None`` (the encoder then uses the
    standard library's zlib); imported on the first PNG. Its levels 1-3 deflate a photo overlay 3x faster than
    zlib's Huffman-only level 1, into a smaller file (china.jpg's 320 x 480 overlay: 1.4 vs 4.1 ms, 279 vs
    291 kB)."""
    try:
        from isal import isal_zlib as module
    except ImportError:
        return None
    return module


def deflate(data, level: int) -> bytes:
    """One zlib stream of ``data`` at ``level`` 0-3: 0 stores; 1-3 are ISA-L's levels 1-3 when ``isal`` is
    installed, else zlib's level with :func:`png_strategy`."""
    fast = isal_zlib() if level > 0 else None
    if fast is not None:
        return fast.compress(data, level)
    z = zlib.compressobj(level, zlib.DEFLATED, 15, 8, png_strategy(level))
    return z.compress(data) + z.flush()


def _png_rgb_fast(arr: np.ndarray, level: int) -> bytes:
    """An 8-bit RGB PNG with every row "Up"-filtered (row minus the row above, numpy) and deflated by
    :func:`deflate`: on a 640 x 427 photo overlay 1.9 ms with ISA-L (4.6 ms with zlib's Huffman-only level 1,
    33 ms with Pillow's per-row adaptive filters), for a file a few per cent larger than Pillow's."""
    h, w, _ = arr.shape
    rows = arr.reshape(h, w * 3)
    raw = np.empty((h, w * 3 + 1), np.uint8)
    raw[:, 0] = 2  # filter type 2, "Up"; the first row's "above" is zeros, so it is the row itself
    raw[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=raw[1:, 1:])  # uint8 wrap-around is PNG's modulo-256 arithmetic
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", deflate(raw.data, level)) + _chunk(b"IEND", b""))


#: levels up to this use the fast encoder (what the pages send); higher levels (saved reports) use Pillow's
#: adaptive filters, which make smaller files more slowly
FAST_PNG_MAX_LEVEL = 3


def png_bytes(image, compress_level: int = 1) -> bytes:
    """PNG bytes of an RGB array or PIL image. Levels 0-3 (default 1, what the pages send): the fast encoder
    (Up filter, ISA-L's deflate or zlib's, see :func:`deflate`); 4-9: Pillow's encoder (smaller files, several times slower)."""
    level = int(compress_level)
    if not 0 <= level <= 9:
        raise InvalidParameter(f"compress_level must be 0..9, got {compress_level!r}.")
    if level <= FAST_PNG_MAX_LEVEL:
        arr = as_rgb_array(image if not isinstance(image, Image.Image) or image.mode == "RGB" else image.convert("RGB"))
        return _png_rgb_fast(np.ascontiguousarray(arr), level)
    if isinstance(image, Image.Image):
        im = image if image.mode == "RGB" else image.convert("RGB")
    else:
        im = Image.fromarray(as_rgb_array(image), "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=level)
    return buf.getvalue()


__all__ = ["UPSAMPLING", "FADE", "OverlayScale", "attention_scale", "alpha_table", "check_fade", "as_rgb_array", "upsample", "colorize", "blend", "check_opacity", "draw_grid_lines",
           "outline_box", "heat_image", "show_attention_on_image", "colorbar", "png_bytes", "line_width"]
