"""The one family of errors kenomill raises for bad input."""

from __future__ import annotations

import numpy as np


class ValidationError(ValueError):
    """Bad input: the message names the field, the value found and what is allowed."""


def _first_bad(values: np.ndarray, bad: np.ndarray):
    idx = np.argwhere(bad)[0]
    where = f" at index {tuple(int(i) for i in idx)}" if values.ndim else ""
    return values[tuple(idx)] if values.ndim else values[()], where


def check_finite(name: str, values) -> np.ndarray:
    """Refuse NaN or infinite values in ``name``."""
    a = np.asarray(values, dtype=float)
    bad = ~np.isfinite(a)
    if bad.any():
        v, where = _first_bad(a, bad)
        raise ValidationError(f"{name}: found {v}{where}; a finite number is required")
    return a


def check_range(name: str, values, lo: float = 0.0, hi: float = np.inf, unit: str = "") -> np.ndarray:
    """Refuse NaN and values of ``name`` outside [lo, hi]."""
    a = check_finite(name, values)
    bad = (a < lo) | (a > hi)
    if bad.any():
        v, where = _first_bad(a, bad)
        u = f" {unit}" if unit else ""
        allowed = f">= {lo:g}{u}" if np.isinf(hi) else f"between {lo:g} and {hi:g}{u}"
        raise ValidationError(f"{name}: found {v:g}{u}{where}; allowed: {allowed}")
    return a
