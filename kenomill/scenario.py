"""Scenario files: schema and validation of ``scenarios/*.toml``.

A scenario states everything the Monte Carlo engine (:mod:`kenomill.simulate`) needs and
every assumption behind it: the horizon and time step, the feed sources (mining rates or
blend fractions per quarter, start dates and their uncertainty, permitting holds, grade
distributions), the run-of-mine stockpile, the mill (throughput target, capacity,
availability and downtime), the metallurgical response of each ore (offsets from the
calibrated Bellekeno curves) and the calibration's uncertainty, plus targets to test.

A bad file raises :class:`kenomill.errors.ValidationError` with ONE line naming the file,
the field and the problem, e.g.
``scenarios/x.toml: sources.onek.pb_pct.mean: found 120; allowed: between 0 and 100 %``.

Grade means can be numbers, or come from data with their source:
``grades_from = "reported:2011Q1..2012Q2"`` (tonnage-weighted head grades of the reported
quarters, :func:`kenomill.data.reported_periods`) or
``grades_from = "deposit:Onek:Indicated"`` (NI 43-101 resource grades,
``kenomill/data/deposits.csv``).
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import re
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kenomill import recovery, variables
from kenomill.errors import ValidationError

if TYPE_CHECKING:
    # annotations only; deposits() imports pandas when called so that importing and
    # validating a scenario (the Monte Carlo path) does not load it.
    import pandas as pd

QUARTER_RE = re.compile(r"^(\d{4})Q([1-4])$")

Finite = Annotated[float, Field(allow_inf_nan=False)]
NonNeg = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
PerQuarter = NonNeg | list[NonNeg]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


# ------------------------------------------------------------------ quarters
def parse_quarter(label: str) -> tuple[int, int]:
    m = QUARTER_RE.match(str(label))
    if not m:
        raise ValueError(f"found {label!r}; expected a quarter like '2012Q4'")
    return int(m.group(1)), int(m.group(2))


def quarter_label(year: int, q: int) -> str:
    return f"{year}Q{q}"


def quarter_range(start: str, n: int) -> list[str]:
    y, q = parse_quarter(start)
    out = []
    for _ in range(n):
        out.append(quarter_label(y, q))
        y, q = (y + 1, 1) if q == 4 else (y, q + 1)
    return out


def summary_year(quarter_years, year: int | None = None) -> int | None:
    """The year a summary reports, the one rule of the package: ``year`` when the horizon
    has it (the report's key answers ask about the 2012 guidance), else the last complete
    year (four quarters), else the last year of the horizon; ``None`` for no quarters.

    ``quarter_years`` gives the year of each quarter of the horizon (``[2012, 2012, 2013,
    ...]``) or, as a mapping, the number of quarters per year.
    """
    if isinstance(quarter_years, dict):
        counts = {int(y): int(n) for y, n in quarter_years.items()}
    else:
        counts = {}
        for y in quarter_years:
            counts[int(y)] = counts.get(int(y), 0) + 1
    years = sorted(counts)
    if year is not None and int(year) in counts:
        return int(year)
    complete = [y for y in years if counts[y] == 4]
    if complete:
        return complete[-1]
    return years[-1] if years else None


def quarter_days(label: str) -> int:
    """Calendar days in the quarter ``label`` (2012Q1: 91, leap year)."""
    y, q = parse_quarter(label)
    first = date(y, 3 * (q - 1) + 1, 1)
    nxt = date(y + 1, 1, 1) if q == 4 else date(y, 3 * q + 1, 1)
    return (nxt - first).days


# ------------------------------------------------------------------ grade data
@cache
def deposits() -> pd.DataFrame:
    """Resource estimates of the district (``kenomill/data/deposits.csv``) with their sources."""
    import pandas as pd

    text = resources.files("kenomill").joinpath("data/deposits.csv").read_text()
    return pd.read_csv(io.StringIO(text), comment="#")


@cache
def _deposit_rows() -> tuple[dict[str, str], ...]:
    """The rows of ``deposits.csv`` as strings, read with the csv module.

    Scenario validation (``grades_from = "deposit:..."``) needs three numbers from this
    small file; reading it without pandas keeps pandas (~0.2 s) out of a process's first
    Monte Carlo result. :func:`deposits` stays the table for users.
    """
    text = resources.files("kenomill").joinpath("data/deposits.csv").read_text()
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return tuple(csv.DictReader(lines))


def grades_from(spec: str) -> tuple[dict[str, float], str]:
    """Mean grades ``{"ag_gpt", "pb_pct", "zn_pct"}`` named by ``spec``, and their source.

    ``reported:PERIOD`` (a reported period, e.g. ``2012H1``), ``reported:Q1..Q2`` (the
    tonnage-weighted head grades of the reported quarters in that range), or
    ``deposit:NAME:CLASS`` (a resource estimate of deposits.csv).
    """
    kind, _, rest = str(spec).partition(":")
    if kind == "reported":
        from kenomill.data import QUARTERS, reported_periods

        ds = reported_periods()
        if ".." in rest:
            a, b = rest.split("..", 1)
            if a not in QUARTERS or b not in QUARTERS or QUARTERS.index(a) > QUARTERS.index(b):
                raise ValueError(f"found {spec!r}; reported quarters run {QUARTERS[0]}..{QUARTERS[-1]}")
            periods = list(QUARTERS[QUARTERS.index(a) : QUARTERS.index(b) + 1])
        elif rest in ds.period.values:
            periods = [rest]
        else:
            raise ValueError(
                f"found {spec!r}; allowed periods: {', '.join(map(str, ds.period.values))} or Q..Q"
            )
        sel = ds.sel(period=periods)
        t = sel.ore_processed_t.values
        out = {
            c: float((sel[c].values * t).sum() / t.sum())
            for c in ("head_ag_gpt", "head_pb_pct", "head_zn_pct")
        }
        src = "; ".join(dict.fromkeys(s for v in sel.source.values for s in str(v).split("; ")))
        return {"ag_gpt": out["head_ag_gpt"], "pb_pct": out["head_pb_pct"], "zn_pct": out["head_zn_pct"]}, (
            f"tonnage-weighted head grades of {', '.join(periods)} ({src})"
        )
    if kind == "deposit":
        name, _, cls = rest.partition(":")
        rows = _deposit_rows()
        row = [r for r in rows if r["deposit"].lower() == name.lower() and r["class"].lower() == cls.lower()]
        if not row:
            allowed = ", ".join(f"deposit:{r['deposit']}:{r['class']}" for r in rows)
            raise ValueError(f"found {spec!r}; allowed: {allowed}")
        r = row[0]
        return {"ag_gpt": float(r["ag_gpt"]), "pb_pct": float(r["pb_pct"]), "zn_pct": float(r["zn_pct"])}, (
            f"{r['deposit']} {r['class']} resource, {r['source']}"
        )
    raise ValueError(f"found {spec!r}; expected 'reported:PERIOD', 'reported:Q..Q' or 'deposit:NAME:CLASS'")


# ------------------------------------------------------------------ schema
def reported_quarters() -> tuple[str, ...]:
    """Quarters of the packaged reported periods, in order (read without pandas)."""
    text = resources.files("kenomill").joinpath("data/reported_periods.csv").read_text()
    names = [row["period"] for row in csv.DictReader(io.StringIO(text))]
    return tuple(sorted(dict.fromkeys(n for n in names if QUARTER_RE.match(n)), key=parse_quarter))


class Horizon(_Model):
    start: str = Field(description="first quarter simulated, e.g. '2012Q1'")
    quarters: int = Field(ge=1, le=80, description="number of quarters")
    step: Literal["day", "shift"] = "day"
    shifts_per_day: int = Field(2, ge=1, le=4, description="shifts per day when step = 'shift'")
    start_after_reported: bool = Field(
        False,
        description="start after the last reported quarter (start may then be omitted) and count the "
        "start year's reported quarters in the annual totals",
    )

    @model_validator(mode="before")
    @classmethod
    def _start_after_reported(cls, data):
        if isinstance(data, dict) and data.get("start_after_reported") is True:
            after = quarter_range(reported_quarters()[-1], 2)[1]
            if data.get("start") is None:
                data = {**data, "start": after}
            elif data["start"] != after:
                raise ValueError(
                    f"start: found {data['start']!r} with start_after_reported = true; allowed: {after!r} "
                    "(the quarter after the last reported one) or leave start out"
                )
        return data

    @property
    def reported_before(self) -> list[str]:
        """Reported quarters of the start year before the start, counted in its annual totals."""
        if not self.start_after_reported:
            return []
        y0, _ = parse_quarter(self.start)
        return [
            q
            for q in reported_quarters()
            if parse_quarter(q)[0] == y0 and parse_quarter(q) < parse_quarter(self.start)
        ]

    @field_validator("start")
    @classmethod
    def _q(cls, v):
        parse_quarter(v)
        return v

    @property
    def labels(self) -> list[str]:
        return quarter_range(self.start, self.quarters)

    @property
    def steps_per_day(self) -> int:
        return self.shifts_per_day if self.step == "shift" else 1


class Grade(_Model):
    mean: PerQuarter | None = Field(None, description="mean grade of delivered ore (g/t Ag, % Pb, % Zn)")
    cv: NonNeg = Field(0.0, le=3.0, description="step-to-step coefficient of variation (lognormal)")
    autocorrelation: Annotated[float, Field(ge=0.0, lt=1.0, allow_inf_nan=False)] = Field(
        0.0, description="lag-1 autocorrelation per DAY of the log grade (AR(1))"
    )
    mean_uncertainty: NonNeg = Field(
        0.0, le=2.0, description="per-draw log-SD of the mean (resource / grade-control uncertainty)"
    )


def _check_corr(v, order: str):
    if v is None:
        return v
    a = np.asarray(v, dtype=float)
    if a.shape != (3, 3):
        raise ValueError(f"found shape {a.shape}; expected a 3x3 matrix ({order})")
    if not np.allclose(a, a.T) or not np.allclose(np.diag(a), 1.0) or np.abs(a).max() > 1.0:
        raise ValueError("expected a symmetric matrix with ones on the diagonal and entries in [-1, 1]")
    if np.linalg.eigvalsh(a).min() <= 0.0:
        raise ValueError("the matrix is not positive definite")
    return v


class Offset(_Model):
    mean: Finite = 0.0
    sd: NonNeg = 0.0


#: the parameters each distribution takes (every one required, no other allowed)
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "normal": ("mean", "sd"),
    "lognormal": ("median", "sd_log"),
    "uniform": ("low", "high"),
    "triangular": ("low", "mode", "high"),
}


class Distribution(_Model):
    """A per-draw uncertain input: one value per Monte Carlo draw, by inverse CDF of a uniform.

    ``normal`` (mean, sd; values below 0 are set to 0), ``lognormal`` (median, sd_log: the
    log's SD), ``uniform`` (low, high), ``triangular`` (low, mode, high). ``low = high`` (or
    sd = 0) is a fixed value. ``source`` says where the numbers come from, in words.
    """

    distribution: Literal["normal", "lognormal", "uniform", "triangular"]
    mean: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    sd: NonNeg | None = None
    median: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] | None = None
    sd_log: Annotated[float, Field(ge=0.0, le=2.0, allow_inf_nan=False)] | None = None
    low: NonNeg | None = None
    mode: NonNeg | None = None
    high: NonNeg | None = None
    source: str = Field("", description="where the distribution's numbers come from, in words")

    @model_validator(mode="after")
    def _params(self):
        need = DISTRIBUTIONS[self.distribution]
        given = [
            k
            for k in ("mean", "sd", "median", "sd_log", "low", "mode", "high")
            if getattr(self, k) is not None
        ]
        missing = [k for k in need if k not in given]
        extra = [k for k in given if k not in need]
        if missing or extra:
            found = ", ".join(given) or "none"
            raise ValueError(
                f"distribution {self.distribution!r} takes {', '.join(need)}; found {found}"
                + (f" (missing {', '.join(missing)})" if missing else "")
                + (f" ({', '.join(extra)} not allowed)" if extra else "")
            )
        if self.distribution in ("uniform", "triangular"):
            lo, hi = self.low, self.high
            mo = self.mode if self.mode is not None else lo
            if not (lo <= mo <= hi):  # type: ignore[operator]
                names = "low <= mode <= high" if self.mode is not None else "low <= high"
                raise ValueError(
                    f"found low {lo:g}"
                    + (f", mode {mo:g}" if self.mode is not None else "")
                    + f", high {hi:g}; allowed: {names}"
                )
        return self

    def ppf(self, u) -> np.ndarray:
        """The values at probabilities ``u`` in [0, 1) (inverse CDF)."""
        from scipy.special import ndtri

        u = np.asarray(u, dtype=float)
        d = self.distribution
        if d == "normal":
            return np.maximum(self.mean + self.sd * ndtri(u), 0.0)
        if d == "lognormal":
            return self.median * np.exp(self.sd_log * ndtri(u))
        lo, hi = float(self.low), float(self.high)
        if d == "uniform":
            return lo + (hi - lo) * u
        mo = float(self.mode)
        if hi == lo:
            return np.full(u.shape, lo)
        c = (mo - lo) / (hi - lo)
        return np.where(
            u < c, lo + np.sqrt(u * (hi - lo) * (mo - lo)), hi - np.sqrt((1.0 - u) * (hi - lo) * (hi - mo))
        )

    @property
    def expected(self) -> tuple[float, float]:
        """Mean and SD of the distribution (normal: before setting negative values to 0)."""
        d = self.distribution
        if d == "normal":
            return float(self.mean), float(self.sd)
        if d == "lognormal":
            s2 = float(self.sd_log) ** 2
            return float(self.median) * math.exp(s2 / 2), float(self.median) * math.sqrt(
                math.exp(s2) * (math.exp(s2) - 1.0)
            )
        lo, hi = float(self.low), float(self.high)
        if d == "uniform":
            return (lo + hi) / 2, (hi - lo) / math.sqrt(12.0)
        mo = float(self.mode)
        var = (lo * lo + mo * mo + hi * hi - lo * mo - lo * hi - mo * hi) / 18.0
        return (lo + mo + hi) / 3, math.sqrt(var)


class RateFactor(Distribution):
    """A per-draw factor on a per-quarter rate, from ``from_quarter`` on (default: every quarter)."""

    from_quarter: str | None = Field(
        None, description="first quarter the factor applies to (earlier quarters keep the stated rate)"
    )

    @field_validator("from_quarter")
    @classmethod
    def _q(cls, v):
        if v is not None:
            parse_quarter(v)
        return v


class Source(_Model):
    description: str = ""
    source: str = Field("", description="where the figures of this source come from")
    rate_tpd: PerQuarter | None = Field(None, description="tonnes mined per calendar day (rates mode)")
    rate_cv: NonNeg = Field(0.0, le=3.0, description="step-to-step CV of tonnes mined (lognormal)")
    rate_uncertainty: RateFactor | None = Field(
        None, description="per-draw factor on every quarter's rate_tpd (the plan's rate is uncertain)"
    )
    blend: PerQuarter | None = Field(None, description="share of the mill feed (blend mode)")
    start: str | None = Field(None, description="first quarter of deliveries")
    start_delay_days: tuple[NonNeg, NonNeg] = Field(
        (0.0, 0.0), description="uniform [lo, hi) days of delay after the start quarter begins"
    )
    hold_until: str | None = Field(None, description="ore is held in its own pile until this quarter")
    dilution: NonNeg = Field(
        0.0, le=1.0, description="waste tonnes (zero grade) per tonne of ore in the grade means"
    )
    grades_from: str | None = None
    ag_gpt: Grade = Grade()
    pb_pct: Grade = Grade()
    zn_pct: Grade = Grade()
    grade_correlation: list[list[Finite]] | None = Field(
        None, description="3x3 correlation of the log-grade innovations (Ag, Pb, Zn)"
    )
    response: dict[str, Offset] = Field(default_factory=dict, description="offsets of this ore's response")

    @field_validator("start", "hold_until")
    @classmethod
    def _q(cls, v):
        if v is not None:
            parse_quarter(v)
        return v

    @field_validator("grades_from")
    @classmethod
    def _gf(cls, v):
        if v is not None:
            grades_from(v)
        return v

    @field_validator("start_delay_days")
    @classmethod
    def _delay(cls, v):
        if v[1] < v[0]:
            raise ValueError(f"found {list(v)}; expected [lo, hi] with lo <= hi")
        return v

    @field_validator("response")
    @classmethod
    def _resp(cls, v):
        for key in v:
            if key not in recovery.OFFSET_NAMES:
                raise ValueError(_unknown(key, recovery.OFFSET_NAMES, "offset"))
        return v

    @field_validator("grade_correlation")
    @classmethod
    def _corr(cls, v):
        return _check_corr(v, "Ag, Pb, Zn")

    @model_validator(mode="after")
    def _grades(self):
        base = grades_from(self.grades_from)[0] if self.grades_from else {}
        for el, hi, unit in (("ag_gpt", 1e6, "g/t"), ("pb_pct", 100.0, "%"), ("zn_pct", 100.0, "%")):
            g: Grade = getattr(self, el)
            if g.mean is None and el not in base:
                raise ValueError(f"{el}.mean: field required (or give grades_from)")
            vals = np.atleast_1d(g.mean if g.mean is not None else base[el])
            if (vals > hi).any():
                raise ValueError(
                    f"{el}.mean: found {vals.max():g} {unit}; allowed: between 0 and {hi:g} {unit}"
                )
        return self

    def mean_grades(self) -> dict[str, Any]:
        base = grades_from(self.grades_from)[0] if self.grades_from else {}
        return {
            el: getattr(self, el).mean if getattr(self, el).mean is not None else base[el] for el in GRADES
        }


GRADES = ("ag_gpt", "pb_pct", "zn_pct")


class Feed(_Model):
    mode: Literal["rates", "blend"] = "rates"


class Stockpile(_Model):
    initial_t: dict[str, NonNeg] = Field(
        default_factory=dict, description="initial ROM stockpile by source [t]"
    )
    capacity_t: NonNeg | None = Field(None, description="ROM stockpile capacity [t]; the excess is diverted")


class Mill(_Model):
    target_tpd: PerQuarter = Field(description="calendar throughput target [t per calendar day]")
    capacity_tpd: NonNeg = Field(description="maximum feed rate while operating [t per operating day]")
    availability: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] = Field(
        description="long-run mill availability (operating / calendar time)"
    )
    availability_uncertainty: NonNeg = Field(
        0.0, le=0.5, description="per-draw SD of the long-run availability (it is itself uncertain)"
    )
    mean_repair_h: NonNeg = Field(0.0, description="mean downtime per stoppage [h]; 0 = no random downtime")
    target_uncertainty: RateFactor | None = Field(
        None, description="per-draw factor on every quarter's target_tpd (the ramp-up is uncertain)"
    )
    source: str = ""


METALS = variables.METALS


class Prices(_Model):
    """Metal prices as per-draw uncertain inputs of the NSR (:func:`kenomill.value.price_draws`).

    Each metal's price is lognormal around its median (US$/oz Ag, US$/lb Pb and Zn); the log
    prices may be correlated (``correlation``, Ag, Pb, Zn order; identity when absent).
    """

    ag: Distribution
    pb: Distribution
    zn: Distribution
    usd_cad: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = Field(
        1.0, description="C$ per US$ (fixed; 1.000 is the packaged 2012 assumption)"
    )
    correlation: list[list[Finite]] | None = Field(
        None, description="3x3 correlation of the log prices (Ag, Pb, Zn)"
    )
    source: str = Field("", description="where the prices come from, in words")

    @field_validator("ag", "pb", "zn")
    @classmethod
    def _lognormal(cls, v):
        if v.distribution != "lognormal":
            raise ValueError(
                f"distribution: found {v.distribution!r}; allowed: 'lognormal' (a price is lognormal "
                "around its median, as kenomill.value.price_draws draws it)"
            )
        return v

    @field_validator("correlation")
    @classmethod
    def _corr(cls, v):
        return _check_corr(v, "Ag, Pb, Zn")

    def central(self) -> dict[str, float]:
        """The medians and the exchange rate: the price row the draws are lognormal around."""
        return {"ag": self.ag.median, "pb": self.pb.median, "zn": self.zn.median, "usd_cad": self.usd_cad}


class Uncertainty(_Model):
    calibration: str = Field(
        "default", description="'default', 'defaults:<model>' or a calibration JSON path"
    )
    parameters: bool = Field(True, description="draw the calibration parameters from their covariance")
    scatter: bool = Field(True, description="draw the quarter-to-quarter scatter of the calibration")


class Target(_Model):
    name: str
    variable: Literal["ag_oz", "pb_lb", "zn_lb", "ore_processed_t"]
    year: int
    min: NonNeg | None = None
    max: NonNeg | None = None
    source: str = ""

    @model_validator(mode="after")
    def _bounds(self):
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"max {self.max:g} < min {self.min:g}")
        return self


class Scenario(_Model):
    name: str
    description: str
    assumptions: list[str] = Field(min_length=1, description="every assumption, in words")
    horizon: Horizon
    feed: Feed = Feed()
    sources: dict[str, Source] = Field(min_length=1)
    stockpile: Stockpile = Stockpile()
    mill: Mill
    uncertainty: Uncertainty = Uncertainty()
    prices: Prices | None = Field(None, description="uncertain metal prices of the NSR (default: 2012 row)")
    targets: list[Target] = Field(default_factory=list)

    @model_validator(mode="after")
    def _cross(self):
        nq = self.horizon.quarters
        labels = self.horizon.labels
        for name in self.stockpile.initial_t:
            if name not in self.sources:
                raise _FieldError(("stockpile", "initial_t", name), _unknown(name, self.sources, "source"))
        _per_quarter(("mill", "target_tpd"), self.mill.target_tpd, nq)
        factors = [(("mill", "target_uncertainty"), self.mill.target_uncertainty)]
        factors += [(("sources", n, "rate_uncertainty"), s.rate_uncertainty) for n, s in self.sources.items()]
        for loc, f in factors:
            if f is not None and f.from_quarter is not None and f.from_quarter not in labels:
                raise _FieldError(
                    (*loc, "from_quarter"),
                    f"found {f.from_quarter!r}; allowed: a quarter of the horizon "
                    f"({labels[0]}..{labels[-1]})",
                )
        for name, s in self.sources.items():
            for el in GRADES:
                _per_quarter(("sources", name, el, "mean"), s.mean_grades()[el], nq)
            _feed_fields(name, s, self.feed.mode, nq)
        if self.feed.mode == "blend":
            tot = sum(np.broadcast_to(np.asarray(s.blend, dtype=float), (nq,)) for s in self.sources.values())
            for i, v in enumerate(tot):
                if abs(v - 1.0) > 1e-6:
                    raise _FieldError(
                        ("sources", "*", "blend"),
                        f"quarter {labels[i]}: blend fractions sum to {v:g}; must sum to 1",
                    )
        for i, t in enumerate(self.targets):
            years = {int(q[:4]) for q in labels}
            if t.year not in years:
                raise _FieldError(
                    ("targets", i, "year"),
                    f"found {t.year}; the horizon covers {', '.join(map(str, sorted(years)))}",
                )
        return self


class _FieldError(ValueError):
    """A cross-field problem with the path of the field it concerns."""

    def __init__(self, loc: tuple, msg: str):
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def _unknown(name, allowed, what: str) -> str:
    near = difflib.get_close_matches(str(name), list(allowed), n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown {what} {name!r}{hint}; allowed: {', '.join(map(str, allowed))}"


def _feed_fields(name: str, s: Source, mode: str, nq: int) -> None:
    """A source gives rate_tpd (and may give rate_uncertainty) in rates mode, blend in blend mode."""
    if mode == "rates":
        if s.rate_tpd is None:
            raise _FieldError(("sources", name, "rate_tpd"), "field required in rates mode")
        if s.blend is not None:
            raise _FieldError(("sources", name, "blend"), "not allowed in rates mode (give rate_tpd)")
        _per_quarter(("sources", name, "rate_tpd"), s.rate_tpd, nq)
        return
    if s.blend is None:
        raise _FieldError(("sources", name, "blend"), "field required in blend mode")
    if s.rate_tpd is not None:
        raise _FieldError(("sources", name, "rate_tpd"), "not allowed in blend mode (give blend)")
    if s.rate_uncertainty is not None:
        raise _FieldError(
            ("sources", name, "rate_uncertainty"),
            "not allowed in blend mode (blend shares have no rate; give mill.target_uncertainty)",
        )
    _per_quarter(("sources", name, "blend"), s.blend, nq)


def _per_quarter(loc, value, nq):
    a = np.atleast_1d(np.asarray(value, dtype=float))
    if a.size not in (1, nq):
        raise _FieldError(loc, f"found {a.size} values; give one number or one per quarter ({nq})")


# ------------------------------------------------------------------ loading
def _fields_of(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The schema class at ``loc`` (for listing the allowed fields of a misspelt one)."""
    m: Any = Scenario
    for part in loc:
        if m is None:
            return None
        if isinstance(part, int):
            continue
        if m is Scenario and part == "sources":
            m = "sources"
            continue
        if m == "sources":
            m = Source
            continue
        if m is Source and part == "response":
            m = "response"
            continue
        if m == "response":
            m = Offset
            continue
        f = m.model_fields.get(part) if isinstance(m, type) else None
        if f is None:
            return None
        ann = f.annotation
        m = next(
            (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
            None,
        )
    return m if isinstance(m, type) else None


def _format_error(err: dict) -> tuple[str, str]:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS)))
    field = ".".join(str(p) for p in loc) or "(top level)"
    typ = err["type"]
    found = err.get("input")
    if typ == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = _fields_of(parent) if parent else []
        return field, _unknown(loc[-1], allowed, "field") if allowed else f"unknown field {loc[-1]!r}"
    if typ == "missing":
        return field, "field required"
    if typ == "finite_number":
        return field, f"found {found}; a finite number is required"
    if typ in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return field, f"found {found}; {err['msg'].lower().replace('input should be', 'allowed:')}"
    msg = err["msg"]
    if typ == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif found is not None and not isinstance(found, dict | list):
        msg = f"found {found!r}; {msg[0].lower()}{msg[1:]}"
    return field, msg


_UNION_TAGS = {"float", "list[float]", "constrained-float", "function-after", "tuple"}


def _first_error(exc: pydantic.ValidationError) -> dict:
    errs = exc.errors()
    # a misspelt field also makes the right one "missing": the misspelling is the news
    for e in errs:
        if e["type"] == "extra_forbidden":
            return e

    # a value that may be a number or a list reports both branches: prefer the branch
    # that matches what was given (the list's error for a list, the number's otherwise)
    def is_list_branch(e):
        return any(isinstance(p, str) and p.startswith("list[") for p in e["loc"])

    for e in errs:
        if not is_list_branch(e) and not isinstance(e.get("input"), list):
            return e
    listed = [e for e in errs if is_list_branch(e)]
    return listed[0] if listed else errs[0]


def from_dict(data: dict, where: str = "scenario") -> Scenario:
    """Validate a scenario given as a mapping; errors name ``where``, the field and the problem."""
    try:
        return Scenario.model_validate(data)
    except pydantic.ValidationError as exc:
        err = _first_error(exc)
        ctx = err.get("ctx") or {}
        inner = ctx.get("error")
        if isinstance(inner, _FieldError):
            field, msg = ".".join(str(p) for p in inner.loc), inner.msg
        else:
            field, msg = _format_error(err)
        raise ValidationError(f"{where}: {field}: {msg}") from None


def load(path) -> Scenario:
    """Read and validate a scenario TOML file.

    Raises
    ------
    ValidationError
        One line: ``<file>: <field>: <problem>`` (broken TOML gives the line and column).
    FileNotFoundError
        When ``path`` does not exist.
    """
    from kenomill.io import read_toml

    p = Path(path)
    data = read_toml(p, what="scenario")
    sc = from_dict(data, where=str(p))
    return sc


def per_quarter(value, nq: int) -> np.ndarray:
    """A scalar or per-quarter list as an array of ``nq`` floats."""
    return np.broadcast_to(np.asarray(value, dtype=float), (nq,)).astype(float)


def quarter_index(sc: Scenario, label: str | None) -> int:
    """Index of ``label`` in the horizon (negative before it, >= quarters after it)."""
    if label is None:
        return 0
    y0, q0 = parse_quarter(sc.horizon.start)
    y, q = parse_quarter(label)
    return (y - y0) * 4 + (q - q0)
