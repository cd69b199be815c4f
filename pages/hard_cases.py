"""Hard cases: the seed article's three hard cases (long, irregular, multimodal), measured live."""

import numpy as np
import streamlit as st
from streamlit_image_coordinates import streamlit_image_coordinates

from attnviz import SIMILARITIES
from attnviz.devices import device_label, run_with_fallback
from attnviz.figures import matrix_figure, scaling_figures
from attnviz import hardcases as hc
from attnviz.highlight import highlight_html
from attnviz.measure import EXCLUSIVE
from attnviz.text import ENCODERS
from ui.cache import memo_data
from ui.classroom import md_escape, photo_picker, style_figure
from ui.shell import require_shell
from ui.widgets import current_device, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

DEFAULT_BATCH = ("The kitten sleeps on the sofa.\n"
                 "A dog barks at the postman every single morning before breakfast.\n"
                 "Rates rose.")
BUDGETS = (1, 2, 4, 6, 10, 20)
TT_A, TT_B = "The cat sat on the mat.", "A kitten was sleeping on the rug by the door."  # text -> text
TI_TEXT = "blue sky above green trees"  # text -> photo


_ragged = memo_data("Encoding the batch…", shipped=tuple(DEFAULT_BATCH.splitlines()))(hc.ragged_text_batch)


@memo_data("Encoding both texts…", inputs=("a", "b"), shipped=(TT_A, TT_B))
def _text_to_text(a: str, b: str, encoder: str, similarity: str, temperature: float, device: str):
    res, ea, eb = hc.text_to_text(a, b, encoder, similarity, temperature, device)
    return res, list(eb.offsets[:len(res.key_labels)]), eb.text


@memo_data("Running DINOv2 on both photos…", inputs=("a", "b"))
def _photo_to_photo(a, b, layer: int, similarity: str, temperature: float, device: str):
    return hc.photo_to_photo(a, b, layer, similarity, temperature, device=device)


@memo_data("Encoding the text and the photo…", inputs=("text", "image"), shipped=(TI_TEXT,))
def _text_to_image(text: str, image, grid: int, similarity: str, encoder: str, device: str):
    from attnviz.image import thumbnail

    res, g, img = hc.text_to_image(text, image, grid, similarity, 1.0, encoder, device)
    return res, g, np.asarray(thumbnail(img, 360))


@memo_data("Asking the aligned model…", inputs=("text", "image"), shipped=(TI_TEXT,))
def _clip_text_to_image(text: str, image, model_path: str):
    from attnviz.image import thumbnail

    res, g, img = hc.clip_text_to_image(text, image, model_path)
    return res, g, np.asarray(thumbnail(img, 480))


st.title(":material/landscape: Hard cases")
st.markdown("The seed article names three hard cases for attention (its section 5.2): **long sequences**, "
            "**irregular sequences** and **multimodal data**. Each is demonstrated here with real measurements "
            "on this machine and your inputs.")
long_tab, ragged_tab, multi_tab = st.tabs(["1. Long sequences", "2. Irregular sequences", "3. Multimodal"])

# ------------------------------------------------------------------------------ 1. long sequences
with long_tab:
    device = current_device()
    st.markdown(
        "Full attention builds the whole n × n matrix of scores and another of weights, so its time and memory "
        "grow with n². The **blocked** path computes a few query rows at a time and never holds more than one "
        "block: its memory stays flat while its time still grows with n². attnviz's pages always use the "
        "blocked path once a text is long (no n × n matrix is built above 2,048 tokens).")
    c1, c2, c3 = st.columns(3)
    long_sims = hc.similarity_choices("self")
    sim_name = c1.selectbox("Similarity", long_sims, key="hc_long_sim", index=long_sims.index("scaled_dot"),
                            format_func=lambda n: SIMILARITIES[n].label)
    budget = c2.select_slider("Time budget (seconds)", options=BUDGETS, value=6, key="hc_budget")
    width = c3.selectbox("Vector width d", [64, 384], key="hc_width")
    if EXCLUSIVE.busy():
        st.caption("Another measurement is running on this server now: yours will wait for it to finish.")
    if st.button(f"▶ Measure now on {device_label(device)}", key="hc_measure"):
        queue = st.empty()
        bar = st.progress(0.0, text=f"Timing full and blocked attention for growing n, for at most {budget} s…")
        try:
            result, used, warning = run_with_fallback(lambda dev: hc.measure_scaling(
                dev, sim_name, d=width, budget_s=float(budget),
                on_wait=lambda ahead: queue.info(f"Waiting for another measurement to finish ({ahead} waiting "
                                                 "in all): one runs at a time, so each is timed fairly.",
                                                 icon=":material/hourglass_empty:"),
                on_progress=lambda share, text: bar.progress(share, text=text)), device)
            st.session_state["hc_scaling"] = result
            if warning:
                st.warning(warning)
        except Exception as err:
            show_error(err)
        queue.empty()
        bar.empty()
    result = st.session_state.get("hc_scaling")
    if result is None:
        st.info("Press the button: the measurement runs live on this machine and stops when the time budget is "
                "spent.", icon=":material/timer:")
    else:
        tfig, mfig = scaling_figures(result)
        f1, f2 = st.columns(2)
        f1.plotly_chart(style_figure(tfig), key="hc_time_fig", width="stretch")
        f1.caption(hc.time_caption(result))
        f2.plotly_chart(style_figure(mfig), key="hc_mem_fig", width="stretch")
        f2.caption("Peak extra memory of one call against n, both axes logarithmic. Full attention's memory "
                   "quadruples when n doubles; the blocked path's stays near one block.")
        st.dataframe(result.table(), hide_index=True, key="hc_scaling_table")
        st.caption(hc.scaling_caption(result))

# -------------------------------------------------------------------------- 2. irregular sequences
with ragged_tab:
    st.markdown(
        "Sentences have different lengths, but a batch is one rectangular tensor: the short ones are **padded** "
        "to the longest. The **padding mask** tells attention which positions are real. Without it, real tokens "
        "give part of their attention to padding, their outputs change, and a sentence's result depends on "
        "which other sentences share its batch.")
    st.session_state.setdefault("hc_batch", DEFAULT_BATCH)
    left, right = st.columns([3, 2], gap="large")
    with left:
        batch_text = st.text_area("One sentence per line (2 to 8 lines, the first 16 word pieces of each)",
                                  key="hc_batch", height=110, max_chars=3000)
        encoder = st.selectbox("Where the vectors come from", list(ENCODERS), index=1, key="hc_rag_encoder",
                               format_func=lambda e: ENCODERS[e].label)
    with right:
        rsim, rtemp = similarity_picker("hc_rag", default="scaled_dot", explain=False)
    texts = tuple(line for line in batch_text.splitlines() if line.strip())[:8]
    try:
        demo = _ragged(list(texts), encoder, rsim, rtemp, current_device())
    except Exception as err:
        show_error(err)
        demo = None
    if demo is not None:
        st.caption(f"Batch of {len(demo.lengths)} sentences, lengths {', '.join(map(str, demo.lengths))} → padded "
                   f"to {demo.n_max} with {demo.pad_description}.")
        b = st.selectbox("Sentence to inspect", list(range(len(demo.lengths))), index=int(np.argmin(demo.lengths)),
                         key="hc_rag_seq",
                         format_func=lambda i: f"{i}: {' '.join(demo.labels[i])[:60]} ({demo.lengths[i]} tokens)")
        labels = demo.padded_labels(b)
        top = float(max(demo.weights_masked[b].max(), demo.weights_unmasked[b].max()))  # one colour scale for both
        for col, weights, title, key, caption in zip(
                st.columns(2), (demo.weights_masked[b], demo.weights_unmasked[b]),
                ("with the padding mask", "without the mask"), ("hc_rag_masked", "hc_rag_unmasked"),
                ("With the mask: the [PAD] columns get exactly 0 and the [PAD] rows are empty; every real row adds "
                 "up to 1 over the real tokens only.",
                 "Without the mask: the [PAD] columns take weight away from the real tokens, and the [PAD] rows "
                 "attend as if they were words.")):
            fig = matrix_figure(weights, labels, labels, title=title, colorbar_title="weight")
            fig.update_traces(zmin=0.0, zmax=top)
            col.plotly_chart(style_figure(fig), key=key, width="stretch")
            col.caption(caption)
        for col, (label, value, explanation) in zip(st.columns(4), demo.metrics(b)):
            col.metric(label, value, help=explanation)
        st.dataframe(demo.table(), hide_index=True, key="hc_rag_table")
        st.caption(f"The more padding a sentence gets, the more goes wrong without the mask; the longest sentence "
                   f"has none and is unaffected. Without the mask, the same sentence's weights differ from "
                   f"attending to it alone by up to {demo.unmasked_alone_max_diff:.3f}; with it, by "
                   f"{demo.alone_max_diff:.1e} (rounding).")

# ---------------------------------------------------------------------------------- 3. multimodal
with multi_tab:
    st.markdown("**Cross-attention**: the queries come from one input and the keys and values from another. Each "
                "query asks 'which parts of the *other* input are like me?'.")
    st.subheader("Text → text")
    st.session_state.setdefault("hc_tt_a", TT_A)
    st.session_state.setdefault("hc_tt_b", TT_B)
    c1, c2 = st.columns(2)
    ta = c1.text_input("Queries from text A", key="hc_tt_a", max_chars=400)
    tb = c2.text_input("Keys and values from text B", key="hc_tt_b", max_chars=400)
    tt_enc = c1.selectbox("Where the vectors come from", list(ENCODERS), key="hc_tt_encoder",
                          format_func=lambda e: ENCODERS[e].label)
    with c2:
        tsim, ttemp = similarity_picker("hc_tt", default="cosine", explain=False)
    try:
        tt, offsets_b, text_b = _text_to_text(ta, tb, tt_enc, tsim, ttemp, current_device())
        fig = matrix_figure(tt.weights, tt.key_labels, tt.query_labels, title="text A attends to text B",
                            x_title="key: token of text B", y_title="query: token of text A", colorbar_title="weight")
        st.plotly_chart(style_figure(fig), key="hc_tt_fig", width="stretch")
        st.caption("Row i: how token i of text A shares its attention over the tokens of text B. " + tt.note)
        qi = st.selectbox("Token of text A to follow", list(range(len(tt.query_labels))), key="hc_tt_query",
                          index=min(1, len(tt.query_labels) - 1), format_func=lambda i: f"{i} · {tt.query_labels[i]}")
        st.html(highlight_html(text_b, offsets_b, tt.weights[qi], tt.key_labels,
                               legend_label=f"weight from token {qi} of text A"))
    except Exception as err:
        show_error(err)

    st.subheader("Photo → photo")
    c1, c2, c3 = st.columns([2, 2, 1])
    src_a, name_a = photo_picker("hc_img_a", "Photo A (queries)", default=0, container=c1)
    src_b, name_b = photo_picker("hc_img_b", "Photo B (keys)", default=1, container=c2)
    photo_sims = hc.similarity_choices("photo")
    isim = c3.selectbox("Similarity", photo_sims, key="hc_ii_sim", index=photo_sims.index("cosine"),
                        format_func=lambda n: SIMILARITIES[n].label)
    itemp = c3.select_slider("T", options=(0.03, 0.05, 0.1, 0.2, 0.5, 1.0), value=0.1, key="hc_ii_temp")
    ilayer = c3.slider("DINOv2 block", 0, hc.CROSS_IMAGE_LAYERS - 1, hc.CROSS_IMAGE_LAYER, key="hc_ii_layer")
    try:
        ii = _photo_to_photo(src_a, src_b, ilayer, isim, float(itemp), current_device())
        if ii.notice:
            st.info(ii.notice, icon=":material/info:")
        st.session_state.update(ii.click_updates(st.session_state))  # a click on photo A picks the query patch
        pi = st.selectbox("Patch of photo A to follow (or click photo A)", list(range(ii.grid_a.n)),
                          key="hc_ii_query", format_func=lambda i: ii.result.query_labels[i])
        c1, c2 = st.columns(2)
        with c1:
            streamlit_image_coordinates(ii.picture_a(pi), key="hc_ii_click", use_column_width="always",
                                        cursor="crosshair")
        c1.caption(f"Photo A ({name_a}): click a point; the query patch {ii.result.query_labels[pi]} is outlined.")
        c2.image(ii.picture_b(pi), caption=f"Photo B ({name_b}): {ii.caption_b(pi)}", width="stretch")
        st.caption(ii.result.note)
    except Exception as err:
        show_error(err)

    st.subheader("Text → photo")
    status = hc.aligned_text_image_model()  # its server-side detail goes to the log, the page shows .message
    (st.success if status.available else st.info)(status.message, icon=":material/search:")
    st.session_state.setdefault("hc_ti_text", TI_TEXT)
    c1, c2 = st.columns([3, 2])
    ti_text = c1.text_input("Text (queries)", key="hc_ti_text", max_chars=200)
    if status.available:
        try:
            cr, cgrid, cphoto = _clip_text_to_image(ti_text, src_a, status.path)
            cq = st.selectbox("Word to look for (aligned model)", list(range(len(cr.query_labels))),
                              key="hc_clip_query", format_func=lambda i: f"{i} · {cr.query_labels[i]}")
            st.image(hc.overlay_patches(cphoto, cgrid, cr.weights[cq]), width=480,
                     caption=f"{md_escape(status.name)}: where '{md_escape(cr.query_labels[cq])}' matches {name_a} "
                             f"(T = 1/CLIP's logit scale = {cr.temperature:.3g}).")
            st.caption(cr.note)
        except Exception as err:
            show_error(err)
        st.markdown("For contrast, the same question asked of the **unaligned** vectors:")
    st.warning("**Not meaningful here.** " + hc.ALIGNMENT_STATEMENT, icon=":material/warning:")
    ti_sim = c2.selectbox("Scorer (both untrained)", hc.similarity_choices("cross_width"), key="hc_ti_sim",
                          format_func=lambda n: SIMILARITIES[n].label)
    try:
        ti, tgrid, photo = _text_to_image(ti_text, src_a, 6, ti_sim, "contextual", current_device())
        ti_q = st.selectbox("Word piece to follow", list(range(len(ti.query_labels))), key="hc_ti_query",
                            format_func=lambda i: f"{i} · {ti.query_labels[i]}")
        s0, s1 = ti.extra["seeds"]
        c1, c2 = st.columns(2)
        c1.image(hc.overlay_patches(photo, tgrid, ti.weights[ti_q]), width="stretch",
                 caption=f"Untrained map, seed {s0}: where '{md_escape(ti.query_labels[ti_q])}' 'looks' in {name_a}.")
        c2.image(hc.overlay_patches(photo, tgrid, ti.extra["weights_other_seed"][ti_q]), width="stretch",
                 caption=f"The same text and photo, random seed {s1}: a different picture.")
        st.metric("agreement between the two seeds' maps (correlation)", f"{ti.extra['seed_correlation']:.2f}",
                  help="1 would mean the map does not depend on the random numbers.")
        st.caption(hc.seed_caption(ti))
    except Exception as err:
        show_error(err)
