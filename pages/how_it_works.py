"""How it works: a small example walked through step by step; click any number to see where it comes from."""

import streamlit as st

from attnviz import get_similarity
from attnviz.explain import (
    ARTICLE_LATEX,
    MATRICES,
    NOTATION_SENTENCES,
    PCA_SENTENCE,
    STANDARD_LATEX,
    STEPS,
    TRACKS,
    WHY_MAX_SUBTRACTED,
    explain_cell,
    notation_caption,
    notation_table,
    overflow_summary,
    scaled_summary,
)
from attnviz.figures import outputs_figure, patch_picture, vectors_figure
from attnviz.fmt import fmt
from attnviz.highlight import highlight_html
from attnviz.text import ENCODERS
from attnviz.walkthrough import article_literal, image_example, text_example, walk_example
from ui.classroom import clickable_matrix, md_escape, photo_picker, style_figure
from ui.head_track import head_track
from ui.shell import require_shell
from ui.widgets import current_device, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

STEP_KEY = "hiw_step"
DEFAULT_TEXT = "The cat sat on the mat"


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Turning the sentence into vectors…")
def _text_example(text: str, encoder: str, device: str):
    return text_example(text, encoder, device)


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Cutting the photo into 3 × 3 patches…")
def _image_example(source):
    return image_example(source)


@st.cache_data(max_entries=16, ttl=3600, show_spinner=False)
def _photo(source):
    import numpy as np

    from attnviz.image import load_upload, thumbnail

    return np.asarray(thumbnail(load_upload(source), 480))


def _go(delta: int) -> None:
    st.session_state[STEP_KEY] = min(max(int(st.session_state.get(STEP_KEY, 0)) + delta, 0), len(STEPS) - 1)


def _explained_matrix(wt, name: str, caption: str, colorbar: str) -> tuple[int, int]:
    """The step's matrix, clickable, and the explanation of the selected number under it."""
    title, row_title, col_title = MATRICES[name]
    i, j = clickable_matrix(wt.matrix(name), wt.column_labels(name), list(wt.labels), key=f"hiw_{name}",
                            title=title, x_title=col_title, y_title=row_title, colorbar_title=colorbar,
                            caption=caption, default=(0, 1 if wt.n > 1 and name not in ("vectors", "outputs") else 0))
    e = explain_cell(wt, name, i, j)
    with st.container(border=True, key=f"hiw_explain_{name}"):
        col = wt.column_labels(name)[j]
        st.markdown(f"**This number:** row {i} ({md_escape(wt.labels[i])}), column {j} ({md_escape(col)})")
        st.latex(e.latex)
        st.markdown(md_escape(e.text))
    return i, j


# --------------------------------------------------------------------------------------------- input

st.title(":material/calculate: How it works — attention, one step at a time")
track = st.radio("Track", list(TRACKS), key="hiw_track", horizontal=True, format_func=TRACKS.get)
if track == "head":  # the second track: one head of the trained MiniLM, recomputed from its weights
    head_track()
    st.stop()
st.markdown(
    "A small example, computed in front of you. Press **Next** to go one step further and **Back** to go back. "
    "Every number in every matrix can be explained: click a cell (or pick its row and column under the chart)."
)

left, right = st.columns([3, 2], gap="large")
with left:
    mode = st.radio("Example", ["text", "image"], key="hiw_mode", horizontal=True,
                    format_func=lambda m: "A short sentence" if m == "text" else "A photo cut into 3 × 3 patches")
    if mode == "text":
        st.session_state.setdefault("hiw_text", DEFAULT_TEXT)
        text = st.text_input("Your sentence (4 to 8 words; only the first 8 word pieces are used)", key="hiw_text",
                             max_chars=300)
        encoder = st.selectbox("Where the vectors come from", list(ENCODERS), key="hiw_encoder",
                               format_func=lambda e: ENCODERS[e].label)
    else:
        source, photo_name = photo_picker("hiw_photo")
with right:
    similarity, temperature = similarity_picker("hiw", default="cosine")

try:
    example = _text_example(text, encoder, current_device()) if mode == "text" else _image_example(source)
    wt = walk_example(example, similarity, temperature)
except Exception as err:  # typed errors become one friendly sentence
    show_error(err)
    st.stop()

for note in example.notes:
    st.caption(md_escape(note))

# ---------------------------------------------------------------------------------------- navigation

step = min(max(int(st.session_state.get(STEP_KEY, 0)), 0), len(STEPS) - 1)
st.session_state[STEP_KEY] = step
nav = st.columns([1, 1, 5], vertical_alignment="center")
nav[0].button("◀ Back", key="hiw_back", on_click=_go, args=(-1,), disabled=step == 0, width="stretch")
nav[1].button("Next ▶", key="hiw_next", on_click=_go, args=(1,), disabled=step == len(STEPS) - 1, width="stretch")
nav[2].progress((step + 1) / len(STEPS), text=f"Step {step + 1} of {len(STEPS)}: {STEPS[step].title}")

current = STEPS[step]
st.header(f"Step {step + 1}. {current.title}")
st.markdown(current.sentence)
sim = get_similarity(similarity)
labels = wt.labels

if current.key == "vectors":
    st.latex(rf"x_1, \dots, x_{{{wt.n}}} \in \mathbb{{R}}^{{{wt.d}}}")
    st.markdown(md_escape(wt.source))
    if mode == "image":
        g = example.grid
        st.image(patch_picture(_photo(source), g),
                 caption=f"{photo_name}: 3 × 3 patches, r = row and c = column (r0c0 is the top left).", width=480)
    st.plotly_chart(style_figure(vectors_figure(wt)), key="hiw_pca", width="stretch")
    st.caption(PCA_SENTENCE.format(d=wt.d, kept=float(wt.projection.explained.sum())) +
               " Points close together have similar vectors.")
    _explained_matrix(wt, "vectors", f"Each row is one {'token' if mode == 'text' else 'patch'}'s vector; the "
                      f"columns are its first {wt.matrix('vectors').shape[1]} of {wt.d} numbers.", "value")

elif current.key == "scores":
    st.latex(sim.formula + r"\qquad\text{with } q = x_i,\ k = x_j:\quad s_{ij} = s(x_i, x_j)")
    st.caption(f"{sim.label}: {sim.sentence}")
    _explained_matrix(wt, "scores", f"Row i, column j: how similar {('token' if mode == 'text' else 'patch')} i is to "
                      f"j under the {sim.label.lower()}. Brighter means more similar.", "score")

elif current.key == "scaled":
    st.latex(rf"\frac{{s_{{ij}}}}{{T}}, \qquad T = {fmt(wt.temperature)}")
    st.markdown(scaled_summary(wt))
    _explained_matrix(wt, "scaled", "The same matrix as before, every number divided by the temperature T.",
                      "score / T")

elif current.key == "exp":
    st.latex(r"e_{ij} = \exp\!\Big(\frac{s_{ij}}{T} - \max_k \frac{s_{ik}}{T}\Big)")
    st.info(WHY_MAX_SUBTRACTED, icon=":material/lightbulb:")
    st.markdown(overflow_summary(wt))
    st.caption("Row maxima m_i: " + ", ".join(f"{i}·{md_escape(t)} = {fmt(m)}"
                                               for i, (t, m) in enumerate(zip(labels, wt.row_max))))
    _explained_matrix(wt, "exp", "exp of each scaled score minus its row's maximum: every number is between 0 and 1, "
                      "and the biggest in each row is 1.", "exp")

elif current.key == "sums":
    st.latex(r"Z_i = \sum_{j=1}^{n} e_{ij}")
    st.caption("Row sums Z_i: " + ", ".join(f"{i}·{md_escape(t)} = {fmt(z)}"
                                             for i, (t, z) in enumerate(zip(labels, wt.row_sums))))
    _explained_matrix(wt, "sums", "The exps again, with each row's total Z_i in the last column (Σ). Click a Σ cell "
                      "to see the addition.", "exp / sum")

elif current.key == "weights":
    st.latex(r"a_{ij} = \frac{e_{ij}}{Z_i} = \mathrm{softmax}_j\Big(\frac{s_{ij}}{T}\Big), \qquad \sum_j a_{ij} = 1")
    i, _ = _explained_matrix(wt, "weights", "Row i: how query i shares its attention among all the keys j. "
                             "Each row adds up to 1.", "weight")
    st.caption("Row sums of the weights: " + ", ".join(fmt(s, 6) for s in wt.weight_row_sums) + ".")
    if mode == "text":
        st.markdown(f"Row {i} ({md_escape(labels[i])}) as a highlight over the sentence:")
        st.html(highlight_html(example.text, example.offsets, wt.weights[i], list(labels),
                               legend_label=f"weight given by token {i}"))
    else:
        g = example.grid
        st.image(patch_picture(_photo(source), g, wt.weights[i], i),
                 caption=f"Where patch {labels[i]} (outlined) looks: brighter patches get more of its weight.",
                 width=480)

elif current.key == "output":
    st.latex(r"y_i = \sum_{j=1}^{n} a_{ij}\, x_j")
    st.plotly_chart(style_figure(outputs_figure(wt)), key="hiw_outputs", width="stretch")
    st.caption("Blue dots are the inputs, orange diamonds the outputs, drawn in the same 2-D PCA view as step 1; "
               "each arrow goes from x_i to its output y_i, which is pulled towards the vectors x_i attends to.")
    _explained_matrix(wt, "outputs", f"Each row is one output vector; the columns are its first "
                      f"{wt.matrix('outputs').shape[1]} of {wt.d} numbers.", "value")

else:  # the article's notation
    st.markdown("**The seed article writes:**")
    st.latex(ARTICLE_LATEX)
    st.markdown("**The standard form (what attnviz computes):**")
    st.latex(STANDARD_LATEX)
    for sentence in NOTATION_SENTENCES:
        st.markdown("- " + sentence)
    lit = article_literal(wt)
    st.subheader("The article's formulas read literally, on this example")
    st.dataframe(notation_table(lit, labels), hide_index=True, key="hiw_notation_table")
    st.caption(notation_caption(lit))
