"""The app's pages, listed once: app.py builds its navigation from this table and the home page its cards.

Icons are Streamlit's Material Symbols (``:material/name:``), which render in every browser; emoji do not
(Debian's Chromium has no emoji font and draws empty boxes). Paths are relative to the repository root.
"""

from __future__ import annotations

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


def page(path: str) -> PageInfo:
    """The entry for ``path`` ("pages/text.py"); KeyError for a page not in the table."""
    for info in PAGES:
        if info.path == path:
            return info
    raise KeyError(f"{path!r} is not one of the app's pages: {[p.path for p in PAGES]}")
