"""Reading inputs and writing results, guarded.

Reading: every file the command line reads goes through one of the readers here
(:func:`read_text`, :func:`read_toml`, :func:`read_json`, :func:`read_csv`,
:func:`read_excel`, :func:`read_netcdf`). Each decodes and parses the file and turns any
failure (not UTF-8, truncated, not the format its name says, unreadable) into one
:class:`~kenomill.errors.ValidationError` whose message names the file and what is wrong.
A missing file raises :class:`FileNotFoundError` with the file name (the CLI prints
``file not found: <path>``).

Writing: the format follows the file's extension; a file appears whole or not at all
(:func:`atomic_path`: written beside its target, moved into place only when complete) and
has the permissions the user's umask gives a new file (0644 under umask 022), like any
other file the user creates. An interrupted run (Ctrl-C, SIGTERM; see
:func:`terminate_on_signals`) leaves no partial file.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kenomill.errors import ValidationError

if TYPE_CHECKING:  # pandas and xarray load on first use (start-up time of the CLI)
    import pandas as pd
    import xarray as xr

#: rows of one Excel worksheet
XLSX_MAX_ROWS = 1_048_576

TABLE_FORMATS = {".csv": "CSV", ".xlsx": "Excel", ".nc": "netCDF"}


# ------------------------------------------------------------------------------ reading
def _prefix(path: str | os.PathLike, what: str) -> str:
    # the path leads (as in every other message about a file); ``what`` goes into hints
    return f"{os.fspath(path)}: "


def read_bytes(path: str | os.PathLike, what: str = "") -> bytes:
    """The bytes of ``path``; OS errors other than a missing file become one-line ValidationErrors.

    Parameters
    ----------
    path : path-like
        File to read.
    what : str, optional
        What the file is (``"scenario"``, ``"error model"``, ...), named in hints.
    """
    p = Path(path)
    pre = _prefix(p, what)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(2, "No such file", os.fspath(p)) from None
    except IsADirectoryError:
        raise ValidationError(f"{pre}is a directory; give a file") from None
    except PermissionError:
        raise ValidationError(f"{pre}permission denied (cannot read it)") from None
    except OSError as exc:
        raise ValidationError(f"{pre}cannot be read ({exc.strerror or exc})") from None


def decode_text(data: bytes, path: str | os.PathLike, what: str = "") -> str:
    """Decode UTF-8 (with or without a byte-order mark); a failure names the byte, line and column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        bad = data[exc.start : exc.start + 1].hex()
        hint = ""
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            hint = " (it looks like UTF-16)"
        raise ValidationError(
            f"{_prefix(path, what)}not UTF-8 text{hint}: byte 0x{bad} at line {line}, column {col}; "
            f"save the {what or 'file'} as UTF-8"
        ) from None


def read_text(path: str | os.PathLike, what: str = "") -> str:
    """Read a text file as UTF-8 (a byte-order mark is allowed); any failure is one ValidationError.

    Parameters
    ----------
    path : path-like
        File to read.
    what : str, optional
        What the file is (``"scenario"``, ``"feed"``), named in hints.

    Returns
    -------
    str
        The text, without a byte-order mark. NUL characters are refused (a binary file).
    """
    text = decode_text(read_bytes(path, what), path, what)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValidationError(f"{_prefix(path, what)}not a text file: a NUL character at line {line}")
    return text


def read_toml(path: str | os.PathLike, what: str = "") -> dict[str, Any]:
    """Read and parse a TOML file; a syntax error names its line and column."""
    import tomllib

    text = read_text(path, what)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{_prefix(path, what)}not valid TOML: {exc}") from None


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """Read and parse a JSON file; a syntax error names its line and column."""
    import json

    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"{_prefix(path, what)}not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except RecursionError:
        raise ValidationError(f"{_prefix(path, what)}not valid JSON: nested too deeply") from None


def read_csv(path: str | os.PathLike, what: str = "", **kwargs) -> pd.DataFrame:
    """Read a CSV file (UTF-8) with :func:`pandas.read_csv`; any failure is one ValidationError."""
    import csv
    import io as _io

    import pandas as pd

    text = read_text(path, what)
    if not text.strip():
        raise ValidationError(f"{_prefix(path, what)}not a readable CSV file (the file is empty)")
    try:
        return pd.read_csv(_io.StringIO(text), **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError, TypeError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValidationError(f"{_prefix(path, what)}not a readable CSV file ({reason})") from None


def read_excel(path: str | os.PathLike, what: str = "", **kwargs) -> pd.DataFrame:
    """Read an .xlsx workbook (pandas with openpyxl); any failure is one ValidationError."""
    import pandas as pd

    data = read_bytes(path, what)
    pre = _prefix(path, what)
    if not data.startswith(b"PK"):
        raise ValidationError(f"{pre}not an .xlsx workbook (an .xlsx file is a zip archive; this one is not)")
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise ValidationError(f"{pre}reading .xlsx needs openpyxl: pip install openpyxl") from None
    import io as _io

    try:
        return pd.read_excel(_io.BytesIO(data), engine="openpyxl", **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure to parse a user's workbook is a bad file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValidationError(f"{pre}not a readable .xlsx workbook ({reason})") from None


def read_netcdf(path: str | os.PathLike, what: str = "") -> xr.Dataset:
    """Read a netCDF file into memory (h5netcdf); any failure is one ValidationError."""
    import xarray as xr

    p = Path(path)
    pre = _prefix(p, what)
    head = read_bytes(p, what)[:8]
    if not head.startswith(b"\x89HDF\r\n\x1a\n") and not head.startswith(b"CDF"):
        raise ValidationError(f"{pre}not a netCDF file (it does not start with a netCDF or HDF5 signature)")
    try:
        with xr.open_dataset(p, engine="h5netcdf") as ds:
            return ds.load()
    except Exception as exc:  # noqa: BLE001 - any failure to parse a user's file is a bad file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValidationError(f"{pre}not a readable netCDF file ({reason})") from None


# ------------------------------------------------------------------------------ writing
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
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValidationError(f"--out: directory {str(parent)!r} is not writable")
    return p


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux /proc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # elsewhere the only way is to set and restore it (not thread-safe, but brief)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The permissions ``open(path, "w")`` would give a new file: 0o666 minus the umask."""
    return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The file gets the permissions of a newly created file (:func:`new_file_mode`):
    :func:`tempfile.mkstemp` creates it private (0600), which would keep colleagues on a
    shared machine from reading the results. If the block fails or is interrupted
    (KeyboardInterrupt, or SIGTERM under :func:`terminate_on_signals`), the temporary
    file is removed and ``path`` is left as it was.
    """
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=p.suffix, dir=p.parent or ".")
    os.close(fd)
    try:
        yield Path(tmp)
        # after writing: some writers (HDF5) delete and recreate the file they are given
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` to ``path`` as UTF-8, atomically, with the umask's permissions."""
    p = Path(path)
    with atomic_path(p) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return p


def _write_xlsx(df: pd.DataFrame, path: Path, index: bool, units: dict[str, str]) -> None:
    """One sheet ``table`` with the frame; a second sheet ``units`` names each column's units."""
    import pandas as pd

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
    import xarray as xr

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


# ------------------------------------------------------------------------------ signals
class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (or SIGHUP) under
    :func:`terminate_on_signals`, so that ``finally`` blocks run and no partial file is left.

    A subclass of :class:`KeyboardInterrupt` so that code which already cleans up after
    Ctrl-C cleans up after a polite kill too.
    """

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum, frame):
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` instead of killing the process.

    Python's default for SIGTERM ends the process at once: temporary files stay behind
    and nothing is said. Only the main thread can install handlers; elsewhere this does
    nothing.
    """
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            old[sig] = signal.signal(sig, _raise_terminated)
        except (ValueError, OSError):
            continue
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
