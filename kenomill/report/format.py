"""How the page prints numbers: the template filters (plain text; the template escapes it)."""

from __future__ import annotations

import math
import re

DASH = "\u2013"  # an en dash: no figure


def num(v, digits: int = 3) -> str:
    """Plain number: thousands separators for large values, ``digits`` significant otherwise."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return str(v)
    if not math.isfinite(v):
        return DASH
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def fixed(v, nd: int = 1) -> str:
    """``nd`` decimals with thousands separators."""
    v = float(v)
    return DASH if not math.isfinite(v) else f"{v:,.{nd}f}"


def pct(p) -> str:
    """Probability as a percentage a reader can say aloud."""
    p = float(p)
    if not math.isfinite(p):
        return DASH
    if p == 0:
        return "0 %"
    if p < 0.01:
        return f"{100 * p:.1f} %"
    return f"{100 * p:.0f} %"


def pval(p) -> str:
    """A p-value: two significant digits, scientific below 0.001."""
    p = float(p)
    if not math.isfinite(p):
        return DASH
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def fmt(v, spec: str) -> str:
    """``format(float(v), spec)``: the templates' ``{x:spec}``."""
    return format(float(v), spec)


def printed(v, resolution) -> str:
    """A figure with as many decimals as the release printed (``resolution``: one unit of the last digit)."""
    v, res = float(v), float(resolution)
    if not math.isfinite(v):
        return DASH
    if not (math.isfinite(res) and res > 0):
        return num(v)
    return f"{v:,.{max(0, -math.floor(math.log10(res) + 1e-9))}f}"


def figure_value(col: str, v) -> str:
    """A reported figure in the balance table: percentages with one decimal, others plain."""
    if col.startswith(("head_", "rec_", "pbcon_pb", "zncon_zn", "availability")) and not col.endswith("_gpt"):
        return fixed(v, 1)
    return num(v)


def band(q, scale: float = 1.0, nd: int = 2) -> str:
    """``median (P10-P90)`` of a DataArray with a ``stat`` dimension."""
    lo, med, hi = (fixed(float(q.sel(stat=s)) * scale, nd) for s in ("p10", "p50", "p90"))
    return f"{med} ({lo}-{hi})"


def is_text(cell) -> bool:
    """Words are left-aligned, numbers right-aligned (a word: two letters in a row)."""
    plain = re.sub(r"<[^>]+>|&[a-z]+;", "", str(cell))
    return re.search(r"[A-Za-z]{2,}", plain) is not None


FILTERS = {
    "num": num,
    "fixed": fixed,
    "pct": pct,
    "pval": pval,
    "fmt": fmt,
    "printed": printed,
    "band": band,
}
