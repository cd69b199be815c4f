"""A heatmap drawn over a photo: pure functions, arrays in, arrays (or PNG bytes) out.

Like pytorch-grad-cam's ``show_cam_on_image``, nothing here knows about the UI::

    rgb = show_attention_on_image(photo, scores, cmap="cividis", opacity=0.5)   # (H, W, 3) uint8
    png = png_bytes(rgb)

* ``photo``: ``(H, W, 3)`` uint8 RGB (or a PIL image); ``scores``: a ``(rows, cols)`` map, one value per patch.
* The map is upsampled smoothly (bicubic, clipped to the map's range so it cannot overshoot) to the
  photo's full size, so each patch's value sits at the patch's centre.
* Colours come from :func:`attnviz.render.colormap` (colour-blind-safe ``cividis`` by default).
* ``opacity`` 0 returns the photo's pixels unchanged; 1 shows the heatmap alone.
"""

from __future__ import annotations

import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import InvalidParameter
from .render import DEFAULT_COLORMAP, colormap, format_number, normalise

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
        l, t, r, b = left + inset, top + inset, right - inset, bottom - inset
        if r - l < 1 or b - t < 1:
            break
        k = lw if inset < 2 * lw else max(1, lw // 2)
        c = np.asarray(col, dtype=np.uint8)
        out[t:min(b, t + k), l:r] = c
        out[max(t, b - k):b, l:r] = c
        out[t:b, l:min(r, l + k)] = c
        out[t:b, max(l, r - k):r] = c
    return out


def show_attention_on_image(image, values, *, cmap=DEFAULT_COLORMAP, opacity: float = 0.5,
                            vmin: float | None = None, vmax: float | None = None, method: str = "bicubic",
                            grid_lines: tuple[Sequence[int], Sequence[int]] | None = None,
                            outline: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The photo with the ``(rows, cols)`` map drawn over it: ``(H, W, 3)`` uint8 at the photo's size.

    ``vmin``/``vmax`` fix the colour scale (default: the map's min and max); ``grid_lines`` =
    ``(row_edges, col_edges)`` in pixels; ``outline`` = a patch box to frame (the query patch).
    """
    img = as_rgb_array(image)
    h, w = img.shape[:2]
    v = _as_map(values)
    scaled, _, _ = normalise(v, vmin, vmax)
    big = upsample(scaled.astype(np.float32), h, w, method)
    out = blend(img, colorize(big, cmap), opacity)
    if grid_lines is not None:
        out = draw_grid_lines(out, grid_lines[0], grid_lines[1])
    if outline is not None:
        out = outline_box(out, outline)
    return out


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def colorbar(vmin: float, vmax: float, cmap=DEFAULT_COLORMAP, *, length: int = 256, thickness: int = 18,
             ticks: int = 5, label: str | None = None, vertical: bool = True, font_size: int = 12) -> np.ndarray:
    """A colour bar with numeric tick labels as an RGB array (white background).

    Vertical: low values at the bottom, labels on the right. Horizontal: low values on the left,
    labels below.
    """
    if length < 8 or thickness < 2:
        raise InvalidParameter("A colour bar needs length >= 8 and thickness >= 2.")
    ramp = np.linspace(0.0, 1.0, length, dtype=np.float32)
    font = _font(font_size)
    labels = [format_number(vmin + (vmax - vmin) * i / max(1, ticks - 1)) for i in range(max(2, ticks))]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(int(probe.textlength(t, font=font)) for t in labels)
    pad = font_size // 2 + 2
    title_h = font_size + 6 if label else 0
    if vertical:
        bar = colorize(ramp[::-1, None].repeat(thickness, axis=1), cmap)
        W, H = thickness + 6 + text_w + 4, length + 2 * pad + title_h
        canvas = Image.new("RGB", (max(W, int(probe.textlength(label or "", font=font)) + 4), H), "white")
        canvas.paste(Image.fromarray(bar), (0, pad + title_h))
        d = ImageDraw.Draw(canvas)
        d.rectangle([0, pad + title_h, thickness - 1, pad + title_h + length - 1], outline=(96, 96, 96))
        for i, t in enumerate(labels):
            y = pad + title_h + round((length - 1) * (1 - i / (len(labels) - 1)))
            d.line([thickness, y, thickness + 4, y], fill=(0, 0, 0))
            d.text((thickness + 6, y), t, fill=(0, 0, 0), font=font, anchor="lm")
        if label:
            d.text((0, 1), label, fill=(0, 0, 0), font=font)
    else:
        bar = colorize(ramp[None, :].repeat(thickness, axis=0), cmap)
        W, H = length + 2 * pad + text_w, thickness + 6 + font_size + 6 + title_h
        canvas = Image.new("RGB", (W, H), "white")
        x0 = pad + text_w // 2
        canvas.paste(Image.fromarray(bar), (x0, title_h))
        d = ImageDraw.Draw(canvas)
        d.rectangle([x0, title_h, x0 + length - 1, title_h + thickness - 1], outline=(96, 96, 96))
        for i, t in enumerate(labels):
            x = x0 + round((length - 1) * i / (len(labels) - 1))
            d.line([x, title_h + thickness, x, title_h + thickness + 4], fill=(0, 0, 0))
            d.text((x, title_h + thickness + 6), t, fill=(0, 0, 0), font=font, anchor="mt")
        if label:
            d.text((x0, 1), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def png_bytes(image, compress_level: int = 1) -> bytes:
    """PNG bytes of an RGB array or PIL image (level 1: a 12-megapixel overlay encodes in well under a second)."""
    im = image if isinstance(image, Image.Image) else Image.fromarray(as_rgb_array(image), "RGB")
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=int(compress_level))
    return buf.getvalue()


__all__ = ["UPSAMPLING", "as_rgb_array", "upsample", "colorize", "blend", "check_opacity", "draw_grid_lines",
           "outline_box", "show_attention_on_image", "colorbar", "png_bytes", "line_width"]
