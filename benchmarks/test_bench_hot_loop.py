"""The hot loop: issue 6's reference workload through the numba kernel and its NumPy reference.

Group ``hot_loop`` holds the numbers whose ratios are the targets:
``test_hot_loop[numba]`` (per-draw streams generated inside the kernel, all threads),
``test_hot_loop[numpy]`` (the NumPy reference, vectorised over draws) and
``test_compute_floor`` (the same kernel reading pre-generated numbers). ``test_rng_alone``
times the generation of those numbers by itself (what the floor leaves out).
"""

from __future__ import annotations

import numpy as np
import pytest
from bench_support import KERNELS, SEED, check_against_reference, mc_args, timing, workload


@pytest.mark.benchmark(group="hot_loop")
@pytest.mark.parametrize("impl", ["numba", "numpy"])
def test_hot_loop(benchmark, size, full, impl):
    pair = KERNELS["mc_simulate"]
    func = pair.numba if impl == "numba" else pair.reference
    n = size["hot_draws"]
    plan = workload()
    inputs, outputs = mc_args(plan, n)
    benchmark.extra_info.update(draws=n, steps=plan.n_steps, sources=len(plan.sources))
    benchmark.pedantic(func, args=(*inputs, *outputs), **timing(full, slow=impl == "numpy"))
    check_against_reference(outputs)


@pytest.mark.benchmark(group="hot_loop")
def test_compute_floor(benchmark, size, full):
    """The same kernel fed pre-generated numbers: what the kernel costs without making them."""
    pair = KERNELS["mc_simulate_pregenerated"]
    n = size["hot_draws"]
    plan = workload()
    inputs, outputs = mc_args(plan, n, pre=True)
    benchmark.extra_info.update(draws=n, steps=plan.n_steps)
    benchmark.pedantic(pair.numba, args=(*inputs, *outputs), **timing(full))
    check_against_reference(outputs)
    # reading the numbers instead of generating them changes nothing, bit for bit
    inputs_s, outputs_s = mc_args(plan, min(n, 64))
    KERNELS["mc_simulate"].numba(*inputs_s, *outputs_s)
    for got, want in zip(outputs, outputs_s, strict=True):
        np.testing.assert_array_equal(got[: want.shape[0]], want)


@pytest.mark.benchmark(group="hot_loop")
def test_rng_alone(benchmark, size, full):
    """Generating every normal and uniform of the workload's draws (per-draw streams, in parallel)."""
    pair = KERNELS["mc_fill_random"]
    n = size["hot_draws"]
    nz, nu = workload().n_random()
    z, u = np.empty((n, nz)), np.empty((n, nu))
    benchmark.extra_info.update(draws=n, normals_per_draw=nz, uniforms_per_draw=nu)
    benchmark.pedantic(pair.numba, args=(np.uint64(SEED), np.int64(0), z, u), **timing(full))
    m = min(n, 8)
    zr, ur = np.empty((m, nz)), np.empty((m, nu))
    pair.reference(np.uint64(SEED), np.int64(0), zr, ur)
    np.testing.assert_allclose(z[:m], zr, rtol=pair.rtol, atol=0)
    np.testing.assert_allclose(u[:m], ur, rtol=pair.rtol, atol=0)
    # standard normals and uniforms on [0, 1): moments within 6 standard errors
    assert abs(z.mean()) < 6.0 / np.sqrt(z.size)
    assert abs(z.var() - 1.0) < 6.0 * np.sqrt(2.0 / z.size)
    assert (u >= 0.0).all() and (u < 1.0).all()
    assert abs(u.mean() - 0.5) < 6.0 * np.sqrt(1.0 / 12.0 / u.size)
