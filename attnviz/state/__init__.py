"""Pages' settings as typed, validated objects (no Streamlit here: testable on their own).

Each page's module (``attnviz.state.text``, ...) holds one frozen dataclass with
``from_query(params) -> State`` (every value of a link validated: it is user input; a bad value falls back
to the default and is named in ``state.ignored``) and ``to_query() -> dict[str, str]`` (what the shareable
link carries). What several pages' settings share lives here.
"""

from __future__ import annotations

#: temperatures the pages offer (log-spaced, so small values get room); a link may carry only these
TEMPERATURES: tuple[float, ...] = (0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0,
                                   3.0, 5.0, 10.0)


def nearest_temperature(t: float) -> float:
    """The offered temperature closest to ``t`` (a similarity's default need not be one of them)."""
    return min(TEMPERATURES, key=lambda v: abs(v - t))


def parse_index(value: str, limit: int) -> int | None:
    """A non-negative integer below ``limit`` written in at most 6 ASCII digits, else None."""
    ok = value.isascii() and value.isdigit() and len(value) <= 6
    return int(value) if ok and int(value) < limit else None


def parse_flag(value: str) -> bool | None:
    """"1" -> True, "0" -> False, anything else None."""
    return {"1": True, "0": False}.get(value)


def parse_temperature(value: str) -> float | None:
    """One of :data:`TEMPERATURES` written as a number, else None (NaN, inf, 0.04 and "x" are refused)."""
    try:
        t = float(value)
    except ValueError:
        return None
    return t if t in TEMPERATURES else None  # NaN and inf are never in the tuple


def parse_params(params, parsers, fields) -> tuple[dict, tuple[str, ...]]:
    """Read a link: ``parsers`` maps each parameter this page uses to its parser (str -> value or None),
    ``fields`` the parameter to its state field. Returns (field values, refused parameters); names the page
    does not use are left alone (they belong to someone else), and a non-string value is refused."""
    values, ignored = {}, []
    for param, parse in parsers.items():
        if param not in params:
            continue
        raw = params[param]
        value = parse(raw) if isinstance(raw, str) else None
        if value is None:
            ignored.append(param)
        else:
            values[fields[param]] = value
    return values, tuple(ignored)


__all__ = ["TEMPERATURES", "nearest_temperature", "parse_flag", "parse_index", "parse_params", "parse_temperature"]
