"""simulate.run on dask: default task size DASK_CHUNK, the plan scattered once, results unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from kenomill import simulate


@pytest.fixture(scope="module")
def workload():
    return simulate.compile_plan(simulate.reference_workload())


def _identical(a, b):
    assert list(a.data_vars) == list(b.data_vars)
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_dask_default_chunks_and_blocks_are_bit_identical(workload, monkeypatch):
    """DASK_CHUNK shrunk so that a run of 40 draws has tasks of two sizes, and block by block."""
    from dask.distributed import Client, LocalCluster

    monkeypatch.setattr(simulate, "DASK_CHUNK", 11)
    sizes: list[int] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            on_dask = simulate.run(workload, 40, seed=77, scheduler=client, progress=sizes.append)
            in_blocks = simulate.run(workload, 40, seed=77, scheduler=client, block_draws=23)
    local = simulate.run(workload, 40, seed=77)
    _identical(local, on_dask)
    _identical(local, in_blocks)
    assert sorted(sizes) == [7, 11, 11, 11]


def test_in_process_default_chunk_is_unchanged(workload):
    sizes: list[int] = []
    simulate.run(workload, 300, seed=1, progress=sizes.append)
    assert sizes == [simulate.DEFAULT_CHUNK, 300 - simulate.DEFAULT_CHUNK]
