"""Peak memory of one Monte Carlo run, measured in a fresh process (used by test_bench_memory.py).

    python benchmarks/memprobe.py DRAWS [STEPS_PER_DAY] [QUARTERS]

prints one JSON line: the result's size, the growth of the peak resident set during the
run (Linux: VmHWM reset through /proc/self/clear_refs just before the run, so the
import-time peak does not hide it; else ru_maxrss) and the peak of memory traced by
tracemalloc (NumPy arrays; numba's per-draw scratch arrays are not traced, they are
O(threads) small arrays). Imports, compilation-cache loading and xarray's first-use
imports happen in a warm-up run of 2 draws before the measurement.
"""

from __future__ import annotations

import gc
import json
import resource
import sys
import tracemalloc


def _status(key: str) -> int:
    """A VmXXX line of /proc/self/status [bytes]."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # 5: reset the peak resident set size (VmHWM) to the current one
        return True
    except OSError:
        return False


def main(argv: list[str]) -> dict:
    draws = int(argv[0])
    spd = int(argv[1]) if len(argv) > 1 else 1
    quarters = int(argv[2]) if len(argv) > 2 else 6
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bench_support import SEED, workload

    from kenomill import simulate

    plan = workload(quarters, spd)
    simulate.run(plan, draws=2, seed=SEED)  # warm-up: cached kernel, xarray's lazy imports
    gc.collect()
    rss0 = _status("VmRSS")
    hwm_reset = _reset_peak()
    maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tracemalloc.start()
    ds = simulate.run(plan, draws=draws, seed=SEED)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak = _status("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = rss0 if hwm_reset else maxrss0
    return {
        "draws": draws,
        "steps_per_day": spd,
        "quarters": quarters,
        "steps": plan.n_steps,
        "result_bytes": int(ds.nbytes),
        "rss_growth_bytes": int(max(peak - base, 0)),
        "traced_peak_bytes": int(traced_peak),
        "peak_method": "VmHWM after clear_refs" if hwm_reset else "ru_maxrss",
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
