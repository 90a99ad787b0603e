"""Smelter terms and metal prices as data: schema, validation and the packaged defaults.

A terms file (TOML) gives, per concentrate, the payable fraction and deductions of each
metal, the treatment charge with its basis price and escalator bands, the silver refining
charge, penalties, moisture, transport losses, freight and insurance; and the silver
stream's share and price. Every number is a table ``{ value = ..., source = "..." }``: the
source says in words where the number comes from (publication and date) or that it is an
assumption. The packaged default is ``kenomill/data/terms_typical_2012.toml``.

A price deck (CSV) has the columns ``period, item, value, unit, source``; items
``ag`` [US$/oz], ``pb`` [US$/lb], ``zn`` [US$/lb] and ``usd_cad`` [C$ per US$]. The
packaged deck is ``kenomill/data/prices.csv`` (annual averages 2011-2013 and Alexco's
realized prices).

A bad file raises :class:`kenomill.errors.ValidationError` with one line naming the file,
the field, the value found and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kenomill.errors import ValidationError

PACKAGED_TERMS = "terms_typical_2012.toml"
PACKAGED_PRICES = "prices.csv"
PACKAGED_COSTS = "costs_pea_2008.toml"

#: price deck items -> unit
PRICE_ITEMS: dict[str, str] = {"ag": "USD/troy_oz", "pb": "USD/lb", "zn": "USD/lb", "usd_cad": "CAD/USD"}
#: allowed range of each item (a wider range is a typing error, not a price)
PRICE_RANGE: dict[str, tuple[float, float]] = {
    "ag": (0.1, 1000.0),
    "pb": (0.01, 100.0),
    "zn": (0.01, 100.0),
    "usd_cad": (0.1, 10.0),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class _Sourced(_Model):
    source: str = Field(min_length=1)


class NonNeg(_Sourced):
    value: float = Field(ge=0.0)


class Pct(_Sourced):
    value: float = Field(ge=0.0, le=100.0)


class PctBelow100(_Sourced):
    value: float = Field(ge=0.0, lt=100.0)


class Positive(_Sourced):
    value: float = Field(gt=0.0)


_ZERO = "none (zero)"


def _zero() -> NonNeg:
    return NonNeg(value=0.0, source=_ZERO)


class MetalTerms(_Model):
    """Payable terms of one metal in one concentrate (Pb, Zn in % units; Ag in oz/dmt)."""

    payable_pct: Pct
    deduct: NonNeg = Field(default_factory=_zero)
    min_deduction: NonNeg = Field(default_factory=_zero)
    refining_usd_per_oz: NonNeg = Field(default_factory=_zero)


class Metals(_Model):
    ag: MetalTerms
    pb: MetalTerms
    zn: MetalTerms


class Band(_Model):
    """Price band [US$/t] and the TC's rate in it [US$/dmt per US$/t]."""

    lo: float = Field(ge=0.0)
    hi: float = Field(gt=0.0)
    rate: float = Field(ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.hi > self.lo:
            raise ValueError(f"found lo = {self.lo:g}, hi = {self.hi:g}; allowed: hi > lo")
        return self


class TreatmentCharge(_Model):
    metal: Literal["pb", "zn"]
    base_usd_per_dmt: NonNeg
    basis_usd_per_t: Positive
    bands: list[Band] = Field(default_factory=list)
    bands_source: str = Field(default=_ZERO, min_length=1)


class Penalty(_Model):
    element: Literal["ag", "pb", "zn"]
    threshold_pct: Pct
    rate_usd_per_dmt_per_pct: NonNeg


class ConcentrateTerms(_Model):
    moisture_pct: PctBelow100
    losses_pct: PctBelow100
    freight_usd_per_wmt: NonNeg
    insurance_pct: Pct = Field(default_factory=lambda: Pct(value=0.0, source=_ZERO))
    metals: Metals
    tc: TreatmentCharge
    penalties: list[Penalty] = Field(default_factory=list)


class StreamTerms(_Model):
    share_pct: Pct
    price_usd_per_oz: NonNeg


class Terms(_Model):
    name: str = Field(min_length=1)
    note: str = ""
    stream: StreamTerms
    lead_concentrate: ConcentrateTerms
    zinc_concentrate: ConcentrateTerms


class Costs(_Model):
    """Operating costs (mining, milling, G&A) in C$: per tonne milled and per calendar day."""

    name: str = Field(min_length=1)
    note: str = ""
    variable_cad_per_t: NonNeg
    fixed_cad_per_day: NonNeg


# ------------------------------------------------------------------ errors
def _model_at(loc: tuple, root: type[BaseModel] = Terms) -> type[BaseModel] | None:
    m: type[BaseModel] | None = root
    for part in loc:
        if m is None or isinstance(part, int):
            continue
        f = m.model_fields.get(str(part))
        if f is None:
            return None
        ann = f.annotation
        args = getattr(ann, "__args__", (ann,))
        m = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return m


def _describe(exc: pydantic.ValidationError, root: type[BaseModel] = Terms) -> tuple[str, str]:
    errs = exc.errors()
    err = next((e for e in errs if e["type"] == "extra_forbidden"), errs[0])
    loc = tuple(err["loc"])
    field = ".".join(str(p) for p in loc) or "(top level)"
    typ, found = err["type"], err.get("input")
    if typ == "extra_forbidden":
        parent = _model_at(loc[:-1], root)
        allowed = list(parent.model_fields) if parent else []
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        return field, f"unknown field {loc[-1]!r}{hint}; allowed: {', '.join(allowed)}"
    if typ == "missing":
        m = _model_at(loc, root)
        extra = f" (a table with {', '.join(m.model_fields)})" if m is not None else ""
        return field, f"field required{extra}"
    if typ in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return field, f"found {found!r}; allowed: {err['msg'].lower().removeprefix('input should be ')}"
    if typ == "finite_number":
        return field, f"found {found!r}; allowed: a finite number"
    if typ == "literal_error":
        return field, f"found {found!r}; allowed: {err['msg'].removeprefix('Input should be ')}"
    msg = err["msg"].removeprefix("Value error, ")
    if typ != "value_error" and not isinstance(found, dict | list):
        msg = f"found {found!r}; allowed: {msg[0].lower()}{msg[1:]}"
    return field, msg


def _validated(model: type[BaseModel], data: dict, where: str):
    """``model`` from a mapping; errors name ``where``, the field, the value and what is allowed."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        field, msg = _describe(exc, model)
        raise ValidationError(f"{where}: {field}: {msg}") from None


def _read_file(path, from_dict, what: str):
    """A TOML file read (:func:`kenomill.io.read_toml`) and validated by ``from_dict``."""
    from kenomill.io import read_toml

    p = Path(path)
    return from_dict(read_toml(p, what=what), where=str(p))


def _read_packaged(name: str, from_dict):
    """A packaged TOML file (``kenomill/data/<name>``) validated by ``from_dict``."""
    import tomllib

    text = resources.files("kenomill").joinpath(f"data/{name}").read_text(encoding="utf-8")
    return from_dict(tomllib.loads(text), where=f"packaged {name}")


def terms_from_dict(data: dict, where: str = "terms") -> Terms:
    """Validate terms given as a mapping; errors name ``where``, the field, the value and what is allowed."""
    return _validated(Terms, data, where)


def load_terms(path=None) -> Terms:
    """Read and validate a terms TOML file (None: the packaged typical 2012 terms).

    Raises
    ------
    ValidationError
        One line: ``<file>: <field>: found ...; allowed: ...``.
    """
    return packaged_terms() if path is None else _read_file(path, terms_from_dict, "terms")


@cache
def packaged_terms() -> Terms:
    """The packaged "typical 2012 terms" (``kenomill/data/terms_typical_2012.toml``)."""
    return _read_packaged(PACKAGED_TERMS, terms_from_dict)


# ------------------------------------------------------------------ costs
def costs_from_dict(data: dict, where: str = "costs") -> Costs:
    """Validate operating costs given as a mapping (one-line errors as :func:`terms_from_dict`)."""
    return _validated(Costs, data, where)


def load_costs(path=None) -> Costs:
    """Read and validate an operating-costs TOML file (None: the packaged PEA 2008 costs).

    The file gives ``variable_cad_per_t`` [C$ per tonne milled] and ``fixed_cad_per_day``
    [C$ per calendar day], each ``{ value = ..., source = "..." }``.
    """
    return packaged_costs() if path is None else _read_file(path, costs_from_dict, "costs")


@cache
def packaged_costs() -> Costs:
    """The packaged operating costs (``kenomill/data/costs_pea_2008.toml``): C$206/t, all variable."""
    return _read_packaged(PACKAGED_COSTS, costs_from_dict)


def cost_usd_per_day(costs: Costs, tonnes_per_day, usd_cad):
    """Operating cost per calendar day [US$/d] at ``tonnes_per_day`` milled [t per calendar day]."""
    import numpy as np

    cad = costs.variable_cad_per_t.value * np.asarray(tonnes_per_day, dtype=float)
    return (cad + costs.fixed_cad_per_day.value) / np.asarray(usd_cad, dtype=float)


# ------------------------------------------------------------------ prices
PRICE_COLUMNS = ("period", "item", "value", "unit", "source")


def prices_from_frame(df, where: str = "prices"):
    """Validate a price deck (a DataFrame with :data:`PRICE_COLUMNS`); returns it cleaned.

    Every problem is one line naming ``where``, the row (line of the file), the column, the
    value found and what is allowed.
    """
    cols = [str(c).strip() for c in df.columns]
    missing = [c for c in PRICE_COLUMNS if c not in cols]
    if missing:
        raise ValidationError(
            f"{where}: columns: missing {', '.join(missing)}; found {', '.join(cols)}; "
            f"allowed: {', '.join(PRICE_COLUMNS)}"
        )
    unknown = [c for c in cols if c not in PRICE_COLUMNS]
    if unknown:
        raise ValidationError(
            f"{where}: columns: unknown {', '.join(unknown)}; allowed: {', '.join(PRICE_COLUMNS)}"
        )
    df = df.copy()
    df.columns = cols
    seen = set()
    for i, row in enumerate(df.itertuples(index=False), start=2):
        pre = f"{where}: line {i}"
        item = str(row.item).strip()
        if item not in PRICE_ITEMS:
            raise ValidationError(f"{pre}: item: found {item!r}; allowed: {', '.join(PRICE_ITEMS)}")
        unit = str(row.unit).strip()
        if unit != PRICE_ITEMS[item]:
            raise ValidationError(f"{pre}: unit: found {unit!r} for {item}; allowed: {PRICE_ITEMS[item]}")
        try:
            val = float(row.value)
        except (TypeError, ValueError):
            raise ValidationError(f"{pre}: value: found {row.value!r}; allowed: a number") from None
        lo, hi = PRICE_RANGE[item]
        if not (math.isfinite(val) and lo <= val <= hi):
            raise ValidationError(
                f"{pre}: value: found {row.value!r} for {item}; allowed: {lo:g} to {hi:g} {unit}"
            )
        src = (
            ""
            if row.source is None or (isinstance(row.source, float) and math.isnan(row.source))
            else str(row.source)
        )
        if not src.strip():
            raise ValidationError(
                f"{pre}: source: empty; allowed: the publication and date, or 'assumption: ...'"
            )
        period = str(row.period).strip()
        if (period, item) in seen:
            raise ValidationError(
                f"{pre}: period: {period!r} gives {item} twice; allowed: one row per period and item"
            )
        seen.add((period, item))
    df["period"] = df["period"].astype(str).str.strip()
    df["item"] = df["item"].astype(str).str.strip()
    df["value"] = df["value"].astype(float)
    return df


def read_prices(path=None):
    """Read and validate a price deck CSV (None: the packaged deck)."""
    import io as _io

    import pandas as pd

    if path is None:
        text = resources.files("kenomill").joinpath(f"data/{PACKAGED_PRICES}").read_text(encoding="utf-8")
        return prices_from_frame(
            pd.read_csv(_io.StringIO(text), comment="#", dtype=str), f"packaged {PACKAGED_PRICES}"
        )
    from kenomill.io import read_csv

    return prices_from_frame(read_csv(path, what="prices", dtype=str, comment="#"), str(path))


def prices_for(deck, period: str, where: str = "prices") -> dict:
    """The prices of ``period`` (e.g. ``"2012"``) from a deck: ``{"ag", "pb", "zn", "usd_cad", "source"}``."""
    period = str(period)
    rows = deck[deck["period"] == period]
    have = list(dict.fromkeys(deck["period"]))
    if rows.empty:
        raise ValidationError(f"{where}: period: found no rows for {period!r}; allowed: {', '.join(have)}")
    out: dict = {}
    for item in PRICE_ITEMS:
        r = rows[rows["item"] == item]
        if r.empty:
            raise ValidationError(
                f"{where}: period {period}: item {item!r} missing; each period needs {', '.join(PRICE_ITEMS)}"
            )
        out[item] = float(r["value"].iloc[0])
    out["source"] = "; ".join(f"{it}: {s}" for it, s in zip(rows["item"], rows["source"], strict=True))
    out["period"] = period
    return out


def realized_period(period: str, deck) -> str:
    """The deck period whose realized prices settle reported ``period``.

    The period itself when the deck has it (Alexco's quarterly realized prices, e.g.
    2011Q1); else the half-year holding it (2011Q2 -> 2011H1, 2011Q4 -> 2011H2: Alexco
    reported those quarters' prices only as part of the half-year), else its fiscal year.
    """
    have = set(deck["period"])
    p = str(period)
    cands = [p]
    if len(p) == 6 and p[4] == "Q" and p[:4].isdigit():
        cands += [f"{p[:4]}H{1 if p[5] in '12' else 2}", f"{p[:4]}FY"]
    for c in cands:
        if c in have:
            return c
    raise ValidationError(
        f"prices: period {p}: no realized prices in the deck (looked for {', '.join(cands)}); "
        f"allowed periods: {', '.join(dict.fromkeys(deck['period']))}"
    )


def realized_prices(periods, deck, where: str = "prices") -> dict:
    """Prices per reported period at its own realized prices (:func:`realized_period`).

    Returns a price mapping whose ``ag``, ``pb``, ``zn``, ``usd_cad`` are arrays over
    ``periods``, with ``price_period`` (the deck period used for each) and ``sources`` (each
    period's sources in words).
    """
    import numpy as np

    rows = [prices_for(deck, realized_period(p, deck), where=where) for p in periods]
    out: dict = {k: np.array([r[k] for r in rows], dtype=float) for k in PRICE_ITEMS}
    out["price_period"] = [realized_period(p, deck) for p in periods]
    out["sources"] = [r["source"] for r in rows]
    out["source"] = "realized prices per period: " + "; ".join(
        f"{p} at {q}" for p, q in zip(periods, out["price_period"], strict=True)
    )
    return out
