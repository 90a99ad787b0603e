"""The Monte Carlo path stays free of pandas and xarray (issue 6, start-up).

A second process's first Monte Carlo result is dominated by imports: pandas and xarray
cost ~0.4-0.6 s on the reference machine (benchmarks/README.md, Start-up). ``kenomill``
loads ``kenomill.data`` on first use of ``kenomill.reported_periods`` (PEP 562), and
``kenomill.simulate`` / ``kenomill.scenario`` import pandas and xarray inside the
functions that build tables and Datasets. These tests guard that laziness: an eager
``import pandas`` added to any of these modules makes them fail.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import kenomill

_CHECK = "assert 'pandas' not in sys.modules and 'xarray' not in sys.modules, sorted(" + (
    "m for m in ('pandas', 'xarray') if m in sys.modules)"
)


def _fresh(code: str) -> subprocess.CompletedProcess:
    # a fresh interpreter: this test process has long imported pandas and xarray
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize(
    "module", ["kenomill", "kenomill._mc_kernels", "kenomill.scenario", "kenomill.simulate"]
)
def test_import_does_not_load_pandas_or_xarray(module):
    out = _fresh(f"import sys, {module}; {_CHECK}")
    assert out.returncode == 0, out.stderr


def test_first_kernel_result_does_not_load_pandas_or_xarray():
    # the whole path of benchmarks/startup.py up to the kernel's first arrays, including
    # the reference workload's validation (its grades come from deposits.csv)
    code = (
        "import sys\n"
        "from kenomill import simulate\n"
        "plan = simulate.compile_plan(simulate.reference_workload())\n"
        "out_q, _, _ = simulate.run_chunk(plan, 1, 0, 2)\n"
        "assert out_q.shape[0] == 2 and (out_q[..., 0] > 0).all()\n"
        f"{_CHECK}\n"
        # the first Dataset still works once pandas and xarray are imported on demand
        "ds = simulate.run(plan, draws=2, seed=1)\n"
        "assert 'xarray' in sys.modules and float(ds.ag_oz.mean()) > 0\n"
    )
    out = _fresh(code)
    assert out.returncode == 0, out.stderr


def test_reported_periods_is_still_a_package_attribute():
    from kenomill import data

    assert kenomill.reported_periods is data.reported_periods
    assert "reported_periods" in dir(kenomill) and "reported_periods" in kenomill.__all__
    assert kenomill.ValidationError.__module__ == "kenomill.errors"
    assert int(kenomill.reported_periods("quarter").sizes["period"]) == len(data.QUARTERS)


def test_unknown_package_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="module 'kenomill' has no attribute 'no_such_name'"):
        kenomill.no_such_name  # noqa: B018
