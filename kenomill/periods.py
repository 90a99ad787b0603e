"""Your own periods: a mill's figures from a CSV or Excel file, validated, as a Dataset.

:func:`read_periods` reads one or more periods files (or the word ``"packaged"``, the
packaged Keno Hill releases) and returns the Dataset that
:func:`kenomill.data.reported_periods` returns: dimension ``period``, one variable per
figure with ``units`` and ``long_name``, ``<figure>_resolution`` (one unit of the last
printed digit), ``period_start``, ``period_end``, ``days``, ``source``. Every command and
function that takes periods takes this Dataset.

The file format is documented in ``docs/periods.md``. In short: the columns of
:data:`kenomill.data.COLUMNS` (``period``, ``period_start``, ``period_end`` and ``source``
required; every figure optional, an empty cell meaning "not reported"), one row per
(period, source), any period length; rows of one period are merged field by field, the
latest release winning (the release date is the last ``YYYY-MM-DD`` in ``source``), as
for the packaged data.

Validation collects every problem of every file before refusing
(:class:`PeriodsError`, one line per problem naming file, row, period, column, value
found and what is allowed). Disagreements that a release can legitimately print (a tpd
computed over another day count) are warnings (:class:`PeriodsWarning`), listed in
``ds.attrs["warnings"]``.
"""

from __future__ import annotations

import csv
import datetime as _dt
import difflib
import io as _io
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from kenomill.errors import ValidationError

#: the word that names the packaged Keno Hill periods wherever a periods file is accepted
PACKAGED = "packaged"

#: columns a periods file must have
REQUIRED: tuple[str, ...] = ("period", "period_start", "period_end", "source")

#: tpd and ore_processed_t / days may disagree by at most this factor (beyond it: refused)
TPD_FACTOR = 1.5

# Physical limits of each figure: (lo, hi, why). Pure galena PbS is 86.6 % Pb, pure
# sphalerite ZnS at most 67.1 % Zn; pure silver is 1,000,000 g/t.
_PB_MAX = (0.0, 86.6, "pure galena PbS is 86.6 % Pb")
_ZN_MAX = (0.0, 67.1, "pure sphalerite ZnS is at most 67.1 % Zn")
_AG_MAX = (0.0, 1.0e6, "pure silver is 1,000,000 g/t")
_PCT = (0.0, 100.0, "a percentage")
_NONNEG = (0.0, math.inf, "a quantity cannot be negative")
LIMITS: dict[str, tuple[float, float, str]] = {
    "ore_mined_t": _NONNEG,
    "ore_processed_t": _NONNEG,
    "head_ag_gpt": _AG_MAX,
    "head_pb_pct": _PB_MAX,
    "head_zn_pct": _ZN_MAX,
    "rec_ag_pct": _PCT,
    "rec_pb_pct": _PCT,
    "rec_zn_pct": _PCT,
    "pbcon_t": _NONNEG,
    "pbcon_ag_gpt": _AG_MAX,
    "pbcon_pb_pct": _PB_MAX,
    "zncon_t": _NONNEG,
    "zncon_ag_gpt": _AG_MAX,
    "zncon_zn_pct": _ZN_MAX,
    "ag_oz": _NONNEG,
    "pb_lb": _NONNEG,
    "zn_lb": _NONNEG,
    "tpd": _NONNEG,
    "availability_pct": _PCT,
}

_NUMBER_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_FIXED_FORMAT_RE = re.compile(r"0\.(0+)")


class PeriodsError(ValidationError):
    """A periods file was refused; ``problems`` holds one line per problem found."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class PeriodsWarning(UserWarning):
    """A periods file disagrees with itself beyond printed rounding, but plausibly."""


@dataclass
class _Row:
    file: str
    number: int  # row of the file: the header is row 1
    cells: dict[str, str]

    def where(self, column: str | None = None) -> str:
        period = self.cells.get("period", "")
        text = f"{self.file}: row {self.number} ({period or 'no period'})"
        return f"{text}, column {column}" if column else text


@dataclass
class PeriodsCheck:
    """What :func:`check_periods` found: the Dataset (None when refused), problems, warnings."""

    dataset: object | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


def _allowed_columns() -> list[str]:
    from kenomill.data import COLUMNS, FIGURES

    return [*COLUMNS, *(f + "_resolution" for f in FIGURES)]


# --------------------------------------------------------------------------------------
# reading files into rows of text


def _read_bytes_text(path: Path, label: str) -> str:
    """Decode a text file as UTF-8 (a byte-order mark, as Excel writes, is accepted).

    Through the one guarded reader: another encoding or a binary file is one line naming
    the file, the byte, its line and column.
    """
    from kenomill.io import read_text

    return read_text(path, what="periods file")


def _csv_rows(path: Path, label: str, problems: list[str]) -> tuple[list[str], list[_Row]]:
    text = _read_bytes_text(path, label)
    reader = csv.reader(_io.StringIO(text, newline=""))
    try:
        lines = list(reader)
    except csv.Error as exc:
        raise ValidationError(
            f"{label}: not a readable CSV file ({exc}); allowed: comma-separated text"
        ) from None
    return _table_rows(lines, label, problems)


def _xlsx_cell_text(cell) -> str:
    """The text a cell prints: what the resolution of an Excel figure is inferred from.

    A number cell has no printed digits of its own. Assumed: the decimals of its number
    format when that is fixed (``0.0``, ``#,##0.00``, ``0.0%``), otherwise the shortest
    decimal that gives the number (10.5 -> one decimal, 10 -> units). A
    ``<figure>_resolution`` column overrides this; a text cell is read as its text.
    """
    v = cell.value
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, _dt.datetime):
        return v.date().isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, int | float):
        # openpyxl gives an int for a stored 3.0: the number format still says "0.00"
        fmt = str(getattr(cell, "number_format", "General") or "General")
        m = _FIXED_FORMAT_RE.search(fmt)
        if fmt.rstrip().endswith("%"):
            v = 100.0 * v
            return f"{v:.{len(m.group(1))}f}" if m else repr(round(v, 10)).removesuffix(".0")
        if m:
            return f"{v:.{len(m.group(1))}f}"
        if fmt.strip() in ("0", "#,##0"):
            return f"{v:.0f}"
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return str(v).strip()


def _xlsx_rows(path: Path, label: str, problems: list[str]) -> tuple[list[str], list[_Row]]:
    import zipfile

    try:
        import openpyxl
    except ImportError:  # pragma: no cover - a dependency
        raise ValidationError(f"{label}: reading .xlsx needs openpyxl (pip install openpyxl)") from None
    with open(path, "rb") as fh:
        if fh.read(4) != b"PK\x03\x04":
            raise ValidationError(
                f"{label}: not an .xlsx workbook; allowed: an Excel .xlsx file or UTF-8 CSV"
            )
    try:
        with warnings.catch_warnings():
            # openpyxl warns about unsupported extensions (data validation, styles) it ignores
            warnings.simplefilter("ignore")
            wb = openpyxl.load_workbook(path, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, TypeError) as exc:
        raise ValidationError(f"{label}: not a readable .xlsx workbook ({type(exc).__name__})") from None
    ws = wb["periods"] if "periods" in wb.sheetnames else wb.worksheets[0]
    lines = [[_xlsx_cell_text(c) for c in row] for row in ws.iter_rows()]
    return _table_rows(lines, f"{label} (sheet {ws.title})", problems)


def _table_rows(lines: list[list[str]], label: str, problems: list[str]) -> tuple[list[str], list[_Row]]:
    """Header and data rows; comment rows (first cell starting with #) and blank rows skipped."""
    # leading blank lines are skipped; the header is the first row with any text
    start = next((i for i, ln in enumerate(lines) if any(c.strip() for c in ln)), None)
    if start is None:
        problems.append(f"{label}: the file is empty; a header row with the columns is required")
        return [], []
    header = [c.strip() for c in lines[start]]
    while header and header[-1] == "":
        header.pop()
    allowed = _allowed_columns()
    seen: set[str] = set()
    for j, name in enumerate(header):
        col_label = f"{label}: row {start + 1}, column {j + 1}"
        if name == "":
            problems.append(
                f"{col_label}: found an empty column name; allowed: {', '.join(allowed[:5])}, ..."
            )
        elif name in seen:
            problems.append(f"{col_label}: found {name!r} twice; each column once")
        elif name not in allowed:
            close = difflib.get_close_matches(name.lower(), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"{col_label}: unknown column {name!r}{hint} (allowed: the columns of docs/periods.md)"
            )
        seen.add(name)
    for req in REQUIRED:
        if req not in header:
            problems.append(f"{label}: missing required column {req!r}; required: {', '.join(REQUIRED)}")
    rows = []
    for i in range(start + 1, len(lines)):
        cells = [c.strip() for c in lines[i]]
        if not any(cells) or cells[0].startswith("#"):
            continue
        extra = [c for c in cells[len(header) :] if c]
        if extra:
            problems.append(
                f"{label}: row {i + 1}: found {len(header) + len(extra)} cells or more, "
                f"the header has {len(header)}; allowed: one cell per column"
            )
        rec = {name: (cells[j] if j < len(cells) else "") for j, name in enumerate(header) if name}
        rows.append(_Row(label, i + 1, rec))
    return header, rows


def _packaged_rows() -> list[_Row]:
    from kenomill.data import reported_rows

    df = reported_rows()
    return [
        _Row(PACKAGED, i + 2, {c: str(v) for c, v in rec.items()})
        for i, rec in enumerate(df.to_dict("records"))
    ]


def _file_rows(path: str | os.PathLike, problems: list[str]) -> list[_Row]:
    p = Path(path)
    label = str(path)
    if not p.exists():
        raise ValidationError(f"{label}: file not found; give a periods file (.csv or .xlsx) or 'packaged'")
    if p.is_dir():
        raise ValidationError(f"{label}: a directory; give a periods file (.csv or .xlsx) or 'packaged'")
    suffix = p.suffix.lower()
    if suffix == ".xlsx":
        _, rows = _xlsx_rows(p, label, problems)
    elif suffix in (".csv", ".txt", ""):
        _, rows = _csv_rows(p, label, problems)
    else:
        raise ValidationError(
            f"{label}: found extension {p.suffix!r}; allowed: .csv (UTF-8 text) or .xlsx (Excel)"
        )
    return rows


# --------------------------------------------------------------------------------------
# validation


def _date(text: str) -> _dt.date | None:
    try:
        return _dt.date.fromisoformat(text)
    except ValueError:
        return None


def _number(text: str) -> float | None:
    if not _NUMBER_RE.match(text):
        return None
    try:
        return float(Decimal(text))
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        return None


def _resolution_of(row: _Row, col: str) -> float:
    from kenomill.data import _resolution

    given = row.cells.get(col + "_resolution", "")
    r = _number(given) if given else None
    return r if r is not None and r > 0 else _resolution(row.cells[col])


def _check_row(row: _Row, problems: list[str], warns: list[str]) -> None:
    c = row.cells
    if "period" in c and c["period"] == "":
        problems.append(f"{row.where('period')}: found an empty period name; allowed: a name such as 2012Q3")
    if "source" in c and c["source"] == "":
        problems.append(
            f"{row.where('source')}: found an empty source; allowed: the release or report "
            "the row's figures come from, with its date (YYYY-MM-DD)"
        )
    start, end = _check_dates(row, problems)
    days_ok = _check_days(row, start, end, problems)
    _check_figures(row, problems)
    if days_ok:  # a wrong day count would make every tpd look wrong
        _check_tpd(row, problems, warns)


def _check_dates(row: _Row, problems: list[str]):
    """The row's period_start and period_end as dates (None where absent, bad or out of order)."""
    c = row.cells
    start = end = None
    for col in ("period_start", "period_end"):
        if col not in c:
            continue
        d = _date(c[col])
        if d is None:
            problems.append(f"{row.where(col)}: found {c[col]!r}; allowed: a date YYYY-MM-DD")
        elif col == "period_start":
            start = d
        else:
            end = d
    if start and end and end < start:
        problems.append(
            f"{row.where('period_end')}: found {end.isoformat()}, before period_start "
            f"{start.isoformat()}; allowed: on or after period_start"
        )
        start = end = None
    return start, end


def _check_days(row: _Row, start, end, problems: list[str]) -> bool:
    """Whether the row's day count is usable; an empty one is counted from the dates."""
    c = row.cells
    days_ok = True
    if c.get("days", ""):
        days = _number(c["days"])
        days_ok = days is not None and days > 0 and float(days).is_integer()
        if not days_ok:
            problems.append(f"{row.where('days')}: found {c['days']!r}; allowed: a whole number of days > 0")
        elif start and end and int(days) != (end - start).days + 1:
            days_ok = False
            problems.append(
                f"{row.where('days')}: found {c['days']}; allowed: {(end - start).days + 1}, "
                f"the calendar days from {start.isoformat()} to {end.isoformat()} inclusive"
            )
    elif start and end:
        c["days"] = str((end - start).days + 1)  # empty days: counted from the dates
    return days_ok


def _check_figures(row: _Row, problems: list[str]) -> None:
    """Each figure a number within its limits, each resolution > 0 and only beside a figure."""
    from kenomill.data import COLUMNS, FIGURES

    c = row.cells
    for col in FIGURES:
        text = c.get(col, "")
        if text == "":
            continue
        v = _number(text)
        unit = COLUMNS[col][0]
        lo, hi, why = LIMITS[col]
        rng = f">= {lo:g} {unit}" if math.isinf(hi) else f"{lo:g} to {hi:g} {unit}"
        if v is None:
            problems.append(
                f"{row.where(col)}: found {text!r}; allowed: a number in {unit} "
                "(digits and a decimal point, no thousands separator or unit), or empty"
            )
        elif not lo <= v <= hi:
            problems.append(f"{row.where(col)}: found {text} {unit}; allowed: {rng} ({why})")
        res = c.get(col + "_resolution", "")
        if res:
            r = _number(res)
            if r is None or r <= 0:
                problems.append(
                    f"{row.where(col + '_resolution')}: found {res!r}; allowed: a number > 0 in {unit} "
                    "(one unit of the figure's last printed digit), or empty"
                )
    for col, text in c.items():
        if col.endswith("_resolution") and text and c.get(col.removesuffix("_resolution"), "") == "":
            problems.append(
                f"{row.where(col)}: found {text!r} beside an empty "
                f"{col.removesuffix('_resolution')}; allowed: empty when the figure is empty"
            )


def _check_tpd(row: _Row, problems: list[str], warns: list[str]) -> None:
    c = row.cells
    tpd, ore, days = (_number(c.get(k, "") or "x") for k in ("tpd", "ore_processed_t", "days"))
    if tpd is None or ore is None or days is None or days <= 0 or ore <= 0 or tpd <= 0:
        return
    rate = ore / days
    ratio = max(tpd / rate, rate / tpd)
    h_tpd = 0.5 * _resolution_of(row, "tpd")
    h_ore = 0.5 * _resolution_of(row, "ore_processed_t") / days
    text = (
        f"{row.where('tpd')}: found {c['tpd']} t/d, ore_processed_t / days = {c['ore_processed_t']} / "
        f"{c['days']} = {rate:.1f} t/d"
    )
    if ratio > TPD_FACTOR:
        problems.append(f"{text}; allowed: within a factor {TPD_FACTOR:g} (check the units and the days)")
    elif tpd + h_tpd < rate - h_ore or tpd - h_tpd > rate + h_ore:
        warns.append(
            f"{text}: differ beyond printed rounding (used as given; a release may count other days)"
        )


def _check_across(rows: list[_Row], problems: list[str]) -> None:
    from kenomill.data import FIGURES

    by_period: dict[str, list[_Row]] = {}
    for r in rows:
        if r.cells.get("period", ""):
            by_period.setdefault(r.cells["period"], []).append(r)
    for period, group in by_period.items():
        first = group[0]
        for col in ("period_start", "period_end", "days"):
            for r in group[1:]:
                a, b = first.cells.get(col, ""), r.cells.get(col, "")
                if a and b and a != b:
                    problems.append(
                        f"{r.where(col)}: found {b}; allowed: {a}, as {first.where()} gives "
                        f"for period {period} (one period, one set of dates)"
                    )
        for col in FIGURES:
            seen: dict[str, tuple[float, _Row]] = {}
            for r in group:
                text, src = r.cells.get(col, ""), r.cells.get("source", "")
                v = _number(text) if text else None
                if v is None:
                    continue
                if src in seen and seen[src][0] != v:
                    other = seen[src][1]
                    problems.append(
                        f"{r.where(col)}: found {text}; {other.where()} gives {other.cells[col]} for "
                        f"the same period and source {src!r}; allowed: one value per period, "
                        "figure and source (give a different source for a revision)"
                    )
                seen.setdefault(src, (v, r))


def _overlaps(ds) -> list[str]:
    """Periods that overlap another without being covered exactly (counted twice)."""
    import pandas as pd

    from kenomill.data import aggregates_of

    agg = aggregates_of(ds)
    names = [str(p) for p in ds["period"].values]
    start = pd.to_datetime(ds["period_start"].values)
    end = pd.to_datetime(ds["period_end"].values)
    out = []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if start[i] <= end[j] and start[j] <= end[i]:
                i_in_j = start[i] >= start[j] and end[i] <= end[j]
                j_in_i = start[j] >= start[i] and end[j] <= end[i]
                # a period inside an aggregate is one of its parts or a smaller sum of them
                if (i_in_j and names[j] in agg) or (j_in_i and names[i] in agg):
                    continue
                out.append(
                    f"periods {names[i]} and {names[j]} overlap without one being made up of "
                    "others: both count as observations of the mill"
                )
    return out


# --------------------------------------------------------------------------------------
# public


def _as_list(path_or_paths) -> list:
    if isinstance(path_or_paths, str | os.PathLike):
        return [path_or_paths]
    if isinstance(path_or_paths, Iterable):
        out = list(path_or_paths)
        if not out:
            raise ValidationError("periods: found no file; allowed: one or more files or 'packaged'")
        return out
    raise ValidationError(
        f"periods: found {type(path_or_paths).__name__}; allowed: a path, 'packaged' or a list of them"
    )


def check_periods(path_or_paths) -> PeriodsCheck:
    """Read and validate periods files; never raises for a problem inside a file.

    Parameters
    ----------
    path_or_paths : str, path-like or list of them
        Periods files (``.csv`` or ``.xlsx``) and/or the word ``"packaged"``.

    Returns
    -------
    PeriodsCheck
        ``dataset`` (None if any problem), ``problems`` and ``warnings`` (one line each).
        A file that cannot be read at all (not found, binary, not UTF-8) is one problem.
    """
    from kenomill.data import COLUMNS, build_dataset, merge_rows, reported_periods

    items = _as_list(path_or_paths)
    problems: list[str] = []
    warns: list[str] = []
    rows: list[_Row] = []
    files = []
    for item in items:
        name = os.fspath(item)
        files.append(name)
        if name == PACKAGED:
            rows.extend(_packaged_rows())
            continue
        try:
            file_rows = _file_rows(item, problems)
        except ValidationError as exc:
            problems.append(str(exc))
            continue
        if not file_rows and not any(p.startswith(name) for p in problems):
            problems.append(f"{name}: no data rows; allowed: one row per (period, source) below the header")
        for r in file_rows:
            _check_row(r, problems, warns)
        rows.extend(file_rows)
    _check_across(rows, problems)
    if problems:
        return PeriodsCheck(None, problems, warns, files)
    if files == [PACKAGED]:
        return PeriodsCheck(reported_periods(), [], [], files)
    import pandas as pd

    cols = list(COLUMNS) + sorted({k for r in rows for k in r.cells if k.endswith("_resolution")})
    df = pd.DataFrame([{k: r.cells.get(k, "") for k in cols} for r in rows], columns=cols, dtype=str)
    merged, field_source = merge_rows(df)
    title = (
        "Keno Hill District mill, reported production (Alexco news releases)"
        if PACKAGED in files
        else "mill periods"
    )
    ds = build_dataset(merged, field_source, sources=list(dict.fromkeys(df["source"])), title=title)
    warns.extend(_overlaps(ds))
    ds.attrs["periods_files"] = "; ".join(files)
    ds.attrs["warnings"] = "\n".join(warns)
    return PeriodsCheck(ds, problems, warns, files)


def read_periods(path_or_paths, *, warn: bool = True):
    """Periods from files, as the Dataset that :func:`kenomill.reported_periods` returns.

    Parameters
    ----------
    path_or_paths : str, path-like or list of them
        Periods files (``.csv`` UTF-8, with or without byte-order mark, or ``.xlsx``) and/or
        the word ``"packaged"`` for the packaged Keno Hill periods.
        ``["packaged", "2012q3.csv"]`` is the packaged quarters plus the file's.
    warn : bool
        Issue a :class:`PeriodsWarning` for each warning (they are also in
        ``attrs["warnings"]``, one per line).

    Returns
    -------
    xarray.Dataset
        Dimension ``period`` (in order of first appearance); the figures in the units of
        :data:`kenomill.data.COLUMNS`, NaN where not reported; ``<figure>_resolution``
        [units of the figure]; ``period_start``, ``period_end``, ``days`` [d], ``source``.

    Raises
    ------
    PeriodsError
        Listing every problem of every file, one per line.
    """
    check = check_periods(path_or_paths)
    if check.problems:
        raise PeriodsError(check.problems)
    if warn:
        for w in check.warnings:
            warnings.warn(w, PeriodsWarning, stacklevel=2)
    return check.dataset


def template_rows() -> list[dict[str, str]]:
    """The template's rows: the units row (a comment) and one worked example quarter.

    The example is the 2012 second quarter of the Keno Hill mill as the Alexco news release
    of 16 Jul 2012 prints it.
    """
    from kenomill.data import COLUMNS, reported_rows

    df = reported_rows()
    example = df[df["period"] == "2012Q2"].iloc[0].to_dict()
    example["source"] = "Alexco news release 2012-07-16 (Q2 2012 production table)"
    units = {c: (u or "-") for c, (u, _) in COLUMNS.items()}
    units["period"] = "# units"
    return [units, {c: str(example[c]) for c in COLUMNS}]


def write_template(path: str | os.PathLike) -> Path:
    """Write an empty periods file: the columns, their units and one worked example row.

    ``.csv`` (UTF-8) or ``.xlsx`` by extension; the ``.xlsx`` has a second sheet
    ``columns`` describing each column (units, meaning, required, allowed range).
    """
    from kenomill import io
    from kenomill.data import COLUMNS

    p = io.check_output_path(path, allowed={".csv": "CSV", ".xlsx": "Excel"})
    rows = template_rows()
    cols = list(COLUMNS)
    with io.atomic_path(p) as tmp:
        if p.suffix.lower() == ".csv":
            with open(tmp, "w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh, lineterminator="\n")
                w.writerow(cols)
                for r in rows:
                    w.writerow([r[c] for c in cols])
        else:
            _write_xlsx_rows(tmp, cols, rows, describe=True)
    return p


def _decimals(text: str) -> int:
    e = Decimal(text).as_tuple().exponent if _number(text) is not None else 0
    return max(-int(e), 0)


def _write_xlsx_rows(path, cols: list[str], rows: list[dict[str, str]], describe: bool = False) -> None:
    """Rows of text to an .xlsx sheet ``periods``: numbers as numbers with their printed decimals."""
    import openpyxl

    from kenomill.data import COLUMNS

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "periods"
    ws.append(cols)
    for r in rows:
        out = []
        for c in cols:
            text = r.get(c, "")
            if c in ("period_start", "period_end") and _date(text):
                out.append(_date(text))
            elif c not in ("period", "source") and not text.startswith("#") and _number(text) is not None:
                out.append(float(text) if "." in text or "e" in text.lower() else int(text))
            else:
                out.append(text if text else None)
        ws.append(out)
        for j, c in enumerate(cols):
            cell = ws.cell(row=ws.max_row, column=j + 1)
            text = r.get(c, "")
            if c in ("period_start", "period_end"):
                cell.number_format = "yyyy-mm-dd"
            elif isinstance(cell.value, float):
                n = _decimals(text)
                cell.number_format = "0." + "0" * n if n else "0"
    if describe:
        ds = wb.create_sheet("columns")
        ds.append(["column", "units", "meaning", "required", "allowed"])
        for c, (u, long_name) in COLUMNS.items():
            lim = LIMITS.get(c)
            allowed = (f">= {lim[0]:g}" if math.isinf(lim[1]) else f"{lim[0]:g} to {lim[1]:g}") if lim else ""
            ds.append([c, u, long_name, "yes" if c in REQUIRED else "no", allowed])
    wb.save(path)


def format_check(check: PeriodsCheck) -> list[str]:
    """Lines describing what will be used, period by period (for ``kenomill periods check``)."""
    from kenomill.data import FIGURES, aggregates_of, base_periods, figure_sources

    ds = check.dataset
    if ds is None:
        return []
    agg = aggregates_of(ds)
    base = base_periods(ds)
    lines = [f"{ds.sizes['period']} periods from {', '.join(check.files)}: {len(base)} base, {len(agg)} sums"]
    for p in ds["period"].values:
        p = str(p)
        rec = ds.sel(period=p)
        given = [f for f in FIGURES if not math.isnan(float(rec[f]))]
        missing = [f for f in FIGURES if f not in given]
        kind = f"sum of {'+'.join(agg[p])}" if p in agg else "base"
        start = str(rec["period_start"].values)[:10]
        end = str(rec["period_end"].values)[:10]
        lines.append(
            f"{p}: {start} to {end}, {int(rec['days'])} d, {kind}; {len(given)} of {len(FIGURES)} figures"
            + (f" (not reported: {', '.join(missing)})" if missing else "")
            + f"; source: {str(rec['source'].values)}"
        )
        # which source supplied which figure, in full, when the period merges several
        by_source: dict[str, list[str]] = {}
        for f, src in figure_sources(ds).get(p, {}).items():
            by_source.setdefault(src, []).append(f)
        if len(by_source) > 1:
            lines.extend(f"  {', '.join(figs)}: from {src}" for src, figs in by_source.items())
    return lines
