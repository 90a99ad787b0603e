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

TABLE_FORMATS = {".csv": "CSV", ".nc": "netCDF"}


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


def write_table(obj: xr.Dataset | pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a Dataset or DataFrame as CSV or netCDF (by extension), atomically."""
    p = check_output_path(path)
    with atomic_path(p) as tmp:
        if p.suffix.lower() == ".csv":
            df = obj.to_dataframe() if isinstance(obj, xr.Dataset) else obj
            df.to_csv(tmp, index=isinstance(obj, xr.Dataset))
        else:
            ds = obj if isinstance(obj, xr.Dataset) else xr.Dataset.from_dataframe(obj)
            ds.to_netcdf(tmp, engine="h5netcdf")
    return p
