"""Widgets every page uses: the similarity picker, the device, friendly errors."""

from __future__ import annotations

import logging

import streamlit as st

from attnviz import SIMILARITIES, AttnvizError, get_similarity
from attnviz.devices import available_devices, best_device, device_label
from attnviz.settings import device_choice
from attnviz.state import TEMPERATURES, nearest_temperature

log = logging.getLogger("attnviz.ui")


def _reset_temperature(prefix: str) -> None:
    sim = get_similarity(st.session_state[f"{prefix}_sim"])
    st.session_state[f"{prefix}_temp"] = nearest_temperature(sim.default_temperature)


def similarity_picker(prefix: str, default: str = "cosine", container=None, explain: bool = True) -> tuple[str, float]:
    """Similarity select + temperature slider (reset to the function's default on a switch) + its formula.

    Widget keys: ``{prefix}_sim`` and ``{prefix}_temp``. Returns ``(name, temperature)``.
    """
    c = container or st
    names = list(SIMILARITIES)
    sim_key, temp_key = f"{prefix}_sim", f"{prefix}_temp"
    if st.session_state.get(sim_key) not in names:
        st.session_state[sim_key] = default if default in names else names[0]
    if st.session_state.get(temp_key) not in TEMPERATURES:
        st.session_state[temp_key] = nearest_temperature(get_similarity(st.session_state[sim_key]).default_temperature)
    name = c.selectbox("Similarity function", names, key=sim_key, format_func=lambda n: SIMILARITIES[n].label,
                       on_change=_reset_temperature, args=(prefix,),
                       help="How alike two vectors are; attention weights are softmax(similarity / temperature).")
    temperature = c.select_slider("Temperature T", options=TEMPERATURES, key=temp_key,
                                  help="Smaller T sharpens attention onto the best matches; larger T spreads it out.")
    if explain:
        explain_similarity(name, c)
    return name, float(temperature)


def explain_similarity(name: str, container=None, intro: str | None = None) -> None:
    """Formula, plain sentence, source, and an 'untrained' notice where the parameters are random; ``intro``
    (Markdown) first."""
    c = container or st
    sim = get_similarity(name)
    if intro:
        c.markdown(intro)
    c.latex(sim.formula)  # two short lines: one long line is clipped in a narrow column
    c.latex(r"a_{ij} = \mathrm{softmax}_j\!\left(\frac{s(x_i, x_j)}{T}\right)")
    c.caption(f"{sim.sentence} Source: [{sim.source}]({sim.url}). Default T = {sim.default_temperature:g}.")
    if sim.untrained:
        c.warning("Untrained: this function's parameters are seeded random numbers (seed 0), not learned "
                  "weights, so its pattern shows the mechanism, not what a trained model would attend to.",
                  icon=":material/warning:")


def device_picker(container=None) -> str:
    """Device select (auto / cpu / cuda:N / mps); stores the chosen name in ``st.session_state['device']``.

    A new session starts on the server's ``ATTNVIZ_DEVICE`` when this machine has it, else on auto.
    """
    c = container or st.sidebar
    options = ["auto", *available_devices()]
    previous = st.session_state.get("device_choice")
    if previous not in options:
        st.session_state["device_choice"] = device_choice(options)
        if previous is not None:  # e.g. a GPU that disappeared since this session chose it
            now = st.session_state["device_choice"]
            c.warning(f"The device {str(previous)[:40]!r} is no longer available here: computing on "
                      f"{device_label(best_device() if now == 'auto' else now)} instead.", icon=":material/warning:")
    best = best_device()
    choice = c.selectbox("Device", options, key="device_choice",
                         format_func=lambda d: f"auto → {device_label(best)}" if d == "auto" else device_label(d),
                         help="Where the maths runs. On a GPU that runs out of memory, attnviz falls back to the CPU.")
    st.session_state["device"] = best if choice == "auto" else choice
    return st.session_state["device"]


def current_device() -> str:
    return st.session_state.get("device") or best_device()


def show_error(err: BaseException) -> None:
    """One friendly sentence for our typed errors; a generic one (details in the server log) otherwise."""
    if isinstance(err, AttnvizError):
        st.error(str(err), icon=":material/block:")
    elif isinstance(err, MemoryError):
        st.error("That input needs more memory than this server has: try a shorter text or a smaller image.", icon=":material/block:")
    else:
        log.exception("unexpected error in a page", exc_info=err)
        st.error("Something went wrong while computing this view. Try another input or setting; "
                 "the details are in the server log.", icon=":material/block:")


# ------------------------------------------------------------------ views of text and matrices

PLOT_CONFIG = {"displayModeBar": False}  # no plotly toolbar sitting on the titles


def show_notes(notes, already=()) -> None:
    """Each note once (in order) as a caption, leaving out those already shown."""
    for note in dict.fromkeys(notes):
        if note not in already:
            st.caption(f":material/info: {note}")


def token_box(tokens, gaps, weights, key: str, *, selected=None, target=None, on_pick=None, label="attention weight",
              vmin=None, vmax=None, labels=None, box_height: int | None = None, whole_app: bool = False) -> None:
    """The token view (``ui.components.token_view``) in a scrolling box of ``box_height`` pixels (None: no box),
    in the session's colour scale (``st.session_state["scale"]``) and classroom size. A click stores
    ``on_pick(i)`` (default: the index) in ``st.session_state[target]``; ``selected`` is then the one drawn.
    ``whole_app``: the target's widget sits outside this fragment, so a click reruns the whole page (else
    the widget would keep showing its old value)."""
    from ui.classroom import classroom_on
    from ui.components.token_view import current_selection, token_view

    flag = f"_{key}_rerun_app"
    if st.session_state.pop(flag, False):
        st.rerun(scope="app")

    def picked():
        if (i := current_selection(key, len(tokens))) is not None:
            st.session_state[target] = on_pick(i) if on_pick else i
            st.session_state[flag] = whole_app

    with st.container(height=box_height, border=False) if box_height else st.container():
        token_view(tokens, weights, gaps, key=key, selected=selected, controlled=selected is not None,
                   on_select=picked if target else None, scale=st.session_state.get("scale", "view"), labels=labels,
                   classroom=classroom_on(), label=label, vmin=vmin, vmax=vmax)


def matrix_chart(fig, key: str, clickable: bool = False) -> None:
    """A plotly figure without the toolbar; ``clickable``: point clicks rerun the page (read them from the key)."""
    select = dict(on_select="rerun", selection_mode="points") if clickable else {}
    st.plotly_chart(fig, key=key, config=PLOT_CONFIG, **select)


def index_picker(label: str, n: int, key: str, names, max_options: int) -> int:
    """A selectbox over ``0..n-1`` labelled ``"i · names[i]"`` (a number input above ``max_options``); a stale
    or missing value in ``st.session_state[key]`` becomes 0."""
    if not isinstance(st.session_state.get(key), int) or not (0 <= st.session_state[key] < n):
        st.session_state[key] = 0
    if n <= max_options:
        return st.selectbox(label, list(range(n)), key=key, format_func=lambda i: f"{i} · {names[i]}")
    return int(st.number_input(f"{label} (index 0–{n - 1})", 0, n - 1, key=key, step=1))


def start_slider(last: int, label: str, key: str) -> int:
    """A window's first index, a slider over ``0..last`` (none when ``last`` is 0: everything fits)."""
    st.session_state[key] = min(max(0, int(st.session_state.get(key) or 0)), max(0, last))
    return st.slider(label, 0, last, key=key, step=1) if last else 0


def downloads_popover(files) -> None:
    """``(label, build, file name, MIME type)`` download buttons in one "Download" popover; each file is built
    only when its button is clicked."""
    with st.popover("Download", icon=":material/download:"):
        for label, build, filename, mime in files:
            st.download_button(label, build, filename, mime, on_click="ignore", key=f"dl_{filename}")


# ----------------------------------------------------------------------------------- shareable links


def read_link(state_cls, widget_keys: dict, prefix: str, fallback) -> None:
    """A link's settings into the widgets once per session (``state_cls.from_query``, every value checked);
    later runs only refill what Streamlit dropped, from ``fallback()`` (a state). Parameters the link got
    wrong wait in ``st.session_state[f"_{prefix}_url_ignored"]`` for the page to name them."""
    ss, first = st.session_state, not st.session_state.get(f"_{prefix}_url_read")
    ss[f"_{prefix}_url_read"] = True
    state = state_cls.from_query(st.query_params) if first else fallback()
    for name, key in widget_keys.items():
        if first or key not in ss:
            ss[key] = state.shown_text if name == "text" and hasattr(state, "shown_text") else getattr(state, name)
    if first and state.ignored:
        ss[f"_{prefix}_url_ignored"] = state.ignored
    return state


def write_link(state_cls, widget_keys: dict, params_of_ours) -> None:
    """The widgets' settings as ``state_cls(...).to_query()`` into the address bar; our parameters it no longer
    writes are removed (others' are left alone)."""
    ss = st.session_state
    params = state_cls(**{name: ss[key] for name, key in widget_keys.items() if ss.get(key) is not None}).to_query()
    for key in [k for k in st.query_params if k in params_of_ours and k not in params]:
        del st.query_params[key]
    st.query_params.update(params)


def model_head_picker(num_layers: int, num_heads: int, special_heads, head_label, separators: bool):
    """Layer, head (or one of ``special_heads``, e.g. average / rollout) and a "Show [CLS]/[SEP]" toggle in
    one row (keys ``layer``, ``head``, ``special``). Returns ``(layer, head, show_separators)``."""
    c1, c2, c3 = st.columns(3)
    head = c2.selectbox("Head", list(special_heads) + list(range(num_heads)), key="head",
                        format_func=lambda h: head_label(h, num_heads))
    layer = c1.selectbox("Layer", list(range(num_layers)), key="layer", format_func=lambda i: f"layer {i + 1}",
                         disabled=head == "rollout")
    special = separators and c3.toggle("Show [CLS]/[SEP]", key="special", help="Trained models park much attention "
                                       "on separators; hidden, rows are renormalised over the text.")
    return layer, head, special


def clicked_row(chart_key: str, n: int) -> int | None:
    """The row of a cell just clicked in the clickable ``n x n`` heatmap ``chart_key``, once per click (None
    when nothing new was clicked)."""
    from ui.clicks import parse_clicked_cell

    cell = parse_clicked_cell(st.session_state.get(chart_key), n, n)
    new = cell is not None and cell != st.session_state.get(f"_{chart_key}_seen")
    st.session_state[f"_{chart_key}_seen"] = cell
    return cell[0] if new else None


def wait_for_model(name: str, model_path: str | None = None) -> None:
    """While the background preload (``attnviz.pages.start_preload``) still loads ``name``, say so and wait."""
    from attnviz.pages import start_preload

    if not (preload := start_preload(model_path)).ready(name):
        with st.spinner(f"Loading {name} (once per server start)…"):
            preload.wait(name)
