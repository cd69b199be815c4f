"""The patch grid: cells of about ``patch`` pixels covering the whole picture, and the copies it is laid over.

``rows = round(height / patch)``, ``cols = round(width / patch)`` (at least 1, at most one patch per
pixel), with cell edges spread evenly, so the cells cover the whole picture and are all about ``patch``
pixels (a photo smaller than a patch is one cell; a 1-pixel-high strip is one row). At most
:data:`MAX_PATCHES` cells. Features are computed on a copy whose long side is at most
:data:`MAX_COMPUTE_SIDE` pixels (never fewer than :data:`MIN_COMPUTE_CELL` pixels per patch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ImageTooSmall, InvalidParameter

#: features are computed on a copy whose long side is at most this many pixels
MAX_COMPUTE_SIDE = 1024
#: at least this many compute pixels per patch along each axis (when the image has them)
MIN_COMPUTE_CELL = 4
#: most patches in a grid (the attention matrix is patches x patches)
MAX_PATCHES = 4096
#: default grid: this many patches along the image's long side
DEFAULT_PATCHES_LONG_SIDE = 24
#: the finest grid a patch-size control offers: this many patches along the long side
MAX_PATCHES_LONG_SIDE = 64


def patch_label(row: int, col: int) -> str:
    """The short name of patch ``(row, col)`` used on axes and in tables: ``"r2c5"``."""
    return f"r{int(row)}c{int(col)}"


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


def check_query(query) -> tuple:
    """``query`` as a ``(row, col)`` pair, or :class:`InvalidParameter` (a bare number or a string is not one)."""
    if isinstance(query, (str, bytes)) or not hasattr(query, "__len__") or len(query) != 2:
        raise InvalidParameter(f"A query patch is a (row, col) pair, got {query!r}.")
    return tuple(query)


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

    def labels(self) -> list[str]:
        """:func:`patch_label` of every cell, row-major (the order of the features and the attention)."""
        return [patch_label(r, c) for r in range(self.rows) for c in range(self.cols)]

    def locate_fraction(self, fy: float, fx: float) -> tuple[int, int]:
        """The cell under the point ``(fy, fx)`` given as fractions of the height and width."""
        return self.locate(fx * self.width, fy * self.height)

    def carry(self, row: int, col: int, old_shape: tuple[int, int]) -> tuple[int, int]:
        """The cell of this grid at the same place as cell ``(row, col)`` of an ``old_shape`` grid over the
        same picture (the query stays put when the patch size changes); clamped to this grid."""
        old_rows, old_cols = (max(1, int(v)) for v in old_shape)
        r = min(self.rows - 1, max(0, int((int(row) + 0.5) / old_rows * self.rows)))
        c = min(self.cols - 1, max(0, int((int(col) + 0.5) / old_cols * self.cols)))
        return r, c

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


@dataclass(frozen=True)
class PatchSizeRange:
    """The patch sizes (pixels) a control should offer for one picture: ``lo <= default <= hi``."""

    lo: int
    hi: int
    default: int

    @property
    def adjustable(self) -> bool:
        return self.hi > self.lo

    def clamp(self, value) -> int:
        """``value`` when it is a whole number in range, else the default (a stale or hand-edited setting)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return self.default
        return int(value) if self.lo <= value <= self.hi and value == int(value) else self.default


def patch_size_range(width: int, height: int, max_patches: int = MAX_PATCHES) -> PatchSizeRange:
    """Smallest, largest and default patch size for a ``width x height`` picture: the smallest keeps the grid
    within ``max_patches`` (and :data:`MAX_PATCHES_LONG_SIDE` along the long side), the largest is half the
    long side, the default gives :data:`DEFAULT_PATCHES_LONG_SIDE` patches along it."""
    long_side = max(int(width), int(height))
    lo = max(1, smallest_patch(width, height, max_patches), math.ceil(long_side / MAX_PATCHES_LONG_SIDE))
    hi = max(lo, long_side // 2)
    default = min(hi, max(lo, round(long_side / DEFAULT_PATCHES_LONG_SIDE)))
    return PatchSizeRange(lo, hi, default)
