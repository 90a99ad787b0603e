"""Time from a fresh interpreter to the first Monte Carlo result (used by test_bench_startup.py).

    python benchmarks/startup.py            # kenomill
    python benchmarks/startup.py --floor    # the libraries alone

prints one JSON line: seconds to import kenomill.simulate, to compile the reference
workload's plan, to the kernel's first arrays (10 draws) and to the first
``xarray.Dataset`` (simulate.run, 10 draws), all from the first line of the script, and
the mean silver of that run (to check it against an in-process run). The numba kernels
load from the on-disk cache (cache=True, explicit signatures), so a second process
compiles nothing; the first process after a change to a kernel's source compiles it.

``--floor`` times what any first result needs from the libraries alone: importing numpy,
numba (which imports scipy.linalg), pydantic, pandas and xarray, loading one cached numba
function (numba sets up its compiler target on the first), and building one small
``xarray.Dataset`` (xarray imports dask.array on its first Dataset when dask is
installed). The difference between the two is kenomill's own start-up.
"""

import sys
import time

t0 = time.perf_counter()
import json  # noqa: E402

if "--floor" in sys.argv:
    import numba  # noqa: F401
    import numpy as np
    import pandas  # noqa: F401
    import pydantic  # noqa: F401
    import scipy.linalg  # noqa: F401
    import xarray as xr

    t_import = time.perf_counter()

    @numba.njit("f8(f8)", cache=True)
    def _one(x):  # numba's first cached function: it sets up its CPU target (~0.1-0.25 s)
        return x + 1.0

    t_numba = time.perf_counter()
    xr.Dataset({"a": (("x",), np.zeros(2))})
    t_ds = time.perf_counter()
    print(
        json.dumps(
            {
                "floor_import_s": t_import - t0,
                "floor_numba_init_s": t_numba - t_import,
                "floor_dataset_s": t_ds - t0,
            }
        )
    )
    sys.exit(0)

from kenomill import simulate  # noqa: E402

t_import = time.perf_counter()
plan = simulate.compile_plan(simulate.reference_workload())
t_plan = time.perf_counter()
out_q, _, _ = simulate.run_chunk(plan, 1, 0, 10)
t_kernel = time.perf_counter()
ds = simulate.run(plan, draws=10, seed=1)
t_ds = time.perf_counter()
print(
    json.dumps(
        {
            "import_s": t_import - t0,
            "plan_s": t_plan - t0,
            "kernel_result_s": t_kernel - t0,
            "dataset_result_s": t_ds - t0,
            "dataset_only_s": t_ds - t_kernel,
            "ag_oz_mean": float(ds.ag_oz.mean()),
            "feed_t_sum": float(out_q[..., 0].sum()),
        }
    )
)
