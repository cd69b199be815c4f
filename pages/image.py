"""Image attention: a photo cut into patches, every patch attending to every other at once.

A thin page: widgets -> attnviz.image / attnviz.state.image -> show. Click the heatmap to choose the query
patch (or type its row and column). Caching (docs/image.md):

* the decoded, upright photo: ``st.cache_resource`` keyed by the file's content hash (one copy, shared);
* the patch features: ``st.cache_data`` keyed by (hash, patch size, position weight) — so switching
  similarity, temperature, query, view, colour map or opacity only re-attends and redraws;
* the full-resolution overlay PNG is made only when its download button is pressed.
"""

from __future__ import annotations

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import image as im
from attnviz.errors import AttnvizError
from attnviz.render import COLORMAPS
from attnviz.state.image import (OPACITY_STEP, POSITION_MAX, POSITION_STEP, ImagePageState,
                                 click_position, download_stem, place_query, plain_name)
from ui.classroom import md_escape
from ui.shell import require_shell
from ui.widgets import current_device, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

#: long side (pixels) of the copies shown on the page; exports use the full resolution
DISPLAY_SIDE = 960
VIEW_LABELS = {
    "query": "What the chosen patch attends to",
    "received": "Attention each patch receives",
    "pooling": "Pooling weights (vs the image's mean)",
}
TOP_K = 8


@st.cache_resource(max_entries=4, ttl=3600, show_spinner="Opening the image…")
def decoded(digest: str, max_pixels: int, _data: bytes):
    """The upright RGB photo at full resolution (shared, never modified), through the one upload loader
    (the deployment's limits); ``max_pixels`` is in the key so a changed limit is applied. Its errors say
    "the upload", not the file's name: a name is user text, and error sentences are rendered as Markdown."""
    return im.load_upload(_data)


@st.cache_resource(max_entries=8, ttl=3600, show_spinner=False)
def display_copy(digest: str, side: int, _image):
    return im.thumbnail(_image, side)


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Computing patch features…")
def patch_features(digest: str, patch: int, position_weight: float, _image) -> im.PatchFeatures:
    return im.compute_features(_image, patch=patch, position_weight=position_weight)


@st.cache_data(max_entries=8, ttl=3600, show_spinner=False)
def sample_bytes(filename: str) -> bytes:
    return im.sample_path(filename).read_bytes()


def choose_source(max_pixels: int) -> tuple[str, bytes, str] | None:
    """(name, bytes, sample file or '') of the photo to analyse; None after a friendly message."""
    limit = int(float(st.get_option("server.maxUploadSize")) * 1024 * 1024)
    left, right = st.columns([3, 2])
    upload = left.file_uploader(
        "Upload a photo", type=list(im.UPLOAD_TYPES), key="img_upload",
        help=f"JPEG, PNG, WebP, GIF (first frame), BMP or TIFF; up to {limit / 2**20:.0f} MB and "
             f"{max_pixels / 1e6:g} megapixels. The file stays on this server only while you use it.")
    sample = right.selectbox("…or pick a sample", list(im.SAMPLES), key="img_sample", disabled=upload is not None,
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


def sync_query(digest: str, sample_file: str, grid: im.PatchGrid) -> None:
    """Put the query patch where it belongs on this run's grid (attnviz.state.image.place_query)."""
    ss = st.session_state
    ss["img_row"], ss["img_col"] = place_query(
        grid, row=ss.get("img_row"), col=ss.get("img_col"), new_photo=ss.get("_img_digest") != digest,
        old_shape=ss.get("_img_shape"), sample_file=sample_file)
    ss["_img_digest"], ss["_img_shape"] = digest, grid.shape
    ss["_img_seen"] = (digest, grid)  # what a click on this run's heatmap refers to


def apply_click(digest: str) -> None:
    """A new click on the heatmap (display pixels) -> the patch under it becomes the query.

    Runs before any widget is drawn, with the grid the user saw when clicking; each click (its
    ``unix_time``) is applied once, so typing a row/column afterwards is not undone.
    """
    ss = st.session_state
    value, seen = ss.get("img_click"), ss.get("_img_seen")
    where = click_position(value)
    if where is None or value.get("unix_time") in (None, ss.get("_img_click_done")):
        return
    ss["_img_click_done"] = value["unix_time"]
    if not seen or seen[0] != digest:
        return
    try:
        ss["img_row"], ss["img_col"] = seen[1].locate_display(*where)
    except AttnvizError:
        return
    ss["img_view"] = "query"


def main() -> None:
    ss = st.session_state
    settings = ImagePageState.from_widgets(ss)  # the widgets' values, each checked (stale ones reset)
    for key, value in settings.widget_values().items():
        if key not in ("img_row", "img_col", "img_patch", "img_sim", "img_temp"):  # set by their own logic
            ss[key] = value

    st.title("🖼️ Image attention")
    st.markdown(
        "The photo is cut into a grid of **patches**; each patch is described by its colour (CIELAB) and texture "
        "(contrast, edge strength and direction). In **parallel attention** every patch attends to every other at "
        "once: $a_{ij}=\\mathrm{softmax}_j\\big(s(x_i,x_j)/T\\big)$ over all patches. **Click the heatmap** to "
        "choose a patch and see what it attends to — a patch of sky should light up the sky."
    )
    try:
        max_pixels = im.configured_max_pixels()
    except AttnvizError as err:  # a misconfigured server says what is wrong
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
        sizes = im.patch_size_range(photo.width, photo.height)
        c1, c2 = st.columns(2)
        if sizes.adjustable:
            if ss.get("_img_patch_for") != digest:  # a new photo starts from its own default grid
                ss["img_patch"], ss["_img_patch_for"] = sizes.default, digest
            ss["img_patch"] = sizes.clamp(ss.get("img_patch"))
            patch = c1.slider("Patch size (pixels)", sizes.lo, sizes.hi, key="img_patch",
                              help="Side of a patch in the full-resolution photo; smaller patches = a finer grid "
                                   f"(at most {im.MAX_PATCHES} patches).")
        else:
            patch = sizes.lo
            c1.caption(f"This picture is tiny: one patch size ({sizes.lo} px) only.")
        view = c2.radio("Show", list(VIEW_LABELS), key="img_view", format_func=VIEW_LABELS.get,
                        help="Chosen patch: its row of the attention matrix (sums to 1). Received: the mean of "
                             "every row, i.e. how much all patches together attend to each patch. Pooling: "
                             "softmax of each patch's similarity to the image's mean feature — what an "
                             "attention-pooling layer would keep.")
        c3, c4, c5 = st.columns(3)
        cmap = c3.selectbox("Colour map", list(COLORMAPS), key="img_cmap",
                            help="cividis (the default) reads the same for red-green colour-blind viewers.")
        opacity = c4.slider("Overlay opacity", 0.0, 1.0, step=OPACITY_STEP, key="img_opacity")
        show_grid = c5.toggle("Patch grid lines", key="img_grid")
        with st.expander("Features"):
            pos = st.slider("Position term", 0.0, POSITION_MAX, step=POSITION_STEP, key="img_pos",
                            help="0: patches are compared by appearance only; higher: nearby patches count as "
                                 "more alike.")
            st.caption(f"{len(im.HANDCRAFTED_FEATURES)} numbers per patch: mean and spread of CIELAB L*, a*, b*, "
                       "mean log gradient strength and a 6-bin histogram of edge directions, each standardised "
                       "over this photo. Deterministic: the same photo always gives the same features.")

    try:
        feats = patch_features(digest, int(patch), float(pos), photo)
        grid = feats.grid
        sync_query(digest, sample_file, grid)
        res = im.attend_patches(photo, feats, similarity=sim, temperature=temp, view=view, device=current_device(),
                                query=(int(ss["img_row"]), int(ss["img_col"])))
        shown = display_copy(digest, DISPLAY_SIDE, photo)
        overlay = res.overlay(shown, cmap=cmap, opacity=opacity, show_grid=show_grid)
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
        st.image(res.colorbar(cmap, vertical=False, length=420, thickness=14, font_size=13,
                              label=VIEW_LABELS[view].lower()),
                 caption=f"Colour scale: {cmap}")
    q1, q2, q3 = st.columns([1, 1, 2])
    q1.number_input("Query row", 0, grid.rows - 1, step=1, key="img_row")
    q2.number_input("Query column", 0, grid.cols - 1, step=1, key="img_col")
    q3.caption(f"Click the heatmap, or type the patch: rows 0–{grid.rows - 1}, columns 0–{grid.cols - 1}. "
               f"The outlined patch is the query (view “{VIEW_LABELS['query'].lower()}”).")

    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Patches", f"{grid.rows} × {grid.cols}", help=f"about {round(grid.patch_size[1])} px each")
    m2.metric("Strongest weight", f"{float(res.scores.max()):.4f}")
    m3.metric("Effective patches", f"{res.effective_patches:.1f}",
              help="exp(entropy): 1 = all weight on one patch; the number of patches = spread evenly.")
    m4.metric("Uniform share", f"{1 / grid.n:.4f}", help="What each patch would get if attention were uniform.")
    st.caption("Strongest patches: " + ", ".join(f"({r}, {c}) {w:.4f}" for r, c, w in res.top_patches(TOP_K)))
    cw, ch = feats.compute_size
    if (cw, ch) != (photo.width, photo.height):
        st.caption(f"Features were computed on a {cw} × {ch} copy (long side ≤ {im.MAX_COMPUTE_SIDE} px); the "
                   f"heatmap is drawn on the full {photo.width} × {photo.height} photo. Computed on {res.device}.")
    else:
        st.caption(f"Computed on {res.device}.")

    stem, style = download_stem(name), {"cmap": cmap, "opacity": opacity, "show_grid": show_grid}
    d1, d2, d3 = st.columns(3)
    # all three are made only when their button is pressed (streamlit's deferred downloads)
    d1.download_button(f"Overlay PNG ({photo.width} × {photo.height})", lambda: res.to_png(**style),
                       f"{stem}-attention.png", "image/png", key="img_dl_png", on_click="ignore")
    d2.download_button("Patch weights (CSV)", res.to_csv, f"{stem}-patches.csv", "text/csv", key="img_dl_csv",
                       on_click="ignore")
    d3.download_button("Patch weights (JSON)", lambda: res.to_json(all_views=True), f"{stem}-patches.json",
                       "application/json", key="img_dl_json", on_click="ignore")


main()
