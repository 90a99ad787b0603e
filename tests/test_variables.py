"""The one table of variables: every module reads its units and names from it."""

from __future__ import annotations

import pytest

from kenomill import calibrate, data, errormodel, simulate, units, variables
from kenomill.errors import ValidationError


def test_every_module_table_is_the_variables_table():
    for table in (data.COLUMNS, calibrate.OUTPUT_ATTRS, simulate._ATTRS):
        for name, (u, long_name) in table.items():
            assert variables.get(name).attrs == {"units": u, "long_name": long_name}
    assert dict(errormodel.KIND_OF) == variables.kinds()


def test_kinds_are_the_error_models_kinds():
    # every reported figure has a kind the error model sizes; nothing else has one
    assert set(variables.kinds().values()) <= set(errormodel.DEFAULT_RELATIVE_PCT)
    assert set(variables.kinds()) == set(data.FIGURES)


def test_extensive_figures_add_up_over_the_year():
    """Extensive = the year is the sum of its quarters (2011, 23 Jan 2012 release)."""
    ds = data.reported_periods()
    quarters = ["2011Q1", "2011Q2", "2011Q3", "2011Q4"]
    for name in ("ore_processed_t", "pbcon_t", "zncon_t", "ag_oz"):
        assert variables.get(name).extent == "extensive"
        total = float(ds[name].sel(period=quarters).sum())
        assert float(ds[name].sel(period="2011FY")) == pytest.approx(total, rel=2e-3), name
    for name in ("head_ag_gpt", "rec_pb_pct", "tpd"):
        assert variables.get(name).extent == "intensive"


def test_display_units_by_hand():
    ag = variables.get("ag_oz")
    assert (ag.units, ag.shown_units, ag.display_factor) == ("troy_oz", "Moz", 1e-6)
    assert variables.get("pb_lb").axis_label() == "Pb in lead con [Mlb]"
    assert units.display_factor("t", "kt") == 1e-3
    with pytest.raises(ValueError, match=r"no display conversion 'g/t' -> 'Moz'"):
        units.display_factor("g/t", "Moz")


def test_stream_and_element():
    assert (variables.get("pbcon_ag_gpt").stream, variables.get("pbcon_ag_gpt").element) == ("pbcon", "Ag")
    assert variables.get("rec_zn_pct").stream == "zncon"
    assert {v.stream for v in variables.VARIABLES.values()} - {None} == set(variables.STREAMS)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValidationError, match=r"unknown variable 'pbcon_tonnes'; known: period, "):
        variables.get("pbcon_tonnes")


def test_packaged_csv_columns_are_the_tables_reported_figures():
    assert list(data.COLUMNS) == list(data.reported_rows().columns)


def test_figure_lists_keep_the_order_files_and_kernels_rely_on():
    # written out by hand: the columns of PRED.csv (recovery.OUTPUTS) and the figures the
    # balances need (reconcile.MILL_FIGURES) are built from variables.METAL_FIGURES and
    # FIT_FIGURES; their order is part of the file formats and of outputs_rows' columns
    from kenomill import reconcile, recovery

    fit = ("rec_ag_pct", "rec_pb_pct", "rec_zn_pct", "pbcon_t", "pbcon_ag_gpt", "pbcon_pb_pct")
    fit += ("zncon_t", "zncon_ag_gpt", "zncon_zn_pct")
    assert recovery.OUTPUTS == ("ag_oz", "pb_lb", "zn_lb", *fit)
    heads = ("head_ag_gpt", "head_pb_pct", "head_zn_pct")
    assert reconcile.MILL_FIGURES == ("ore_processed_t", *heads, *fit, "ag_oz", "pb_lb", "zn_lb")
    for name in reconcile.MILL_FIGURES:
        assert name in variables.VARIABLES
