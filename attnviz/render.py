"""Rendering shared by the text and image views: colour maps, legends, PNG, CSV, JSON (figures: attnviz.figures).

Pure functions: numbers in, HTML strings / figures / bytes out. Every label that may come from a user
is escaped (``html.escape``) before it reaches HTML or plotly (which reads a subset of HTML in labels);
inline styles are built from numbers only. No CDN, no JavaScript.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import InvalidParameter
from .fmt import plain

# colour-blind-safe, perceptually uniform maps first; cividis is the default (it is designed to read the
# same for red-green colour-blind viewers)
COLORMAPS = ("cividis", "viridis", "inferno", "magma", "plasma")
DEFAULT_COLORMAP = "cividis"


def _hex_to_rgb(h: str) -> tuple[int, int, int]:
    h = h.strip()
    if h.startswith("rgb"):
        return tuple(int(float(v)) for v in h[h.index("(") + 1:h.index(")")].split(",")[:3])  # type: ignore[return-value]
    h = h.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


@dataclass(frozen=True)
class ColorMap:
    """A 256-entry lookup table; ``cmap(values in [0, 1]) -> (..., 3) uint8``."""

    name: str
    lut: np.ndarray  # (256, 3) uint8

    def __call__(self, values) -> np.ndarray:
        v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
        idx = np.clip(np.rint(v * 255.0), 0, 255).astype(np.intp)
        return self.lut[idx]

    def hex(self, value: float) -> str:
        r, g, b = (int(c) for c in self(np.float64(value)))
        return f"#{r:02x}{g:02x}{b:02x}"

    def plotly_scale(self, stops: int = 11) -> list[list]:
        return [[i / (stops - 1), self.hex(i / (stops - 1))] for i in range(stops)]


@lru_cache(maxsize=None)
def colormap(name: str = DEFAULT_COLORMAP) -> ColorMap:
    """A colour map by name (see :data:`COLORMAPS`), interpolated from plotly's published stops."""
    if name not in COLORMAPS:
        raise InvalidParameter(f"Unknown colour map {name!r}: choose one of {', '.join(COLORMAPS)}.")
    import plotly.colors as pc

    stops = np.array([_hex_to_rgb(c) for c in getattr(pc.sequential, name.capitalize())], dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(stops))
    grid = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(grid, xs, stops[:, c]) for c in range(3)], axis=1)
    return ColorMap(name, np.rint(lut).astype(np.uint8))


def relative_luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour (0 = black, 1 = white)."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2])


def text_color_for(rgb) -> str:
    """Black or white, whichever contrasts more with the background ``rgb`` (WCAG contrast ratio)."""
    return _text_color_for(tuple(int(c) for c in rgb))


@lru_cache(maxsize=4096)  # called once per highlighted token with one of at most a few hundred colours
def _text_color_for(rgb: tuple[int, int, int]) -> str:
    lum = relative_luminance(rgb)
    return "#000000" if (lum + 0.05) / 0.05 >= 1.05 / (lum + 0.05) else "#ffffff"


def normalise(values, vmin: float | None = None, vmax: float | None = None) -> tuple[np.ndarray, float, float]:
    """Scale to [0, 1] for a colour map; a constant input maps to 0. Returns (scaled, vmin, vmax)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    lo = float(finite.min()) if vmin is None and finite.size else float(vmin or 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else float(vmax if vmax is not None else 1.0)
    span = hi - lo
    scaled = np.zeros_like(v) if span <= 0 else np.clip((v - lo) / span, 0.0, 1.0)
    return np.nan_to_num(scaled), lo, hi


#: the one number formatter (attnviz.fmt), in its ASCII form: legends drawn into images use it too
format_number = plain


@dataclass(frozen=True)
class Tick:
    position: float  # 0 (vmin) .. 1 (vmax) along the bar
    value: float
    text: str


@dataclass(frozen=True)
class Legend:
    """A colour legend as data: what both the HTML bar (:func:`legend_html`) and the PNG bar
    (``attnviz.overlay.colorbar``) draw, so the two can never disagree."""

    vmin: float
    vmax: float
    cmap_name: str
    label: str
    ticks: tuple[Tick, ...]
    stops: tuple[tuple[float, str], ...]  # (position 0..1, "#rrggbb") along the bar

    def colours(self, positions) -> np.ndarray:
        """``(k,) positions in [0, 1] -> (k, 3) uint8`` colours of the bar at those positions."""
        return colormap(self.cmap_name)(positions)


def legend(vmin: float, vmax: float, cmap_name: str = DEFAULT_COLORMAP, label: str = "attention weight",
           ticks: int = 5, stops: int = 11) -> Legend:
    """The legend of values ``vmin .. vmax`` under a colour map: ``ticks`` evenly spaced numbers (a value
    below 1e-4 of the scale, e.g. 8.7e-11 next to 0.017, is shown as 0) and ``stops`` colour stops."""
    ticks = max(2, int(ticks))
    cmap = colormap(cmap_name)
    tiny = 1e-4 * max(abs(vmin), abs(vmax))
    marks = []
    for i in range(ticks):
        f = i / (ticks - 1)
        v = vmin + (vmax - vmin) * f
        marks.append(Tick(f, v, format_number(0.0 if abs(v) < tiny else v)))
    return Legend(float(vmin), float(vmax), cmap_name, str(label) if label is not None else "", tuple(marks),
                  tuple((i / (stops - 1), cmap.hex(i / (stops - 1))) for i in range(stops)))


def tick_anchor(position: float) -> str:
    """The ``translateX`` of a label at ``position`` (0..1) along a bar, so that it stays inside the bar's width:
    the first labels start at their mark, the last end at it, the others are centred on it."""
    return "0" if position < 0.15 else ("-100%" if position > 0.85 else "-50%")


def legend_html(vmin: float, vmax: float, cmap_name: str = DEFAULT_COLORMAP, label: str = "attention weight",
                ticks: int = 5) -> str:
    """A horizontal colour bar with its numeric scale, as inline-styled HTML (no JS, no CDN)."""
    lg = legend(vmin, vmax, cmap_name, label, ticks)
    gradient = ", ".join(f"{colour} {100 * pos:.0f}%" for pos, colour in lg.stops)
    tick_html = "".join(
        f'<span style="position:absolute;left:{100 * t.position:.1f}%;'
        f'transform:translateX({tick_anchor(t.position)})">'
        f"{html.escape(t.text)}</span>"
        for t in lg.ticks
    )
    return (
        '<div class="attnviz-legend" style="margin:0.5em 0 1.2em 0;max-width:420px;font-size:0.8em">'
        f'<div>{html.escape(lg.label)}</div>'
        f'<div style="height:12px;border:1px solid #888;background:linear-gradient(to right, {gradient})"></div>'
        f'<div style="position:relative;height:1.2em">{tick_html}</div></div>'
    )


def escape_label(label: str) -> str:
    """Escape a user label for plotly, which interprets a subset of HTML (<a>, <b>, <br>) in text."""
    return html.escape(str(label), quote=True)


def unique_labels(labels: list[str], start: int = 0) -> list[str]:
    """``"i·token"`` labels (``i`` from ``start``): unique (plotly merges equal category labels) and escaped."""
    return [f"{i}·{escape_label(t)}" for i, t in enumerate(labels, start)]


def matrix_png(weights, cmap_name: str = DEFAULT_COLORMAP, cell: int | None = None, max_side: int = 2048,
               background=None) -> bytes:
    """The matrix as a PNG (one square per cell, scaled so the longer side is <= ``max_side``), no labels
    (:func:`labelled_matrix_png` adds them and a colour bar). NaN cells (a grid's gaps) are drawn in
    :data:`BACKGROUND` (or ``background``), never in the colour of 0."""
    from PIL import Image

    z = np.asarray(weights, dtype=np.float64)
    if z.ndim != 2 or z.size == 0:
        raise InvalidParameter(f"matrix_png takes a non-empty (n, m) matrix, got shape {z.shape}.")
    rgb = matrix_rgb(z, cmap_name, background=BACKGROUND if background is None else background)
    cell = cell or max(1, min(32, max_side // max(z.shape)))
    img = Image.fromarray(rgb, "RGB").resize((z.shape[1] * cell, z.shape[0] * cell), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _csv_safe(value: str) -> str:
    # spreadsheet apps execute cells that start with these characters (CSV injection)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def weights_csv(weights, row_labels: list[str], col_labels: list[str] | None = None, corner: str = "query \\ key") -> str:
    """A labelled CSV of an ``(n, m)`` matrix (or a ``(m,)`` row); labels guarded against CSV injection."""
    z = np.asarray(weights, dtype=np.float64)
    if z.ndim == 1:
        z = z[None, :]
    col_labels = row_labels if col_labels is None else col_labels
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([corner] + [_csv_safe(str(c)) for c in col_labels])
    for label, row in zip(row_labels, z):
        w.writerow([_csv_safe(str(label))] + [f"{v:.6g}" for v in row])
    return buf.getvalue()


def to_json(obj, **kw) -> str:
    """JSON with numpy/torch arrays turned into lists and non-finite floats refused."""

    def default(o):
        if hasattr(o, "detach"):
            o = o.detach().cpu().numpy()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        raise TypeError(f"cannot serialise {type(o).__name__}")

    return json.dumps(obj, default=default, ensure_ascii=False, allow_nan=False, **kw)


def __getattr__(name: str):
    # the plotly builders moved to attnviz.figures; old imports (``from attnviz.render import matrix_figure``) still work
    if name == "matrix_figure":
        from .figures import matrix_figure

        return matrix_figure
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ------------------------------------------------------------------- labelled pictures and tables

#: what a view's background (and the gaps between a grid's blocks) is drawn in: never a colour of the map
BACKGROUND = (255, 255, 255)
#: above this many tokens an HTML view shows the matrix as a labelled PNG instead of a table of cells
TABLE_MAX_TOKENS = 64


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except Exception:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _short(label, max_chars: int) -> str:
    s = " ".join(str(label).split())  # newlines and tabs would break a one-line label
    return s if len(s) <= max_chars else s[:max_chars - 1] + "…"


def _spaced(labels: list[str], cell: int, font_h: int) -> list[tuple[int, str]]:
    """(index, label) of the non-empty labels that fit: each centre at least ``font_h`` px after the last."""
    kept, last = [], None
    for i, t in enumerate(labels):
        if not t:
            continue
        centre = i * cell + cell / 2
        if last is None or centre - last >= font_h:
            kept.append((i, t))
            last = centre
    return kept


def matrix_rgb(weights, cmap_name: str = DEFAULT_COLORMAP, vmin: float | None = None, vmax: float | None = None,
               background=BACKGROUND) -> np.ndarray:
    """``(n, m)`` values -> ``(n, m, 3)`` uint8: the colour map over ``vmin..vmax`` (default: the finite
    range), NaN cells (a grid's gaps) in ``background``."""
    z = np.asarray(weights, dtype=np.float64)
    scaled, _, _ = normalise(z, vmin, vmax)
    rgb = colormap(cmap_name)(scaled)
    rgb[~np.isfinite(z)] = background
    return rgb


def labelled_matrix_png(weights, row_labels=None, col_labels=None, *, title: str = "",
                        cmap_name: str = DEFAULT_COLORMAP, vmin: float | None = None, vmax: float | None = None,
                        cell: int | None = None, max_side: int = 2048, bar_label: str = "attention weight",
                        font_size: int = 12, max_label_chars: int = 24, background=BACKGROUND) -> bytes:
    """An ``(n, m)`` matrix as a PNG with its labels and a colour bar: row labels on the left, column labels
    above (read upwards; default: the row labels for a square matrix), ``title`` on top, the bar (``vmin..vmax``, default the finite range) on the right.

    Labels are drawn as text by Pillow (never parsed), shortened to ``max_label_chars``; where cells are
    smaller than the font, every label that fits is drawn. NaN cells and the margins are ``background``.
    """
    from PIL import Image, ImageDraw

    from .overlay import colorbar

    z = np.asarray(weights, dtype=np.float64)
    if z.ndim != 2 or z.size == 0:
        raise InvalidParameter(f"labelled_matrix_png takes a non-empty (n, m) matrix, got shape {z.shape}.")
    n, m = z.shape
    if col_labels is None and row_labels is not None and n == m:  # self-attention: the same tokens both ways
        col_labels = row_labels
    rows = [_short(t, max_label_chars) for t in (row_labels if row_labels is not None else [""] * n)]
    cols = [_short(t, max_label_chars) for t in (col_labels if col_labels is not None else [""] * m)]
    if len(rows) != n or len(cols) != m:
        raise InvalidParameter(f"{len(rows)} row and {len(cols)} column labels for a {n} x {m} matrix.")
    finite = z[np.isfinite(z)]
    lo = float(finite.min()) if vmin is None and finite.size else float(vmin if vmin is not None else 0.0)
    hi = float(finite.max()) if vmax is None and finite.size else float(vmax if vmax is not None else 1.0)
    cell = int(cell or max(1, min(32, max_side // max(n, m))))
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font_h = font_size + 2
    row_kept, col_kept = _spaced(rows, cell, font_h), _spaced(cols, cell, font_h)
    row_w = max([int(probe.textlength(t, font=font)) for _, t in row_kept] + [0]) + (6 if row_kept else 0)
    col_h = max([int(probe.textlength(t, font=font)) for _, t in col_kept] + [0]) + (6 if col_kept else 0)
    title_h = font_size + 10 if title else 0
    heat = Image.fromarray(matrix_rgb(z, cmap_name, lo, hi, background), "RGB").resize((m * cell, n * cell), Image.NEAREST)
    bar = Image.fromarray(colorbar(lo, hi, cmap_name, length=max(96, min(n * cell, 512)), label=bar_label or None,
                                   font_size=font_size))
    x0, y0 = row_w + 2, title_h + col_h + 2
    width = x0 + m * cell + 12 + bar.width + 4
    height = max(y0 + n * cell, y0 + bar.height) + 4
    if title:
        width = max(width, int(probe.textlength(_short(title, 160), font=font)) + 8)
    canvas = Image.new("RGB", (width, height), tuple(background))
    canvas.paste(heat, (x0, y0))
    canvas.paste(bar, (x0 + m * cell + 12, y0))
    d = ImageDraw.Draw(canvas)
    if title:
        d.text((4, 4), _short(title, 160), fill=(0, 0, 0), font=font)
    for i, t in row_kept:
        d.text((x0 - 4, y0 + i * cell + cell / 2), t, fill=(0, 0, 0), font=font, anchor="rm")
    if col_kept:  # drawn along a strip, then turned a quarter counter-clockwise: read upwards, ending at the matrix
        strip = Image.new("RGB", (col_h, m * cell), tuple(background))
        sd = ImageDraw.Draw(strip)
        for j, t in col_kept:
            sd.text((4, j * cell + cell / 2), t, fill=(0, 0, 0), font=font, anchor="lm")
        canvas.paste(strip.rotate(90, expand=True), (x0, title_h))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def matrix_table_html(weights, row_labels, col_labels=None, *, cmap_name: str = DEFAULT_COLORMAP,
                      vmin: float | None = None, vmax: float | None = None, caption: str = "",
                      cell_px: int = 18) -> str:
    """An ``(n, m)`` matrix as an HTML table: escaped token labels as header cells, each cell's colour an
    inline style built from its number (and its value in ``title``). No script, no remote resource."""
    z = np.asarray(weights, dtype=np.float64)
    if z.ndim != 2:
        raise InvalidParameter(f"matrix_table_html takes an (n, m) matrix, got shape {z.shape}.")
    col_labels = row_labels if col_labels is None else col_labels
    scaled, _, _ = normalise(z, vmin, vmax)
    cmap = colormap(cmap_name)
    rgb = cmap(scaled)
    head = "".join(f'<th scope="col" style="writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;'
                   f'padding:2px 0;max-height:10em;overflow:hidden">{html.escape(str(c))}</th>' for c in col_labels)
    body = []
    for i, label in enumerate(row_labels):
        cells = "".join(
            f'<td title="{format_number(z[i, j])}" style="width:{cell_px}px;height:{cell_px}px;padding:0;'
            f'background:#{r:02x}{g:02x}{b:02x}"></td>' if np.isfinite(z[i, j]) else
            f'<td style="width:{cell_px}px;height:{cell_px}px;padding:0"></td>'
            for j, (r, g, b) in enumerate(rgb[i].tolist()))
        body.append(f'<tr><th scope="row" style="text-align:right;font-weight:normal;padding:0 4px;'
                    f'white-space:nowrap">{html.escape(str(label))}</th>{cells}</tr>')
    cap = f'<caption style="caption-side:top;text-align:left">{html.escape(caption)}</caption>' if caption else ""
    return ('<table class="attnviz-matrix" style="border-collapse:collapse;font-size:0.75em;line-height:1">'
            f'{cap}<thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>`` that needs nothing from the network."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
