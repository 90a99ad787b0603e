"""Sizes, workloads and NumPy-reference checks shared by the benchmarks.

Kernels and references come from :data:`kenomill._registry.KERNELS`, the registry that
tests/test_kernels.py checks, so the benchmarked code is the tested code.

Correctness in every mode rests on one property of the Monte Carlo engine: draw ``i``
depends only on ``(seed, i)``. The first :data:`CHECK_DRAWS` draws of a run of any size,
thread count or variant must therefore equal the NumPy reference run of
``CHECK_DRAWS`` draws, which stays cheap whatever the benchmark size.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from kenomill import _registry, simulate

KERNELS = _registry.KERNELS
SEED = 20121231
#: draws compared with the NumPy reference in every Monte Carlo benchmark
CHECK_DRAWS = 16

FULL_SIZES = {
    "hot_draws": 10_000,  # the reference workload (test_hot_loop)
    "scaling_draws": (1_000, 10_000, 100_000),
    "scaling_quarters": (3, 6, 12),  # days at fixed draws: 273, 547, 1096 steps
    "scaling_quarters_draws": 10_000,
    "thread_draws": 10_000,
    "circuit_rows": 100_000,
    "wrapper_rows": 1_000_000,  # circuit.forward against its kernel (issue 14)
    "memory": ((1_000, 1), (10_000, 1), (30_000, 1), (10_000, 3)),  # (draws, steps per day)
}
SMALL_SIZES = {
    "hot_draws": 32,
    "scaling_draws": (8, 32),
    "scaling_quarters": (1, 2),
    "scaling_quarters_draws": 8,
    "thread_draws": 32,
    "circuit_rows": 1_000,
    "wrapper_rows": 1_000,
    "memory": ((200, 1), (800, 1), (200, 3)),
}


def full_mode(config) -> bool:
    """Real sizes: asked for with ``--benchmark-enable`` or ``KENOMILL_BENCH=full``."""
    if os.environ.get("KENOMILL_BENCH", "") == "full":
        return True
    return bool(config.getoption("benchmark_enable", False)) and not config.getoption(
        "benchmark_disable", False
    )


def sizes(config) -> dict:
    return FULL_SIZES if full_mode(config) else SMALL_SIZES


def timing(full: bool, slow: bool = False) -> dict:
    """pytest-benchmark pedantic settings: a median from several rounds, one warm-up for numba."""
    if slow:  # the NumPy reference: 10-40 s per round at the full size
        return {"rounds": 3 if full else 1, "warmup_rounds": 0}
    return {"rounds": 7 if full else 1, "warmup_rounds": 1 if full else 0}


@functools.cache
def workload(quarters: int = 6, steps_per_day: int = 1) -> simulate.Plan:
    """Issue 6's reference workload (three sources, daily steps), with another horizon if asked."""
    sc = simulate.reference_workload()
    h = {"quarters": quarters}
    if steps_per_day > 1:
        h.update(step="shift", shifts_per_day=steps_per_day)
    sc = sc.model_copy(update={"horizon": sc.horizon.model_copy(update=h)})
    return simulate.compile_plan(sc)


def mc_args(plan: simulate.Plan, n: int, pre: bool = False):
    """(inputs, outputs) of the Monte Carlo kernel for ``n`` draws from draw 0.

    ``pre=True``: the kernel reads numbers pre-generated (by the registry's fill kernel) from
    the same per-draw streams, i.e. the compute floor; results are bit-identical.
    """
    if not pre:
        return plan.kernel_args(SEED, 0, n)
    nz, nu = plan.n_random()
    z, u = np.empty((n, nz)), np.empty((n, nu))
    KERNELS["mc_fill_random"].numba(np.uint64(SEED), np.int64(0), z, u)
    return plan.kernel_args(SEED, 0, n, pre=(z, u))


@functools.cache
def _reference_mc(quarters: int, steps_per_day: int, n: int):
    plan = workload(quarters, steps_per_day)
    inputs, outputs = mc_args(plan, n)
    KERNELS["mc_simulate"].reference(*inputs, *outputs)
    return outputs


def check_against_reference(outputs, quarters: int = 6, steps_per_day: int = 1):
    """The first draws of a Monte Carlo kernel run equal the NumPy reference (rtol of the registry)."""
    m = min(CHECK_DRAWS, outputs[0].shape[0])
    want = _reference_mc(quarters, steps_per_day, CHECK_DRAWS)
    rtol = KERNELS["mc_simulate"].rtol
    for k, (g, w) in enumerate(zip(outputs, want, strict=True)):
        if g.shape[1] == 0:  # no per-step output requested
            continue
        assert np.isfinite(g[:m]).all(), f"output {k} has non-finite values"
        np.testing.assert_allclose(g[:m], w[:m], rtol=rtol, atol=0, err_msg=f"Monte Carlo output {k}")
