"""Image attention: a photo cut into patches, every patch attending to every other at once.

A thin page: widgets -> attnviz.image -> show. Click the heatmap to choose the query patch (or type
its row and column). Caching (docs/image.md):

* the decoded, upright photo: ``st.cache_resource`` keyed by the file's content hash (one copy, shared);
* the patch features: ``st.cache_data`` keyed by (hash, patch size, position weight) — so switching
  similarity, temperature, query, view, colour map or opacity only re-attends and redraws;
* the full-resolution overlay PNG is made only when its download button is pressed.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import image as im
from attnviz.errors import AttnvizError
from attnviz.render import COLORMAPS, DEFAULT_COLORMAP
from ui.classroom import md_escape
from ui.shell import require_shell
from ui.widgets import current_device, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

#: long side (pixels) of the copies shown on the page; exports use the full resolution
DISPLAY_SIDE = 960
#: where each sample's first query patch sits, as (y, x) fractions of the picture
SAMPLE_QUERY = {"china.jpg": (0.1, 0.2), "flower.jpg": (0.45, 0.5), "shapes.png": (0.25, 0.18)}
VIEW_LABELS = {
    "query": "What the chosen patch attends to",
    "received": "Attention each patch receives",
    "pooling": "Pooling weights (vs the image's mean)",
}
TOP_K = 8


# ------------------------------------------------------------------------------------------ caches

def pixel_limit() -> int:
    """The decompression-bomb limit: ``ATTNVIZ_MAX_IMAGE_PIXELS`` (attnviz.settings) or the library's 40 MP."""
    from attnviz.settings import load_settings

    raw = os.environ.get("ATTNVIZ_MAX_IMAGE_PIXELS")
    return load_settings({} if raw is None else {"ATTNVIZ_MAX_IMAGE_PIXELS": raw}).max_image_pixels


@st.cache_resource(max_entries=4, ttl=3600, show_spinner="Opening the image…")
def decoded(digest: str, max_pixels: int, _data: bytes):
    """The upright RGB photo at full resolution (shared, never modified)."""
    return im.load_image(_data, max_pixels=max_pixels)


@st.cache_resource(max_entries=8, ttl=3600, show_spinner=False)
def display_copy(digest: str, side: int, _image):
    return im.thumbnail(_image, side)


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Computing patch features…")
def patch_features(digest: str, patch: int, position_weight: float, _image) -> im.PatchFeatures:
    return im.compute_features(_image, patch=patch, position_weight=position_weight)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def sample_bytes(filename: str) -> bytes:
    return im.sample_path(filename).read_bytes()


# ------------------------------------------------------------------------------------------ helpers

def plain_name(name: str) -> str:
    """A file name safe to show in markdown-rendered text and to reuse in download names."""
    return re.sub(r"[^\w .,()+-]", "_", name).strip()[:80] or "image"


def upload_limit_bytes() -> int:
    return int(float(st.get_option("server.maxUploadSize")) * 1024 * 1024)


def choose_source(max_pixels: int) -> tuple[str, bytes, str] | None:
    """(name, bytes, sample file or '') of the photo to analyse; None after a friendly message."""
    limit = upload_limit_bytes()
    left, right = st.columns([3, 2])
    upload = left.file_uploader(
        "Upload a photo", type=list(im.UPLOAD_TYPES), key="img_upload",
        help=f"JPEG, PNG, WebP, GIF (first frame), BMP or TIFF; up to {limit / 2**20:.0f} MB and "
             f"{max_pixels / 1e6:g} megapixels. The file stays on this server only while you use it.")
    names = list(im.SAMPLES)
    if st.session_state.get("img_sample") not in names:
        st.session_state["img_sample"] = names[0]
    sample = right.selectbox("…or pick a sample", names, key="img_sample", disabled=upload is not None,
                             help="Small, openly licensed photos (credits in attnviz/assets/LICENSES.md).")
    if upload is None:
        fname, blurb = im.SAMPLES[sample]
        right.caption(blurb)
        return sample, sample_bytes(fname), fname
    size = getattr(upload, "size", None) or len(upload.getbuffer())
    if size > limit or size > im.MAX_FILE_BYTES:
        st.error(f"“{md_escape(plain_name(upload.name))}” is {size / 2**20:.1f} MB; uploads are limited to "
                 f"{min(limit, im.MAX_FILE_BYTES) / 2**20:.0f} MB. Save a smaller copy (e.g. 4000 px on the long "
                 "side as JPEG) and try again.", icon="📦")
        return None
    return plain_name(upload.name), upload.getvalue(), ""


def patch_bounds(width: int, height: int) -> tuple[int, int, int]:
    """(smallest, largest, default) patch size in pixels for this picture."""
    long_side = max(width, height)
    lo = max(1, im.smallest_patch(width, height), math.ceil(long_side / 64))
    hi = max(lo, long_side // 2)
    default = min(hi, max(lo, round(long_side / im.DEFAULT_PATCHES_LONG_SIDE)))
    return lo, hi, default


def keep_in(key: str, lo, hi, default) -> None:
    """Put a widget's stored value back in range before the widget is drawn."""
    v = st.session_state.get(key)
    if not isinstance(v, (int, float)) or not lo <= v <= hi:
        st.session_state[key] = default


def sync_query(digest: str, sample_file: str, grid: im.PatchGrid) -> None:
    """A new photo gets its default query patch; a new grid keeps the query at the same place."""
    ss = st.session_state
    shape = (grid.rows, grid.cols)
    if ss.get("_img_digest") != digest:
        fy, fx = SAMPLE_QUERY.get(sample_file, (0.5, 0.5))
        ss["img_row"], ss["img_col"] = grid.locate(fx * grid.width, fy * grid.height)
        ss["_img_digest"] = digest
    elif ss.get("_img_shape") not in (None, shape):
        old_r, old_c = ss["_img_shape"]
        r, c = ss.get("img_row", 0), ss.get("img_col", 0)
        ss["img_row"] = min(grid.rows - 1, int((r + 0.5) / old_r * grid.rows))
        ss["img_col"] = min(grid.cols - 1, int((c + 0.5) / old_c * grid.cols))
    ss["_img_shape"] = shape
    keep_in("img_row", 0, grid.rows - 1, grid.rows // 2)
    keep_in("img_col", 0, grid.cols - 1, grid.cols // 2)
    ss["_img_seen"] = (digest, grid)  # what a click on this run's heatmap refers to


def apply_click(digest: str) -> None:
    """A new click on the heatmap (display pixels) -> the patch under it becomes the query.

    Runs before any widget is drawn, with the grid the user saw when clicking; each click (its
    ``unix_time``) is applied once, so typing a row/column afterwards is not undone.
    """
    ss = st.session_state
    value, seen = ss.get("img_click"), ss.get("_img_seen")
    if not isinstance(value, dict) or not {"x", "y", "width", "height"} <= set(value):
        return
    stamp = value.get("unix_time")
    if stamp is None or stamp == ss.get("_img_click_done"):
        return
    ss["_img_click_done"] = stamp
    if not seen or seen[0] != digest:
        return
    try:
        r, c = seen[1].locate_display(float(value["x"]), float(value["y"]), float(value["width"]),
                                      float(value["height"]))
    except (AttnvizError, TypeError, ValueError):
        return
    ss["img_row"], ss["img_col"], ss["img_view"] = r, c, "query"


def effective_patches(weights: np.ndarray) -> float:
    p = weights[weights > 0].astype(np.float64)
    return float(np.exp(-(p * np.log(p)).sum()))


# -------------------------------------------------------------------------------------------- page

def main() -> None:
    ss = st.session_state
    ss.setdefault("img_view", "query")
    ss.setdefault("img_cmap", DEFAULT_COLORMAP)
    ss.setdefault("img_opacity", 0.55)
    ss.setdefault("img_grid", False)
    ss.setdefault("img_pos", 0.0)

    st.title("🖼️ Image attention")
    st.markdown(
        "The photo is cut into a grid of **patches**; each patch is described by its colour (CIELAB) and texture "
        "(contrast, edge strength and direction). In **parallel attention** every patch attends to every other at "
        "once: $a_{ij}=\\mathrm{softmax}_j\\big(s(x_i,x_j)/T\\big)$ over all patches. **Click the heatmap** to "
        "choose a patch and see what it attends to — a patch of sky should light up the sky."
    )
    try:
        max_pixels = pixel_limit()
    except Exception as err:  # noqa: BLE001 - a misconfigured server says what is wrong
        show_error(err)
        return
    source = choose_source(max_pixels)
    if source is None:
        return
    name, data, sample_file = source
    digest = im.image_digest(data)
    try:
        photo = decoded(digest, max_pixels, data)
    except Exception as err:  # noqa: BLE001 - typed errors become one friendly sentence
        show_error(err)
        return
    apply_click(digest)

    top_left, top_right = st.columns([3, 2], gap="large")
    with top_right:
        sim, temp = similarity_picker("img", container=top_right)
    with top_left:
        lo, hi, default = patch_bounds(photo.width, photo.height)
        c1, c2 = st.columns(2)
        if hi > lo:
            if ss.get("_img_patch_for") != digest:  # a new photo starts from its own default grid
                ss["img_patch"], ss["_img_patch_for"] = default, digest
            keep_in("img_patch", lo, hi, default)
            patch = c1.slider("Patch size (pixels)", lo, hi, key="img_patch",
                              help="Side of a patch in the full-resolution photo; smaller patches = a finer grid "
                                   f"(at most {im.MAX_PATCHES} patches).")
        else:
            patch = lo
            c1.caption(f"This picture is tiny: one patch size ({lo} px) only.")
        view = c2.radio("Show", list(VIEW_LABELS), key="img_view", format_func=VIEW_LABELS.get,
                        help="Chosen patch: its row of the attention matrix (sums to 1). Received: the mean of "
                             "every row, i.e. how much all patches together attend to each patch. Pooling: "
                             "softmax of each patch's similarity to the image's mean feature — what an "
                             "attention-pooling layer would keep.")
        c3, c4, c5 = st.columns(3)
        cmap = c3.selectbox("Colour map", list(COLORMAPS), key="img_cmap",
                            help="cividis (the default) reads the same for red-green colour-blind viewers.")
        opacity = c4.slider("Overlay opacity", 0.0, 1.0, step=0.05, key="img_opacity")
        show_grid = c5.toggle("Patch grid lines", key="img_grid")
        with st.expander("Features"):
            pos = st.slider("Position term", 0.0, 3.0, step=0.25, key="img_pos",
                            help="0: patches are compared by appearance only; higher: nearby patches count as "
                                 "more alike.")
            st.caption(f"{len(im.HANDCRAFTED_FEATURES)} numbers per patch: mean and spread of CIELAB L*, a*, b*, "
                       "mean log gradient strength and a 6-bin histogram of edge directions, each standardised "
                       "over this photo. Deterministic: the same photo always gives the same features.")

    device = current_device()
    try:
        feats = patch_features(digest, int(patch), float(pos), photo)
        grid = feats.grid
        sync_query(digest, sample_file, grid)
        query = (int(ss["img_row"]), int(ss["img_col"]))
        res = im.attend_patches(photo, feats, similarity=sim, temperature=temp, query=query, view=view,
                                device=device, cmap=cmap, opacity=opacity, show_grid=show_grid)
        shown = display_copy(digest, DISPLAY_SIDE, photo)
        overlay = res.overlay(shown)
    except Exception as err:  # noqa: BLE001
        show_error(err)
        return
    if res.warning:
        st.warning(res.warning, icon="⚠️")

    left, right = st.columns(2, gap="medium")
    with left:
        st.image(shown, caption=f"{md_escape(name)} — {photo.width} × {photo.height} px (upright)",  # GFM caption
                 width="stretch")
    with right:
        streamlit_image_coordinates(overlay, key="img_click", use_column_width="always", image_format="JPEG",
                                    jpeg_quality=90, cursor="crosshair")
        st.image(res.colorbar(vertical=False, length=420, thickness=14, font_size=13,
                              label=VIEW_LABELS[view].lower()),
                 caption=f"Colour scale: {cmap}")
    q1, q2, q3 = st.columns([1, 1, 2])
    q1.number_input("Query row", 0, grid.rows - 1, step=1, key="img_row")
    q2.number_input("Query column", 0, grid.cols - 1, step=1, key="img_col")
    q3.caption(f"Click the heatmap, or type the patch: rows 0–{grid.rows - 1}, columns 0–{grid.cols - 1}. "
               f"The outlined patch is the query (view “{VIEW_LABELS['query'].lower()}”).")

    scores = res.scores
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Patches", f"{grid.rows} × {grid.cols}", help=f"about {round(grid.patch_size[1])} px each")
    m2.metric("Strongest weight", f"{float(scores.max()):.4f}")
    m3.metric("Effective patches", f"{effective_patches(scores):.1f}",
              help="exp(entropy): 1 = all weight on one patch; the number of patches = spread evenly.")
    m4.metric("Uniform share", f"{1 / grid.n:.4f}", help="What each patch would get if attention were uniform.")
    order = np.argsort(scores, axis=None)[::-1][:TOP_K]
    st.caption("Strongest patches: " + ", ".join(
        f"({i // grid.cols}, {i % grid.cols}) {scores.flat[i]:.4f}" for i in order))
    cw, ch = feats.compute_size
    if (cw, ch) != (photo.width, photo.height):
        st.caption(f"Features were computed on a {cw} × {ch} copy (long side ≤ {im.MAX_COMPUTE_SIDE} px); the "
                   f"heatmap is drawn on the full {photo.width} × {photo.height} photo. Computed on {res.device}.")
    else:
        st.caption(f"Computed on {res.device}.")

    stem = re.sub(r"[^\w.-]+", "-", name.rsplit(".", 1)[0])[:60].strip("-.") or "image"
    d1, d2, d3 = st.columns(3)
    d1.download_button(f"Overlay PNG ({photo.width} × {photo.height})", res.to_png, f"{stem}-attention.png",
                       "image/png", key="img_dl_png", on_click="ignore")
    # all three are made only when their button is pressed (streamlit's deferred downloads)
    d2.download_button("Patch weights (CSV)", res.to_csv, f"{stem}-patches.csv", "text/csv", key="img_dl_csv",
                       on_click="ignore")
    d3.download_button("Patch weights (JSON)", lambda: res.to_json(all_views=True), f"{stem}-patches.json",
                       "application/json", key="img_dl_json", on_click="ignore")


main()
