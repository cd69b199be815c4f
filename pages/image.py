"""Image attention: similarity attention between a photo's patches, and DINOv2's own heads.

Widgets -> attnviz.image / attnviz.vit / attnviz.state.image -> show. Caching (docs/image.md): the photo and
DINOv2's attention per (photo, resolution, device) as a resource (never modified), hand-made features as
data, both under ui/cache.py's policy (a sample shared by the class, an upload kept in its session only);
full-size PNGs only when their download button is pressed."""

from __future__ import annotations

import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

import attnviz.state.image as si
from attnviz import image as im
from attnviz.loaders.dinov2 import VisionModelMissing
from attnviz.overlay import colorbar, png_bytes, show_attention_on_image
from attnviz.render import COLORMAPS
from ui.cache import is_shipped, memo_data, memo_resource, shared_data
from ui.classroom import md_escape
from ui.shell import require_shell
from ui.widgets import current_device, explain_similarity, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

DISPLAY_SIDE = 960  # long side (pixels) of the copies shown; downloads use the full resolution
VIEW_LABELS, HEAD_MAP_LABELS, TOP_K = si.VIEW_LABELS, si.HEAD_MAP_LABELS, 8


@memo_resource("Opening the image…", inputs=("digest",))
def decoded(digest: str, max_pixels: int, _data: bytes):  # errors say "the upload", never the file name
    return im.load_upload(_data)


@memo_resource(inputs=("digest",))
def display_copy(digest: str, side: int, _image):
    return im.thumbnail(_image, side)


@memo_data("Computing patch features…", inputs=("digest",))
def patch_features(digest: str, patch: int, position_weight: float, _image) -> im.PatchFeatures:
    return im.compute_features(_image, patch=patch, position_weight=position_weight)


@memo_resource("Running DINOv2 on the photo…", inputs=("digest",))
def vit_of(digest: str, resolution: int, device: str, no_sinks: bool, _image):
    if no_sinks:  # the same attention with the highest-norm patches left out as keys
        return vit_of(digest, resolution, device, False, _image).without_sinks()
    # a sample's run is kept for the class in VIT_RUNS; an upload's only here, in its session (ui/cache.py)
    return im.cached_vit(_image, resolution, device, keep=is_shipped(digest))


@shared_data()
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
                             help=" ".join(im.SAMPLES[s][1] for s in im.SAMPLES))
    if upload is None:
        return sample, sample_bytes(im.SAMPLES[sample][0]), im.SAMPLES[sample][0]
    refusal = si.upload_refusal(upload.name, upload.size, min(limit, im.MAX_FILE_BYTES))
    if refusal:
        st.error(refusal, icon=":material/block:")
        return None
    return si.plain_name(upload.name), upload.getvalue(), ""


def sync_query(digest: str, sample_file: str, grid: im.PatchGrid) -> tuple[int, int]:
    st.session_state.update(si.query_updates(st.session_state, digest, sample_file, grid))
    if outside := st.session_state.pop("_img_url_outside", None):
        st.info(outside, icon=":material/link_off:")
    return int(st.session_state["img_row"]), int(st.session_state["img_col"])


def write_link() -> None:
    """The widgets' settings into the address bar (the link a teacher shares; a replica that dies loses nothing)."""
    ss = st.session_state
    changed, stale = si.link_params(ss, st.query_params)
    for key in stale:
        del st.query_params[key]
    if changed:
        st.query_params.update(changed)
    ss["_img_state"] = si.ImagePageState.from_widgets(ss)


def share(uploaded: bool) -> None:
    with st.popover("Share this view", icon=":material/share:"):
        st.code(si.share_link(st.context.url or "", si.ImagePageState.from_widgets(st.session_state).to_query()),
                language=None, wrap_lines=True)
        st.caption(si.share_note(uploaded, st.session_state["img_sample"]))


class Steps:
    """What a slow run is doing, as an st.status in ``slot`` (the steps' words are attnviz.state.image's);
    cleared when the page is drawn, so a finished page keeps no box."""

    def __init__(self, slot):
        self.slot, self.box = slot, None

    def __call__(self, label: str) -> None:
        if self.box is None:
            self.box = self.slot.status(label, expanded=True)
        else:
            self.box.update(label=label)
        self.box.write(label)

    def done(self) -> None:
        if self.box is not None:
            self.slot.empty()


def main() -> None:
    ss = st.session_state
    _, updates = si.run_settings(ss, st.query_params)  # the link's on the first run, then the widgets' (checked)
    ss.update(updates)
    st.title(":material/image: Image attention")
    if ignored := ss.pop("_img_url_ignored", None):
        st.warning(si.ignored_note(ignored), icon=":material/link_off:")
    steps = Steps(st.empty())  # above the photo: seen while DINOv2 runs
    try:
        page_body(steps)
    finally:
        steps.done()
        write_link()


def page_body(steps: Steps) -> None:
    ss = st.session_state
    done = ss.setdefault("_img_progress_done", set())  # what this session already waited for
    st.markdown("Every **patch** of the photo attends to every other, $a_{ij}=\\mathrm{softmax}_j(s(x_i,x_j)/T)$, "
                "or see *DINOv2's own heads*. **Click the heatmap** to choose a patch.")
    try:
        max_pixels = im.configured_max_pixels()
        source = choose_source(max_pixels)
        if source is None:
            return
        name, data, sample_file = source
        digest = im.image_digest(data)
        if si.shows_progress(done, (digest,)):
            steps(si.OPEN_STEP)
        photo = decoded(digest, max_pixels, data)
    except Exception as err:  # noqa: BLE001 - typed errors become one friendly sentence
        show_error(err)
        return
    ss.update(si.link_patch_owner(ss, digest))  # a link's patch size is the first photo's, never a later upload's
    ss.update(si.click_updates(ss, digest))  # clicks on the heatmap or the thumbnails

    stage, panel = st.columns([3, 2], gap="medium")  # the picture first on the left, its controls beside it
    with panel:  # beside the picture on a projector, below it on a phone
        share(not sample_file)
    m1, m2 = panel.columns(2)
    mode = m1.radio("Show", si.MODES, key="img_mode", format_func=si.MODE_LABELS.get)
    feats_kind = m2.radio("Patch features", si.FEATURES, key="img_features", format_func=si.FEATURE_LABELS.get,
                          help="Learned: DINOv2's tokens from the layer you pick. Hand-made: colour (CIELAB) and "
                               "texture numbers.") if mode == "similarity" else None
    kind = m2.radio("Map", list(HEAD_MAP_LABELS), key="img_hmap", format_func=HEAD_MAP_LABELS.get) \
        if mode == "heads" else None
    vit = None
    if mode == "heads" or feats_kind == "dinov2":
        res = m1.selectbox("Model input (px)", si.RESOLUTIONS, key="img_res", help="The long side DINOv2 sees.")
        try:
            no_sinks = mode == "heads" and bool(ss.get("img_nosinks"))
            if si.shows_progress(done, (digest, res, current_device(), no_sinks)):
                steps(si.vit_step(photo.size, res, current_device()))
            vit = vit_of(digest, res, current_device(), no_sinks, photo)
            si.check_vit_fits(photo, vit)
        except (VisionModelMissing, si.TooSmallForViT) as err:  # the hand-made features, with one notice
            panel.info(si.fallback_notice(err), icon=":material/info:")
            mode, feats_kind, vit = "similarity", "handcrafted", None
        except Exception as err:  # noqa: BLE001
            show_error(err)
            return
    with panel.expander("Colours and grid"):
        cmap = st.selectbox("Colour map", list(COLORMAPS), key="img_cmap",
                            help="cividis (the default) reads the same for red-green colour-blind viewers.")
        opacity = st.slider("Overlay opacity", 0.0, 1.0, step=si.OPACITY_STEP, key="img_opacity")
        show_grid = st.toggle("Patch grid lines", key="img_grid")
    style = {"cmap": cmap, "opacity": opacity, "show_grid": show_grid}
    shown = display_copy(digest, DISPLAY_SIDE, photo)
    caption = f"{md_escape(name)} — {photo.width} × {photo.height} px (upright)"
    view = show_heads if mode == "heads" else show_similarity
    if steps.box is not None:
        steps(si.DRAW_STEP)
    view(vit, photo, shown, digest, sample_file, kind or feats_kind, style, caption, name, stage, panel)


def query_inputs(grid: im.PatchGrid, note: str) -> None:
    q1, q2, q3 = st.columns([1, 1, 2])
    q1.number_input("Query row", 0, grid.rows - 1, step=1, key="img_row")
    q2.number_input("Query column", 0, grid.cols - 1, step=1, key="img_col")
    q3.caption(f"Click the heatmap, or type the patch: rows 0–{grid.rows - 1}, columns 0–{grid.cols - 1}. {note}")


def place_overlay(stage, overlay, bar, scale_words: str) -> None:
    with stage:
        streamlit_image_coordinates(overlay, key="img_click", use_column_width="always", image_format="JPEG",
                                    jpeg_quality=90, cursor="crosshair")
        st.image(bar, output_format="PNG")  # lossless: JPEG would smear the ticks and the faded end
        st.caption(scale_words)


def exclude_query_box(container) -> bool:
    return container.checkbox(si.EXCLUDE_QUERY_LABEL, key="img_xq", help=si.EXCLUDE_QUERY_HELP)


def show_heads(vit, photo, shown, digest, sample_file, kind, style, caption, name, stage, panel) -> None:
    grid = si.vit_grid(photo, vit)
    query = sync_query(digest, sample_file, grid)
    c1, c2 = panel.columns(2)
    layer = c1.slider("Layer", 0, vit.num_layers - 1, key="img_layer",
                      help="0 is the first block, 11 the last.") if kind != "rollout" else -1
    head = c2.selectbox("Head", (si.HEAD_MEAN, *range(vit.num_heads)), key="img_head", format_func=si.head_label,
                        help="Or click a thumbnail below.") if kind != "rollout" else si.HEAD_MEAN
    keep = panel.toggle("Keep only the patches holding most of the mass", key="img_keep",
                        help="DINO's threshold: show only the fewest patches that hold this share of the map.")
    fraction = panel.slider("Share of the mass kept", si.KEEP_MIN, si.KEEP_MAX, step=si.KEEP_STEP,
                            key="img_keepf") if keep else None
    exclude = exclude_query_box(panel) if kind == "patch" else False  # only a patch's row has a query
    draw = {**style, "query": query if kind == "patch" else None, "exclude_query": exclude}
    try:
        values = si.head_map(vit, kind, layer, head, query)
        drawn, kept = si.kept_map(values, fraction) if keep else (values, None)
        overlay, scale = show_attention_on_image(shown, drawn, grid=grid, return_scale=True, **draw)
        sinks = si.sink_summary(vit, layer, head)
        norms = show_attention_on_image(shown, vit.token_norms, grid=grid, cmap=style["cmap"], opacity=0.6)
    except Exception as err:  # noqa: BLE001
        show_error(err)
        return
    place_overlay(stage, overlay, colorbar(scale.vmin, scale.vmax, style["cmap"], label="attention", **si.LEGEND_BAR),
                  si.scale_words(scale, "attention"))
    with panel:
        st.image(norms, caption=f"Norm of each patch token (last block) — {caption}", width="stretch")
        st.metric(f"[CLS] share on the top {sinks['patches']} norm patches", f"{sinks['share']:.3f}",
                  help=f"Uniform attention would give {sinks['uniform']:.3f}; the largest norm is "
                       f"{sinks['norm_ratio']:.2f} × the median. Large ViTs have a few high-norm 'sink' patches "
                       "that soak up attention (Darcet et al. 2023).")
        st.toggle("Leave out the top-1 % norm patches", key="img_nosinks",
                  help="Their columns are set to 0 in every layer and head and every row is renormalised.")
    with stage:
        if kind == "patch":  # the [CLS] map and rollout have no query patch
            query_inputs(grid, "The framed patch is the query of “the chosen patch's row”.")
        st.caption(si.heads_caption(kind, layer, head, query, kept, fraction, grid.n) + " " + si.map_summary(drawn))
    if kind != "rollout":
        thumbs = si.head_thumbnails(shown, vit, kind, layer, selected=head, query=query, keep=fraction,
                                    cmap=style["cmap"])
        st.session_state["_img_thumbs_seen"] = (digest, thumbs)  # what a click on the strip refers to
        st.caption("Every head of this layer (click one to open it):")
        streamlit_image_coordinates(thumbs.image, key="img_heads_click", use_column_width="always",
                                    image_format="JPEG", jpeg_quality=85, cursor="pointer")
    st.caption(si.resolution_note(vit) + (" " + " ".join(vit.notes) if vit.notes else ""))
    st.download_button(f"Overlay PNG ({photo.width} × {photo.height})", on_click="ignore", key="img_dl_vit",
                       data=lambda: png_bytes(show_attention_on_image(photo, drawn, grid=grid, **draw)),
                       file_name=f"{si.download_stem(name)}-dinov2.png", mime="image/png")


def show_similarity(vit, photo, shown, digest, sample_file, feats_kind, style, caption, name, stage, panel) -> None:
    ss = st.session_state
    with panel:
        sim, temp = similarity_picker("img", explain=False)
        with st.expander("The formula"):
            explain_similarity(sim)
        view = st.radio("View", list(VIEW_LABELS), key="img_view", format_func=VIEW_LABELS.get,
                        help="Chosen patch: its row of the attention matrix (sums to 1). Received: the mean of "
                             "every row. Pooling: softmax of each patch's similarity to the image's mean feature.")
        exclude = exclude_query_box(st) if view == "query" else False  # the other views have no query patch
    draw = {**style, "exclude_query": exclude}
    try:
        if feats_kind == "dinov2":
            layer = panel.slider("Token layer", 0, vit.num_layers - 1, key="img_flayer", help="0 first, 11 last.")
            feats = im.compute_features(photo, features="dinov2", layer=layer, resolution=ss["img_res"],
                                        device=current_device(), vit=vit)  # vit_of's run: no model run
        else:
            sizes = im.patch_size_range(photo.width, photo.height)
            ss.update(si.patch_updates(ss, digest, sizes))  # a new photo starts from its own default grid
            patch = panel.slider("Patch size (pixels)", sizes.lo, sizes.hi, key="img_patch") if sizes.adjustable \
                else sizes.lo  # a tiny picture has one patch size only
            pos = panel.slider("Position term", 0.0, si.POSITION_MAX, step=si.POSITION_STEP, key="img_pos",
                               help="0: compare appearance only; higher: nearby patches count as more alike.")
            feats = patch_features(digest, int(patch), float(pos), photo)
        grid = feats.grid
        query = sync_query(digest, sample_file, grid)
        res = im.attend_patches(photo, feats, similarity=sim, temperature=temp, view=view, device=current_device(),
                                query=query)
        overlay = res.overlay(shown, **draw)
        trained = si.trained_patch_row(vit, query, layer) \
            if vit is not None and feats_kind == "dinov2" and view == "query" else None  # the same patch's row
    except Exception as err:  # noqa: BLE001
        show_error(err)
        return
    if res.warning:
        st.warning(res.warning, icon=":material/warning:")
    bar = res.colorbar(style["cmap"], exclude, label=VIEW_LABELS[view].lower(), **si.LEGEND_BAR)
    place_overlay(stage, overlay, bar,
                  si.scale_words(res.scale(exclude), VIEW_LABELS[view].lower()))
    with panel:
        if trained is None:
            st.image(shown, caption=caption, width="stretch")
        else:
            st.image(show_attention_on_image(shown, trained, grid=grid, query=query, cmap=style["cmap"],
                                             opacity=style["opacity"]), width="stretch",
                     caption=f"DINOv2's own attention from the same patch (layer {layer}, mean of the heads) — "
                             f"{caption}")
            st.metric("Overlap with the similarity row", f"{si.row_overlap(res.row, trained):.2f}",
                      help="Σ min(p, q) over the patches: 1 = the same weights, 0 = no patch in common.")
    if view == "query":  # received and pooling weigh every patch: no query to pick
        query_inputs(grid, "The outlined patch is the query.")
    for column, (label, value, help_) in zip(st.columns(4), si.similarity_metrics(res)):
        column.metric(label, value, help=help_)
    st.caption("Strongest patches: " + ", ".join(f"({r}, {c}) {w:.4f}" for r, c, w in res.top_patches(TOP_K)))
    st.caption(si.features_caption(feats, res.device) + (" " + si.resolution_note(vit) if trained is not None else ""))
    for column, (label, data, file_name, mime, key) in zip(st.columns(3), si.similarity_downloads(res, name, draw)):
        column.download_button(label, data, file_name, mime, key=key, on_click="ignore")


main()
