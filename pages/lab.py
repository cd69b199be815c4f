"""Similarity lab: the same input under two to four similarity functions, side by side, and two findings
measured on that input."""

import streamlit as st

from attnviz import SIMILARITIES, get_similarity
from attnviz.figures import effective_figure, matrix_figure, patch_picture, sweep_figure
from attnviz.fmt import fmt
from attnviz.highlight import highlight_html
from attnviz.lab import (
    DEMO_TEMPERATURES,
    MAX_COLUMNS,
    MAX_TEXT_TOKENS,
    compare,
    cosine_needs_temperature,
    demo_table,
    demo_temperature,
    entropy_table,
    euclidean_as_dot,
    image_input,
    temperature_sweep,
    text_input,
)
from attnviz.text import ENCODERS
from ui.cache import memo_data
from ui.classroom import classroom_on, feature_picker, md_escape, photo_picker, style_figure
from ui.shell import require_shell
from ui.widgets import TEMPERATURES, current_device, show_error

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

DEFAULT_TEXT = "The kitten chased the ball, then the cat slept on the warm car."
DEFAULT_SIMS = ["scaled_dot", "cosine", "rbf"]


@memo_data("Turning the text into vectors…", shipped=(DEFAULT_TEXT,))
def _text_input(text: str, encoder: str, device: str):
    return text_input(text, encoder, device)


@memo_data("Cutting the photo into patches…")
def _image_input(source, long_side: int, features: str, device: str):
    return image_input(source, long_side, features, device)


@memo_data()
def _thumbnail(source):
    import numpy as np

    from attnviz.image import load_upload, thumbnail

    return np.asarray(thumbnail(load_upload(source), 360))


st.title(":material/science: Similarity lab")
st.markdown("The **same input** under two to four similarity functions side by side: the weight matrices, where "
            "one query looks, how spread out each row is, and what the temperature does. Below, two findings "
            "measured on your input.")

left, right = st.columns([3, 2], gap="large")
with left:
    mode = st.radio("Input", ["text", "image"], key="lab_mode", horizontal=True,
                    format_func=lambda m: "Text" if m == "text" else "Photo patches")
    if mode == "text":
        st.session_state.setdefault("lab_text", DEFAULT_TEXT)
        text = st.text_area(f"Your text (the first {MAX_TEXT_TOKENS} word pieces are compared)", key="lab_text",
                            height=90, max_chars=2000)
        encoder = st.selectbox("Where the vectors come from", list(ENCODERS), key="lab_encoder",
                               format_func=lambda e: ENCODERS[e].label)
    else:
        source, photo_name = photo_picker("lab_photo")
        long_side = st.select_slider("Patches along the long side", options=[3, 4, 5, 6, 8, 10, 12], value=8,
                                     key="lab_grid")
        features = feature_picker("lab_features")
with right:
    st.session_state.setdefault("lab_sims", DEFAULT_SIMS)
    names = st.multiselect("Similarity functions (2 to 4)", list(SIMILARITIES), key="lab_sims",
                           max_selections=MAX_COLUMNS, format_func=lambda n: SIMILARITIES[n].label)

if len(names) < 2:
    st.warning("Pick at least two similarity functions to compare.", icon=":material/info:")
    st.stop()

try:
    example = (_text_input(text, encoder, current_device()) if mode == "text"
               else _image_input(source, long_side, features, current_device()))
except Exception as err:
    show_error(err)
    st.stop()
labels, vectors = list(example.labels), example.vectors
for note in example.notes:
    st.caption(md_escape(note))
if mode == "image":
    st.caption(md_escape(example.source))
if len(labels) < 2:
    st.warning("Attention needs at least two tokens: type a few more words.", icon=":material/info:")
    st.stop()

query = st.selectbox("Query to follow (its row is drawn under each matrix)", list(range(len(labels))),
                     key="lab_query", format_func=lambda i: f"{i} · {labels[i]}",
                     index=min(1, len(labels) - 1))

# one temperature per function, reset to the function's default when it is added
temps = {}
tcols = st.columns(len(names))
for c, name in enumerate(names):
    sim = get_similarity(name)
    key = f"lab_temp_{name}"
    if st.session_state.get(key) not in TEMPERATURES:
        st.session_state[key] = min(TEMPERATURES, key=lambda v: abs(v - sim.default_temperature))
    temps[name] = float(tcols[c].select_slider(f"T for {sim.label}", options=TEMPERATURES, key=key))

try:
    columns = compare(vectors, names, temps)
except Exception as err:
    show_error(err)
    st.stop()

st.header("Side by side")
per_row = 1 if classroom_on() else min(len(columns), 2)  # projector: one per row, wider than tall
cols = [slot for start in range(0, len(columns), per_row) for slot in st.columns(per_row)][:len(columns)]
for c, col in enumerate(columns):
    with cols[c]:
        st.subheader(col.label)
        if col.untrained:
            st.caption(":material/warning: Untrained: seeded random parameters, not learned ones.")
        fig = matrix_figure(col.weights, labels, labels, title=f"weights, T = {col.temperature:g}",
                            colorbar_title="weight")
        fig.update_layout(height=420)
        st.plotly_chart(style_figure(fig), key=f"lab_matrix_{col.similarity}", width="stretch")
        st.caption(f"{col.label} at T = {col.temperature:g}: row i shows how query i shares its attention over "
                   "the keys j (columns). Bright = much weight.")
        st.metric(f"{col.label}: mean effective tokens", f"{col.mean_effective:.2f} of {len(labels)}",
                  help="exp(entropy) of each row, averaged: 1 = all weight on one token, n = spread evenly.")
        st.metric(f"{col.label}: mean largest weight", f"{col.mean_max_weight:.3f}")
        if mode == "text":
            st.html(highlight_html(text, list(example.offsets), col.weights[query], labels,
                                   legend_label=f"weight from token {query}"))
        else:
            st.image(patch_picture(_thumbnail(source), example.grid, col.weights[query], query),
                     caption=f"Where patch {labels[query]} (outlined) looks under {col.label}.", width="stretch")
        st.caption(f"**When it is used:** {col.use} Paper: [{col.source}]({col.url}).")

st.header("How spread out is each row?")
st.plotly_chart(style_figure(effective_figure(columns, labels)), key="lab_effective", width="stretch")
st.caption("For every query token, the effective number of tokens it attends to, exp(entropy of its row): 1 means "
           f"all its attention is on one token, {len(labels)} means spread evenly over all of them.")
st.dataframe(entropy_table(columns, labels), hide_index=True, key="lab_entropy_table")

st.header("What the temperature does")
sweeps = [temperature_sweep(vectors, n) for n in names]
st.plotly_chart(style_figure(sweep_figure(sweeps)), key="lab_sweep", width="stretch")
st.caption("Each line is one similarity function on your input: as the temperature T grows (to the right), the "
           "effective number of tokens attended grows from 1 (all attention on the best match) towards n (spread "
           "evenly). The same scores, only divided by a different T.")

# ------------------------------------------------------------------------------------- finding 1
st.header("Finding 1: Euclidean attention is dot-product attention with a key-length penalty")
st.latex(r"-\tfrac12\lVert q-k\rVert^2 \;=\; q^\top k \;-\; \tfrac12\lVert k\rVert^2 \;-\; \tfrac12\lVert q\rVert^2")
st.markdown("The last term depends only on the query, so it is the same for every key in a row, and a row softmax "
            "ignores anything added to the whole row. So attention with the squared-distance score gives **exactly** "
            "the weights of dot-product attention whose scores lose half of each key's squared length: long keys "
            "are penalised.")
suggested = demo_temperature(vectors, sigma=1.0)
if st.session_state.get("lab_demo_temp") not in DEMO_TEMPERATURES:
    st.session_state["lab_demo_temp"] = suggested
demo_t = float(st.select_slider(f"Temperature for this demonstration (suggested for your input: {suggested:g})",
                                options=DEMO_TEMPERATURES, key="lab_demo_temp",
                                help="Squared distances are large numbers; this T keeps the weights readable."))
demo = euclidean_as_dot(vectors, sigma=1.0, temperature=demo_t)
m1, m2, m3 = st.columns(3)
m1.metric("largest weight difference, float64", f"{demo.max_weight_diff:.1e}")
m2.metric("the same in float32", f"{demo.max_weight_diff_float32:.1e}")
m3.metric("vs plain dot product (no penalty)", f"{demo.max_weight_diff_plain_dot:.3f}")
st.caption(f"Measured on your {len(labels)} vectors at T = {fmt(demo_t)}: attnviz's 'rbf' similarity with σ = 1 "
           f"(score −‖q−k‖²/2) against the dot product minus ‖k‖²/2. Their weights differ only by rounding "
           f"(largest difference {demo.max_weight_diff:.1e}); the score matrices differ by exactly −‖q‖²/2 along each "
           f"row (spread of that difference within a row: {demo.max_score_gap:.1e}). Without the penalty the plain "
           f"dot product gives different weights (largest difference {demo.max_weight_diff_plain_dot:.3f}).")
st.dataframe(demo_table(demo, labels, query), hide_index=True, key="lab_euclid_table")
st.caption("attnviz's 'euclidean' similarity uses the distance itself, −‖q−k‖, not its square: the identity above "
           "is for the squared distance, which is the 'rbf' score with σ = 1 (the registry's default σ is √d).")

# ------------------------------------------------------------------------------------- finding 2
st.header("Finding 2: plain cosine needs a temperature")
cos = cosine_needs_temperature(vectors, (1.0, 0.1))
st.markdown(f"Cosine scores lie between −1 and 1 (here from **{fmt(cos.score_min)}** to **{fmt(cos.score_max)}**). "
            f"At T = 1 two weights of one row can differ by a factor of at most e² ≈ {cos.ratio_bound[0]:.2f}, so "
            "with many tokens every weight stays close to 1/n.")
c1, c2 = st.columns(2)
c1.metric("cosine, T = 1: mean effective tokens", f"{cos.mean_effective[0]:.2f} of {cos.n}",
          help="n would mean perfectly uniform weights.")
c1.metric("cosine, T = 1: mean largest weight", f"{cos.mean_max_weight[0]:.3f}",
          help=f"Uniform weights would be 1/n = {cos.uniform_weight:.3f}.")
c2.metric("cosine, T = 0.1: mean effective tokens", f"{cos.mean_effective[1]:.2f} of {cos.n}")
c2.metric("cosine, T = 0.1: mean largest weight", f"{cos.mean_max_weight[1]:.3f}")
st.caption(f"Measured on your input: at T = 1 each query spreads its attention over {cos.mean_effective[0]:.1f} of "
           f"{cos.n} tokens on average, nearly uniform (uniform weight 1/n = {cos.uniform_weight:.3f}); dividing "
           f"the scores by T = 0.1 stretches them to [−10, 10] and the same rows attend to "
           f"{cos.mean_effective[1]:.1f} tokens. That is why cosine attention is used with a small, often learned, "
           "temperature.")
