"""Reading Streamlit's plotly selection events back into matrix cells (UI code: it knows Streamlit's event shape)."""

from __future__ import annotations


def parse_clicked_cell(event, n_rows: int, n_cols: int) -> tuple[int, int] | None:
    """The (row, col) a click on ``attnviz.figures.clickable_heatmap`` selected, from the chart's
    selection state (``st.session_state[chart_key]``), or None when nothing inside the matrix was clicked.

    The invisible markers carry ``customdata = [row, col, value]``; without it, the point index of the
    marker trace (trace 1, row-major) is used.
    """
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, IndexError):
        return None
    for p in points or ():
        cd = p.get("customdata") if isinstance(p, dict) else None
        cell = None
        if isinstance(cd, (list, tuple)) and len(cd) >= 2:
            cell = (int(round(float(cd[0]))), int(round(float(cd[1]))))
        else:
            idx = p.get("point_index", p.get("point_number")) if isinstance(p, dict) else None
            if isinstance(idx, (list, tuple)) and len(idx) == 2:
                cell = (int(idx[0]), int(idx[1]))
            elif isinstance(idx, int) and p.get("curve_number", 1) == 1:
                cell = divmod(idx, n_cols)
        if cell is not None and 0 <= cell[0] < n_rows and 0 <= cell[1] < n_cols:
            return cell
    return None


def parse_clicked_point(event, curve: int, size: int) -> int | None:
    """The index a click on trace ``curve`` of a scatter selected (its ``customdata[0]``, else its point
    index), or None when nothing on that trace inside ``0..size-1`` was clicked."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError, IndexError):
        return None
    for p in points or ():
        if not isinstance(p, dict) or p.get("curve_number", curve) != curve:
            continue
        cd = p.get("customdata")
        idx = cd[0] if isinstance(cd, (list, tuple)) and cd else p.get("point_index", p.get("point_number"))
        try:
            i = int(round(float(idx)))
        except (TypeError, ValueError):
            continue
        if 0 <= i < size:
            return i
    return None
