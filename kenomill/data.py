"""The reported production figures, loaded from the packaged CSV with their sources.

``kenomill/data/reported_periods.csv`` holds one row per (period, release); see
``kenomill/data/SOURCES.md``. :func:`reported_periods` merges rows of the same period
field by field (the latest release that prints a field wins) and returns an
``xarray.Dataset`` with dimension ``period``.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
from decimal import Decimal
from importlib import resources

import numpy as np
import pandas as pd
import xarray as xr

from kenomill import variables

#: the CSV's columns in order -> (units, long name), from :mod:`kenomill.variables`
COLUMNS: dict[str, tuple[str, str]] = variables.units_and_long_names(
    ("period", "period_start", "period_end", "days", "source", *variables.kinds())
)

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


_DATE_RE = None


def _release_date(source: str) -> str:
    """The last ISO date (YYYY-MM-DD) printed in ``source``, or "" when it has none.

    The packaged sources read ``"<file> (Alexco news release YYYY-MM-DD)"``.
    """
    import re

    global _DATE_RE
    if _DATE_RE is None:
        _DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
    found = _DATE_RE.findall(source)
    return found[-1] if found else ""


def merge_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """Merge rows per period: for each field the latest release that prints it wins.

    A row's release date is the last ISO date (YYYY-MM-DD) in its ``source``; rows
    without one rank below dated rows, and among equals the row further down the
    file wins. Empty cells ("") never win over a printed figure.

    Parameters
    ----------
    rows : pandas.DataFrame
        One row per (period, release), every cell a string as printed; the columns of
        :data:`COLUMNS` (missing ones are read as empty).

    Returns
    -------
    merged : pandas.DataFrame
        One row per period, in order of first appearance; ``source`` joins the sources
        of the period's rows with "; ".
    field_source : dict
        period -> figure -> the source whose value won.
    """
    rows = rows.reset_index(drop=True)
    for col in COLUMNS:
        if col not in rows:
            rows[col] = ""
    rows = rows.assign(_date=rows["source"].map(_release_date), _order=np.arange(len(rows)))
    order = list(dict.fromkeys(rows["period"]))
    merged, field_source = [], {}
    for period in order:
        grp = rows[rows["period"] == period].sort_values(["_date", "_order"], ascending=False)
        rec, src = {}, {}
        for col in COLUMNS:
            if col == "source":
                continue
            vals = [(v, s) for v, s in zip(grp[col], grp["source"], strict=True) if v != ""]
            rec[col] = vals[0][0] if vals else ""
            if col in FIGURES and vals:
                src[col] = vals[0][1]
            if col in FIGURES and col + "_resolution" in grp:
                # a resolution given beside a figure belongs to the row whose figure wins
                won = [r for v, r in zip(grp[col], grp[col + "_resolution"], strict=True) if v != ""]
                rec[col + "_resolution"] = won[0] if won else ""
        rec["source"] = "; ".join(dict.fromkeys(grp["source"]))  # the winning release first
        merged.append(rec)
        field_source[period] = src
    extra = [c + "_resolution" for c in FIGURES if c + "_resolution" in rows]
    return pd.DataFrame(merged, columns=[*COLUMNS, *extra]), field_source


def _merged_text() -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    return merge_rows(reported_rows())


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
    # built once per kind and CSV text (~200 ms each; a report asked for it 100 times), a
    # deep copy per call so that callers may change their Dataset
    return _reported_periods_built(kind, _csv_text()).copy(deep=True)


@functools.cache
def _reported_periods_built(kind: str, csv_text: str) -> xr.Dataset:
    # csv_text: the cache key (the packaged file, or what a test put in its place)
    df, field_source = _merged_text()
    if kind == "quarter":
        df = df[df["period"].isin(QUARTERS)]
    elif kind == "aggregate":
        df = df[df["period"].isin(tuple(AGGREGATES))]
    return build_dataset(
        df,
        field_source,
        sources=list(dict.fromkeys(reported_rows()["source"])),
        title="Keno Hill District mill, reported production (Alexco news releases)",
    )


def build_dataset(
    df: pd.DataFrame,
    field_source: dict[str, dict[str, str]],
    sources: list[str],
    title: str,
) -> xr.Dataset:
    """The periods Dataset from merged rows of text (the schema of :func:`reported_periods`).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per period (from :func:`merge_rows`), every cell the text as printed.
    field_source : dict
        period -> figure -> source that supplied it.
    sources : list of str
        Every source, for ``attrs["sources"]``.
    title : str
        ``attrs["title"]``.
        A column ``<figure>_resolution`` (text, may be empty) overrides the resolution
        inferred from the printed digits of ``<figure>``.
    """
    periods = df["period"].to_numpy(dtype=str)
    ds = xr.Dataset(coords={"period": ("period", periods, {"long_name": "reporting period"})})
    ds["period_start"] = ("period", pd.to_datetime(df["period_start"]).to_numpy())
    ds["period_end"] = ("period", pd.to_datetime(df["period_end"]).to_numpy())
    ds["days"] = ("period", df["days"].astype(float).to_numpy())
    ds["source"] = ("period", df["source"].to_numpy(dtype=str))
    for col in FIGURES:
        ds[col] = ("period", np.array([_to_float(v) for v in df[col]], dtype=float))
        given = df[col + "_resolution"] if col + "_resolution" in df else [""] * len(df)
        res = [
            (float(r) if r != "" else _resolution(v)) if v != "" else np.nan
            for v, r in zip(df[col], given, strict=True)
        ]
        ds[col + "_resolution"] = ("period", np.array(res, dtype=float))
        ds[col + "_resolution"].attrs = {
            "units": COLUMNS[col][0],
            "long_name": f"one unit of the last printed digit of {col}",
        }
    for col in ("period_start", "period_end", "days", "source", *FIGURES):
        units, long_name = COLUMNS[col]
        ds[col].attrs.update({"units": units, "long_name": long_name})
    ds.attrs["sources"] = "; ".join(sources)
    # the whole source as written (a release title and date, or a user's words): the first
    # word alone was a seed file name for the packaged rows and "Mill" for "Mill report ..."
    ds.attrs["field_sources"] = json.dumps(field_source, ensure_ascii=False)
    ds.attrs["merge_rule"] = (
        "rows of one period merged field by field: the latest release that prints a field wins"
    )
    ds.attrs["title"] = title
    return ds


def aggregates_of(ds: xr.Dataset) -> dict[str, tuple[str, ...]]:
    """Periods of ``ds`` that are exactly covered by other periods of ``ds``.

    A period is an aggregate when the base periods lying inside it (those containing no
    other period of ``ds``) follow one another day by day from its first day to its last.
    For the packaged periods this is :data:`AGGREGATES` (2011H1, 2012H1, 2011FY).

    Returns
    -------
    dict
        aggregate period -> the base periods that make it up, in date order.
    """
    names = [str(p) for p in ds["period"].values]
    start = pd.to_datetime(ds["period_start"].values)
    end = pd.to_datetime(ds["period_end"].values)
    inside = {
        i: [j for j in range(len(names)) if j != i and start[j] >= start[i] and end[j] <= end[i]]
        for i in range(len(names))
    }
    base = [i for i in range(len(names)) if not inside[i]]
    out: dict[str, tuple[str, ...]] = {}
    one_day = pd.Timedelta(days=1)
    for i in range(len(names)):
        if not inside[i]:
            continue
        parts = sorted((j for j in base if j in inside[i]), key=lambda j: start[j])
        if not parts or start[parts[0]] != start[i] or end[parts[-1]] != end[i]:
            continue
        if all(start[b] == end[a] + one_day for a, b in itertools.pairwise(parts)):
            out[names[i]] = tuple(names[j] for j in parts)
    return out


def base_periods(ds: xr.Dataset) -> tuple[str, ...]:
    """Periods of ``ds`` that are not the sum of others (packaged: the six quarters).

    These are the independent observations of the mill: calibration and reconciliation
    across periods count each of them once, and aggregates only as their sums.
    """
    agg = aggregates_of(ds)
    return tuple(str(p) for p in ds["period"].values if str(p) not in agg)


def figure_sources(ds: xr.Dataset) -> dict[str, dict[str, str]]:
    """period -> figure -> the full source (as written in the file) whose value won the merge."""
    return json.loads(ds.attrs["field_sources"])


def figure_source(ds: xr.Dataset, period: str, field: str) -> str:
    """The source that supplied ``field`` for ``period`` in ``ds``, in full.

    For the packaged periods: the seed file and the release, e.g.
    ``"001_2d7d3e0911ae9488.txt (Alexco news release 2012-04-16)"``; for a user's file, its
    ``source`` cell as written.
    """
    src = figure_sources(ds).get(str(period), {}).get(field)
    if src is None:
        raise KeyError(f"no release prints {field} for {period}")
    return src
