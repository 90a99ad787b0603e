"""Every numba kernel against its NumPy reference, and closure of the circuit kernel.

Iterates over :data:`kenomill._registry.KERNELS`, the registry the benchmarks share, so
a kernel registered later is tested here without a new test. ``tests/conftest.py`` marks
every test of this file ``kernel``; ``dev.py test`` runs them a second time with
``NUMBA_DISABLE_JIT=1`` (the kernels as plain Python).
"""

from __future__ import annotations

import importlib
import os
import pkgutil

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import kenomill
from kenomill import _kernels, _reference
from kenomill._registry import KERNELS

# modules register their kernel pairs when imported: import them all so none is missed
for _mod in pkgutil.iter_modules(kenomill.__path__):
    importlib.import_module(f"kenomill.{_mod.name}")

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")
CLOSURE_RTOL = 1e-9
IMPLEMENTATIONS = {"numba": _kernels.circuit_forward, "numpy": _reference.circuit_forward}


def _run(func, inputs, outputs):
    outs = tuple(np.full_like(o, np.nan) for o in outputs)  # NaN: a slot left unfilled shows
    func(*inputs, *outs)
    return outs


@pytest.mark.parametrize("name", sorted(KERNELS))
@pytest.mark.parametrize("n", [1, 5, 50])
def test_numba_matches_reference(name, n):
    pair = KERNELS[name]
    rng = np.random.default_rng(20120716 + n)
    inputs, outputs = pair.make_args(n, rng)
    frozen = [np.array(a, copy=True) for a in inputs]
    got = _run(pair.numba, inputs, outputs)
    want = _run(pair.reference, inputs, outputs)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert np.isfinite(w).all(), f"{name}: reference output {k} has non-finite values"
        np.testing.assert_allclose(g, w, rtol=pair.rtol, atol=0, err_msg=f"{name} output {k}")
    for a, b in zip(inputs, frozen, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} modified an input")


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kernel_has_explicit_signature_and_cache(name):
    """House style: explicit signatures and cache=True (skipped as plain Python)."""
    if JIT_DISABLED:
        pytest.skip("NUMBA_DISABLE_JIT=1: kernels are plain Python functions")
    from numba.core.caching import NullCache

    disp = KERNELS[name].numba
    assert disp.signatures, f"{name}: no explicit signature (compiled lazily)"
    # declared up front, so no call compiles a new specialisation (floats are float64; an
    # RNG kernel may take integer seeds)
    assert not disp._can_compile, f"{name}: compiles lazily; declare its signature"
    assert not any("float32" in str(t) for sig in disp.signatures for t in sig)
    assert not isinstance(disp._cache, NullCache), f"{name}: compiled without cache=True"


def test_three_product_singular_gives_nan_in_both():
    """Alike concentrates: both paths report NaN yields rather than a number."""
    f = np.array([[0.10, 0.05]])
    c1 = np.array([[0.60, 0.30]])
    c2 = np.array([[0.30, 0.15]])  # proportional to c1 - t with t = 0
    t = np.zeros((1, 2))
    for func in (_kernels.three_product, _reference.three_product):
        y, r = np.empty((1, 2)), np.empty((1, 2, 2))
        func(f, c1, c2, t, y, r)
        assert np.isnan(y).all()


def test_three_product_least_squares_matches_lstsq():
    """Over-determined (4 elements) with inconsistent assays: same as numpy.linalg.lstsq."""
    rng = np.random.default_rng(7)
    n, m = 5, 4
    f = rng.uniform(0.01, 0.1, (n, m))
    c1 = rng.uniform(0.2, 0.7, (n, m))
    c2 = rng.uniform(0.05, 0.5, (n, m))
    t = rng.uniform(0.0, 0.005, (n, m))
    y, r = np.empty((n, 2)), np.empty((n, 2, m))
    _kernels.three_product(f, c1, c2, t, y, r)
    for i in range(n):
        a = np.stack([(c1[i] - t[i]) / f[i], (c2[i] - t[i]) / f[i]], axis=1)
        b = (f[i] - t[i]) / f[i]
        want = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(y[i], want, rtol=1e-10)
        np.testing.assert_allclose(r[i, 0], want[0] * c1[i] / f[i], rtol=1e-10)


# ---- closure: hypothesis over random feeds, both paths -------------------------------------


@st.composite
def feeds(draw):
    """Valid circuit inputs: tonnes up to 1e7, grades 0-100 %, splits and pulls summing <= 1."""
    n = draw(st.integers(1, 6))
    m = draw(st.integers(1, 6))
    unit = st.floats(0.0, 1.0, allow_nan=False)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    feed_t = np.array([draw(st.floats(0.0, 1e7, allow_nan=False)) for _ in range(n)])
    # edge values (0, 1, pure splits) from hypothesis; bulk from a seeded generator
    feed_frac = rng.uniform(0.0, 1.0 / m, (n, m))
    feed_frac[0, 0] = draw(unit) / m
    s0 = rng.uniform(0.0, 1.0, (n, m))
    s0[0, 0] = draw(unit)
    s1 = rng.uniform(0.0, 1.0, (n, m)) * (1.0 - s0)
    split = np.ascontiguousarray(np.stack([s0, s1], axis=2))
    p0 = np.array([draw(unit) for _ in range(n)])
    p1 = rng.uniform(0.0, 1.0, n) * (1.0 - p0)
    con_t = np.ascontiguousarray(np.stack([p0, p1], axis=1) * feed_t[:, None])
    return feed_t, feed_frac, split, con_t


def _forward(func, feed_t, feed_frac, split, con_t):
    n, m = feed_frac.shape
    out_t, out_metal = np.full((n, 3), np.nan), np.full((n, 3, m), np.nan)
    func(feed_t, feed_frac, split, con_t, out_t, out_metal)
    return out_t, out_metal


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@given(args=feeds())
def test_forward_closes_for_every_stream_and_element(impl, args):
    feed_t, feed_frac, split, con_t = args
    out_t, out_metal = _forward(IMPLEMENTATIONS[impl], *args)
    # solids: pbcon + zncon + tails = feed
    np.testing.assert_allclose(out_t.sum(1), feed_t, rtol=CLOSURE_RTOL, atol=0)
    # each element: metal in the three products = metal in the feed
    feed_metal = feed_t[:, None] * feed_frac
    np.testing.assert_allclose(out_metal.sum(1), feed_metal, rtol=CLOSURE_RTOL, atol=1e-300)
    # concentrates get exactly what the split says, tails never go (materially) negative
    np.testing.assert_allclose(out_metal[:, :2, :], feed_metal[:, None, :] * split.transpose(0, 2, 1))
    assert (out_t >= -CLOSURE_RTOL * feed_t[:, None]).all()
    assert (out_metal >= -CLOSURE_RTOL * feed_metal[:, None, :]).all()


@given(args=feeds())
def test_forward_paths_agree_on_random_feeds(args):
    a_t, a_metal = _forward(_kernels.circuit_forward, *args)
    b_t, b_metal = _forward(_reference.circuit_forward, *args)
    np.testing.assert_allclose(a_t, b_t, rtol=1e-12, atol=1e-9 * max(1.0, float(args[0].max())))
    np.testing.assert_allclose(a_metal, b_metal, rtol=1e-12, atol=1e-9 * max(1.0, float(args[0].max())))


# ---- the Monte Carlo kernel in blocks of draws (issue 14) ----------------------------------


def _mc_run(plan, seed, draw0, n, daily=False):
    inputs, outputs = plan.kernel_args(seed, draw0, n, daily)
    KERNELS["mc_simulate"].numba(*inputs, *outputs)
    return outputs


def test_mc_draw_does_not_depend_on_its_lane_or_block():
    """Draws run 8 to a block in lock-step: a draw's bits are the same in any lane, any block."""
    from kenomill._registry import _mc_plan
    from kenomill._simd import BLOCK

    plan = _mc_plan()
    whole = _mc_run(plan, 77, 0, BLOCK + 4, daily=True)
    shifted = _mc_run(plan, 77, 3, BLOCK + 1, daily=True)  # draw 3 in lane 0, a partial block
    alone = _mc_run(plan, 77, BLOCK + 2, 1, daily=True)  # one draw, the other lanes not kept
    for w, s, a in zip(whole, shifted, alone, strict=True):
        np.testing.assert_array_equal(w[3:], s)
        np.testing.assert_array_equal(w[BLOCK + 2 : BLOCK + 3], a)
    # per-step output asked for or not: the same quarterly sums, bit for bit
    quarterly = _mc_run(plan, 77, 0, BLOCK + 4)
    np.testing.assert_array_equal(quarterly[0], whole[0])
    np.testing.assert_array_equal(quarterly[2], whole[2])


@pytest.mark.parametrize("n", [1, 11])
def test_mc_kernel_closes_for_every_stream_and_element(n):
    """Every step of every draw: pbcon + zncon + tails = mill feed, for solids and each element."""
    from kenomill import _mc_kernels as K
    from kenomill._registry import _mc_plan

    plan = _mc_plan()
    _, od, _ = _mc_run(plan, 1000 + n, 5 * n, n, daily=True)
    feed_t = od[..., K.F_FEED_T]
    streams = od[..., K.F_STREAM_T : K.F_STREAM_T + 3]
    np.testing.assert_allclose(streams.sum(-1), feed_t, rtol=CLOSURE_RTOL, atol=1e-9)
    metal = od[..., K.F_STREAM_M : K.F_STREAM_M + 9].reshape(*od.shape[:2], 3, 3)
    feed_m = od[..., K.F_FEED_M : K.F_FEED_M + 3]
    np.testing.assert_allclose(metal.sum(-2), feed_m, rtol=CLOSURE_RTOL, atol=1e-12)
    assert (streams >= -1e-9 * feed_t[..., None]).all()
    assert (metal >= -1e-9 * feed_t[..., None, None]).all()
    assert (feed_t > 0).mean() > 0.8  # the mill ran on most days
