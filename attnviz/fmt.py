"""The one number formatter of attnviz: every number a page, a legend, a tooltip or an explanation shows.

    fmt(0.000032)   -> '3.200×10^−5'       people (Unicode minus and times)
    tex(0.000032)   -> '3.200\\times10^{-5}' LaTeX (st.latex)
    plain(0.000032) -> '3.20e-05'            ASCII, where a font may lack '−' and '×' (PNG legends, tooltips)

All three share one rule: ``digits`` significant digits, positional between 1e-4 and 1e6 (a large
number keeps its integer digits: 22026.47 -> '22026'), scientific outside; a value that only looks
whole (1.00034) gets more digits rather than printing as '1'.
"""

from __future__ import annotations

import math

__all__ = ["fmt", "tex", "plain", "factor"]


def _fixed(x: float, digits: int) -> str:
    if abs(x) >= 10 ** (digits - 1):  # 22026.47 -> "22026", not "2.203e+04"
        return f"{x:.0f}"
    out = f"{x:.{digits}g}"
    # 1.00034 must not print as "1": a sum that only looks like a whole number gets more digits
    while "." not in out and "e" not in out and x != round(x) and digits < 10:
        digits += 2
        out = f"{x:.{digits}g}"
    return out


def _positional(x: float) -> bool:
    return 1e-4 <= abs(x) < 1e6


def fmt(x: float, digits: int = 4) -> str:
    """A number for people: ``digits`` significant digits, scientific only when very large or small."""
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return "∞" if x > 0 else ("−∞" if x < 0 else "NaN")
    if _positional(x):
        return _fixed(x, digits).replace("-", "−")
    m, e = f"{x:.{digits - 1}e}".split("e")
    return f"{m}×10^{int(e)}".replace("-", "−")


def tex(x: float, digits: int = 4) -> str:
    """The same number as LaTeX (``1.2\\times10^{-5}``)."""
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return r"\infty" if x > 0 else (r"-\infty" if x < 0 else r"\mathrm{NaN}")
    if _positional(x):
        return _fixed(x, digits)
    m, e = f"{x:.{digits - 1}e}".split("e")
    return rf"{m}\times10^{{{int(e)}}}"


def plain(x: float, digits: int = 3) -> str:
    """The same number in ASCII (``3.20e-05``): for legends drawn into images and for tooltips."""
    x = float(x)
    if x == 0:
        return "0"
    if not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if _positional(x):
        return _fixed(x, digits)
    return f"{x:.{digits - 1}e}"


def factor(x: float) -> str:
    """:func:`tex` for a factor in a product: a negative number in parentheses."""
    s = tex(x)
    return f"({s})" if float(x) < 0 else s
