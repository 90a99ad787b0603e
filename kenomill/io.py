"""Writing results: the format follows the file's extension; files appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import xarray as xr

from kenomill.errors import ValidationError

#: rows of one Excel worksheet
XLSX_MAX_ROWS = 1_048_576

TABLE_FORMATS = {".csv": "CSV", ".xlsx": "Excel", ".nc": "netCDF"}


def check_output_path(path: str | os.PathLike, allowed=TABLE_FORMATS) -> Path:
    """Refuse an output path whose extension or directory cannot be written, before any work."""
    p = Path(path)
    if p.is_dir():
        raise ValidationError(
            f"--out: found {str(p)!r}, a directory; give a file name ending in " + " or ".join(allowed)
        )
    if p.suffix.lower() not in allowed:
        raise ValidationError(
            f"--out: found {str(p)!r}; allowed extensions: "
            + ", ".join(f"{k} ({v})" for k, v in allowed.items())
        )
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValidationError(f"--out: directory {str(parent)!r} does not exist")
    return p


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix, dir=p.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _write_xlsx(df: pd.DataFrame, path: Path, index: bool, units: dict[str, str]) -> None:
    """One sheet ``table`` with the frame; a second sheet ``units`` names each column's units."""
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        df.to_excel(xw, sheet_name="table", index=index)
        cols = [*(df.index.names if index else []), *df.columns]
        pd.DataFrame(
            {"column": [str(c) for c in cols], "units": [units.get(str(c), "") for c in cols]}
        ).to_excel(xw, sheet_name="units", index=False)


def write_table(obj: xr.Dataset | pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a Dataset or DataFrame as CSV, Excel .xlsx or netCDF (by extension), atomically.

    The .xlsx holds the same table as the CSV (sheet ``table``) and the units of the
    columns, where known, in a sheet ``units``.
    """
    p = check_output_path(path)
    with atomic_path(p) as tmp:
        if p.suffix.lower() in (".csv", ".xlsx"):
            df = obj.to_dataframe() if isinstance(obj, xr.Dataset) else obj
            index = isinstance(obj, xr.Dataset)
            if p.suffix.lower() == ".csv":
                df.to_csv(tmp, index=index)
            else:
                if len(df) + 1 > XLSX_MAX_ROWS:
                    raise ValidationError(
                        f"--out: {len(df)} rows do not fit an .xlsx sheet ({XLSX_MAX_ROWS} rows at most); "
                        "allowed: .csv or .nc for a table this long"
                    )
                units = {}
                if isinstance(obj, xr.Dataset):
                    units = {str(k): str(v.attrs.get("units", "")) for k, v in obj.variables.items()}
                _write_xlsx(df, tmp, index, units)
        else:
            ds = obj if isinstance(obj, xr.Dataset) else xr.Dataset.from_dataframe(obj)
            ds.to_netcdf(tmp, engine="h5netcdf")
    return p
