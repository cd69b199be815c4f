"""The user's own text as HTML, each token's span coloured by its weight.

Spans are placed by ``[start, end)`` character offsets into the original text, and the text between
tokens (spaces, line breaks, characters the tokenizer dropped) is kept verbatim, so what the reader
sees is exactly what they typed. Every piece of text goes through ``html.escape``; styles and
attributes are built from numbers only; there is no JavaScript. Hover (the ``title`` attribute)
shows the token, its weight and its rank.
"""

from __future__ import annotations

import html
from typing import Sequence

import numpy as np

from .errors import InvalidParameter, ShapeMismatch
from .render import DEFAULT_COLORMAP, colormap, format_number, legend_html, normalise, text_color_for

#: the container keeps the user's line breaks and runs of spaces
_BOX_STYLE = ("white-space:pre-wrap;overflow-wrap:anywhere;line-height:1.9;font-size:1.02em;"
              "font-family:system-ui,-apple-system,'Segoe UI','Noto Sans','Noto Sans CJK SC',sans-serif")
_SPAN_STYLE = "border-radius:3px;padding:0.1em 0.05em"


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


def scale_for(weights, vmin: float | None = None, vmax: float | None = None) -> tuple[float, float]:
    """The colour scale: from 0 (weights are never negative) or the minimum, to the maximum."""
    w = np.asarray(weights, dtype=np.float64)
    finite = w[np.isfinite(w)]
    lo = vmin if vmin is not None else (0.0 if finite.size == 0 or finite.min() >= 0 else float(finite.min()))
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def highlight_spans(text: str, offsets: Sequence[tuple[int, int]], weights, labels: Sequence[str] | None = None,
                    cmap: str = DEFAULT_COLORMAP, vmin: float | None = None, vmax: float | None = None,
                    weight_name: str = "weight") -> str:
    """The highlighted text alone (no legend): ``text`` with one ``<span>`` per token.

    Tokens whose offsets overlap an earlier token or fall outside the text are skipped (their
    characters stay as plain text), so any offsets give well-formed HTML.
    """
    offs, w = _check(text, offsets, weights)
    labels = list(labels) if labels is not None else [text[s:e] for s, e in offs]
    if len(labels) != len(offs):
        raise ShapeMismatch(f"{len(labels)} labels for {len(offs)} tokens.")
    lo, hi = scale_for(w, vmin, vmax)
    scaled, _, _ = normalise(w, lo, hi)
    rgb = colormap(cmap)(scaled)
    ranks = ranks_of(w)
    n = len(offs)
    out, cursor = [], 0
    for i in sorted(range(n), key=lambda j: offs[j]):
        s, e = offs[i]
        e = min(e, len(text))
        if s < cursor or e <= s:
            continue
        out.append(html.escape(text[cursor:s]))
        r, g, b = (int(c) for c in rgb[i])
        fg = text_color_for((r, g, b))
        value = w[i]
        title = f"{labels[i]} · {weight_name} {format_number(float(value))} · rank {int(ranks[i])}/{n}"
        out.append(
            f'<span class="attnviz-tok" data-i="{i}" data-w="{float(value):.6g}" data-rank="{int(ranks[i])}" '
            f'style="background-color:rgb({r},{g},{b});color:{fg};{_SPAN_STYLE}" '
            f'title="{html.escape(title, quote=True)}">{html.escape(text[s:e])}</span>'
        )
        cursor = e
    out.append(html.escape(text[cursor:]))
    return f'<div class="attnviz-text" style="{_BOX_STYLE}">{"".join(out)}</div>'


def highlight_html(text: str, offsets: Sequence[tuple[int, int]], weights, labels: Sequence[str] | None = None,
                   cmap: str = DEFAULT_COLORMAP, vmin: float | None = None, vmax: float | None = None,
                   legend: bool = True, legend_label: str = "attention weight") -> str:
    """Highlighted text plus (by default) a legend with the numeric colour scale: an HTML fragment."""
    lo, hi = scale_for(weights, vmin, vmax)
    body = highlight_spans(text, offsets, weights, labels, cmap, lo, hi)
    return (legend_html(lo, hi, cmap, legend_label) if legend else "") + body


def highlight_many(blocks: Sequence[tuple[str, Sequence[tuple[int, int]], object, Sequence[str] | None]],
                   cmap: str = DEFAULT_COLORMAP, legend_label: str = "attention weight",
                   shared_scale: bool = True, captions: Sequence[str] | None = None) -> str:
    """Several texts one under another, ``blocks = [(text, offsets, weights, labels), ...]``.

    With ``shared_scale`` one legend covers all texts, so equal colours mean equal weights.
    """
    if not blocks:
        return ""
    all_w = np.concatenate([np.asarray(b[2], dtype=np.float64).reshape(-1) for b in blocks])
    lo, hi = scale_for(all_w) if shared_scale else (None, None)
    parts = [legend_html(lo, hi, cmap, legend_label)] if shared_scale else []
    for k, (text, offsets, weights, labels) in enumerate(blocks):
        cap = captions[k] if captions is not None else f"text {k + 1}"
        parts.append(f'<div style="margin:0.6em 0 0.2em 0;font-size:0.8em;color:#666">{html.escape(cap)}</div>')
        if shared_scale:
            parts.append(highlight_spans(text, offsets, weights, labels, cmap, lo, hi))
        else:
            parts.append(highlight_html(text, offsets, weights, labels, cmap, legend_label=legend_label))
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


__all__ = ["highlight_html", "highlight_spans", "highlight_many", "standalone_html", "ranks_of", "scale_for"]
