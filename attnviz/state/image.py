"""The image page's settings, their link form, and the rules that keep the query patch where it belongs.

``ImagePageState`` is everything the image page lets a student set, as one frozen, validated value:
``ImagePageState.from_query(params)`` reads a link (every value checked: it is user input; a bad one falls
back to the default and is named in ``ignored``), ``state.to_query()`` writes it back, and
``ImagePageState.from_query(s.to_query()) == s`` for every state. ``from_widgets`` / ``widget_values`` map
the fields to the page's widget keys (:data:`WIDGET_KEYS`). No Streamlit here.

The query patch follows the photo and the grid (:func:`place_query`): a new photo starts at its sample's
point of interest (:data:`attnviz.image.samples.SAMPLE_QUERY`) or its centre; a new patch size keeps the
query at the same place of the picture; a stale row or column is pulled back into the grid.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

from ..errors import InvalidParameter
from ..image.analysis import VIEWS
from ..image.grid import PatchGrid
from ..image.samples import SAMPLE_QUERY, SAMPLES
from ..render import COLORMAPS, DEFAULT_COLORMAP
from ..similarity import SIMILARITIES, get_similarity
from . import TEMPERATURES, nearest_temperature, parse_flag, parse_index, parse_temperature

#: the largest patch size (pixels) a link may carry; the page clamps it to the photo's own range
URL_MAX_PATCH = 100_000
#: rows / columns at or above this are refused in a link (no grid has more than 4096 cells)
URL_MAX_INDEX = 4096
#: the opacity slider's steps and the position-weight slider's range and steps
OPACITY_STEP = 0.05
POSITION_MAX, POSITION_STEP = 3.0, 0.25
#: the page's default overlay opacity (a little above the library's 0.5: the photo still shows through)
DEFAULT_OPACITY = 0.55

#: link parameter -> ImagePageState field (short names keep links short)
QUERY_PARAMS: dict[str, str] = {
    "sample": "sample", "s": "similarity", "t": "temperature", "p": "patch", "v": "view", "c": "cmap",
    "o": "opacity", "g": "show_grid", "pos": "position_weight", "r": "row", "col": "col",
}
#: ImagePageState field -> the page's widget key
WIDGET_KEYS: dict[str, str] = {
    "sample": "img_sample", "similarity": "img_sim", "temperature": "img_temp", "patch": "img_patch",
    "view": "img_view", "cmap": "img_cmap", "opacity": "img_opacity", "show_grid": "img_grid",
    "position_weight": "img_pos", "row": "img_row", "col": "img_col",
}


def _on_steps(value: float, lo: float, hi: float, step: float) -> bool:
    k = (value - lo) / step
    return lo <= value <= hi and abs(k - round(k)) < 1e-6


def _parse_step(value: str, lo: float, hi: float, step: float) -> float | None:
    try:
        v = float(value)
    except ValueError:
        return None
    if not math.isfinite(v) or not _on_steps(v, lo, hi, step):
        return None
    return round(round((v - lo) / step) * step + lo, 6)


#: link parameter -> its parser (a valid value, or None)
_PARSERS = {
    "sample": lambda v: v if v in SAMPLES else None,
    "s": lambda v: v if v in SIMILARITIES else None,
    "t": parse_temperature,
    "p": lambda v: (lambda p: p if p is not None and p >= 1 else None)(parse_index(v, URL_MAX_PATCH)),
    "v": lambda v: v if v in VIEWS else None,
    "c": lambda v: v if v in COLORMAPS else None,
    "o": lambda v: _parse_step(v, 0.0, 1.0, OPACITY_STEP),
    "g": parse_flag,
    "pos": lambda v: _parse_step(v, 0.0, POSITION_MAX, POSITION_STEP),
    "r": lambda v: parse_index(v, URL_MAX_INDEX),
    "col": lambda v: parse_index(v, URL_MAX_INDEX),
}


def _is_index(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


@dataclass(frozen=True)
class ImagePageState:
    """The image page's settings. ``patch=None`` means the photo's default patch size; ``row``/``col`` =
    ``None`` means the photo's default query; ``temperature=None`` is resolved on construction (the
    similarity's default, rounded to an offered temperature)."""

    sample: str = next(iter(SAMPLES))
    similarity: str = "cosine"
    temperature: float | None = None
    patch: int | None = None
    view: str = "query"
    cmap: str = DEFAULT_COLORMAP
    opacity: float = DEFAULT_OPACITY
    show_grid: bool = False
    position_weight: float = 0.0
    row: int | None = None
    col: int | None = None
    #: the link's parameters that were not valid and were ignored (what the page tells the student)
    ignored: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self):
        if self.similarity not in SIMILARITIES:
            raise InvalidParameter(f"Unknown similarity {self.similarity!r}: choose one of {', '.join(SIMILARITIES)}.")
        if self.temperature is None:
            t = nearest_temperature(get_similarity(self.similarity).default_temperature)
            object.__setattr__(self, "temperature", t)
        checks = {
            "sample": self.sample in SAMPLES,
            "temperature": self.temperature in TEMPERATURES,
            "patch": self.patch is None or (_is_index(self.patch) and self.patch >= 1),
            "view": self.view in VIEWS,
            "cmap": self.cmap in COLORMAPS,
            "opacity": _is_number(self.opacity) and _on_steps(self.opacity, 0.0, 1.0, OPACITY_STEP),
            "show_grid": isinstance(self.show_grid, bool),
            "position_weight": _is_number(self.position_weight)
            and _on_steps(self.position_weight, 0.0, POSITION_MAX, POSITION_STEP),
            "row": self.row is None or _is_index(self.row),
            "col": self.col is None or _is_index(self.col),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidParameter(f"Invalid image page settings: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}.")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> ImagePageState:
        """The settings a link carries; invalid values fall back to the defaults and are listed in ``ignored``.
        Names this page does not use are left alone (they belong to someone else)."""
        values, ignored = {}, []
        for param, parse in _PARSERS.items():
            if param not in params:
                continue
            raw = params[param]
            value = parse(raw) if isinstance(raw, str) else None
            if value is None:
                ignored.append(param)
            else:
                values[QUERY_PARAMS[param]] = value
        return cls(**values, ignored=tuple(ignored))

    def to_query(self) -> dict[str, str]:
        """The link's parameters: every setting that has a value (the query patch only when both are set)."""
        q = {"sample": self.sample, "s": self.similarity, "t": f"{self.temperature}", "v": self.view, "c": self.cmap,
             "o": f"{self.opacity:g}", "g": "1" if self.show_grid else "0", "pos": f"{self.position_weight:g}"}
        if self.patch is not None and self.patch < URL_MAX_PATCH:
            q["p"] = str(self.patch)
        if self.row is not None and self.col is not None and max(self.row, self.col) < URL_MAX_INDEX:
            q["r"], q["col"] = str(self.row), str(self.col)
        return q

    @classmethod
    def from_widgets(cls, values: Mapping[str, object]) -> ImagePageState:
        """The settings the page's widgets hold (``values`` maps widget keys, e.g. ``st.session_state``);
        a missing or invalid value falls back to the default and is listed in ``ignored`` (by field)."""
        good, ignored = {}, []
        for name, key in WIDGET_KEYS.items():
            if key not in values:
                continue
            candidate = {**good, name: values[key]}
            try:
                cls(**candidate)
            except (InvalidParameter, TypeError):
                ignored.append(name)
                continue
            good = candidate
        return cls(**good, ignored=tuple(ignored))

    def widget_values(self) -> dict[str, object]:
        """``{widget key: value}`` for every setting that has a value (what the page puts in session state)."""
        return {WIDGET_KEYS[f.name]: getattr(self, f.name) for f in fields(self)
                if f.name in WIDGET_KEYS and getattr(self, f.name) is not None}

    def with_query(self, row: int, col: int) -> ImagePageState:
        return replace(self, row=int(row), col=int(col))


def place_query(grid: PatchGrid, *, row: int | None, col: int | None, new_photo: bool,
                old_shape: tuple[int, int] | None = None, sample_file: str = "") -> tuple[int, int]:
    """Where the query patch goes on ``grid``.

    ``new_photo``: the sample's point of interest (or the centre) of this photo. Else, when the grid's shape
    changed from ``old_shape``, the cell at the same place of the picture. Else ``(row, col)`` when it is
    inside the grid, the centre cell when it is not (a stale or hand-edited value).
    """
    if new_photo or row is None or col is None:
        fy, fx = SAMPLE_QUERY.get(sample_file, (0.5, 0.5))
        return grid.locate_fraction(fy, fx)
    if old_shape is not None and tuple(old_shape) != grid.shape:
        return grid.carry(row, col, old_shape)
    r = row if _is_index(row) and row < grid.rows else grid.rows // 2
    c = col if _is_index(col) and col < grid.cols else grid.cols // 2
    return r, c


def click_position(value) -> tuple[float, float, float, float] | None:
    """``(x, y, shown width, shown height)`` of a click on the heatmap (what streamlit_image_coordinates
    sends), or None when the value is not a well-formed click."""
    if not isinstance(value, Mapping) or not {"x", "y", "width", "height"} <= set(value):
        return None
    try:
        x, y, w, h = (float(value[k]) for k in ("x", "y", "width", "height"))
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
        return None
    return x, y, w, h


def plain_name(name: str) -> str:
    """A file name safe to show in markdown-rendered text: letters, digits and ``.,()+-`` only, at most 80."""
    return re.sub(r"[^\w .,()+-]", "_", str(name)).strip()[:80] or "image"


def download_stem(name: str) -> str:
    """The stem of the page's download names (``photo.jpg`` -> ``photo``; never empty, never a path)."""
    return re.sub(r"[^\w.-]+", "-", str(name).rsplit(".", 1)[0])[:60].strip("-.") or "image"


__all__ = [
    "DEFAULT_OPACITY", "OPACITY_STEP", "POSITION_MAX", "POSITION_STEP", "QUERY_PARAMS", "URL_MAX_INDEX",
    "URL_MAX_PATCH", "WIDGET_KEYS", "ImagePageState", "click_position", "download_stem", "place_query", "plain_name",
]
