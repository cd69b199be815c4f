"""Every plotly figure attnviz draws, as pure functions: arrays and labels in, a ``plotly.graph_objects.Figure`` out.

    matrix_figure(weights, labels)                      # an (n, m) heatmap with token labels
    clickable_heatmap(z, x_labels, y_labels, selected=(i, j))   # the same, every cell clickable in Streamlit
    vectors_figure(wt), outputs_figure(wt)              # the walkthrough's 2-D PCA views
    sweep_figure(sweeps), effective_figure(columns, labels)     # the similarity lab's charts
    patch_picture(photo, grid, weights, query)          # a photo with its patch grid (an RGB array, not plotly)

The analyses (``attnviz.walkthrough``, ``attnviz.lab``, ``attnviz.text`` ...) hold numbers only; colours,
colour maps and marker sizes are chosen here. Every label that may come from a user is escaped
(plotly reads a subset of HTML in text). Pages place these figures; they do not build them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import InvalidParameter
from .render import DEFAULT_COLORMAP, colormap, escape_label, unique_labels

#: Okabe-Ito colours: distinguishable with colour-blindness, readable on light and dark backgrounds
INPUT_COLOUR = "#0072B2"
OUTPUT_COLOUR = "#E69F00"
#: one colour per compared series (lab columns), in order
SERIES_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")


def _go():
    import plotly.graph_objects as go  # imported when a figure is built: the library imports without plotly

    return go


# ------------------------------------------------------------------------------------------ heatmaps


def matrix_figure(weights, x_labels: list[str], y_labels: list[str] | None = None, title: str = "",
                  cmap_name: str = DEFAULT_COLORMAP, x_title: str = "key (attended to)",
                  y_title: str = "query (attending)", colorbar_title: str = "weight", first_index: int = 0):
    """A plotly heatmap of an ``(n, m)`` matrix with token labels; stays light at 512 x 512.

    The matrix travels as float32 binary (plotly encodes numpy arrays), labels as escaped text
    (``"i·token"``, numbered from ``first_index``: a window of a long text keeps its absolute indices);
    tick labels are thinned above ~60 rows, while hover always shows the exact pair and value.
    """
    go = _go()
    z = np.asarray(weights, dtype=np.float32)
    if z.ndim != 2:
        raise InvalidParameter(f"matrix_figure takes an (n, m) matrix, got shape {z.shape}.")
    y_labels = x_labels if y_labels is None else y_labels
    xs, ys = unique_labels(list(x_labels), first_index), unique_labels(list(y_labels), first_index)
    n, m = z.shape
    # one constructor call: each update_* call would re-validate the whole figure (~2x slower at 512)
    return go.Figure(
        data=[go.Heatmap(
            z=z, x=xs, y=ys, colorscale=colormap(cmap_name).plotly_scale(),
            colorbar=dict(title=dict(text=escape_label(colorbar_title))),
            hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.4f}<extra></extra>",
        )],
        layout=dict(
            title=dict(text=escape_label(title)),
            margin=dict(l=10, r=10, t=40 if title else 10, b=10), height=min(900, max(360, 18 * n + 120)),
            yaxis=dict(title=dict(text=escape_label(y_title)), autorange="reversed", nticks=min(n, 60),
                       tickfont=dict(size=10 if n <= 40 else 8)),
            xaxis=dict(title=dict(text=escape_label(x_title)), nticks=min(m, 60), tickangle=-60,
                       tickfont=dict(size=10 if m <= 40 else 8)),
        ),
    )


def clickable_heatmap(z, x_labels: Sequence[str], y_labels: Sequence[str] | None = None, *, title: str = "",
                      x_title: str = "key j", y_title: str = "query i", colorbar_title: str = "value",
                      selected: tuple[int, int] | None = None, show_values: bool = True,
                      value_format: str = ".3g", hover_format: str = ".6g", hover_hint: str = "click to explain",
                      cmap_name: str = DEFAULT_COLORMAP, first_index: int = 0, zoomable: bool = False):
    """:func:`matrix_figure` whose every cell can be clicked in Streamlit.

    Plotly heatmaps report no selection to Streamlit, so an invisible square marker sits on each cell
    centre (trace 1), carrying ``customdata = [row, col, value]`` (row and col count from 0 within
    ``z``, whatever ``first_index`` the labels start at); read a click back with
    ``ui.clicks.parse_clicked_cell``. ``selected`` outlines one cell (black under white: visible on any
    colour); small matrices (<= 144 cells) print their numbers when ``show_values``. ``zoomable``
    keeps plotly's drag-to-zoom (long texts); otherwise dragging does nothing, so a click is a click.
    Show it with ``st.plotly_chart(fig, on_select="rerun", selection_mode="points")``.
    """
    go = _go()
    z = np.asarray(z, dtype=np.float64)
    y_labels = x_labels if y_labels is None else y_labels
    fig = matrix_figure(z, list(x_labels), list(y_labels), title=title, cmap_name=cmap_name, x_title=x_title,
                        y_title=y_title, colorbar_title=colorbar_title, first_index=first_index)
    n, m = z.shape
    heat = fig.data[0]
    heat.hoverinfo = "skip"  # the markers above carry the hover
    heat.hovertemplate = None
    if show_values and n * m <= 144:
        heat.texttemplate = "%{z:" + value_format + "}"
        heat.textfont = dict(size=13 if max(n, m) <= 10 else 10)
    xs, ys = list(heat.x), list(heat.y)
    rows, cols = np.meshgrid(np.arange(n), np.arange(m), indexing="ij")
    hint = f"<br>{escape_label(hover_hint)}" if hover_hint else ""
    fig.add_trace(go.Scatter(
        x=[xs[j] for j in cols.ravel()], y=[ys[i] for i in rows.ravel()], mode="markers",
        marker=dict(symbol="square", size=max(6, min(40, 400 // max(n, m, 1))), color="rgba(0,0,0,0)"),
        customdata=np.stack([rows.ravel(), cols.ravel(), z.ravel()], axis=1),
        hovertemplate=(f"{escape_label(y_title)} %{{y}}<br>{escape_label(x_title)} %{{x}}<br>"
                       f"{escape_label(colorbar_title)} %{{customdata[2]:{hover_format}}}{hint}<extra></extra>"),
        showlegend=False, selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
    ))
    if selected is not None:
        i, j = selected
        for colour, width in (("#000000", 6), ("#ffffff", 2.5)):
            fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, xref="x", yref="y",
                          line=dict(color=colour, width=width))
    if n <= 40:  # every label, not plotly's thinned selection
        fig.update_yaxes(tickmode="array", tickvals=ys, ticktext=ys, tickfont=dict(size=13 if n <= 12 else 10))
    if m <= 40:
        fig.update_xaxes(tickmode="array", tickvals=xs, ticktext=xs, tickfont=dict(size=13 if m <= 12 else 10))
    fig.update_xaxes(range=[-0.5, m - 0.5])  # the markers must not pad the axes
    fig.update_yaxes(autorange=False, range=[n - 0.5, -0.5])
    fig.update_layout(clickmode="event+select", hovermode="closest", **({} if zoomable else {"dragmode": False}))
    return fig


# ---------------------------------------------------------------------------- the walkthrough's views


def _axis_title(projection, k: int) -> str:
    return f"PCA axis {k + 1} ({projection.explained[k]:.0%} of the spread)"


def vectors_figure(wt, title: str = "The vectors, reduced to 2-D by PCA"):
    """Each input vector of a :class:`attnviz.walkthrough.Walkthrough` as a labelled point in its 2-D PCA view."""
    go = _go()
    c = wt.projection.coords
    labels = unique_labels(list(wt.labels))
    fig = go.Figure(go.Scatter(
        x=c[:, 0], y=c[:, 1], mode="markers+text", text=labels, textposition="top center",
        marker=dict(size=14, color=INPUT_COLOUR, line=dict(width=1, color="#ffffff")), name="input x_i",
        hovertemplate="%{text}<br>(%{x:.3f}, %{y:.3f})<extra></extra>"))
    fig.update_layout(title=dict(text=escape_label(title)), xaxis_title=_axis_title(wt.projection, 0),
                      yaxis_title=_axis_title(wt.projection, 1), height=420, margin=dict(l=10, r=10, t=50, b=10))
    return fig


def outputs_figure(wt, title: str = "Each output y_i is pulled towards what x_i attends to"):
    """Inputs and outputs of a walkthrough in the same 2-D PCA view, an arrow from each x_i to its y_i."""
    go = _go()
    c, o = wt.projection.coords, wt.output_coords
    labels = unique_labels(list(wt.labels))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=c[:, 0], y=c[:, 1], mode="markers+text", text=labels, textposition="top center",
                             marker=dict(size=13, color=INPUT_COLOUR), name="input x_i",
                             hovertemplate="input %{text}<extra></extra>"))
    fig.add_trace(go.Scatter(x=o[:, 0], y=o[:, 1], mode="markers", text=labels,
                             marker=dict(size=13, color=OUTPUT_COLOUR, symbol="diamond"), name="output y_i",
                             hovertemplate="output %{text}<extra></extra>"))
    for i in range(wt.n):
        fig.add_annotation(x=o[i, 0], y=o[i, 1], ax=c[i, 0], ay=c[i, 1], xref="x", yref="y", axref="x", ayref="y",
                           showarrow=True, arrowhead=3, arrowwidth=1.5, arrowcolor=OUTPUT_COLOUR, text="")
    fig.update_layout(title=dict(text=escape_label(title)), xaxis_title=_axis_title(wt.projection, 0),
                      yaxis_title=_axis_title(wt.projection, 1), height=440, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.2))
    return fig


# ---------------------------------------------------------------------------------- the lab's charts


def sweep_figure(sweeps, title: str = "Temperature against attention spread"):
    """Mean effective tokens against T (log axis), one line per :class:`attnviz.lab.TemperatureSweep`."""
    from .similarity import SIMILARITIES

    go = _go()
    fig = go.Figure()
    for c, sw in enumerate(sweeps):
        label = SIMILARITIES[sw.similarity].label if sw.similarity in SIMILARITIES else sw.similarity
        fig.add_trace(go.Scatter(x=sw.temperatures, y=sw.mean_effective, mode="lines+markers",
                                 name=escape_label(label),
                                 line=dict(color=SERIES_COLOURS[c % len(SERIES_COLOURS)], width=3),
                                 hovertemplate="T = %{x}<br>effective tokens %{y:.2f}<extra></extra>"))
    if sweeps:
        n = sweeps[0].n
        fig.add_hline(y=n, line_dash="dot", annotation_text=f"n = {n}: spread evenly over all tokens")
        fig.add_hline(y=1, line_dash="dot", annotation_text="1: all on one token")
        ts = list(sweeps[0].temperatures)
        fig.update_xaxes(tickmode="array", tickvals=ts, ticktext=[f"{t:g}" for t in ts])
    fig.update_xaxes(type="log", title="temperature T (log scale)")
    fig.update_yaxes(title="effective tokens attended (mean over rows)")
    fig.update_layout(title=dict(text=escape_label(title)), height=420, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def effective_figure(columns, labels: Sequence[str], title: str = "Effective tokens per query"):
    """Grouped bars: for each query token, exp(entropy) of its row under each :class:`attnviz.lab.LabColumn`."""
    go = _go()
    xs = unique_labels(list(labels))
    fig = go.Figure()
    for c, col in enumerate(columns):
        fig.add_trace(go.Bar(x=xs, y=col.effective, name=escape_label(f"{col.label}, T = {col.temperature:g}"),
                             marker_color=SERIES_COLOURS[c % len(SERIES_COLOURS)],
                             hovertemplate="query %{x}<br>effective tokens %{y:.2f}<extra></extra>"))
    fig.update_layout(barmode="group", title=dict(text=escape_label(title)), height=400,
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.35),
                      xaxis_title="query token i", yaxis_title="effective tokens = exp(entropy of row i)")
    fig.update_xaxes(tickangle=-60)
    return fig


# ------------------------------------------------------------------------------- pictures of patches


def patch_picture(photo, grid, weights=None, query: int | None = None, opacity: float = 0.55) -> np.ndarray:
    """A photo ``(h, w, 3)`` with its patch grid: one patch's attention ``weights (rows * cols,)`` laid
    over it (or just the grid lines when ``weights`` is None), and patch ``query`` outlined.

    ``grid`` is the :class:`attnviz.image.PatchGrid` of the full-size photo; it is scaled to ``photo``
    (usually a thumbnail), so the same grid serves every display size. Returns ``(h, w, 3)`` uint8.
    """
    from .overlay import show_attention_on_image

    if weights is None:  # the grid alone: a flat map drawn fully transparent
        weights, opacity = np.zeros(grid.rows * grid.cols), 0.0
    return show_attention_on_image(photo, np.asarray(weights, dtype=np.float64), opacity=opacity, grid=grid,
                                   show_grid=True, query=None if query is None else int(query))


# ------------------------------------------------------------------------------ hard cases (long sequences)

#: full attention and the blocked path in the scaling figures (Okabe-Ito vermillion and blue)
SCALING_COLOURS = {"full": "#D55E00", "blocked": "#0072B2"}


def _seconds_label(v: float) -> str:
    if v < 1e-3:
        return f"{v * 1e6:g} µs"
    if v < 1:
        return f"{v * 1e3:g} ms"
    return f"{v:g} s"


def scaling_figures(result):
    """Two figures of a :class:`attnviz.hardcases.ScalingResult`, full vs blocked, log-log: the median time
    of one call against n (error bars from the fastest to the slowest repeat), and its peak extra memory."""
    import math

    go = _go()
    names = {"full": "full attention (whole n × n matrix)",
             "blocked": f"blocked attention ({result.block_elements:,} scores per block)"}
    figs = []
    for what, title, ytitle in (("time", "Time of one attention call", "time (log scale)"),
                                ("memory", "Peak extra memory of one call", "memory (log scale)")):
        fig = go.Figure()
        values = []
        for method in ("full", "blocked"):
            if what == "time":
                pts = [(p.n, p.seconds, p.low, p.high) for p in result.measured(method) if p.seconds]
            else:
                pts = [(p.n, p.peak_bytes / 2**20, None, None) for p in result.measured(method)
                       if p.peak_bytes is not None and p.peak_bytes > 0]
            values += [y for _, y, _, _ in pts] + [v for _, _, lo, hi in pts for v in (lo, hi) if v]
            error = None
            if what == "time":
                error = dict(type="data", symmetric=False, visible=True, thickness=2, width=6,
                             array=[(hi if hi is not None else y) - y for _, y, _, hi in pts],
                             arrayminus=[y - (lo if lo is not None else y) for _, y, lo, _ in pts])
            fig.add_trace(go.Scatter(
                x=[n for n, *_ in pts], y=[y for _, y, _, _ in pts], mode="lines+markers", name=names[method],
                line=dict(color=SCALING_COLOURS[method], width=3), marker=dict(size=9), error_y=error,
                customdata=[[lo, hi] for _, _, lo, hi in pts] if what == "time" else None,
                hovertemplate=("n = %{x:,}<br>median %{y:.4g} s<br>fastest %{customdata[0]:.4g} s, slowest "
                               "%{customdata[1]:.4g} s<extra></extra>") if what == "time"
                else "n = %{x:,}<br>%{y:.4g} MiB<extra></extra>"))
        ns = sorted({p.n for p in result.points if p.status == "measured"})
        fig.update_xaxes(type="log", title="sequence length n (log scale)", tickmode="array", tickvals=ns,
                         ticktext=[f"{n // 1024}k" if n >= 1024 and n % 1024 == 0 else f"{n}" for n in ns])
        values = [v for v in values if v and v > 0]
        if values:
            decades = [10.0 ** k for k in range(math.floor(math.log10(min(values))),
                                                 math.ceil(math.log10(max(values))) + 1)]
            fig.update_yaxes(tickmode="array", tickvals=decades,
                             ticktext=[_seconds_label(v) if what == "time" else f"{v:g} MiB" for v in decades])
        fig.update_yaxes(type="log", title=ytitle)
        fig.update_layout(title=dict(text=escape_label(f"{title} on {result.device}")), height=400,
                          margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.3))
        figs.append(fig)
    return figs


# ------------------------------------------------------------------------------ inside a trained head


def block_mean(pattern, size: int) -> np.ndarray:
    """An ``(a, b)`` picture shrunk to at most ``(size, size)``: each cell is the mean of the block of the original
    it covers (block edges ``floor(k a / size)`` per axis); an axis no longer than ``size`` stays as it is."""
    a = np.asarray(pattern, dtype=np.float64)
    if a.shape[0] <= size and a.shape[1] <= size:
        return a
    out_r, out_c = min(size, a.shape[0]), min(size, a.shape[1])
    er = (np.arange(out_r + 1) * a.shape[0]) // out_r
    ec = (np.arange(out_c + 1) * a.shape[1]) // out_c
    out = np.empty((out_r, out_c))
    for r in range(out_r):
        band = a[er[r]:er[r + 1]]
        for c in range(out_c):
            out[r, c] = band[:, ec[c]:ec[c + 1]].mean()
    return out


def _thumb_shape(shape, size: int) -> tuple[int, int]:
    return min(size, int(shape[-2])), min(size, int(shape[-1]))


def thumbnail_grid(patterns, order: Sequence[tuple[int, int]], cols: int, size: int = 16, gap: int = 1,
                   row_gap: int | None = None) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Compose ``patterns (layers, heads, a, b)`` (attention patterns, or a photo's [CLS] -> patch maps) into one
    canvas of thumbnails, ``order[k]`` at grid place ``divmod(k, cols)``; each thumbnail is :func:`block_mean` of
    its picture divided by its own largest value (so a spread-out head stays visible next to a sharp one),
    separated by ``gap`` NaN cells (``row_gap`` between rows, default ``gap``: room for a label). Returns
    ``(canvas (rows*(th+row_gap)-row_gap, cols*(tw+gap)-gap), centres [(x, y) of each thumbnail, in order])``
    with ``(th, tw)`` the thumbnail's shape (``min(size, a)``, ``min(size, b)``)."""
    p = np.asarray(patterns, dtype=np.float64)
    th, tw = _thumb_shape(p.shape, size)
    rg = gap if row_gap is None else row_gap
    rows = -(-len(order) // cols)
    canvas = np.full((rows * (th + rg) - rg, cols * (tw + gap) - gap), np.nan)
    centres = []
    for k, (li, hi) in enumerate(order):
        r, c = divmod(k, cols)
        t = block_mean(p[li, hi], size)
        top = t.max()
        y0, x0 = r * (th + rg), c * (tw + gap)
        canvas[y0:y0 + th, x0:x0 + tw] = t / top if top > 0 else t
        centres.append((x0 + (tw - 1) / 2, y0 + (th - 1) / 2))
    return canvas, centres


def heads_overview_figure(patterns, order: Sequence[tuple[int, int]], values, metric_label: str, *, cols: int,
                          selected: tuple[int, int] | None = None, size: int = 16, title: str = "",
                          cmap_name: str = DEFAULT_COLORMAP, width: int = 760):
    """Every head as a thumbnail, in ``order`` (``[(layer, head), ...]``), ``cols`` per row.

    ``patterns``: ``(layers, heads, a, b)``, each head's attention pattern (a sentence) or [CLS] -> patch map (a
    photo); ``values``: ``(layers, heads)``, the metric shown on hover and above each thumbnail. Trace 1 holds one
    invisible marker per thumbnail with ``customdata = [layer, head, value]``: read a click with
    ``ui.clicks.parse_clicked_cell(event, layers, heads)``. ``selected`` is outlined. ``width``: the plot width
    the height is chosen for (square cells). Used by How it works (all heads at a glance)."""
    go = _go()
    p = np.asarray(patterns)
    vals = np.asarray(values, dtype=np.float64)
    th, tw = _thumb_shape(p.shape, size)
    label_gap = max(2, -(-max(th, tw) // 3))  # rows of empty cells above each thumbnail: its label goes there
    canvas, centres = thumbnail_grid(p, order, cols, size, row_gap=label_gap)
    fig = go.Figure(go.Heatmap(z=canvas.astype(np.float32), colorscale=colormap(cmap_name).plotly_scale(), zmin=0, zmax=1,
                               hoverinfo="skip", colorbar=dict(title=dict(text="weight ÷ the head's largest", side="right"),
                                                                 thickness=14)))
    xs, ys = [c[0] for c in centres], [c[1] for c in centres]
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers", showlegend=False,
        marker=dict(symbol="square", size=max(10, 3 * min(th, tw)), color="rgba(0,0,0,0)"),
        customdata=[[li, hi, float(vals[li, hi])] for li, hi in order],
        hovertemplate=(f"layer %{{customdata[0]}}, head %{{customdata[1]}}<br>{escape_label(metric_label)} "
                       "%{customdata[2]:.3f}<br>click to open it step by step<extra></extra>"),
        selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1))))
    for (li, hi), (x, y) in zip(order, centres):
        fig.add_annotation(x=x, y=y - th / 2 - 0.2, text=f"L{li} H{hi} · {vals[li, hi]:.2f}", showarrow=False,
                           yanchor="bottom", font=dict(size=10))
        if selected is not None and (li, hi) == tuple(selected):
            for colour, wd in (("#000000", 5), ("#ffffff", 2)):
                fig.add_shape(type="rect", x0=x - tw / 2, x1=x + tw / 2, y0=y - th / 2, y1=y + th / 2,
                              line=dict(color=colour, width=wd))
    h, w = canvas.shape
    fig.update_xaxes(visible=False, range=[-0.5, w - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[h - 0.5, -0.5 - label_gap], scaleanchor="x", constrain="domain")
    # height for a plot ``width`` px wide (760: a 1280 px screen beside the sidebar): the cells stay square
    fig.update_layout(title=dict(text=escape_label(title)), height=int(min(900, 80 + width * (h + label_gap) / w)),
                      dragmode=False,
                      clickmode="event+select", hovermode="closest", margin=dict(l=5, r=5, t=40 if title else 5, b=5))
    return fig


def top_keys(weights, k: int = 3) -> np.ndarray:
    """``(n, m)`` weights -> ``(n, min(k, m))`` the columns of each row's largest weights, largest first."""
    w = np.asarray(weights, dtype=np.float64)
    return np.argsort(-w, axis=1, kind="stable")[:, :min(k, w.shape[1])]


#: the lines from a query to its top keys: every shown query's faint, the selected query's bold
QK_LINE_COLOUR = "#009E73"
QK_FAINT_LINE = "rgba(0,158,115,0.28)"


def qk_figure(queries, keys, tokens: Sequence[str], weights, *, selected: int | None = None, top: int = 3,
              shown: Sequence[int] | None = None, title: str = "Queries and keys of this head in one plane"):
    """Queries (trace 0, circles, ``customdata = [i, top keys in words]``, ``i`` the token position) and keys
    (trace 1, diamonds, all of them) of one head in 2-D (from ``attnviz.trace.qk_projection``).

    ``shown``: the query positions drawn (default all; a photo: its 4 x 4 window and [CLS]). Trace 2 (named
    "top keys of every query") joins each shown query to its ``top`` keys by weight with faint segments (plotly
    cannot draw lines on hover without script, so they are all there); hover names them with their weights, and
    query ``selected`` gets bold lines (width by weight) and a ring."""
    go = _go()
    q, kk = np.asarray(queries, dtype=np.float64), np.asarray(keys, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    labels = unique_labels(list(tokens))
    best = top_keys(w, top)
    idx = list(range(len(labels))) if shown is None else [int(i) for i in shown]
    hover = {i: "<br>".join(f"→ {labels[j]} {w[i, j]:.3f}" for j in best[i]) for i in idx}
    many = len(labels) > 40
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=q[idx, 0], y=q[idx, 1], mode="markers+text", text=[labels[i] for i in idx],
                             textposition="top center", name="query q_i", marker=dict(size=12, color=INPUT_COLOUR),
                             customdata=[[i, hover[i]] for i in idx],
                             hovertemplate="query %{text}<br>top keys:<br>%{customdata[1]}<br>click to select"
                                           "<extra></extra>"))
    fig.add_trace(go.Scatter(x=kk[:, 0], y=kk[:, 1], mode="markers" if many else "markers+text", text=labels,
                             name="key k_j", textposition="bottom center",
                             textfont=dict(color=OUTPUT_COLOUR, size=10),  # keys labelled too, under their diamonds
                             marker=dict(size=7 if many else 12, color=OUTPUT_COLOUR, symbol="diamond",
                                         opacity=0.6 if many else 1),
                             hovertemplate="key %{text}<extra></extra>"))
    xs, ys = [], []
    for i in idx:
        for j in best[i]:
            xs += [q[i, 0], kk[j, 0], None]
            ys += [q[i, 1], kk[j, 1], None]
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=f"top {best.shape[1]} keys of every query",
                             line=dict(color=QK_FAINT_LINE, width=1), hoverinfo="skip"))
    if selected is not None:
        i = int(selected)
        for j in best[i]:
            fig.add_trace(go.Scatter(x=[q[i, 0], kk[j, 0]], y=[q[i, 1], kk[j, 1]], mode="lines", showlegend=False,
                                     line=dict(color=QK_LINE_COLOUR, width=1 + 8 * float(w[i, j])), hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=[q[i, 0]], y=[q[i, 1]], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(size=20, color="rgba(0,0,0,0)", line=dict(color="#000000", width=3))))
    fig.update_layout(title=dict(text=escape_label(title)), height=460, margin=dict(l=10, r=10, t=50, b=10),
                      clickmode="event+select", hovermode="closest", dragmode=False,
                      legend=dict(orientation="h", y=-0.12), xaxis_title="axis 1", yaxis_title="axis 2")
    return fig


def diagonal_share_figure(tokens: Sequence[str], model_diag, seed_diag, title: str = "Weight each token puts "
                          "on itself"):
    """Grouped bars per token: the diagonal of the trained head's weights and of the seed's on the same h."""
    go = _go()
    xs = unique_labels(list(tokens))
    fig = go.Figure()
    for c, (name, d) in enumerate((("trained head (with W_Q, W_K)", model_diag), ("seed (no projections)", seed_diag))):
        fig.add_trace(go.Bar(x=xs, y=np.asarray(d, dtype=np.float64), name=name, marker_color=SERIES_COLOURS[c],
                             hovertemplate="%{x}<br>weight on itself %{y:.3f}<extra></extra>"))
    fig.update_layout(barmode="group", title=dict(text=escape_label(title)), height=340, yaxis=dict(range=[0, 1]),
                      margin=dict(l=10, r=10, t=50, b=10), legend=dict(orientation="h", y=-0.35))
    fig.update_xaxes(tickangle=-60)
    return fig


__all__ = ["INPUT_COLOUR", "OUTPUT_COLOUR", "SERIES_COLOURS", "matrix_figure", "clickable_heatmap", "vectors_figure",
           "outputs_figure", "sweep_figure", "effective_figure", "patch_picture", "SCALING_COLOURS", "scaling_figures",
           "block_mean", "thumbnail_grid", "heads_overview_figure", "top_keys", "qk_figure", "QK_LINE_COLOUR", "diagonal_share_figure"]


# ----------------------------------------------------------------------- a photo's patch grid, clickable


def patch_window_figure(photo, grid: tuple[int, int], window: tuple[int, int, int, int] | None = None,
                        selected: tuple[int, int] | None = None, title: str = ""):
    """A photo ``(h, w, 3)`` uint8 under its ``grid`` ``(rows, cols)`` of equal patches, every patch clickable:
    an invisible marker on each patch centre (trace 1) carries ``customdata = [row, col, 0]``, read back with
    ``ui.clicks.parse_clicked_cell`` like :func:`clickable_heatmap`. ``window`` ``(row0, col0, row1, col1)``
    (inclusive) is outlined, and patch ``selected``. Show it with ``on_select="rerun", selection_mode="points"``."""
    go = _go()
    a = np.asarray(photo)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InvalidParameter(f"patch_window_figure takes an (h, w, 3) picture, got shape {a.shape}.")
    rows, cols = (int(g) for g in grid)
    if rows < 1 or cols < 1:
        raise InvalidParameter(f"The grid must have at least one row and one column, got {grid!r}.")
    h, w = a.shape[:2]
    ph, pw = h / rows, w / cols
    fig = go.Figure(go.Image(z=a, hoverinfo="skip"))
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    fig.add_trace(go.Scatter(
        x=((c.ravel() + 0.5) * pw).tolist(), y=((r.ravel() + 0.5) * ph).tolist(), mode="markers",
        marker=dict(symbol="square", size=max(6, min(28, 480 // max(rows, cols))), color="rgba(0,0,0,0)"),
        customdata=np.stack([r.ravel(), c.ravel(), np.zeros(rows * cols)], axis=1),
        hovertemplate="patch r%{customdata[0]}c%{customdata[1]}<br>click to centre the window here<extra></extra>",
        showlegend=False, selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
    ))
    for k in range(1, cols):
        fig.add_shape(type="line", x0=k * pw, x1=k * pw, y0=0, y1=h, line=dict(color="rgba(255,255,255,0.45)", width=1))
    for k in range(1, rows):
        fig.add_shape(type="line", x0=0, x1=w, y0=k * ph, y1=k * ph, line=dict(color="rgba(255,255,255,0.45)", width=1))
    boxes = []
    if window is not None:
        r0, c0, r1, c1 = (int(v) for v in window)
        boxes.append(((r0, c0, r1, c1), "#E69F00", 4))
    if selected is not None:
        boxes.append(((selected[0], selected[1], selected[0], selected[1]), "#ffffff", 2.5))
    for (r0, c0, r1, c1), colour, width in boxes:
        for ink, wd in (("#000000", width + 3), (colour, width)):
            fig.add_shape(type="rect", x0=c0 * pw, x1=(c1 + 1) * pw, y0=r0 * ph, y1=(r1 + 1) * ph,
                          line=dict(color=ink, width=wd))
    # constrain="domain": a narrow column (a phone) shrinks the picture instead of pushing it past the chart's edge
    fig.update_xaxes(visible=False, range=[0, w], constrain="domain")
    fig.update_yaxes(visible=False, range=[h, 0], constrain="domain")
    fig.update_layout(title=dict(text=escape_label(title)) if title else None, margin=dict(l=8, r=8, t=40 if title else 0, b=0),  # room for plotly's corner drag handles
                      height=int(min(480, 480 * h / max(w, 1))) + (40 if title else 0), clickmode="event+select",
                      hovermode="closest", dragmode=False)
    return fig


__all__ += ["patch_window_figure"]
