"""Peak memory of a Monte Carlo run grows with the returned result, not with draws x days.

Each case runs in a fresh process (``memprobe.py``) so that one measurement cannot hide
another. Cases are (draws, steps per day) at six quarters: more steps per day triple the
draw-steps but not the quarterly result, so the peak must not move; more draws grow the
result and the peak with it. The assertions use memory traced by tracemalloc (NumPy
arrays: deterministic); the resident-set growth is recorded beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench_support import sizes

PROBE = Path(__file__).with_name("memprobe.py")
#: peak / result seen: 2.3 (chunk outputs, their concatenation and the derived variables
#: of the Dataset); 4 leaves room for another copy without letting draws x steps in
MAX_PEAK_OVER_RESULT = 4.0
SLACK_BYTES = 8 * 2**20


def _probe(draws: int, spd: int) -> dict:
    out = subprocess.run(
        [sys.executable, str(PROBE), str(draws), str(spd)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.benchmark(group="memory")
def test_peak_memory(benchmark, request):
    cases = sizes(request.config)["memory"]
    results = benchmark.pedantic(lambda: [_probe(d, k) for d, k in cases], rounds=1, iterations=1)
    benchmark.extra_info["cases"] = results
    by_case = {(r["draws"], r["steps_per_day"]): r for r in results}
    for r in results:
        assert r["result_bytes"] > 0
        assert r["traced_peak_bytes"] <= MAX_PEAK_OVER_RESULT * r["result_bytes"] + SLACK_BYTES, r
    # more steps per day, same result: same peak (draws x steps never held)
    for (d, k), r in by_case.items():
        if k > 1 and (d, 1) in by_case:
            base = by_case[(d, 1)]
            assert r["steps"] == k * base["steps"]
            assert r["result_bytes"] == base["result_bytes"]
            assert r["traced_peak_bytes"] <= 1.05 * base["traced_peak_bytes"] + 2**20, (r, base)
