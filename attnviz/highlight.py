"""The user's own text as HTML, each token's span coloured by its weight; and the token view's data.

Spans are placed by ``[start, end)`` character offsets into the original text, and the text between
tokens (spaces, line breaks, characters the tokenizer dropped) is kept verbatim, so what the reader
sees is exactly what they typed. Every piece of text goes through ``html.escape``; styles and
attributes are built from numbers only; there is no JavaScript. Hover (the ``title`` attribute)
shows the token, its weight and its rank.

Colour rules (docs/token-view.md):

* A weight of 0 is drawn in the page's own background colour, so unimportant tokens read as plain text;
  weight adds colour along a colour-blind-safe sequential map (cividis by default) that starts at the
  page background: light theme white -> yellow -> navy, dark theme near-black -> navy -> yellow.
* Each token's text colour is picked from its background's WCAG relative luminance: the theme's text
  colour where it reaches a 4.5 contrast ratio, else black or white (one of them always reaches 4.58).
* ``scale="absolute"`` maps 0..1 (comparable across views); ``scale="view"`` maps 0..this view's
  maximum. The legend says which in words and marks the uniform level 1/n.

The token view (``ui/components``) receives :func:`token_view_payload`: tokens and the gaps between them
as plain strings, 8-bit quantised weights and the per-level colours, all computed here.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from .errors import InvalidParameter, ShapeMismatch
from .render import COLORMAPS, DEFAULT_COLORMAP, Tick, colormap, format_number, legend, tick_anchor

#: the container keeps the user's line breaks and runs of spaces
_BOX_STYLE = ("white-space:pre-wrap;overflow-wrap:anywhere;line-height:{lh};font-size:{fs};"
              "font-family:system-ui,-apple-system,'Segoe UI','Noto Sans','Noto Sans CJK SC',sans-serif")
_SPAN_STYLE = "border-radius:3px;padding:0.1em 0.05em"
#: WCAG 2 AA for normal-size text
MIN_CONTRAST = 4.5
LEVELS = 256  # 8-bit quantisation: level 0 is the page background, level 255 the top of the scale
SCALES = ("absolute", "view")
THEMES = ("light", "dark")


@dataclass(frozen=True)
class Theme:
    """A page the highlight sits on: Streamlit's own light and dark theme colours."""

    name: str
    background: tuple[int, int, int]
    text: tuple[int, int, int]


_THEMES = {
    # Streamlit 1.67's own themes (its --st-background-color and --st-text-color, read in a browser)
    "light": Theme("light", (255, 255, 255), (47, 45, 43)),  # #ffffff, #2f2d2b
    "dark": Theme("dark", (23, 22, 20), (237, 235, 232)),    # #171614, #edebe8
}


def theme_of(name: str) -> Theme:
    if name not in _THEMES:
        raise InvalidParameter(f"Unknown theme {name!r}: choose 'light' or 'dark'.")
    return _THEMES[name]


def hex_of(rgb) -> str:
    r, g, b = (int(c) for c in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def relative_luminance(rgb) -> float:
    """WCAG 2 relative luminance of an sRGB colour ``(r, g, b)`` in 0..255: 0 = black, 1 = white."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2])


def contrast_ratio(a, b) -> float:
    """WCAG contrast ratio of two sRGB colours, 1 .. 21."""
    la, lb = relative_luminance(a), relative_luminance(b)
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def ink_for(background, preferred=(0, 0, 0)) -> tuple[int, int, int]:
    """The text colour for ``background``: ``preferred`` (the theme's text colour) where it reaches
    :data:`MIN_CONTRAST`, else black or white, whichever contrasts more (always >= 4.58)."""
    bg = tuple(int(c) for c in background)
    if contrast_ratio(preferred, bg) >= MIN_CONTRAST:
        return tuple(int(c) for c in preferred)
    return (0, 0, 0) if contrast_ratio((0, 0, 0), bg) >= contrast_ratio((255, 255, 255), bg) else (255, 255, 255)


@lru_cache(maxsize=None)
def _palette(theme: str, cmap: str) -> tuple[np.ndarray, np.ndarray]:
    """``(LEVELS, 3) uint8`` backgrounds and ``(LEVELS, 3) uint8`` text colours of one theme.

    Level 0 is the page background exactly; the map's colours follow from level ~26 (10 %) on, in the
    order that moves away from the background (dark theme: dark -> bright; light theme: bright -> dark).
    """
    th = theme_of(theme)
    if cmap not in COLORMAPS:
        raise InvalidParameter(f"Unknown colour map {cmap!r}: choose one of {', '.join(COLORMAPS)}.")
    lut = colormap(cmap).lut.astype(np.float64)  # every map in COLORMAPS runs dark -> bright
    samples = lut[np.rint(np.linspace(0, 255, 10)).astype(int)]
    if theme == "light":
        samples = samples[::-1]
    knots_rgb = np.vstack([np.asarray(th.background, dtype=np.float64), samples])
    knots_x = np.concatenate([[0.0], np.linspace(0.1, 1.0, 10)])
    grid = np.linspace(0.0, 1.0, LEVELS)
    bg = np.rint(np.stack([np.interp(grid, knots_x, knots_rgb[:, c]) for c in range(3)], axis=1)).astype(np.uint8)
    bg[0] = th.background
    ink = np.array([ink_for(c, th.text) for c in bg], dtype=np.uint8)
    bg.setflags(write=False)
    ink.setflags(write=False)
    return bg, ink


def palette(theme: str = "light", cmap: str = DEFAULT_COLORMAP) -> tuple[np.ndarray, np.ndarray]:
    """``(256, 3) uint8`` background colours per weight level and the matching text colours."""
    return _palette(theme, cmap)


def _check(text: str, offsets, weights) -> tuple[list[tuple[int, int]], np.ndarray]:
    if not isinstance(text, str):
        raise InvalidParameter(f"The text must be a string, got {type(text).__name__}.")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    offs = [(int(s), int(e)) for s, e in offsets]
    if len(offs) != len(w):
        raise ShapeMismatch(f"{len(offs)} offsets but {len(w)} weights: give one weight per token.")
    return offs, w


def ranks_of(weights) -> np.ndarray:
    """Rank of each weight, 1 = largest (ties keep text order)."""
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(-np.nan_to_num(w, nan=-np.inf), kind="stable")
    r = np.empty(len(w), dtype=np.int64)
    r[order] = np.arange(1, len(w) + 1)
    return r


def scale_for(weights, vmin: float | None = None, vmax: float | None = None,
              scale: str = "view") -> tuple[float, float]:
    """The colour scale ``(lo, hi)``. ``"absolute"``: 0 to 1, comparable between views.
    ``"view"``: 0 (or the minimum, if some weight is negative) to this view's maximum.
    ``vmin``/``vmax`` override either end (e.g. one scale shared by several texts)."""
    if scale not in SCALES:
        raise InvalidParameter(f"Unknown scale {scale!r}: choose 'absolute' (0 to 1) or 'view' (0 to this view's maximum).")
    w = np.asarray(weights, dtype=np.float64)
    finite = w[np.isfinite(w)]
    neg = finite.size > 0 and finite.min() < 0
    if scale == "absolute":
        lo_auto, hi_auto = (float(finite.min()) if neg else 0.0), 1.0
    else:
        lo_auto = float(finite.min()) if neg else 0.0
        hi_auto = float(finite.max()) if finite.size else 1.0
    lo = float(vmin) if vmin is not None else lo_auto
    hi = float(vmax) if vmax is not None else hi_auto
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi


def quantise(weights, lo: float, hi: float) -> np.ndarray:
    """Weights -> levels ``0..255`` of the scale ``[lo, hi]`` (error <= 0.5/255 of the scale inside it;
    outside it clipped; non-finite -> 0)."""
    w = np.asarray(weights, dtype=np.float64)
    f = np.clip((np.nan_to_num(w, nan=lo, posinf=hi, neginf=lo) - lo) / (hi - lo), 0.0, 1.0)
    return np.rint(f * (LEVELS - 1)).astype(np.uint8)


# -- legend ----------------------------------------------------------------------------------------------

#: a tick of the legend (position 0..1 along the bar, value, text): the one legend model's
LegendTick = Tick


@dataclass(frozen=True)
class HighlightLegend:
    """What a highlight's legend shows, as data (the HTML legend and the token view draw it alike)."""

    lo: float
    hi: float
    scale: str            # "absolute" | "view"
    theme: str
    label: str            # what the numbers are, e.g. "attention weight"
    words: str            # the scale in force, in a sentence
    ticks: tuple[LegendTick, ...]
    stops: tuple[tuple[float, str], ...]  # (position 0..1, "#rrggbb") of the colour bar
    uniform: LegendTick | None            # the uniform level 1/n, where it falls inside the scale

    def to_dict(self) -> dict:
        t = lambda k: {"position": round(k.position, 4), "value": k.value, "text": k.text}  # noqa: E731
        return {"lo": self.lo, "hi": self.hi, "scale": self.scale, "theme": self.theme, "label": self.label,
                "words": self.words, "ticks": [t(k) for k in self.ticks],
                "stops": [[round(p, 4), c] for p, c in self.stops],
                "uniform": t(self.uniform) if self.uniform is not None else None}


def _scale_words(scale: str, lo: float, hi: float, explicit: bool) -> str:
    if explicit:
        return f"Colour scale {format_number(lo)} to {format_number(hi)}, shared by the texts shown together."
    if scale == "absolute":
        return "Colour scale 0 to 1 (absolute): the same colour means the same weight in every view."
    return (f"Colour scale 0 to this view's maximum, {format_number(hi)}: colours compare tokens within "
            "this view only.")


def highlight_legend(weights, scale: str = "view", theme: str = "light", cmap: str = DEFAULT_COLORMAP,
                     label: str = "attention weight", uniform: float | str | None = "auto",
                     vmin: float | None = None, vmax: float | None = None, ticks: int = 5) -> HighlightLegend:
    """The legend model of a highlight of ``weights (n,)``: ticks, colour stops, the uniform level
    (``"auto"``: 1/n; a number; or None for none) and the scale in words."""
    lo, hi = scale_for(weights, vmin, vmax, scale)
    bg, _ = palette(theme, cmap)
    marks = legend(lo, hi, cmap, label, ticks).ticks  # the numbers as every other legend prints them
    stops = tuple((i / 20, hex_of(bg[int(round(i / 20 * (LEVELS - 1)))])) for i in range(21))
    n = int(np.asarray(weights).size)
    u = (1.0 / n if n else None) if uniform == "auto" else (None if uniform is None else float(uniform))
    umark = None
    if u is not None and lo <= u <= hi:
        umark = LegendTick((u - lo) / (hi - lo), u, f"uniform 1/{n} = {format_number(u)}" if uniform == "auto"
                           else f"uniform {format_number(u)}")
    words = _scale_words(scale, lo, hi, vmin is not None or vmax is not None)
    return HighlightLegend(lo, hi, scale, theme, str(label), words, marks, stops, umark)


def highlight_legend_html(legend: HighlightLegend, classroom: bool = False) -> str:
    """The legend as inline-styled HTML: label, colour bar, numeric ticks, the 1/n mark, the words."""
    th = theme_of(legend.theme)
    fg = hex_of(th.text)
    gradient = ", ".join(f"{c} {100 * p:.0f}%" for p, c in legend.stops)
    tick_html = "".join(
        f'<span style="position:absolute;left:{100 * t.position:.1f}%;'
        f'transform:translateX({tick_anchor(t.position)})">'
        f"{html.escape(t.text)}</span>" for t in legend.ticks)
    mark = ""
    if legend.uniform is not None:
        left = f"{100 * legend.uniform.position:.1f}%"
        mark = (f'<div style="position:absolute;left:{left};top:-3px;height:18px;border-left:2px dashed {fg}"></div>'
                f'<div style="position:absolute;left:{left};top:19px;transform:translateX({tick_anchor(legend.uniform.position)});'
                'white-space:nowrap;'
                f'font-size:0.9em">{html.escape(legend.uniform.text)}</div>')
    size = "1.05em" if classroom else "0.8em"
    return (
        f'<div class="attnviz-legend" style="margin:0.5em 0 1.2em 0;max-width:460px;font-size:{size};color:{fg};'
        f'background-color:{hex_of(th.background)};padding:0.2em 0.3em">'
        f'<div>{html.escape(legend.label)}</div>'
        f'<div style="position:relative">'
        f'<div style="height:12px;border:1px solid #888;background:linear-gradient(to right, {gradient})"></div>{mark}</div>'
        f'<div style="position:relative;height:1.2em{";margin-top:1.3em" if mark else ""}">{tick_html}</div>'
        f'<div style="margin-top:0.3em">{html.escape(legend.words)}</div></div>'
    )


# -- highlighted text (HTML) ----------------------------------------------------------------------------

def _box_style(classroom: bool) -> str:
    return _BOX_STYLE.format(lh="2.1" if classroom else "1.9", fs="1.4em" if classroom else "1.02em")


def highlight_spans(text: str, offsets: Sequence[tuple[int, int]], weights, labels: Sequence[str] | None = None,
                    cmap: str = DEFAULT_COLORMAP, vmin: float | None = None, vmax: float | None = None,
                    weight_name: str = "weight", *, theme: str = "light", scale: str = "view",
                    classroom: bool = False) -> str:
    """The highlighted text alone (no legend): ``text`` with one ``<span>`` per token.

    Tokens whose offsets overlap an earlier token or fall outside the text are skipped (their
    characters stay as plain text), so any offsets give well-formed HTML.
    """
    offs, w = _check(text, offsets, weights)
    labels = list(labels) if labels is not None else [text[s:e] for s, e in offs]
    if len(labels) != len(offs):
        raise ShapeMismatch(f"{len(labels)} labels for {len(offs)} tokens.")
    lo, hi = scale_for(w, vmin, vmax, scale)
    levels = quantise(w, lo, hi)
    bgs, inks = palette(theme, cmap)
    ranks = ranks_of(w)
    n = len(offs)
    out, cursor = [], 0
    for i in sorted(range(n), key=lambda j: offs[j]):
        s, e = offs[i]
        e = min(e, len(text))
        if s < cursor or e <= s:
            continue
        out.append(html.escape(text[cursor:s]))
        r, g, b = (int(c) for c in bgs[levels[i]])
        value = w[i]
        title = f"{labels[i]} · {weight_name} {format_number(float(value))} · rank {int(ranks[i])}/{n}"
        out.append(
            f'<span class="attnviz-tok" data-i="{i}" data-w="{float(value):.6g}" data-rank="{int(ranks[i])}" '
            f'style="background-color:rgb({r},{g},{b});color:{hex_of(inks[levels[i]])};{_SPAN_STYLE}" '
            f'title="{html.escape(title, quote=True)}">{html.escape(text[s:e])}</span>'
        )
        cursor = e
    out.append(html.escape(text[cursor:]))
    page = theme_of(theme)
    return (f'<div class="attnviz-text" style="{_box_style(classroom)};background-color:{hex_of(page.background)};'
            f'color:{hex_of(page.text)}">{"".join(out)}</div>')


def highlight_html(text: str, offsets: Sequence[tuple[int, int]], weights, labels: Sequence[str] | None = None,
                   cmap: str = DEFAULT_COLORMAP, vmin: float | None = None, vmax: float | None = None,
                   legend: bool = True, legend_label: str = "attention weight", *, theme: str = "light",
                   scale: str = "view", classroom: bool = False, uniform: float | str | None = "auto") -> str:
    """Highlighted text plus (by default) a legend with the numeric colour scale: an HTML fragment."""
    lo, hi = scale_for(weights, vmin, vmax, scale)
    body = highlight_spans(text, offsets, weights, labels, cmap, lo, hi, theme=theme, classroom=classroom)
    if not legend:
        return body
    lg = highlight_legend(weights, scale, theme, cmap, legend_label, uniform, vmin, vmax)
    return highlight_legend_html(lg, classroom) + body


def highlight_many(blocks: Sequence[tuple[str, Sequence[tuple[int, int]], object, Sequence[str] | None]],
                   cmap: str = DEFAULT_COLORMAP, legend_label: str = "attention weight",
                   shared_scale: bool = True, captions: Sequence[str] | None = None, *, theme: str = "light",
                   scale: str = "view", classroom: bool = False) -> str:
    """Several texts one under another, ``blocks = [(text, offsets, weights, labels), ...]``.

    With ``shared_scale`` one legend covers all texts, so equal colours mean equal weights.
    """
    if not blocks:
        return ""
    all_w = np.concatenate([np.asarray(b[2], dtype=np.float64).reshape(-1) for b in blocks])
    parts = []
    if shared_scale:
        lo, hi = scale_for(all_w, scale=scale)
        lg = highlight_legend(all_w, scale, theme, cmap, legend_label, uniform=None)
        parts.append(highlight_legend_html(lg, classroom))
    caption_colour = "#666" if theme == "light" else "#aaa"
    for k, (text, offsets, weights, labels) in enumerate(blocks):
        cap = captions[k] if captions is not None else f"text {k + 1}"
        parts.append(f'<div style="margin:0.6em 0 0.2em 0;font-size:0.8em;color:{caption_colour}">{html.escape(cap)}</div>')
        if shared_scale:
            parts.append(highlight_spans(text, offsets, weights, labels, cmap, lo, hi, theme=theme, classroom=classroom))
        else:
            parts.append(highlight_html(text, offsets, weights, labels, cmap, legend_label=legend_label, theme=theme,
                                        scale=scale, classroom=classroom))
    return "".join(parts)


def standalone_html(body: str, title: str = "attnviz") -> str:
    """A complete HTML document around an already-escaped ``body``: inline CSS only, no scripts, and a
    Content-Security-Policy that would block any script or remote resource anyway."""
    return (
        "<!DOCTYPE html>\n<html lang=\"und\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>{html.escape(title)}</title>\n</head>\n"
        "<body style=\"max-width:52em;margin:2em auto;padding:0 1em;color:#111;background:#fff;"
        "font-family:system-ui,-apple-system,'Segoe UI',sans-serif\">\n"
        f"<h1 style=\"font-size:1.3em\">{html.escape(title)}</h1>\n{body}\n"
        "<p style=\"color:#777;font-size:0.8em\">Made with attnviz. Hover a token for its weight and rank.</p>\n"
        "</body>\n</html>\n"
    )


# -- the token view's data ------------------------------------------------------------------------------

def gaps_from_offsets(text: str, offsets: Sequence[tuple[int, int]]) -> tuple[list[str], list[str]]:
    """``(tokens, gaps)`` of ``text`` cut at ``offsets`` (token order kept): ``len(gaps) == n + 1`` and
    ``gaps[0] + tokens[0] + gaps[1] + ... + tokens[-1] + gaps[n] == text``.

    Offsets must run left to right; a token that overlaps the one before it keeps only its new
    characters (possibly none), and an end past the text is clipped, so the text always round-trips.
    """
    if not isinstance(text, str):
        raise InvalidParameter(f"The text must be a string, got {type(text).__name__}.")
    tokens, gaps, cursor = [], [], 0
    for s, e in offsets:
        s, e = min(max(int(s), cursor), len(text)), min(int(e), len(text))
        e = max(e, s)
        gaps.append(text[cursor:s])
        tokens.append(text[s:e])
        cursor = e
    gaps.append(text[cursor:])
    return tokens, gaps


def _strings(name: str, values, n: int | None = None) -> list[str]:
    out = list(values)
    if not all(isinstance(v, str) for v in out):
        raise InvalidParameter(f"The {name} must be strings.")
    if n is not None and len(out) != n:
        raise ShapeMismatch(f"{len(out)} {name} for {n} tokens: give {'n + 1' if name == 'gaps' else 'one per token'}.")
    return out


def token_view_payload(tokens: Sequence[str], weights, gaps: Sequence[str] | None = None, *,
                       labels: Sequence[str] | None = None, scale: str = "view", theme: str = "auto",
                       cmap: str = DEFAULT_COLORMAP, selected: int | None = None, classroom: bool = False,
                       label: str = "attention weight", uniform: float | str | None = "auto",
                       vmin: float | None = None, vmax: float | None = None) -> dict:
    """The JSON-ready data the token view draws: ``tokens (n,)``, ``weights (n,)``, ``gaps (n + 1,)``
    (text before, between and after the tokens; default: nothing).

    Strings travel as plain strings (the view writes them with ``textContent``). ``q`` holds 8-bit
    levels of the scale for drawing, ``wt`` each weight as the hover shows it and ``rank`` its rank;
    ``palettes`` the colours of each level for the theme(s) (``"auto"``: both, the browser picks).
    """
    toks = _strings("tokens", tokens)
    n = len(toks)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != n:
        raise ShapeMismatch(f"{n} tokens but {len(w)} weights: give one weight per token.")
    gs = _strings("gaps", gaps, n + 1) if gaps is not None else [""] * (n + 1)
    labs = _strings("labels", labels, n) if labels is not None else None
    if theme not in ("auto",) + THEMES:
        raise InvalidParameter(f"Unknown theme {theme!r}: choose 'auto', 'light' or 'dark'.")
    if selected is not None and not (isinstance(selected, (int, np.integer)) and 0 <= int(selected) < n):
        selected = None
    lo, hi = scale_for(w, vmin, vmax, scale)
    palettes = {}
    for name in (THEMES if theme == "auto" else (theme,)):
        bg, ink = palette(name, cmap)
        lg = highlight_legend(w, scale, name, cmap, label, uniform, vmin, vmax)
        palettes[name] = {
            "page": hex_of(theme_of(name).background), "text": hex_of(theme_of(name).text),
            # 256 colours as one string of 6-hex-digit groups: a third of the size of a list of "#rrggbb"
            "bg": "".join(hex_of(c)[1:] for c in bg), "ink": "".join(hex_of(c)[1:] for c in ink),
            "legend": lg.to_dict(),
        }
    return {
        "v": 1, "n": n, "tokens": toks, "gaps": gs, "labels": labs,
        "q": quantise(w, lo, hi).tolist(),
        "wt": [format_number(float(x)) for x in w],
        "rank": ranks_of(w).tolist(),
        "lo": lo, "hi": hi, "scale": scale, "theme": theme, "label": str(label),
        "classroom": bool(classroom), "selected": None if selected is None else int(selected),
        "palettes": palettes,
    }


__all__ = ["highlight_html", "highlight_spans", "highlight_many", "standalone_html", "ranks_of", "scale_for",
           "quantise", "palette", "ink_for", "contrast_ratio", "relative_luminance", "theme_of",
           "highlight_legend", "highlight_legend_html", "HighlightLegend", "LegendTick",
           "gaps_from_offsets", "token_view_payload", "SCALES", "THEMES", "MIN_CONTRAST"]
