"""Self-contained HTML pages for image results: :class:`~attnviz.image.ImageAnalysis` and
:class:`~attnviz.vit.ViTAttention`.

Pictures are inline base64 PNGs, styles inline, and a Content-Security-Policy blocks any script or
remote resource anyway; no JavaScript, no CDN. Every string is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html

import numpy as np

from ..render import DEFAULT_COLORMAP, legend_html

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left"


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def page(title: str, body: str) -> str:
    """A complete HTML document around an already-escaped ``body``."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{html.escape(title)}</title>\n</head>\n"
            "<body style=\"max-width:64em;margin:2em auto;padding:0 1em;color:#111;background:#fff;"
            "font-family:system-ui,-apple-system,'Segoe UI',sans-serif\">\n"
            f"<h1 style=\"font-size:1.3em\">{html.escape(title)}</h1>\n{body}\n"
            "<p style=\"color:#666;font-size:0.8em\">Made with attnviz.</p>\n</body>\n</html>\n")


def settings_table(rows: list[tuple[str, object]], caption: str = "Settings") -> str:
    """A two-column table of ``(name, value)``, both escaped."""
    body = "".join(f'<tr><th style="{_CELL}">{html.escape(str(k))}</th><td style="{_CELL}">{html.escape(str(v))}</td></tr>'
                   for k, v in rows)
    return (f'<table class="attnviz-settings" style="border-collapse:collapse;font-size:0.9em;margin:0.5em 0">'
            f'<caption style="text-align:left;font-weight:600">{html.escape(caption)}</caption>{body}</table>')


def _patch_table(top: list[tuple[int, int, float]], caption: str) -> str:
    head = (f'<tr><th style="{_CELL}">rank</th><th style="{_CELL}">patch (row, col)</th>'
            f'<th style="{_CELL}">weight</th></tr>')
    body = "".join(f'<tr><td style="{_CELL}">{i}</td><td style="{_CELL}">({r}, {c})</td>'
                   f'<td style="{_CELL}">{w:.4f}</td></tr>' for i, (r, c, w) in enumerate(top, 1))
    return (f'<table class="attnviz-top" style="border-collapse:collapse;font-size:0.9em;margin:0.5em 0">'
            f'<caption style="text-align:left;font-weight:600">{html.escape(caption)}</caption>{head}{body}</table>')


def _figure(png: bytes, alt: str, caption: str, width: int | None = None) -> str:
    size = f' width="{int(width)}"' if width else ""
    return (f'<figure style="margin:0 1em 1em 0;display:inline-block;vertical-align:top">'
            f'<img alt="{html.escape(alt, quote=True)}"{size} style="max-width:100%;height:auto" src="{_png_uri(png)}">'
            f'<figcaption style="font-size:0.85em">{html.escape(caption)}</figcaption></figure>')


def _map_png(values: np.ndarray, cmap: str, side: int = 160) -> bytes:
    from ..render import matrix_png

    v = np.asarray(values, dtype=np.float64)
    return matrix_png(v, cmap, cell=max(1, side // max(v.shape)))


def _top(values: np.ndarray, cols: int, k: int = 8) -> list[tuple[int, int, float]]:
    order = np.argsort(values, axis=None, kind="stable")[::-1][:k]
    return [(int(i) // cols, int(i) % cols, float(values.flat[i])) for i in order]


def analysis_body(res, max_side: int = 1024, *, cmap: str = DEFAULT_COLORMAP, opacity: float = 0.5,
                  show_grid: bool = False) -> str:
    """The body of :meth:`ImageAnalysis.to_html`: overlay, legend, settings, top patches, and the trained head
    beside the similarity row when the analysis has the ViT."""
    from ..overlay import png_bytes

    drawn = res.overlay(max_side=max_side, cmap=cmap, opacity=opacity, show_grid=show_grid)
    s = res.scores
    caption = (f"{res.view_label}: similarity {res.similarity}, T = {res.temperature:g}, "
               f"{res.grid.rows} x {res.grid.cols} patches over the {res.width} x {res.height} px photo")
    parts = [_figure(png_bytes(drawn, compress_level=6), caption, caption),
             legend_html(float(s.min()), float(s.max()), cmap, f"{res.view_label} (weight)")]
    notes = [n for n in (res.notice, res.warning) if n]
    if notes:
        parts.append("".join(f'<p class="attnviz-note" style="color:#8a4b00">{html.escape(n)}</p>' for n in notes))
    settings = [("features", res.features_label), ("similarity", res.similarity),
                ("temperature", f"{res.temperature:g}"), ("view", res.view),
                ("query patch", "none" if res.query is None else f"{res.query}"),
                ("grid (rows x cols)", f"{res.grid.rows} x {res.grid.cols}"),
                ("photo (width x height)", f"{res.width} x {res.height} px"), ("device", res.device),
                ("effective patches", f"{res.effective_patches:.1f} of {res.grid.n}")]
    if res.resolution is not None:
        h, w = res.vit.input_size
        settings.insert(1, ("vision transformer input", f"{w} x {h} px (long side {res.resolution})"))
    if res.removed_patches:
        settings.append(("left out as keys", ", ".join(f"({i // res.grid.cols}, {i % res.grid.cols})"
                                                       for i in res.removed_patches)))
    parts.append(settings_table(settings))
    parts.append(_patch_table(res.top_patches(8), "Strongest patches"))
    if res.vit is not None and res.query is not None and res.row is not None:
        head = res.head_row(-1, None, renormalise=True)
        parts.append('<h2 style="font-size:1.1em">The trained heads, same patch</h2>')
        from ..overlay import show_attention_on_image
        from .grid import thumbnail

        base = thumbnail(res.image, min(max_side, 480))
        head_img = show_attention_on_image(base, head, cmap=cmap, opacity=opacity, grid=res.grid, query=res.query)
        parts.append(_figure(png_bytes(head_img, compress_level=6), "trained head row",
                             "DINOv2's trained heads for the same patch: last block, mean of the heads, "
                             "rows renormalised over the patches"))
        parts.append(f'<p>Overlap of the two rows (sum of the smaller weight per patch): '
                     f'<b>{res.head_overlap(-1, None):.2f}</b> (1 = the same, 0 = no patch in common).</p>')
    if res.vit is not None:
        from ..vit import DEFAULT_SINK_TOP

        parts.append(f'<p>Sinks: the top {DEFAULT_SINK_TOP:.0%} patches by token norm hold '
                     f'{res.sink_share():.3f} of [CLS]\'s attention ({DEFAULT_SINK_TOP:.3f} if uniform).</p>')
    return "\n".join(parts)


def analysis_figure(res, max_side: int = 640, *, cmap: str = DEFAULT_COLORMAP, opacity: float = 0.5,
                    show_grid: bool = False) -> str:
    """A compact figure for a notebook cell (:meth:`ImageAnalysis._repr_html_`): the overlay and its colour bar
    as inline PNGs and an escaped caption."""
    from ..overlay import png_bytes

    drawn = res.overlay(max_side=max_side, cmap=cmap, opacity=opacity, show_grid=show_grid)
    bar = png_bytes(res.colorbar(cmap, length=200), compress_level=6)
    caption = (f"{res.view_label} — similarity {res.similarity}, T = {res.temperature:g}, "
               f"{res.grid.rows} × {res.grid.cols} patches, {res.width} × {res.height} px, {res.device}; "
               f"features: {res.features_label}")
    return ('<figure class="attnviz-image" style="margin:0;display:inline-block">'
            '<div style="display:flex;align-items:flex-start;gap:8px">'
            f'<img alt="{html.escape(caption, quote=True)}" style="max-width:100%;height:auto" '
            f'src="{_png_uri(png_bytes(drawn, compress_level=6))}">'
            f'<img alt="colour bar" src="{_png_uri(bar)}"></div>'
            f'<figcaption style="font-size:0.85em">{html.escape(caption)}</figcaption></figure>')


def analysis_html(res, max_side: int = 1024, **kw) -> str:
    """:meth:`ImageAnalysis.to_html`: the whole page."""
    return page("attnviz: attention over an image", analysis_body(res, max_side, **kw))


def vit_body(vit, layer: int = -1, *, cmap: str = DEFAULT_COLORMAP, thumb: int = 160) -> str:
    """The body of :meth:`ViTAttention.to_html`: sizes, every head's [CLS] map of ``layer``, the head mean,
    the rollout, and the sinks (token norms, their share of [CLS]'s attention)."""
    from ..vit import DEFAULT_SINK_TOP

    rows, cols = vit.grid
    h, w = vit.input_size
    li = int(layer) % vit.num_layers if isinstance(layer, (int, np.integer)) else layer
    grid = vit.head_grid(layer)  # checks layer
    settings = [("model", vit.model_name), ("layers x heads", f"{vit.num_layers} x {vit.num_heads}"),
                ("patch grid (rows x cols)", f"{rows} x {cols}"), ("input (width x height)", f"{w} x {h} px"),
                ("photo (width x height)", f"{vit.image_size[1]} x {vit.image_size[0]} px"), ("device", vit.device),
                ("block shown", f"{li + 1} of {vit.num_layers}")]
    parts = [settings_table(settings)]
    if vit.notes:
        parts.append("".join(f'<p class="attnviz-note" style="color:#8a4b00">{html.escape(n)}</p>' for n in vit.notes))
    parts.append(f'<h2 style="font-size:1.1em">[CLS] attention per head, block {li + 1}</h2>')
    hi = float(max(grid.max(), 1e-12))
    for k in range(vit.num_heads):
        parts.append(_figure(_map_png(grid[k] / hi, cmap, thumb), f"head {k} [CLS] map", f"head {k}", thumb))
    mean = vit.cls_map(layer)
    parts.append(_figure(_map_png(mean / max(float(mean.max()), 1e-12), cmap, thumb), "mean of the heads",
                         "mean of the heads", thumb))
    parts.append(legend_html(0.0, hi, cmap, "[CLS] -> patch weight (heads share one scale)"))
    roll = vit.rollout_map()
    parts.append('<h2 style="font-size:1.1em">Attention rollout (all blocks)</h2>')
    parts.append(_figure(_map_png(roll / max(float(roll.max()), 1e-12), cmap, 2 * thumb), "attention rollout",
                         "[CLS] row of the rollout (Abnar & Zuidema 2020)", 2 * thumb))
    parts.append(legend_html(float(roll.min()), float(roll.max()), cmap, "rollout weight"))
    norms = vit.token_norms
    parts.append('<h2 style="font-size:1.1em">Sinks: high-norm patches</h2>')
    lo_n, hi_n = float(norms.min()), float(norms.max())
    parts.append(_figure(_map_png((norms - lo_n) / max(hi_n - lo_n, 1e-12), cmap, 2 * thumb), "token norms",
                         "L2 norm of each patch token after the last block", 2 * thumb))
    parts.append(legend_html(lo_n, hi_n, cmap, "token norm"))
    sinks = vit.sink_patches(DEFAULT_SINK_TOP)
    parts.append(_patch_table([(int(i) // cols, int(i) % cols, float(norms.flat[i])) for i in sinks],
                              f"Top {DEFAULT_SINK_TOP:.0%} patches by norm (weight = norm)"))
    parts.append(f'<p>They hold {vit.sink_share(DEFAULT_SINK_TOP, layer):.3f} of [CLS]\'s attention to the patches '
                 f'in block {li + 1} ({len(sinks) / vit.num_patches:.3f} if it were uniform); largest norm '
                 f'{hi_n / float(np.median(norms)):.2f} x the median.</p>')
    parts.append(_patch_table(_top(mean, cols), f"Strongest patches for [CLS], block {li + 1}, head mean"))
    return "\n".join(parts)


def vit_html(vit, layer: int = -1, **kw) -> str:
    """:meth:`ViTAttention.to_html`: the whole page."""
    return page(f"attnviz: {vit.model_name}'s attention", vit_body(vit, layer, **kw))


__all__ = ["page", "settings_table", "analysis_body", "analysis_figure", "analysis_html", "vit_body", "vit_html"]
