"""Feeds for prediction: reading FEED.csv, validating it, and the model's domain.

A calibration is fitted on a few quarters (head grades 704-899 g/t Ag, 8.8-11.3 % Pb,
4.9-6.7 % Zn at 201-245 t/d for the packaged one). :func:`check_domain` compares each
feed with that range (:func:`feed_range`): outside it, a warning and a flag per figure
(the prediction extrapolates); more than a factor of three outside in a head grade or
throughput, which is what a unit mistake looks like (a fraction for a percent, oz/t for
g/t, the quarter's tonnes for t/d), a :class:`~kenomill.errors.ValidationError` naming the
figure and the probable mistake, unless the caller asks to extrapolate.
"""

from __future__ import annotations

import difflib
import math

import numpy as np

from kenomill.errors import ValidationError, check_range

#: figures whose range a calibration records (contract: Calibration.meta["feed_range"])
RANGE_FIGURES = ("head_ag_gpt", "head_pb_pct", "head_zn_pct", "tpd")
#: beyond this factor outside the calibration's range a figure is refused (a unit mistake) [-]
UNIT_MISTAKE_FACTOR = 3.0
#: tpd, ore_processed_t and days disagreeing by more than this factor are refused [-]
TPD_MISMATCH_FACTOR = 1.5
#: grams per troy ounce; g/t per troy oz per short ton (34.2857)
_G_PER_OZ = 31.1034768
_GPT_PER_OPT = _G_PER_OZ / 0.90718474


def read_feed(path):
    """Read FEED.csv (columns ``calibrate.FEED_COLUMNS``, optionally ``FEED_OPTIONAL``) and validate it."""
    from pathlib import Path

    from kenomill.io import read_csv

    p = Path(path)
    df = read_csv(p, what="feed", dtype={"period": str}, keep_default_na=False, na_values=[""])
    return check_feed(df, where=str(p))


def _did_you_mean(name: str, allowed) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_columns(df, where: str) -> None:
    from kenomill.calibrate import FEED_COLUMNS, FEED_OPTIONAL

    known = (*FEED_COLUMNS, *FEED_OPTIONAL)
    for c in df.columns:
        if c not in known:
            raise ValidationError(
                f"{where}: unknown column {c!r}{_did_you_mean(c, known)}; allowed: {', '.join(known)}"
            )
    if len(set(df.columns)) != len(df.columns):
        dup = next(c for c in df.columns if list(df.columns).count(c) > 1)
        raise ValidationError(f"{where}: column {dup!r} appears twice")
    missing = [c for c in FEED_COLUMNS if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{where}: missing column(s) {', '.join(missing)}; required: {', '.join(FEED_COLUMNS)}; "
            f"optional: {', '.join(FEED_OPTIONAL)}"
        )


def _check_values(num, periods, where: str) -> None:
    from kenomill import recovery
    from kenomill.calibrate import AVAILABILITY_RANGE, FEED_OPTIONAL

    limits = {
        "ore_processed_t": (0.0, np.inf, "t"),
        "head_ag_gpt": (0.0, 1e6, "g/t"),
        "head_pb_pct": (0.0, 100 * recovery.GALENA_PB, "%"),
        "head_zn_pct": (0.0, 100 * recovery.SPHALERITE_ZN, "%"),
        "tpd": (0.0, np.inf, "t/d"),
        "days": (0.0, 366.0, "d"),
        "availability_pct": (100 * AVAILABILITY_RANGE[0], 100.0, "%"),
    }
    for c, (lo, hi, u) in limits.items():
        if c not in num:
            continue
        vals = num[c]
        optional = c in FEED_OPTIONAL
        for i, v in enumerate(vals):
            if optional and np.isnan(v):
                continue
            check_range(f"{where}: {c} of period {periods.iloc[i]}", v, lo, hi, u)
            if c in ("ore_processed_t", "tpd", "days") and v <= 0:
                raise ValidationError(
                    f"{where}: {c} of period {periods.iloc[i]}: found {v:g} {u}; allowed: > 0 {u}"
                )


def check_feed(feed, where: str = "feed"):
    """Validate a feed table (DataFrame, Dataset or mapping of columns) -> Dataset over ``period``.

    Refuses missing, unknown (with did-you-mean) and duplicate columns, empty or repeated
    period names, non-numbers and values out of their physical range. When ``tpd``,
    ``ore_processed_t`` and ``days`` are all given, they must agree: beyond the printed
    rounding a warning (in ``attrs["warnings"]``), beyond a factor of
    :data:`TPD_MISMATCH_FACTOR` an error naming all three.
    """
    import pandas as pd
    import xarray as xr

    from kenomill import recovery
    from kenomill.calibrate import FEED_COLUMNS, FEED_OPTIONAL

    if isinstance(feed, xr.Dataset):
        df = feed.to_dataframe().reset_index() if "period" in feed.dims else feed.to_dataframe()
    elif isinstance(feed, pd.DataFrame):
        df = feed.copy()
    else:
        try:
            df = pd.DataFrame(dict(feed))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"{where}: expected a table with columns {', '.join(FEED_COLUMNS)} ({exc})"
            ) from None
    df.columns = [str(c).strip() for c in df.columns]
    _check_columns(df, where)
    if len(df) == 0:
        raise ValidationError(f"{where}: no rows; give at least one period")
    raw_periods = df["period"]
    empty = raw_periods.isna() | (raw_periods.astype(str).str.strip() == "")
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise ValidationError(f"{where}: row {i + 1}: the period name is empty; give each period a name")
    periods = raw_periods.astype(str).str.strip()
    if periods.duplicated().any():
        raise ValidationError(f"{where}: period {periods[periods.duplicated()].iloc[0]!r} appears twice")
    num = {}
    for c in (*FEED_COLUMNS[1:], *FEED_OPTIONAL):
        if c not in df.columns:
            continue
        col = pd.to_numeric(df[c], errors="coerce")
        bad = col.isna() & df[c].notna() & (df[c].astype(str).str.strip() != "")
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValidationError(
                f"{where}: {c} of period {periods.iloc[i]}: found {df[c].iloc[i]!r}; a number is required"
            )
        num[c] = col.to_numpy(dtype=float)
    given_tpd = num["tpd"].copy()
    if "days" in num:
        # tpd may be left empty where days are given: calendar rate = tonnes / days
        fill = np.isnan(num["tpd"]) & np.isfinite(num["days"]) & (num["days"] > 0)
        num["tpd"] = np.where(fill, num["ore_processed_t"] / np.where(fill, num["days"], 1.0), num["tpd"])
    _check_values(num, periods, where)
    mineral = num["head_pb_pct"] / (100 * recovery.GALENA_PB) + num["head_zn_pct"] / (
        100 * recovery.SPHALERITE_ZN
    )
    if (mineral > 1.0).any():
        i = int(np.argmax(mineral > 1.0))
        raise ValidationError(
            f"{where}: period {periods.iloc[i]}: head grades {num['head_pb_pct'][i]:g} % Pb and "
            f"{num['head_zn_pct'][i]:g} % Zn need {100 * mineral[i]:.1f} % galena + sphalerite; "
            "allowed: at most 100 %"
        )
    warnings = _check_tpd(where, periods.to_numpy(dtype=str), num, given_tpd)
    ds = xr.Dataset(coords={"period": ("period", periods.to_numpy(dtype=str))})
    from kenomill.data import COLUMNS

    for c, v in num.items():
        u, ln = COLUMNS[c]
        ds[c] = ("period", v, {"units": u, "long_name": ln})
    if "availability_pct" not in ds:
        ds["availability_pct"] = ("period", np.full(ds.sizes["period"], np.nan), {"units": "%"})
    ds.attrs["warnings"] = warnings
    return ds


def _half_unit(x: float) -> float:
    """Half a unit of the last printed digit, assuming the figure was printed without trailing zeros
    beyond the units (a tpd of 230, tonnes of 21000, days of 92)."""
    if not math.isfinite(x) or x == 0:
        return 0.5
    s = repr(float(x)).rstrip("0").rstrip(".")
    dec = len(s.split(".")[1]) if "." in s else 0
    return 0.5 * 10.0**-dec


def _check_tpd(where, periods, num, given_tpd) -> list[str]:
    if "days" not in num:
        return []
    out = []
    for i, p in enumerate(periods):
        t, ore, d = given_tpd[i], num["ore_processed_t"][i], num["days"][i]
        if not (np.isfinite(t) and np.isfinite(d) and d > 0):
            continue
        calc = ore / d
        ratio = t / calc
        # relative rounding of the three printed figures, added (worst case)
        tol = _half_unit(t) / t + _half_unit(ore) / ore + _half_unit(d) / d
        text = (
            f"{where}: period {p}: tpd {t:g} t/d but ore_processed_t / days = {ore:g} t / {d:g} d = "
            f"{calc:.1f} t/d ({100 * (ratio - 1):+.1f} %)"
        )
        if max(ratio, 1 / ratio) > TPD_MISMATCH_FACTOR:
            raise ValidationError(
                text + f"; more than a factor of {TPD_MISMATCH_FACTOR:g} apart: a unit or day-count mistake? "
                "Correct one of tpd, ore_processed_t, days (or leave tpd empty to compute it)"
            )
        if abs(ratio - 1) > tol:
            out.append(
                text + f", beyond the printed rounding ({100 * tol:.1f} %); the prediction uses tpd "
                "(a release may compute tpd over another day count)"
            )
    return out


def feed_range(cal) -> dict[str, tuple[float, float]]:
    """The feed range a calibration was fitted on: figure -> (lowest, highest).

    ``cal.meta["feed_range"]`` when the calibration records it; otherwise the packaged
    base quarters (the six 2011Q1-2012Q2 quarters of the news releases), which the
    packaged calibration is fitted on.
    """
    rec = (getattr(cal, "meta", None) or {}).get("feed_range")
    if rec:
        out = {}
        for f in RANGE_FIGURES:
            if f in rec:
                lo, hi = (float(x) for x in rec[f])
                out[f] = (lo, hi)
        if out:
            return out
    from kenomill.data import base_periods, reported_periods

    ds = reported_periods()
    q = ds.sel(period=list(base_periods(ds)))
    return {f: (float(q[f].min()), float(q[f].max())) for f in RANGE_FIGURES}


def _probable_mistake(figure: str, v: float, lo: float, hi: float, days: float) -> str:
    def inside(x):
        return lo / UNIT_MISTAKE_FACTOR <= x <= hi * UNIT_MISTAKE_FACTOR

    if figure.endswith("_pct"):
        if inside(100 * v):
            return f"a fraction given for a percent? ({v:g} as a fraction is {100 * v:g} %)"
        if inside(v / 1e4):
            return "ppm given for a percent?"
    if figure == "head_ag_gpt":
        if inside(v * _GPT_PER_OPT):
            return f"oz per short ton given for g/t? ({v:g} oz/st is {v * _GPT_PER_OPT:.0f} g/t)"
        if inside(v * _G_PER_OZ):
            return f"oz per tonne given for g/t? ({v:g} oz/t is {v * _G_PER_OZ:.0f} g/t)"
        if inside(v / 1e4) or inside(v * 1e4):
            return "a percent given for g/t (1 % = 10000 g/t)?"
    if figure == "tpd":
        if math.isfinite(days) and inside(v / days):
            return f"the period's tonnes given for t/d? ({v:g} t over {days:g} d is {v / days:.0f} t/d)"
        if inside(v / 91.25):
            return "the quarter's tonnes given for t/d?"
        if inside(v * 1000):
            return "kt/d given for t/d?"
    return "a unit mistake?"


def check_domain(ds, cal, *, extrapolate: bool = False, where: str = "feed"):
    """Compare each feed with the calibration's range; flag, warn, or refuse a unit mistake.

    Parameters
    ----------
    ds : xarray.Dataset
        A validated feed (:func:`check_feed`).
    cal : Calibration
        The calibration used for the prediction (its :func:`feed_range`).
    extrapolate : bool
        Accept figures more than :data:`UNIT_MISTAKE_FACTOR` outside the range (warn only).

    Returns
    -------
    (flags, warnings) : (dict of figure -> bool array over period, list of str)

    Raises
    ------
    ValidationError
        A head grade or throughput more than a factor of three outside the range, naming
        the figure and the probable unit mistake (unless ``extrapolate``).
    """
    rng = feed_range(cal)
    flags, warnings = {}, []
    periods = [str(p) for p in ds.period.values]
    days = ds["days"].values if "days" in ds else np.full(len(periods), np.nan)
    for f, (lo, hi) in rng.items():
        vals = ds[f].values.astype(float)
        u = ds[f].attrs.get("units", "")
        flags[f] = (vals < lo) | (vals > hi)
        for i in np.flatnonzero(flags[f]):
            v = float(vals[i])
            factor = lo / v if v < lo else v / hi
            side = "below" if v < lo else "above"
            text = (
                f"{where}: {f} of period {periods[i]}: {v:g} {u} is {side} the range the calibration was "
                f"fitted on ({lo:g}-{hi:g} {u})"
            )
            if factor > UNIT_MISTAKE_FACTOR and not extrapolate:
                raise ValidationError(
                    text + f", by a factor of {factor:.3g}: {_probable_mistake(f, v, lo, hi, days[i])} "
                    "(give --extrapolate to predict anyway)"
                )
            warnings.append(text + "; the prediction extrapolates")
    return flags, warnings
