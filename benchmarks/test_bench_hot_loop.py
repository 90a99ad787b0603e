"""The hot loop: issue 6's reference workload through the numba kernel and its NumPy reference.

Group ``hot_loop`` holds the numbers whose ratios are issue 14's targets, each with
``extra_info['draw_steps']``: ``test_hot_loop[numba]`` (all threads),
``[numba_1thread]``, ``[numpy_peer]`` (the fast NumPy peer, ``numpy_peer.py``, own
Generator), ``[numpy_reference]`` (the exact oracle ``kenomill._mc_reference``: same numbers,
agreeing to rounding) and
``[simd_floor]`` (the vectorised random numbers and transcendentals a draw-step needs,
``kenomill._simd.simd_floor``); ``test_compute_floor`` is the kernel reading pre-generated
numbers. ``test_rng_alone`` times the generation of those numbers by itself (what the floor leaves out).
"""

from __future__ import annotations

import numba
import numpy as np
import numpy_peer
import pytest
from bench_support import CHECK_DRAWS, KERNELS, SEED, check_against_reference, mc_args, timing, workload

from kenomill import _simd
from kenomill._mc_kernels import F_FEED_T, F_STOCK_T, F_STREAM_M, F_STREAM_T, F_UP_H


def _peer(*args):
    numpy_peer.simulate(*args)


@pytest.mark.benchmark(group="hot_loop")
@pytest.mark.parametrize("impl", ["numba", "numba_1thread", "numpy_peer", "numpy_reference", "simd_floor"])
def test_hot_loop(benchmark, size, full, impl):
    """The reference workload, 10^4 draws x 547 steps, by each implementation (ratios in ratios.py)."""
    n = size["hot_draws"]
    plan = workload()
    benchmark.extra_info.update(
        draws=n, steps=plan.n_steps, sources=len(plan.sources), draw_steps=n * plan.n_steps
    )
    if impl == "simd_floor":
        # the numbers and transcendentals a draw-step needs, vectorised (kenomill._simd)
        benchmark.extra_info.update(normals=4, exp=4, pow=2, per="draw-step and source")
        out = benchmark.pedantic(
            _simd.simd_floor,
            args=(np.uint64(SEED), np.int64(n), np.int64(plan.n_steps), np.int64(len(plan.sources))),
            **timing(full),
        )
        assert np.isfinite(out) and out > 0.0
        return
    inputs, outputs = mc_args(plan, n)
    if impl == "numba_1thread":
        numba.set_num_threads(1)
    func = {
        "numba": KERNELS["mc_simulate"].numba,
        "numba_1thread": KERNELS["mc_simulate"].numba,
        "numpy_peer": _peer,
        "numpy_reference": KERNELS["mc_simulate"].reference,
    }[impl]
    benchmark.extra_info["threads"] = numba.get_num_threads() if impl.startswith("numba") else 1
    benchmark.pedantic(func, args=(*inputs, *outputs), **timing(full, slow=impl == "numpy_reference"))
    if impl == "numpy_peer":
        # its own Generator: another sample of the same model; exactness is test_peer_equals_kernel
        assert np.isfinite(outputs[0]).all()
        assert (outputs[0][:, :, F_FEED_T] > 0.0).all()
    else:
        check_against_reference(outputs)


def test_peer_takes_the_kernels_arguments():
    """The fast NumPy peer's parameters are the kernel's (kenomill._mc_kernels.ARGS), in order."""
    import inspect

    from kenomill import _mc_kernels

    assert tuple(inspect.signature(numpy_peer.simulate).parameters) == _mc_kernels.ARGS


def test_peer_equals_kernel():
    """Fed the kernel's pre-made numbers, the fast NumPy peer equals the kernel to rounding."""
    plan = workload()
    inputs, want = mc_args(plan, CHECK_DRAWS, pre=True)
    KERNELS["mc_simulate"].numba(*inputs, *want)
    inputs, got = mc_args(plan, CHECK_DRAWS, pre=True)
    numpy_peer.simulate(*inputs, *got)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-9)  # atol: tonnes that cancel to ~0


def test_peer_daily_equals_kernel():
    """Per-step records too (the peer's daily path keeps a per-step record)."""
    plan = workload(quarters=1)
    pre = mc_args(plan, 8, pre=True)[0][-2:]
    inputs, want = plan.kernel_args(SEED, 0, 8, daily=True, pre=pre)
    KERNELS["mc_simulate"].numba(*inputs, *want)
    inputs, got = plan.kernel_args(SEED, 0, 8, daily=True, pre=pre)
    numpy_peer.simulate(*inputs, *got)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-9)


def test_peer_generator_agrees_statistically():
    """With its own numpy Generator the peer samples the kernel's model: quarterly means agree."""
    plan = workload(quarters=1)
    n = 1500
    inputs, k_out = mc_args(plan, n)
    KERNELS["mc_simulate"].numba(*inputs, *k_out)
    inputs, p_out = mc_args(plan, n)
    numpy_peer.simulate(*inputs, *p_out)
    for f in (F_FEED_T, F_UP_H, F_STREAM_M + 0, F_STREAM_T, F_STOCK_T):  # feed, hours, Ag to Pb con, ...
        a, b = k_out[0][:, 0, f], p_out[0][:, 0, f]
        se = np.sqrt(a.var() / n + b.var() / n)
        assert abs(a.mean() - b.mean()) < 5.0 * se, f"field {f}: {a.mean()} vs {b.mean()} (se {se})"


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
