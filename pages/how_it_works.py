"""How it works: a small example walked through step by step; click any number to see where it comes from."""

import streamlit as st

from attnviz import get_similarity
from attnviz.explain import (
    ARTICLE_LATEX,
    CELL_FORMAT,
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
from attnviz.pages import page
from ui.cache import memo_data
from ui.classroom import classroom_on, clickable_matrix, feature_picker, long_formula, md_escape, photo_picker, style_figure
from ui.head_track import head_track
from ui.shell import require_shell
from ui.widgets import current_device, show_error, similarity_picker

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

STEP_KEY = "hiw_step"
DEFAULT_TEXT = "The cat sat on the mat"


@memo_data("Turning the sentence into vectors…", shipped=(DEFAULT_TEXT,))
def _text_example(text: str, encoder: str, device: str):
    return text_example(text, encoder, device)


@memo_data("Cutting the photo into 3 × 3 patches…")
def _image_example(source, features: str, device: str):
    return image_example(source, features=features, device=device)


@memo_data()
def _photo(source):
    import numpy as np

    from attnviz.image import load_upload, thumbnail

    return np.asarray(thumbnail(load_upload(source), 480))


def _go(delta: int) -> None:
    st.session_state[STEP_KEY] = min(max(int(st.session_state.get(STEP_KEY, 0)) + delta, 0), len(STEPS) - 1)


def _explained_matrix(wt, name: str, caption: str, colorbar: str, side) -> tuple[int, int]:
    """The step's matrix, clickable, and (in ``side``) the explanation of the selected number."""
    title, row_title, col_title = MATRICES[name]
    i, j = clickable_matrix(wt.matrix(name), wt.column_labels(name), list(wt.labels), key=f"hiw_{name}",
                            title=title, x_title=col_title, y_title=row_title, colorbar_title=colorbar,
                            caption=caption, default=(0, 1 if wt.n > 1 and name not in ("vectors", "outputs") else 0),
                            value_format=CELL_FORMAT)
    e = explain_cell(wt, name, i, j)
    with side.container(border=True, key=f"hiw_explain_{name}"):
        col = wt.column_labels(name)[j]
        st.markdown(f"**This number:** row {i} ({md_escape(wt.labels[i])}), column {j} ({md_escape(col)})")
        st.latex(e.latex)
        if long_formula(e.latex):
            st.caption(":material/swipe: A long formula: scroll it sideways to read it all.")
        st.markdown(md_escape(e.text))
    return i, j


# --------------------------------------------------------------------------------------------- input
# One compact bar of settings above the step, so the step's matrix or figure is on the first screen at 1280 x 720
# (tests/browser/test_classroom_browser.py measures it); long explanations sit in expanders.

st.title(page("pages/how_it_works.py").heading,
         help="A small example, computed in front of you. Next / Back move one step; click any cell of a matrix "
              "(or pick its row and column) to see where that number comes from.")
track = st.radio("Track", list(TRACKS), key="hiw_track", horizontal=True, format_func=TRACKS.get,
                 label_visibility="collapsed")
if track == "head":  # the second track: one head of the trained MiniLM, recomputed from its weights
    head_track()
    st.stop()

bar = st.columns([2, 2.6, 3.4], vertical_alignment="bottom")
mode = bar[0].selectbox("Example", ["text", "image"], key="hiw_mode",
                        format_func=lambda m: "A short sentence" if m == "text" else "A photo, 3 × 3 patches")
if mode == "text":
    st.session_state.setdefault("hiw_text", DEFAULT_TEXT)
    text = bar[1].text_input("Your sentence (4 to 8 words)", key="hiw_text", max_chars=300,
                             help="Only the first 8 word pieces are used: the walkthrough shows every number.")
else:
    source, photo_name = photo_picker("hiw_photo", container=bar[1])
shown = get_similarity(st.session_state.get("hiw_sim", "cosine"))  # the popover's label: the settings it holds
shown_t = st.session_state.get("hiw_temp", shown.default_temperature)
with bar[2].popover(f"{shown.label.split(' (')[0]}, T = {fmt(shown_t)}", icon=":material/tune:", width="stretch",
                    help="Where the vectors come from, the similarity function and the temperature T."):
    if mode == "text":
        encoder = st.selectbox("Vectors", list(ENCODERS), key="hiw_encoder", format_func=lambda e: ENCODERS[e].label)
    else:
        features = feature_picker("hiw_features")
    similarity, temperature = similarity_picker("hiw", default="cosine")
    notes = st.container()

try:
    example = (_text_example(text, encoder, current_device()) if mode == "text"
               else _image_example(source, features, current_device()))
    wt = walk_example(example, similarity, temperature)
except Exception as err:  # typed errors become one friendly sentence
    show_error(err)
    st.stop()

for note in example.notes:
    notes.caption(md_escape(note))

# ---------------------------------------------------------------------------------------- navigation

step = min(max(int(st.session_state.get(STEP_KEY, 0)), 0), len(STEPS) - 1)
st.session_state[STEP_KEY] = step
nav = st.columns([1.3, 1.3, 6], vertical_alignment="center")
nav[0].button("◀ Back", key="hiw_back", on_click=_go, args=(-1,), disabled=step == 0, width="stretch")
nav[1].button("Next ▶", key="hiw_next", on_click=_go, args=(1,), disabled=step == len(STEPS) - 1, width="stretch")
current = STEPS[step]
nav[2].header(f"Step {step + 1} of {len(STEPS)}. {current.title}")
sim = get_similarity(similarity)
labels = wt.labels
what = "token" if mode == "text" else "patch"
# the visual first (first on a phone too), its words beside it; on a projector the matrix takes the whole width
# so its numbers can be printed large (attnviz.explain.PROJECTOR_PLOT_WIDTH), and the words follow it
vis, side = (st.container(), st.container()) if classroom_on() else st.columns([3, 2], gap="medium")
side.markdown(current.sentence)

if current.key == "vectors":
    with vis:
        st.plotly_chart(style_figure(vectors_figure(wt)), key="hiw_pca", width="stretch")
        st.caption(PCA_SENTENCE.format(d=wt.d, kept=float(wt.projection.explained.sum())) +
                   " Points close together have similar vectors.")
    side.latex(rf"x_1, \dots, x_{{{wt.n}}} \in \mathbb{{R}}^{{{wt.d}}}")
    side.markdown(md_escape(wt.source))
    if mode == "image":
        side.image(patch_picture(_photo(source), example.grid), width="stretch",
                   caption=f"{photo_name}: 3 × 3 patches, r = row and c = column (r0c0 is the top left).")
    with vis:
        _explained_matrix(wt, "vectors", f"Each row is one {what}'s vector; the columns are its first "
                          f"{wt.matrix('vectors').shape[1]} of {wt.d} numbers.", "value", side)

elif current.key == "scores":
    side.latex(sim.formula + r"\qquad s_{ij} = s(x_i, x_j)")
    side.caption(f"{sim.label}: {sim.sentence}")
    with vis:
        _explained_matrix(wt, "scores", f"Row i, column j: how similar {what} i is to j under the "
                          f"{sim.label.lower()}. Brighter means more similar.", "score", side)

elif current.key == "scaled":
    side.latex(rf"\frac{{s_{{ij}}}}{{T}}, \qquad T = {fmt(wt.temperature)}")
    side.markdown(scaled_summary(wt))
    with vis:
        _explained_matrix(wt, "scaled", "The same matrix as before, every number divided by the temperature T.",
                          "score / T", side)

elif current.key == "exp":
    side.latex(r"e_{ij} = \exp\!\Big(\frac{s_{ij}}{T} - \max_k \frac{s_{ik}}{T}\Big)")
    with side.expander("Why subtract each row's maximum?", icon=":material/lightbulb:"):
        st.markdown(WHY_MAX_SUBTRACTED)
        st.markdown(overflow_summary(wt))
        st.caption("Row maxima m_i: " + ", ".join(f"{i}·{md_escape(t)} = {fmt(m)}"
                                                   for i, (t, m) in enumerate(zip(labels, wt.row_max))))
    with vis:
        _explained_matrix(wt, "exp", "exp of each scaled score minus its row's maximum: every number is between 0 "
                          "and 1, and the biggest in each row is 1.", "exp", side)

elif current.key == "sums":
    side.latex(r"Z_i = \sum_{j=1}^{n} e_{ij}")
    side.caption("Row sums Z_i: " + ", ".join(f"{i}·{md_escape(t)} = {fmt(z)}"
                                               for i, (t, z) in enumerate(zip(labels, wt.row_sums))))
    with vis:
        _explained_matrix(wt, "sums", "The exps again, with each row's total Z_i in the last column (Σ). Click a Σ "
                          "cell to see the addition.", "exp / sum", side)

elif current.key == "weights":
    side.latex(r"a_{ij} = \frac{e_{ij}}{Z_i} = \mathrm{softmax}_j\Big(\frac{s_{ij}}{T}\Big), \quad \sum_j a_{ij} = 1")
    side.caption("Row sums of the weights: " + ", ".join(fmt(s, 6) for s in wt.weight_row_sums) + ".")
    with vis:
        i, _ = _explained_matrix(wt, "weights", "Row i: how query i shares its attention among all the keys j. "
                                 "Each row adds up to 1.", "weight", side)
        if mode == "text":
            st.markdown(f"Row {i} ({md_escape(labels[i])}) as a highlight over the sentence:")
            st.html(highlight_html(example.text, example.offsets, wt.weights[i], list(labels),
                                   legend_label=f"weight given by token {i}"))
        else:
            st.image(patch_picture(_photo(source), example.grid, wt.weights[i], i), width="stretch",
                     caption=f"Where patch {labels[i]} (outlined) looks: brighter patches get more of its weight.")

elif current.key == "output":
    side.latex(r"y_i = \sum_{j=1}^{n} a_{ij}\, x_j")
    with vis:
        st.plotly_chart(style_figure(outputs_figure(wt)), key="hiw_outputs", width="stretch")
        st.caption("Blue dots are the inputs, orange diamonds the outputs, drawn in the same 2-D PCA view as step 1; "
                   "each arrow goes from x_i to its output y_i, which is pulled towards the vectors x_i attends to.")
        _explained_matrix(wt, "outputs", f"Each row is one output vector; the columns are its first "
                          f"{wt.matrix('outputs').shape[1]} of {wt.d} numbers.", "value", side)

else:  # the article's notation
    lit = article_literal(wt)
    with vis:
        st.markdown("**The seed article writes:**")
        st.latex(ARTICLE_LATEX)
        st.markdown("**The standard form (what attnviz computes):**")
        st.latex(STANDARD_LATEX)
        st.subheader("The article's formulas read literally, on this example")
        st.dataframe(notation_table(lit, labels), hide_index=True, key="hiw_notation_table")
        st.caption(notation_caption(lit))
    for sentence in NOTATION_SENTENCES:
        side.markdown("- " + sentence)
