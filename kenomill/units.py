"""Units: the one place that knows troy ounces, pounds, g/t and percent.

Inside kenomill every grade is a dimensionless mass fraction (tonnes of element per
tonne of solids) and every mass is in metric tonnes. Conversion happens once, at
the boundary, with the functions here.
"""

from __future__ import annotations

import numpy as np

#: grams per troy ounce (exact, by definition of the troy ounce) [g/oz]
GRAMS_PER_TROY_OZ = 31.1034768
#: pounds (avoirdupois) per metric tonne [lb/t]
LB_PER_TONNE = 2204.62262

#: grade units understood at the boundary, as the factor that turns them into a mass fraction
GRADE_UNITS: dict[str, float] = {
    "fraction": 1.0,
    "1": 1.0,
    "%": 1e-2,
    "pct": 1e-2,
    "g/t": 1e-6,
    "ppm": 1e-6,
    "oz/t": GRAMS_PER_TROY_OZ * 1e-6,  # troy ounces per metric tonne
}

#: units of masses, rates, fractions and contained metal understood at the boundary, as the
#: factor that turns them into tonnes, tonnes per day, a fraction and tonnes of metal
MASS_UNITS: dict[str, float] = {"t": 1.0, "kt": 1e3, "Mt": 1e6}
RATE_UNITS: dict[str, float] = {"t/d": 1.0, "kt/d": 1e3}
FRACTION_UNITS: dict[str, float] = {"%": 1e-2, "pct": 1e-2, "fraction": 1.0, "1": 1.0}
CONTAINED_UNITS: dict[str, float] = {"troy_oz": GRAMS_PER_TROY_OZ * 1e-6, "lb": 1.0 / LB_PER_TONNE, "t": 1.0}
_DIMENSIONS: dict[str, tuple[dict[str, float], str]] = {
    "mass": (MASS_UNITS, "a mass unit"),
    "rate": (RATE_UNITS, "a rate unit"),
    "fraction": (FRACTION_UNITS, "a fraction unit"),
    "grade": (GRADE_UNITS, "a grade unit"),
    "contained": (CONTAINED_UNITS, "a contained-metal unit"),
}


def base_factor(dimension: str, unit: str) -> float:
    """Factor that takes a ``dimension`` (mass, rate, fraction, grade, contained) in ``unit`` to
    tonnes, t/d, a fraction, a mass fraction or tonnes of metal; ValueError naming what is allowed."""
    table, what = _DIMENSIONS[dimension]
    if unit not in table:
        raise ValueError(f"unit {unit!r} not understood; allowed ({what}): {', '.join(table)}")
    return float(table[unit])


#: the unit each element's grade is reported in by default (precious metals in g/t)
DEFAULT_GRADE_UNIT: dict[str, str] = {"Ag": "g/t", "Au": "g/t"}

#: the unit contained metal is reported in: troy ounces for precious metals, pounds otherwise
CONTAINED_UNIT: dict[str, str] = {"Ag": "troy_oz", "Au": "troy_oz"}

#: maximum grade of an element in a concentrate: that of the purest mineral that carries it
#: [mass fraction]. Galena PbS is 86.6 % Pb; sphalerite ZnS is at most 67.1 % Zn.
PURE_MINERAL_GRADE: dict[str, float] = {"Pb": 0.866, "Zn": 0.671}


def grade_unit(element: str) -> str:
    """Default grade unit of ``element``: g/t for Ag and Au, % for the rest."""
    return DEFAULT_GRADE_UNIT.get(element, "%")


def contained_unit(element: str) -> str:
    """Unit of contained metal for ``element``: troy_oz for Ag and Au, lb for the rest."""
    return CONTAINED_UNIT.get(element, "lb")


def _factor(unit: str) -> float:
    from kenomill.errors import ValidationError

    try:
        return GRADE_UNITS[unit]
    except KeyError:
        raise ValidationError(
            f"unknown grade unit {unit!r}; allowed: {', '.join(sorted(GRADE_UNITS))}"
        ) from None


def to_fraction(values, unit: str):
    """Convert grades in ``unit`` (``%``, ``g/t``, ``ppm``, ``oz/t``, ``fraction``) to mass fractions."""
    return np.asarray(values, dtype=float) * _factor(unit)


def from_fraction(values, unit: str):
    """Convert mass fractions to grades in ``unit``."""
    return np.asarray(values, dtype=float) / _factor(unit)


#: factor from the base quantity the kernels return (tonnes, tonnes of metal, a recovery or a
#: mass fraction) to each unit a figure is reported in: ``reported = base x factor``
REPORTED_FROM_BASE: dict[str, float] = {
    "t": 1.0,
    "troy_oz": 1e6 / GRAMS_PER_TROY_OZ,
    "lb": LB_PER_TONNE,
    "%": 100.0,
    "g/t": 1e6,
}


def reported_factors(unit_names) -> np.ndarray:
    """Factors (:data:`REPORTED_FROM_BASE`) of each of ``unit_names``, for the columns of a
    kernel's output in base units: ``reported = base * reported_factors(units)``."""
    try:
        return np.array([REPORTED_FROM_BASE[u] for u in unit_names], dtype=float)
    except KeyError as exc:
        raise ValueError(
            f"unit {exc.args[0]!r} has no factor from base units; allowed: {', '.join(REPORTED_FROM_BASE)}"
        ) from None


# Scalar conversions of the mill's reported figures (the factors stay here).
def t_to_troy_oz(t):
    """Tonnes of metal -> troy ounces."""
    return t * 1e6 / GRAMS_PER_TROY_OZ


def t_to_lb(t):
    """Tonnes of metal -> pounds."""
    return t * LB_PER_TONNE


def pct_of(part, whole):
    """``part`` as a percentage of ``whole`` (a recovery, or a grade in %)."""
    return 100.0 * part / whole


def gpt_of(part, whole):
    """Grams of ``part`` per tonne of ``whole`` (both in tonnes)."""
    return 1e6 * part / whole


def tonnes_to_contained(tonnes, unit: str):
    """Tonnes of metal to contained metal in ``unit`` (``troy_oz``, ``lb`` or ``t``)."""
    t = np.asarray(tonnes, dtype=float)
    if unit == "troy_oz":
        return t_to_troy_oz(t)
    if unit == "lb":
        return t_to_lb(t)
    if unit == "t":
        return t
    raise ValueError(f"unknown contained-metal unit {unit!r}; allowed: troy_oz, lb, t")


def contained_to_tonnes(value, unit: str):
    """Contained metal in ``unit`` (``troy_oz``, ``lb`` or ``t``) to tonnes of metal."""
    v = np.asarray(value, dtype=float)
    if unit == "troy_oz":
        return v * GRAMS_PER_TROY_OZ * 1e-6
    if unit == "lb":
        return v / LB_PER_TONNE
    if unit == "t":
        return v
    raise ValueError(f"unknown contained-metal unit {unit!r}; allowed: troy_oz, lb, t")


#: display units: (unit of the data, unit shown) -> factor the data are multiplied by
DISPLAY_FACTORS: dict[tuple[str, str], float] = {
    ("troy_oz", "koz"): 1e-3,
    ("troy_oz", "Moz"): 1e-6,
    ("lb", "klb"): 1e-3,
    ("lb", "Mlb"): 1e-6,
    ("t", "kt"): 1e-3,
}


def display_factor(unit: str, shown: str) -> float:
    """Factor that turns figures in ``unit`` into ``shown`` (Moz, Mlb, kt, ...) for display.

    Used by tables and plots only, at the boundary: results stay in ``unit``.
    """
    if unit == shown:
        return 1.0
    try:
        return DISPLAY_FACTORS[(unit, shown)]
    except KeyError:
        allowed = ", ".join(f"{a} -> {b}" for a, b in DISPLAY_FACTORS)
        raise ValueError(f"no display conversion {unit!r} -> {shown!r}; allowed: {allowed}") from None
