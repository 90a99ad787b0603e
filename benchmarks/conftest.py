"""pytest set-up of the benchmarks: sizes by mode, thread count restored after each test.

Two modes (see benchmarks/README.md):

* ``pytest benchmarks --benchmark-disable``: every variant runs once at a small size and
  is checked against its NumPy reference (CI; well under a minute).
* ``pytest benchmarks --benchmark-enable`` (or ``KENOMILL_BENCH=full``): the real sizes
  (draws 10^3 .. 10^5), timed by pytest-benchmark. ``benchmarks/ratios.py`` turns the
  ``--benchmark-json`` file of one run into the table of medians and ratios.

The helpers live in ``bench_support.py`` (imported by name: a second module called
``conftest`` would clash with tests/conftest.py when both directories are collected).
"""

from __future__ import annotations

import numba
import pytest
from bench_support import sizes


def pytest_generate_tests(metafunc):
    # sizes depend on the mode, so the ids show what actually ran
    s = sizes(metafunc.config)
    if "draws" in metafunc.fixturenames:
        metafunc.parametrize("draws", s["scaling_draws"])
    if "quarters" in metafunc.fixturenames:
        metafunc.parametrize("quarters", s["scaling_quarters"])
    if "mem_case" in metafunc.fixturenames:
        metafunc.parametrize("mem_case", s["memory"], ids=[f"draws{d}-spd{k}" for d, k in s["memory"]])


@pytest.fixture(scope="session")
def size(request) -> dict:
    return sizes(request.config)


@pytest.fixture(scope="session")
def full(request) -> bool:
    from bench_support import full_mode

    return full_mode(request.config)


@pytest.fixture(scope="session")
def all_threads() -> int:
    return numba.config.NUMBA_NUM_THREADS


@pytest.fixture(autouse=True)
def _restore_threads():
    # a test that pins numba to one thread must not slow the tests after it
    n = numba.get_num_threads()
    yield
    numba.set_num_threads(n)


def pytest_sessionstart(session):
    import os

    session.config._kenomill_load_start = os.getloadavg()


def pytest_benchmark_update_machine_info(config, machine_info):
    # how busy the machine was: ratios from a loaded machine are noisier (benchmarks/README.md)
    import os

    machine_info["loadavg_start"] = list(getattr(config, "_kenomill_load_start", ()))
    machine_info["loadavg_end"] = list(os.getloadavg())
    machine_info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    machine_info["numba_threading_layer"] = numba.config.THREADING_LAYER
    machine_info["numba_version"] = numba.__version__
    machine_info["cpu_count"] = os.cpu_count()
