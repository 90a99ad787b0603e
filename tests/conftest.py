"""Shared pytest configuration: the ``kernel`` marker and hypothesis settings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Under NUMBA_DISABLE_JIT=1 the kernels run as Python loops: slower first calls, so no
# per-example deadline (timing is never asserted); example counts stay small and fixed.
settings.register_profile(
    "kenomill",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.load_profile(os.environ.get("KENOMILL_HYPOTHESIS_PROFILE", "kenomill"))

KERNEL_TEST_FILES = {"test_kernels.py"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "kernel: checks a numba kernel against its NumPy reference; run again with NUMBA_DISABLE_JIT=1",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    # every test of tests/test_kernels.py is a kernel test, so `-m kernel` selects the
    # whole file plus kernel-marked tests elsewhere (the NUMBA_DISABLE_JIT=1 pass of dev.py)
    for item in items:
        if Path(str(item.fspath)).name in KERNEL_TEST_FILES:
            item.add_marker(pytest.mark.kernel)
