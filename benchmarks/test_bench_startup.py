"""Start-up: a second process reaches its first Monte Carlo result without compiling.

The first process after a kernel changes compiles it and writes numba's on-disk cache
(cache=True, explicit signatures); every later process loads it. The benchmark is the
wall time of a fresh ``python benchmarks/startup.py`` (interpreter start, imports, cache
loading, 10 draws, the Dataset, interpreter exit); ``extra_info`` keeps the in-process
times to the first kernel arrays and to the first Dataset, which are what a user waits
for. The result must equal the same run in this process.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kenomill import simulate

SCRIPT = Path(__file__).with_name("startup.py")


def _fresh_process(*args: str) -> dict:
    out = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="startup")
def test_startup_second_process(benchmark, full):
    _fresh_process()  # the first process: compiles whatever is not cached yet
    runs = []
    benchmark.pedantic(lambda: runs.append(_fresh_process()), rounds=5 if full else 1, iterations=1)
    for key in ("import_s", "kernel_result_s", "dataset_result_s"):
        benchmark.extra_info[f"median_{key}"] = statistics.median(r[key] for r in runs)
    benchmark.extra_info["runs"] = runs
    # the same conditions for the libraries alone: what no kenomill change can remove
    floor = [_fresh_process("--floor") for _ in range(len(runs))]
    for key in ("floor_import_s", "floor_dataset_s"):
        benchmark.extra_info[f"median_{key}"] = statistics.median(r[key] for r in floor)
    plan = simulate.compile_plan(simulate.reference_workload())
    ds = simulate.run(plan, draws=10, seed=1)
    out_q, _, _ = simulate.run_chunk(plan, 1, 0, 10)
    for r in runs:  # a cached kernel in another process computes the same numbers
        np.testing.assert_allclose(r["ag_oz_mean"], float(ds.ag_oz.mean()), rtol=1e-12)
        np.testing.assert_allclose(r["feed_t_sum"], float(out_q[..., 0].sum()), rtol=1e-12)
