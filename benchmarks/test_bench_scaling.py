"""Scaling of the Monte Carlo kernel with draws, with days, and from one thread to all.

Time per draw-step should stay flat across ``test_scaling_draws`` and
``test_scaling_days`` (near-linear scaling), and ``test_threads[all]`` should take
about half of ``test_threads[1]`` on two cores (parallel efficiency
``t1 / (n * tn)`` >= 80 %). ``benchmarks/ratios.py`` computes both from one run. Results
are bit-identical whatever the thread count (per-draw streams; prange over draws).
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from bench_support import KERNELS, check_against_reference, mc_args, timing, workload


@pytest.mark.benchmark(group="scaling_draws")
def test_scaling_draws(benchmark, full, draws):
    plan = workload()
    inputs, outputs = mc_args(plan, draws)
    benchmark.extra_info.update(draws=draws, steps=plan.n_steps, draw_steps=draws * plan.n_steps)
    rounds = timing(full)
    if draws >= 100_000:  # ~30 s a round
        rounds = {"rounds": 3, "warmup_rounds": 0}
    benchmark.pedantic(KERNELS["mc_simulate"].numba, args=(*inputs, *outputs), **rounds)
    check_against_reference(outputs)


@pytest.mark.benchmark(group="scaling_days")
def test_scaling_days(benchmark, size, full, quarters):
    plan = workload(quarters)
    n = size["scaling_quarters_draws"]
    inputs, outputs = mc_args(plan, n)
    benchmark.extra_info.update(draws=n, steps=plan.n_steps, quarters=quarters, draw_steps=n * plan.n_steps)
    benchmark.pedantic(KERNELS["mc_simulate"].numba, args=(*inputs, *outputs), **timing(full))
    check_against_reference(outputs, quarters=quarters)


@pytest.mark.benchmark(group="threads")
@pytest.mark.parametrize("threads", ["1", "all"])
def test_threads(benchmark, size, full, all_threads, threads):
    n_threads = 1 if threads == "1" else all_threads
    plan = workload()
    n = size["thread_draws"]
    inputs, outputs = mc_args(plan, n)
    numba.set_num_threads(n_threads)
    benchmark.extra_info.update(draws=n, steps=plan.n_steps, threads=n_threads)
    benchmark.pedantic(KERNELS["mc_simulate"].numba, args=(*inputs, *outputs), **timing(full))
    check_against_reference(outputs)
    # bit-identical with the other thread count
    numba.set_num_threads(all_threads if n_threads == 1 else 1)
    m = min(n, 64)
    inputs_o, outputs_o = mc_args(plan, m)
    KERNELS["mc_simulate"].numba(*inputs_o, *outputs_o)
    for got, want in zip(outputs, outputs_o, strict=True):
        np.testing.assert_array_equal(got[:m], want)
