"""The reported production figures, loaded from the packaged CSV with their sources.

``kenomill/data/reported_periods.csv`` holds one row per (period, release); see
``kenomill/data/SOURCES.md``. :func:`reported_periods` merges rows of the same period
field by field (the latest release that prints a field wins) and returns an
``xarray.Dataset`` with dimension ``period``.
"""

from __future__ import annotations

import io
from decimal import Decimal
from importlib import resources

import numpy as np
import pandas as pd
import xarray as xr

#: column -> (units, long_name). Order is the CSV's.
COLUMNS: dict[str, tuple[str, str]] = {
    "period": ("", "reporting period"),
    "period_start": ("", "first day of the period"),
    "period_end": ("", "last day of the period"),
    "days": ("d", "calendar days in the period"),
    "source": ("", "seed file and release date"),
    "ore_mined_t": ("t", "ore tonnes mined"),
    "ore_processed_t": ("t", "ore tonnes processed (mill feed)"),
    "head_ag_gpt": ("g/t", "silver grade of ore processed"),
    "head_pb_pct": ("%", "lead grade of ore processed"),
    "head_zn_pct": ("%", "zinc grade of ore processed"),
    "rec_ag_pct": ("%", "silver recovery to both concentrates"),
    "rec_pb_pct": ("%", "lead recovery to lead concentrate"),
    "rec_zn_pct": ("%", "zinc recovery to zinc concentrate"),
    "pbcon_t": ("t", "lead concentrate tonnes produced"),
    "pbcon_ag_gpt": ("g/t", "silver grade of lead concentrate"),
    "pbcon_pb_pct": ("%", "lead grade of lead concentrate"),
    "zncon_t": ("t", "zinc concentrate tonnes produced"),
    "zncon_ag_gpt": ("g/t", "silver grade of zinc concentrate"),
    "zncon_zn_pct": ("%", "zinc grade of zinc concentrate"),
    "ag_oz": ("troy_oz", "silver contained in both concentrates"),
    "pb_lb": ("lb", "lead contained in lead concentrate"),
    "zn_lb": ("lb", "zinc contained in zinc concentrate"),
    "tpd": ("t/d", "average mill throughput, tonnes processed per calendar day"),
    "availability_pct": ("%", "mill availability"),
}

#: the numeric figures a release prints for a period
FIGURES: tuple[str, ...] = tuple(
    c for c in COLUMNS if c not in ("period", "period_start", "period_end", "days", "source")
)

#: quarters that make up each aggregate period the releases print
AGGREGATES: dict[str, tuple[str, ...]] = {
    "2011H1": ("2011Q1", "2011Q2"),
    "2012H1": ("2012Q1", "2012Q2"),
    "2011FY": ("2011Q1", "2011Q2", "2011Q3", "2011Q4"),
}

QUARTERS: tuple[str, ...] = ("2011Q1", "2011Q2", "2011Q3", "2011Q4", "2012Q1", "2012Q2")


def _csv_text() -> str:
    return resources.files("kenomill").joinpath("data/reported_periods.csv").read_text()


def reported_rows() -> pd.DataFrame:
    """Every row of the packaged CSV as printed, one per (period, release), as strings."""
    return pd.read_csv(io.StringIO(_csv_text()), dtype=str, keep_default_na=False)


def _release_date(source: str) -> str:
    # "<file> (Alexco news release YYYY-MM-DD)"
    return source.rsplit(" ", 1)[-1].rstrip(")")


def _merged_text() -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """Merge rows per period: for each field the latest release that prints it wins."""
    rows = reported_rows()
    rows = rows.assign(_date=rows["source"].map(_release_date))
    order = list(dict.fromkeys(rows["period"]))
    merged, field_source = [], {}
    for period in order:
        grp = rows[rows["period"] == period].sort_values("_date", ascending=False)
        rec, src = {}, {}
        for col in COLUMNS:
            if col == "source":
                continue
            vals = [(v, s) for v, s in zip(grp[col], grp["source"], strict=True) if v != ""]
            rec[col] = vals[0][0] if vals else ""
            if col in FIGURES and vals:
                src[col] = vals[0][1]
        rec["source"] = "; ".join(dict.fromkeys(grp["source"]))
        merged.append(rec)
        field_source[period] = src
    return pd.DataFrame(merged)[list(COLUMNS)], field_source


def _to_float(text: str) -> float:
    return float(text) if text != "" else np.nan


def _resolution(text: str) -> float:
    """Half-width of the rounding interval is half of this: one unit of the last printed digit."""
    if text == "":
        return np.nan
    exp = Decimal(text).as_tuple().exponent
    return float(10.0 ** min(int(exp), 0))


def reported_periods(kind: str = "all") -> xr.Dataset:
    """The reported figures, one entry per period.

    Parameters
    ----------
    kind : {"all", "quarter", "aggregate"}
        All nine periods, the six quarters only, or the half years and the year.

    Returns
    -------
    xarray.Dataset
        Dimension ``period``; one variable per figure of ``reported_periods.csv`` with
        ``units`` and ``long_name`` attributes; NaN where no release prints the figure.
        Each figure variable carries ``resolution`` (one unit of its last printed digit,
        per period) as a companion variable ``<name>_resolution``; ``source`` per period
        names the releases merged, and ``attrs["sources"]`` lists them all.
    """
    allowed = ("all", "quarter", "aggregate")
    if kind not in allowed:
        from kenomill.errors import ValidationError

        raise ValidationError(f"kind: found {kind!r}; allowed: {', '.join(allowed)}")
    df, field_source = _merged_text()
    if kind == "quarter":
        df = df[df["period"].isin(QUARTERS)]
    elif kind == "aggregate":
        df = df[df["period"].isin(tuple(AGGREGATES))]
    periods = df["period"].to_numpy(dtype=str)
    ds = xr.Dataset(coords={"period": ("period", periods, {"long_name": "reporting period"})})
    ds["period_start"] = ("period", pd.to_datetime(df["period_start"]).to_numpy())
    ds["period_end"] = ("period", pd.to_datetime(df["period_end"]).to_numpy())
    ds["days"] = ("period", df["days"].astype(float).to_numpy())
    ds["source"] = ("period", df["source"].to_numpy(dtype=str))
    for col in FIGURES:
        ds[col] = ("period", np.array([_to_float(v) for v in df[col]]))
        ds[col + "_resolution"] = ("period", np.array([_resolution(v) for v in df[col]]))
        ds[col + "_resolution"].attrs = {
            "units": COLUMNS[col][0],
            "long_name": f"one unit of the last printed digit of {col}",
        }
    for col in ("period_start", "period_end", "days", "source", *FIGURES):
        units, long_name = COLUMNS[col]
        ds[col].attrs.update({"units": units, "long_name": long_name})
    ds.attrs["sources"] = "; ".join(dict.fromkeys(reported_rows()["source"]))
    ds.attrs["field_sources"] = "; ".join(
        f"{p}.{c}={s.split(' ', 1)[0]}" for p, d in field_source.items() for c, s in d.items()
    )
    ds.attrs["merge_rule"] = (
        "rows of one period merged field by field: the latest release that prints a field wins"
    )
    ds.attrs["title"] = "Keno Hill District mill, reported production (Alexco news releases)"
    return ds


def figure_source(ds: xr.Dataset, period: str, field: str) -> str:
    """Seed file that supplied ``field`` for ``period`` in ``ds`` (from ``attrs['field_sources']``)."""
    key = f"{period}.{field}="
    for item in ds.attrs["field_sources"].split("; "):
        if item.startswith(key):
            return item[len(key) :]
    raise KeyError(f"no release prints {field} for {period}")
