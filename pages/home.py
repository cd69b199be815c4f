"""Home: what attnviz is, what each page does, and which device computes."""

from pathlib import Path

import streamlit as st
import torch

from attnviz import SIMILARITIES
from attnviz.devices import available_devices, device_label
from ui.shell import require_shell
from ui.widgets import current_device

require_shell()  # a deep link on a fresh server must still get app.py's sidebar

st.title("attnviz — see where attention goes")
st.markdown(
    "Attention scores every pair of elements with a **similarity** $s(i,j)=\\mathrm{sim}(x_i,x_j)$, turns each "
    "row into **weights** with a softmax $a_{ij}=\\mathrm{softmax}_j(s(i,j)/T)$, and outputs the **weighted sum** "
    "$y_i=\\sum_j a_{ij}x_j$. Paste text or upload a photo and watch where the weights go; switch the similarity "
    "function and the device live."
)

PAGE_INFO = [
    ("pages/text.py", "📝 Text attention",
     "Sequential attention on your own text: every token highlighted by its weight, a query word or token to "
     "follow, the full matrix, and MiniLM's own trained heads beside it."),
    ("pages/image.py", "🖼️ Image attention",
     "Parallel attention on a photo: cut into patches, every patch attends to every other at once; click a "
     "patch to see what it attends to, drawn as a heatmap over the photo."),
    ("pages/how_it_works.py", "🧮 How it works",
     "A small example walked through step by step: vectors, scores, temperature, softmax, weighted sum — "
     "every number explained."),
    ("pages/lab.py", "🧪 Similarity lab",
     "The same input under several similarity functions side by side, with entropy and effective tokens."),
    ("pages/hard_cases.py", "🧗 Hard cases",
     "The article's three hard cases measured live: long sequences, ragged batches with padding masks, "
     "and cross-modal attention."),
]

ROOT = Path(__file__).resolve().parents[1]
available = [info for info in PAGE_INFO if (ROOT / info[0]).exists()]
cols = st.columns(2)
for i, (path, title, text) in enumerate(available):
    with cols[i % 2].container(border=True):
        st.page_link(path, label=title)
        st.write(text)

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
