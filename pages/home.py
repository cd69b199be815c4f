"""Home: where to start, what each page does (each card is one big link), and which device computes."""

import streamlit as st
import torch

from attnviz import SIMILARITIES
from attnviz.devices import available_devices, device_label
from attnviz.pages import HOME, PAGES, START, START_SENTENCE
from ui.shell import require_shell
from ui.widgets import current_device

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

st.title("attnviz — see where attention goes")
st.markdown(START_SENTENCE)
st.page_link(START.path, label=f"Start: {START.title}", icon=":material/arrow_forward:")
st.markdown(
    "Attention scores every pair of elements with a **similarity** $s(i,j)=\\mathrm{sim}(x_i,x_j)$, turns each "
    "row into **weights** with a softmax $a_{ij}=\\mathrm{softmax}_j(s(i,j)/T)$, and outputs the **weighted sum** "
    "$y_i=\\sum_j a_{ij}x_j$. Paste text or upload a photo and watch where the weights go; switch the similarity "
    "function and the device live."
)

cards = [p for p in PAGES if p is not HOME]
cols = st.columns(2)
for i, info in enumerate(cards):
    with cols[i % 2].container(border=True, key=f"card_{info.url_path}"):  # clickable as a whole (page_style)
        st.page_link(info.path, label=info.title, icon=info.icon)
        st.caption(info.description)

st.subheader("Device")
device = current_device()
st.write(f"Computing on **{device_label(device)}** — change it in the sidebar. "
         f"This machine offers: {', '.join(device_label(d) for d in available_devices())}.")
if not torch.cuda.is_available():
    st.caption("No CUDA GPU was found, so everything runs on the CPU. On a machine with a GPU, "
               "attnviz picks it automatically and falls back to the CPU if it runs out of memory.")

st.subheader("Similarity functions")
st.write(", ".join(f"{s.label}{' (untrained)' if s.untrained else ''}" for s in SIMILARITIES.values())
         + ". Each page lets you switch between them live and shows the formula and its source.")
