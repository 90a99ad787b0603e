"""The error model of the reported figures: printed rounding plus a relative error per kind.

A reported figure ``y`` differs from the quantity it stands for by two independent errors:

* **rounding**: the release prints it to one unit ``u`` of its last digit
  (``<col>_resolution`` of :func:`kenomill.reported_periods`), so the rounding error is
  uniform on [-u/2, u/2], of standard deviation ``u / sqrt(12)``;
* **measurement**: weighing, sampling and assaying, and the bookkeeping that turns them
  into quarterly figures, modelled as a relative standard deviation ``r`` per kind of
  figure, so of standard deviation ``r * |y|``.

The standard deviation used by the reconciliation is
``sigma = sqrt((u / sqrt(12))**2 + (r * |y|)**2)``.

Default relative errors (:data:`DEFAULT_RELATIVE_PCT`) and why
----------------------------------------------------------------
``tonnes`` 1.5 %
    Mill feed (and ore mined) is weighed on a belt weightometer and corrected for
    moisture; in routine service such scales hold 1-2 % (DESIGN.md section 1; Morrison,
    2008, ch. 3). Mid-range.
``concentrate_tonnes`` 1.0 %
    Concentrate is weighed on a truck scale when shipped (a few tenths of a percent),
    but quarterly production also counts concentrate in the shed, estimated from
    stockpile surveys and filter-cake moisture; 1 % covers both.
``assays`` 2.0 %
    Head and concentrate assays: sampling dominates (a Pb-Zn-Ag feed is
    heterogeneous, silver in coarse sulphosalts); DESIGN.md gives 1-3 % relative.
    Mid-range. Concentrate assays are usually better than head assays: override
    per column (``[columns_pct]``) when a site's QA/QC says so.
``recoveries`` 1.0 %
    A reported recovery is not measured directly: the mill computes it from the same
    tonnes and assays (or from tails assays, two-product formula). As an independent
    figure it carries the difference between that computation and the product-based
    one, about 1 %.
``contained_metal`` 1.0 %
    Payable-metal bookkeeping computes contained metal from concentrate tonnes and
    assays before rounding; differences from final (settlement) weights and assays are
    typically within 1 %.

``throughput`` (``tpd``): not a separate measurement. Reported tpd is tonnes processed /
calendar days, so its measurement error *is* the feed tonnage's: it gets the relative
error of ``tonnes`` **fully correlated with** ``ore_processed_t``'s (see
:meth:`ErrorModel.relative_sd`), plus its own rounding. Only its rounding is
independent information, so the constraint ``tpd x days = ore_processed_t`` checks the
transcription, not the weighing.

``availability_pct`` enters no balance; it gets ``recoveries``' relative error only so
that every figure has a standard deviation.

Treating recoveries and contained metal as independent of the tonnes and assays they
are computed from is the usual simplification when only published figures are at hand
(the computation is not published). It makes the tests slightly conservative for the
computed figures; the relative errors above are what a reader is invited to change.

Users override the defaults from a TOML file (:meth:`ErrorModel.from_toml`)::

    # kenomill reconciliation error model; all relative errors in percent
    rounding = true            # include printed rounding, sigma = unit / sqrt(12)
    [relative_pct]             # per kind of figure
    tonnes = 1.5
    concentrate_tonnes = 1.0
    assays = 2.0
    recoveries = 1.0
    contained_metal = 1.0
    [columns_pct]              # per column of reported_periods.csv, wins over the kind
    head_ag_gpt = 3.0

or on the command line (``kenomill reconcile --rel-pct assays=3 --rel-pct zn_lb=0.5``).

References
----------
Morrison, R.D. (ed.), *An Introduction to Metal Balancing and Reconciliation*, JKMRC
Monograph Series in Mining and Mineral Processing 4, Brisbane, 2008.
Narasimhan, S., Jordache, C., *Data Reconciliation and Gross Error Detection*, Gulf,
2000, ch. 2 (measurement errors) and ch. 7 (gross errors).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import numpy as np

from kenomill import variables
from kenomill.errors import ValidationError

#: default relative standard deviation of each kind of figure [%]; reasons in the module doc
DEFAULT_RELATIVE_PCT: Mapping[str, float] = MappingProxyType(
    {
        "tonnes": 1.5,
        "concentrate_tonnes": 1.0,
        "assays": 2.0,
        "recoveries": 1.0,
        "contained_metal": 1.0,
    }
)

#: the kind of each reported figure (column of reported_periods.csv)
# tpd shares the feed tonnage's weighing error (correlated, see module doc): its kind is
# "tonnes" in the table of variables
KIND_OF: Mapping[str, str] = MappingProxyType(variables.kinds())

#: figures whose relative error is the same random variable as another figure's
CORRELATED_WITH: Mapping[str, str] = MappingProxyType({"tpd": "ore_processed_t"})

_KEYS = {"rounding", "relative_pct", "columns_pct"}


def _check_pct(where: str, name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{where}{name}: found {value!r}; a number of percent >= 0 is required")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValidationError(f"{where}{name}: found {v:g} %; allowed: a finite number >= 0 %")
    return v


@dataclass(frozen=True)
class ErrorModel:
    """Standard deviations of the reported figures: rounding plus relative error.

    Parameters
    ----------
    relative_pct : mapping, optional
        Relative standard deviation [%] per kind (``tonnes``, ``concentrate_tonnes``,
        ``assays``, ``recoveries``, ``contained_metal``); kinds not given keep their
        default (:data:`DEFAULT_RELATIVE_PCT`).
    columns_pct : mapping, optional
        Relative standard deviation [%] per column of ``reported_periods.csv``; wins over
        the column's kind.
    rounding : bool
        Include the printed rounding, ``unit / sqrt(12)`` (default True).
    """

    relative_pct: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_RELATIVE_PCT))
    columns_pct: Mapping[str, float] = field(default_factory=dict)
    rounding: bool = True

    def __post_init__(self):
        rel = dict(DEFAULT_RELATIVE_PCT)
        for k, v in dict(self.relative_pct).items():
            if k not in DEFAULT_RELATIVE_PCT:
                raise ValidationError(
                    f"relative_pct: unknown kind {k!r}; allowed: {', '.join(DEFAULT_RELATIVE_PCT)}"
                )
            rel[k] = _check_pct("relative_pct.", k, v)
        cols = {}
        for k, v in dict(self.columns_pct).items():
            if k not in KIND_OF:
                raise ValidationError(f"columns_pct: unknown column {k!r}; allowed: {', '.join(KIND_OF)}")
            cols[k] = _check_pct("columns_pct.", k, v)
        if not isinstance(self.rounding, bool):
            raise ValidationError(f"rounding: found {self.rounding!r}; allowed: true or false")
        object.__setattr__(self, "relative_pct", MappingProxyType(rel))
        object.__setattr__(self, "columns_pct", MappingProxyType(cols))

    # -- construction ---------------------------------------------------------------
    @classmethod
    def from_mapping(cls, cfg: Mapping, where: str = "") -> ErrorModel:
        """Build from a mapping with keys ``rounding``, ``relative_pct``, ``columns_pct``."""
        unknown = set(cfg) - _KEYS
        if unknown:
            raise ValidationError(
                f"{where}unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_KEYS))}"
            )
        for k in ("relative_pct", "columns_pct"):
            if k in cfg and not isinstance(cfg[k], Mapping):
                raise ValidationError(f"{where}{k}: found {cfg[k]!r}; expected a table of name = percent")
        return cls(
            relative_pct=cfg.get("relative_pct", {}),
            columns_pct=cfg.get("columns_pct", {}),
            rounding=cfg.get("rounding", True),
        )

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> ErrorModel:
        """Read an error model from a TOML file (format in the module docstring)."""
        from kenomill.io import read_toml

        cfg = read_toml(path, what="error model")
        return cls.from_mapping(cfg, where=f"error model {os.fspath(path)!r}: ")

    def with_overrides(self, overrides: Mapping[str, float]) -> ErrorModel:
        """A copy with relative errors [%] changed; each key is a kind or a column name."""
        rel, cols = dict(self.relative_pct), dict(self.columns_pct)
        for k, v in overrides.items():
            if k in DEFAULT_RELATIVE_PCT:
                rel[k] = v
            elif k in KIND_OF:
                cols[k] = v
            else:
                raise ValidationError(
                    f"--rel-pct: unknown name {k!r}; allowed: a kind ({', '.join(DEFAULT_RELATIVE_PCT)}) "
                    f"or a column ({', '.join(KIND_OF)})"
                )
        return replace(self, relative_pct=rel, columns_pct=cols)

    # -- use ------------------------------------------------------------------------
    def relative(self, column: str) -> float:
        """Relative standard deviation of ``column`` [fraction]."""
        if column in self.columns_pct:
            return self.columns_pct[column] / 100.0
        if column not in KIND_OF:
            raise ValidationError(f"column {column!r} has no kind; known columns: {', '.join(KIND_OF)}")
        return self.relative_pct[KIND_OF[column]] / 100.0

    def relative_sd(self, column: str, value) -> np.ndarray:
        """The measurement (non-rounding) part of the standard deviation [units of value]."""
        return self.relative(column) * np.abs(np.asarray(value, dtype=float))

    def rounding_sd(self, resolution) -> np.ndarray:
        """The rounding part: ``resolution / sqrt(12)``, or 0 when rounding is off."""
        r = np.asarray(resolution, dtype=float)
        return r / math.sqrt(12.0) if self.rounding else np.zeros_like(r)

    def sigma(self, column: str, value, resolution) -> np.ndarray:
        """Total standard deviation of ``column`` printed as ``value`` to ``resolution``."""
        return np.hypot(self.rounding_sd(resolution), self.relative_sd(column, value))

    def to_toml(self) -> str:
        """This model as a TOML file that :meth:`from_toml` reads back."""
        lines = [
            "# kenomill reconciliation error model (see kenomill.errormodel); relative errors in percent",
            f"rounding = {'true' if self.rounding else 'false'}  # printed rounding, sigma = unit / sqrt(12)",
            "",
            "[relative_pct]  # per kind of figure",
            *(f"{k} = {v!r}" for k, v in self.relative_pct.items()),
            "",
            "[columns_pct]  # per column of reported_periods.csv; wins over the kind",
            *(f"{k} = {v!r}" for k, v in self.columns_pct.items()),
        ]
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        """One line: the relative errors in force and whether rounding is included."""
        kinds = ", ".join(f"{k} {v:g} %" for k, v in self.relative_pct.items())
        cols = ", ".join(f"{k} {v:g} %" for k, v in self.columns_pct.items())
        return (
            f"relative: {kinds}"
            + (f"; columns: {cols}" if cols else "")
            + f"; rounding {'on' if self.rounding else 'off'}"
        )


def resolve(error_model) -> ErrorModel:
    """Accept None (defaults), an :class:`ErrorModel`, a mapping or a TOML path."""
    if error_model is None:
        return ErrorModel()
    if isinstance(error_model, ErrorModel):
        return error_model
    if isinstance(error_model, Mapping):
        return ErrorModel.from_mapping(error_model)
    if isinstance(error_model, str | os.PathLike):
        return ErrorModel.from_toml(error_model)
    raise ValidationError(
        f"error_model: found {type(error_model).__name__}; give None, an ErrorModel, "
        "a mapping or the path of a TOML file"
    )
