"""The one table of kenomill's variables: units, names, labels, error kind, stream, element.

Every module that names a figure (the packaged periods, the calibration's outputs, the
Monte Carlo results, the CLI tables, the plots and the report) reads its units, long name
and label here, so that ``pbcon_t`` means the same thing, in the same words, everywhere.

Columns of the table (:class:`Variable`):

* ``units``: unit of the figure as stored in files and Datasets (``t``, ``g/t``, ``%``,
  ``troy_oz``, ``lb``, ``t/d``, ``d``, ``h``, ``1``); conversions are in :mod:`kenomill.units`.
* ``long_name``: the figure in words (the ``long_name`` attribute of Dataset variables).
* ``label``: short label for axes and table rows, without the unit.
* ``kind``: kind of measurement error (:data:`kenomill.errormodel.KINDS`) of a reported
  figure; ``None`` for figures no release prints.
* ``extent``: ``"extensive"`` (adds up over periods: tonnes, ounces, pounds, hours, days)
  or ``"intensive"`` (a grade, recovery, rate or share: a weighted mean over periods).
* ``stream`` / ``element``: the stream (feed, pbcon, zncon, tails) and element (Ag, Pb,
  Zn) the figure is about, ``None`` where it has none.
* ``display``: the unit tables and charts show it in (``Moz`` for ounces, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from kenomill import units

Extent = Literal["extensive", "intensive"]


@dataclass(frozen=True)
class Variable:
    """One figure of the mill: see the module docstring for the meaning of each field."""

    name: str
    units: str
    long_name: str
    label: str
    kind: str | None = None
    extent: Extent = "intensive"
    stream: str | None = None
    element: str | None = None
    display: str | None = None

    @property
    def attrs(self) -> dict[str, str]:
        """``{"units": ..., "long_name": ...}``: the attributes of a Dataset variable."""
        return {"units": self.units, "long_name": self.long_name}

    @property
    def shown_units(self) -> str:
        """The unit shown in tables and charts (``display`` or ``units``)."""
        return self.display or self.units

    @property
    def display_factor(self) -> float:
        """Factor from ``units`` to :attr:`shown_units` (:func:`kenomill.units.display_factor`)."""
        return units.display_factor(self.units, self.shown_units)

    def axis_label(self) -> str:
        """``"label [shown units]"``, for a chart axis or a table row."""
        return f"{self.label} [{self.shown_units}]"


def _v(
    name, units_, long_name, label, kind=None, extent="intensive", stream=None, element=None, display=None
):
    return Variable(name, units_, long_name, label, kind, extent, stream, element, display)


_TABLE = (
    # the period's calendar
    _v("period", "", "reporting period", "period"),
    _v("period_start", "", "first day of the period", "start"),
    _v("period_end", "", "last day of the period", "end"),
    _v("days", "d", "calendar days in the period", "days", extent="extensive"),
    _v("source", "", "seed file and release date", "source"),
    # tonnes
    _v("ore_mined_t", "t", "ore tonnes mined", "ore mined", "tonnes", "extensive", display="t"),
    _v(
        "ore_processed_t",
        "t",
        "ore tonnes processed (mill feed)",
        "ore processed",
        "tonnes",
        "extensive",
        "feed",
    ),
    # head grades
    _v(
        "head_ag_gpt",
        "g/t",
        "silver grade of ore processed",
        "head grade Ag",
        "assays",
        stream="feed",
        element="Ag",
    ),
    _v(
        "head_pb_pct",
        "%",
        "lead grade of ore processed",
        "head grade Pb",
        "assays",
        stream="feed",
        element="Pb",
    ),
    _v(
        "head_zn_pct",
        "%",
        "zinc grade of ore processed",
        "head grade Zn",
        "assays",
        stream="feed",
        element="Zn",
    ),
    # recoveries
    _v(
        "rec_ag_pct",
        "%",
        "silver recovery to both concentrates",
        "Ag recovery (both cons)",
        "recoveries",
        element="Ag",
    ),
    _v(
        "rec_pb_pct",
        "%",
        "lead recovery to lead concentrate",
        "Pb recovery (lead con)",
        "recoveries",
        stream="pbcon",
        element="Pb",
    ),
    _v(
        "rec_zn_pct",
        "%",
        "zinc recovery to zinc concentrate",
        "Zn recovery (zinc con)",
        "recoveries",
        stream="zncon",
        element="Zn",
    ),
    # concentrates and tails
    _v(
        "pbcon_t",
        "t",
        "lead concentrate tonnes produced",
        "lead concentrate",
        "concentrate_tonnes",
        "extensive",
        "pbcon",
    ),
    _v(
        "pbcon_ag_gpt",
        "g/t",
        "silver grade of lead concentrate",
        "lead con Ag",
        "assays",
        stream="pbcon",
        element="Ag",
    ),
    _v(
        "pbcon_pb_pct",
        "%",
        "lead grade of lead concentrate",
        "lead con Pb",
        "assays",
        stream="pbcon",
        element="Pb",
    ),
    _v("pbcon_zn_pct", "%", "zinc grade of lead concentrate", "lead con Zn", stream="pbcon", element="Zn"),
    _v(
        "zncon_t",
        "t",
        "zinc concentrate tonnes produced",
        "zinc concentrate",
        "concentrate_tonnes",
        "extensive",
        "zncon",
    ),
    _v(
        "zncon_ag_gpt",
        "g/t",
        "silver grade of zinc concentrate",
        "zinc con Ag",
        "assays",
        stream="zncon",
        element="Ag",
    ),
    _v("zncon_pb_pct", "%", "lead grade of zinc concentrate", "zinc con Pb", stream="zncon", element="Pb"),
    _v(
        "zncon_zn_pct",
        "%",
        "zinc grade of zinc concentrate",
        "zinc con Zn",
        "assays",
        stream="zncon",
        element="Zn",
    ),
    _v("tails_t", "t", "final tailings tonnes", "tailings", extent="extensive", stream="tails"),
    _v("tails_ag_gpt", "g/t", "silver grade of final tailings", "tails Ag", stream="tails", element="Ag"),
    _v("tails_pb_pct", "%", "lead grade of final tailings", "tails Pb", stream="tails", element="Pb"),
    _v("tails_zn_pct", "%", "zinc grade of final tailings", "tails Zn", stream="tails", element="Zn"),
    # contained metal
    _v(
        "ag_oz",
        "troy_oz",
        "silver contained in both concentrates",
        "Ag in concentrates",
        "contained_metal",
        "extensive",
        element="Ag",
        display="Moz",
    ),
    _v(
        "pb_lb",
        "lb",
        "lead contained in lead concentrate",
        "Pb in lead con",
        "contained_metal",
        "extensive",
        "pbcon",
        "Pb",
        display="Mlb",
    ),
    _v(
        "zn_lb",
        "lb",
        "zinc contained in zinc concentrate",
        "Zn in zinc con",
        "contained_metal",
        "extensive",
        "zncon",
        "Zn",
        display="Mlb",
    ),
    # throughput and availability (the releases' sentences)
    _v(
        "tpd",
        "t/d",
        "average mill throughput, tonnes processed per calendar day",
        "throughput (calendar)",
        "tonnes",
        stream="feed",
    ),
    _v("availability_pct", "%", "mill availability", "mill availability", "recoveries"),
    # the Monte Carlo's own results
    _v("ore_diverted_t", "t", "ore diverted off the full ROM stockpile", "ore diverted", extent="extensive"),
    _v("stockpile_t", "t", "ROM stockpile at the end of the period", "ROM stockpile"),
    _v("held_t", "t", "ore held for permitting at the end of the period", "ore held"),
    _v("operating_h", "h", "mill operating hours", "operating hours", extent="extensive"),
    _v("availability", "1", "mill operating time / calendar time", "availability"),
    _v(
        "operating_tpd",
        "t/d",
        "feed rate while operating, tonnes per operating day",
        "throughput (operating)",
        stream="feed",
    ),
    _v("stream_t", "t", "solids of each stream", "stream solids", extent="extensive"),
    _v("metal_t", "t", "element in each stream", "element in stream", extent="extensive"),
    _v("feed_by_source_t", "t", "mill feed by source", "feed by source", extent="extensive", stream="feed"),
)

#: name -> :class:`Variable`, in a fixed order (calendar, tonnes, grades, recoveries, ...)
VARIABLES: MappingProxyType[str, Variable] = MappingProxyType({v.name: v for v in _TABLE})

#: the metals as the package names them, and the streams of the circuit
ELEMENTS: tuple[str, ...] = ("Ag", "Pb", "Zn")
#: the same metals as they prefix figure names and price or term keys (``ag_oz``, ``prices.ag``)
METALS: tuple[str, ...] = tuple(e.lower() for e in ELEMENTS)


@dataclass(frozen=True)
class MetalFigures:
    """The reported figures that carry one element through the mill.

    ``contained`` = ore x ``head`` x ``recovery`` = the sum over ``concentrates`` of
    (concentrate tonnes x the element's grade in that concentrate): the two routes of
    :func:`kenomill.balance.balance_table` and the balances of :mod:`kenomill.reconcile`.
    """

    element: str
    head: str
    recovery: str
    contained: str
    concentrates: tuple[tuple[str, str], ...]


#: element -> :class:`MetalFigures`; silver is paid in both concentrates, lead in the lead
#: concentrate and zinc in the zinc concentrate (the releases' recoveries are to those)
METAL_FIGURES: MappingProxyType[str, MetalFigures] = MappingProxyType(
    {
        "Ag": MetalFigures(
            "Ag",
            "head_ag_gpt",
            "rec_ag_pct",
            "ag_oz",
            (("pbcon_t", "pbcon_ag_gpt"), ("zncon_t", "zncon_ag_gpt")),
        ),
        "Pb": MetalFigures("Pb", "head_pb_pct", "rec_pb_pct", "pb_lb", (("pbcon_t", "pbcon_pb_pct"),)),
        "Zn": MetalFigures("Zn", "head_zn_pct", "rec_zn_pct", "zn_lb", (("zncon_t", "zncon_zn_pct"),)),
    }
)
#: the nine reported figures a recovery model is fitted to, in the column order of
#: ``kenomill.calibrate.FitData.y`` (the calibration, the reconciliation's flags and the
#: validation read it from here)
FIT_FIGURES: tuple[str, ...] = (
    "rec_ag_pct",
    "rec_pb_pct",
    "rec_zn_pct",
    "pbcon_t",
    "pbcon_ag_gpt",
    "pbcon_pb_pct",
    "zncon_t",
    "zncon_ag_gpt",
    "zncon_zn_pct",
)
STREAMS: tuple[str, ...] = ("feed", "pbcon", "zncon", "tails")
#: head grades and contained metal of the feed, in element order (from :data:`METAL_FIGURES`)
HEADS: tuple[str, ...] = tuple(m.head for m in METAL_FIGURES.values())
CONTAINED: tuple[str, ...] = tuple(m.contained for m in METAL_FIGURES.values())
#: recoveries to the element's concentrate, in element order (from :data:`METAL_FIGURES`)
RECOVERIES: tuple[str, ...] = tuple(m.recovery for m in METAL_FIGURES.values())
#: the figures of a mill's period that enter its balances: ore, head grades, the fitted
#: figures (recoveries, concentrate tonnes and paying grades) and contained metal
MILL_FIGURES: tuple[str, ...] = ("ore_processed_t", *HEADS, *FIT_FIGURES, *CONTAINED)


def get(name: str) -> Variable:
    """The :class:`Variable` called ``name``; a clear error listing the known names otherwise."""
    try:
        return VARIABLES[name]
    except KeyError:
        from kenomill.errors import ValidationError

        raise ValidationError(f"unknown variable {name!r}; known: {', '.join(VARIABLES)}") from None


def attrs(name: str) -> dict[str, str]:
    """Dataset attributes (units, long_name) of ``name``."""
    return get(name).attrs


def units_and_long_names(names) -> dict[str, tuple[str, str]]:
    """``{name: (units, long_name)}`` for ``names``: the shape of the older per-module tables."""
    return {n: (get(n).units, get(n).long_name) for n in names}


def kinds() -> dict[str, str]:
    """``{name: kind of error}`` for every figure a release prints (``kind`` not None)."""
    return {v.name: v.kind for v in _TABLE if v.kind is not None}
