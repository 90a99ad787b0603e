"""What the figures share: the Agg backend, the metals as the figures show them, saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kenomill import data, variables  # noqa: E402
from kenomill.io import atomic_path  # noqa: E402

__all__ = ["LABELS", "METALS", "RECOVERIES", "nearest", "plt", "save_figure"]

#: plain names and units of the reported columns (kenomill.variables)
LABELS: dict[str, tuple[str, str]] = {
    n: (variables.get(n).label, variables.get(n).units) for n in data.FIGURES
}
#: metals as the figures and the report show them: contained variable, plain name, display
#: unit and factor from the stored unit (both from kenomill.variables: Moz, Mlb, Mlb)
METALS = tuple(
    (v, name, variables.get(v).shown_units, variables.get(v).display_factor)
    for v, name in (("ag_oz", "silver"), ("pb_lb", "lead"), ("zn_lb", "zinc"))
)
#: each recovery with its element (kenomill.variables)
RECOVERIES = tuple((m.recovery, m.element) for m in variables.METAL_FIGURES.values())


def nearest(values, target) -> float:
    """The value of ``values`` nearest ``target``."""
    v = np.asarray(values, dtype=float)
    return float(v[np.argmin(np.abs(v - target))])


def save_figure(fig, path) -> Path:
    """Write ``fig`` as PNG, atomically, and close it."""
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return p
