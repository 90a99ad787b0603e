"""A made-up mill that is not Keno Hill, generated from known parameters (for tests).

Twelve calendar months of 2013 at a low-silver, zinc-rich mill: 8-19 kt a month
(300-620 t/d), 150-350 g/t Ag, 2-4.5 % Pb, 6-10 % Zn, availability 93 %. Its figures are
the outputs of :func:`kenomill.calibrate.mill_outputs` for the model
``cells_pb_tail_zn`` at :data:`TRUTH`, printed with the digits below (so printed rounding
is their only error, unless a gross error is planted).
"""

from __future__ import annotations

import calendar
import csv
from pathlib import Path

import numpy as np

MODEL = "cells_pb_tail_zn"
#: the true free parameters, in the order of the model's ``free`` (rmax_pb, ktau_pb, rmax_zn,
#: tail_zn, ag_pb, ag_zn, e_pb, e_zn); far from the packaged Keno Hill calibration
TRUTH = {
    "rmax_pb": 0.93,
    "ktau_pb": 6.0,
    "rmax_zn": 0.95,
    "tail_zn": 0.006,
    "ag_pb": 0.70,
    "ag_zn": 0.60,
    "e_pb": 0.06,
    "e_zn": 0.05,
}
AVAILABILITY_PCT = 93

#: printed decimals of each figure
DECIMALS = {
    "ore_processed_t": 0,
    "head_ag_gpt": 0,
    "head_pb_pct": 2,
    "head_zn_pct": 2,
    "rec_ag_pct": 1,
    "rec_pb_pct": 1,
    "rec_zn_pct": 1,
    "pbcon_t": 0,
    "pbcon_ag_gpt": 0,
    "pbcon_pb_pct": 1,
    "zncon_t": 0,
    "zncon_ag_gpt": 0,
    "zncon_zn_pct": 1,
    "ag_oz": 0,
    "pb_lb": 0,
    "zn_lb": 0,
    "tpd": 0,
}


def truth_theta() -> np.ndarray:
    from kenomill import recovery

    spec = recovery.get_model(MODEL)
    return np.array([TRUTH[k] for k in spec.free])


def monthly_rows(seed: int = 3, year: int = 2013, months: int = 12) -> list[dict[str, str]]:
    """One row of text per month, as a periods file holds them."""
    from kenomill import calibrate, recovery

    spec = recovery.get_model(MODEL)
    rng = np.random.default_rng(seed)
    days = np.array([calendar.monthrange(year, m)[1] for m in range(1, months + 1)], dtype=float)
    tpd = np.linspace(300, 620, months)[rng.permutation(months)]
    ore = np.round(tpd * days)
    head = np.stack(
        [
            rng.uniform(150, 350, months) * 1e-6,
            rng.uniform(2, 4.5, months) * 1e-2,
            rng.uniform(6, 10, months) * 1e-2,
        ],
        axis=1,
    )
    # the printed heads are what the mill sees: round first, then run the mill on them
    head = np.stack(
        [
            np.round(head[:, 0] * 1e6) * 1e-6,
            np.round(head[:, 1] * 1e4) * 1e-4,
            np.round(head[:, 2] * 1e4) * 1e-4,
        ],
        axis=1,
    )
    tpd_cal = ore / days
    out = calibrate.mill_outputs(
        spec,
        spec.full(truth_theta()),
        ore,
        head,
        calibrate.operating_q_ratio(tpd_cal, AVAILABILITY_PCT / 100),
    )
    col = {name: out[:, i] for i, name in enumerate(calibrate.ALL_OUTPUTS)}
    col.update(
        ore_processed_t=ore,
        head_ag_gpt=head[:, 0] * 1e6,
        head_pb_pct=head[:, 1] * 100,
        head_zn_pct=head[:, 2] * 100,
        tpd=tpd_cal,
    )
    rows = []
    for i in range(months):
        m = i + 1
        row = {
            "period": f"{year}-{m:02d}",
            "period_start": f"{year}-{m:02d}-01",
            "period_end": f"{year}-{m:02d}-{int(days[i]):02d}",
            "days": str(int(days[i])),
            "source": f"synthetic mill, monthly metallurgical report ({year}-{m:02d}-{int(days[i]):02d})",
            "availability_pct": str(AVAILABILITY_PCT),
        }
        for c, d in DECIMALS.items():
            row[c] = f"{col[c][i]:.{d}f}"
        rows.append(row)
    return rows


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([r.get(c, "") for c in columns])
    return path


def keno_quarter_row() -> dict[str, str]:
    """A made-up third quarter of 2012 at the Keno Hill mill, from :data:`TRUTH` (not its calibration).

    27,600 t in 92 days (300 t/d, the ramp-up the 16 Jul 2012 release announces), 750 g/t Ag,
    9.0 % Pb, 5.5 % Zn; printed with the digits of the releases' tables.
    """
    from kenomill import calibrate, recovery

    spec = recovery.get_model(MODEL)
    ore, days = 27600.0, 92
    head = np.array([[750e-6, 0.090, 0.055]])
    out = calibrate.mill_outputs(
        spec, spec.full(truth_theta()), [ore], head, calibrate.operating_q_ratio(ore / days, 0.92)
    )[0]
    col = dict(zip(calibrate.ALL_OUTPUTS, out, strict=True))
    digits = dict.fromkeys(calibrate.ALL_OUTPUTS, 0)
    row = {
        "period": "2012Q3",
        "period_start": "2012-07-01",
        "period_end": "2012-09-30",
        "days": str(days),
        "source": "synthetic quarter from known parameters (2012-10-15)",
        "ore_processed_t": f"{ore:.0f}",
        "head_ag_gpt": "750",
        "head_pb_pct": "9.0",
        "head_zn_pct": "5.5",
        "tpd": "300",
        "availability_pct": "92",
    }
    for c in calibrate.OUTPUTS:
        row[c] = f"{col[c]:.{digits[c]}f}"
    return row
