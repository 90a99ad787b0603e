"""Scale-out: the same draws in-process (numba threads) and on a dask cluster, identical results.

    python benchmarks/scaleout.py [DRAWS] [--scheduler ADDRESS] [--chunk-size N]

Runs ``DRAWS`` draws of scenarios/onek_lucky_queen_2012q4.toml (default 10^6) twice with
the same seed: in this process on all numba threads, then on dask.distributed (a
LocalCluster of 2 single-threaded worker processes unless ``--scheduler`` gives the
address of a running scheduler, e.g. ``tcp://127.0.0.1:8786``). The cluster is started
and warmed (kernels loaded from numba's cache in every worker) before the timed run, and
its start-up is printed apart. Prints the wall time of each, draws per second, the ratio
and whether every variable of the two Datasets is bit-identical; the load average before
and after. Bit-identity is checked on SHA-256 digests of every variable (one Dataset of
10^6 draws is ~16 GB at its peak; two are not held at once).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import numpy as np

from kenomill import scenario, simulate

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "onek_lucky_queen_2012q4.toml"


def _digests(ds) -> dict:
    """SHA-256 of every variable's bytes (bit-identity of two Datasets without holding both)."""
    return {v: hashlib.sha256(np.ascontiguousarray(ds[v].values).tobytes()).hexdigest() for v in ds.data_vars}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("draws", type=int, nargs="?", default=1_000_000)
    ap.add_argument("--scheduler", default="local")
    ap.add_argument("--chunk-size", type=int, default=None)
    ap.add_argument("--seed", type=int, default=2012)
    a = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    print(f"load average at start {os.getloadavg()}", flush=True)
    plan = simulate.compile_plan(scenario.load(SCENARIO))
    simulate.run(plan, 100, a.seed)  # kernels loaded here
    t = time.perf_counter()
    local = simulate.run(plan, a.draws, a.seed, chunk_size=a.chunk_size)
    t_local = time.perf_counter() - t
    print(f"in-process: {a.draws} draws x {plan.n_steps} steps in {t_local:.2f} s", flush=True)
    # a digest of every variable instead of the Dataset itself: at 10^6 draws one Dataset is
    # ~16 GB at its peak, two would not fit beside the other processes
    want = _digests(local)
    del local
    t = time.perf_counter()
    if a.scheduler == "local":
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)
        client = Client(cluster)
    else:
        cluster, client = None, Client(a.scheduler)
    # every worker loads the kernels (a run of 100 draws is one task: it warmed one worker)
    client.run(simulate.run_chunk, plan, a.seed, 0, 8, False, 1)
    simulate.run(plan, 100, a.seed, scheduler=client)
    t_start = time.perf_counter() - t
    t = time.perf_counter()
    remote = simulate.run(plan, a.draws, a.seed, chunk_size=a.chunk_size, scheduler=client)
    t_dask = time.perf_counter() - t
    workers = len(client.scheduler_info()["workers"])
    client.close()
    if cluster is not None:
        cluster.close()
    same = _digests(remote) == want
    print(
        f"dask ({workers} workers at {a.scheduler}): start-up and warm-up {t_start:.2f} s, run {t_dask:.2f} s"
    )
    print(
        f"draws per second: in-process {a.draws / t_local:,.0f}, dask {a.draws / t_dask:,.0f}; "
        f"dask / in-process throughput {t_local / t_dask:.0%}; bit-identical: {same}"
    )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
