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


def explain_similarity(name: str, container=None) -> None:
    """Formula, plain sentence, source, and an 'untrained' notice where the parameters are random."""
    c = container or st
    sim = get_similarity(name)
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
