"""Vector exp/log/pow and counter-based normals of kenomill._simd against NumPy."""

from __future__ import annotations

import numba
import numpy as np
from scipy import stats

from kenomill import _mc_reference, _simd
from kenomill._mc_kernels import ZIG_RATIO, ZIG_X


def test_vexp_matches_numpy():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-708.0, 709.7, 20_000), rng.uniform(-1.0, 1.0, 20_000), [0.0, 1e-300]])
    out = np.empty_like(x)
    _simd.vexp(x, out)
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-14, atol=0)
    edge = np.array([-800.0, -746.0, 710.0, 800.0])
    out = np.empty(4)
    _simd.vexp(edge, out)
    assert out[0] == 0.0 and out[1] == 0.0 and np.isinf(out[2]) and np.isinf(out[3])


@numba.njit
def _log1p_all(x, out):
    for i in range(x.shape[0]):
        out[i] = _simd.log1p1(x[i])


def test_log1p1_matches_numpy():
    """The downtime's -log(1 - U) for the kernel's uniforms U in [0, 1): relative accuracy kept
    for tiny U (where log(1 - U) computed plainly keeps ~16 - log10(1/U) digits only)."""
    rng = np.random.default_rng(3)
    u = np.concatenate([rng.random(20_000), 10.0 ** rng.uniform(-17.0, -1.0, 20_000), [0.0, 2.0**-53]])
    u = np.concatenate([u, 1.0 - 2.0**-53 - rng.random(100) * 1e-12, [1.0 - 2.0**-53]])
    x = np.concatenate([-u, 10.0 ** rng.uniform(-17.0, 3.0, 5_000)])  # and positive x
    out = np.empty_like(x)
    _log1p_all(x, out)
    np.testing.assert_allclose(out, np.log1p(x), rtol=4e-16 * 8, atol=0)
    assert out[np.flatnonzero(x == 0.0)[0]] == 0.0


def test_vlog_matches_numpy():
    rng = np.random.default_rng(2)
    x = np.concatenate([np.exp(rng.uniform(-700.0, 700.0, 20_000)), 1.0 + rng.uniform(-1e-3, 1e-3, 5_000)])
    x = np.concatenate([x, [1.0, 2.0, 0.5, np.sqrt(2.0), 2.2250738585072014e-308, 1.7e308]])
    out = np.empty_like(x)
    _simd.vlog(x, out)
    want = np.log(x)
    far = np.abs(x - 1.0) > 1e-2
    np.testing.assert_allclose(out[far], want[far], rtol=1e-14, atol=0)
    # near 1 the logarithm itself is near 0: absolute error of a few ulp of 1
    assert np.max(np.abs(out[~far] - want[~far])) < 1e-17


def test_vpow_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.uniform(1e-6, 1.0, 20_000)
    a = rng.uniform(0.1, 5.0, 20_000)
    out, tmp = np.empty_like(x), np.empty_like(x)
    _simd.vpow(x, a, out, tmp)
    # exp(a log x): relative error ~ 1e-16 (1 + |a log x|), |a log x| <= 70 here
    np.testing.assert_allclose(out, x**a, rtol=2e-14, atol=0)


def test_normals_keyed_by_seed_and_draw():
    seed = np.uint64(7)
    z = np.empty((40, 300))
    _simd.fill_normals(seed, np.int64(0), z)
    # another chunking: draws 13.. computed alone give the same bits
    part = np.empty((20, 300))
    _simd.fill_normals(seed, np.int64(13), part)
    np.testing.assert_array_equal(part, z[13:33])
    # one thread or all
    n = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = np.empty_like(z)
        _simd.fill_normals(seed, np.int64(0), one)
    finally:
        numba.set_num_threads(n)
    np.testing.assert_array_equal(one, z)
    # a block of draws in lock-step (normal i of 8 draws) gives the same numbers
    keys = np.array([_simd.stream_key(seed, d, 2) for d in range(8)], dtype=np.uint64)
    lane, flag = np.empty((2, 8)), np.empty(8, np.int64)
    for i in (0, 5, 299):
        _simd.normals_lanes(8, keys, i, lane, 1, flag)
        np.testing.assert_array_equal(lane[1], z[:8, i])
    # and a block of indices starting anywhere
    blk, flag = np.empty(50), np.empty(50, np.int64)
    _simd.normals_at(keys[3], 100, blk, flag)
    np.testing.assert_array_equal(blk, z[3, 100:150])


def test_normals_fast_path_against_numpy_twin():
    # the ziggurat's fast path from the SplitMix64 word i of the draw, recomputed with NumPy
    seed = np.uint64(11)
    z = np.empty((4, 2000))
    _simd.fill_normals(seed, np.int64(0), z)
    key = _mc_reference.stream_keys(int(seed), np.arange(4), 2)
    ctr = (np.arange(2000, dtype=np.uint64) + np.uint64(1)) * _mc_reference._GAMMA
    r = _mc_reference._mix64(key[:, None] + ctr[None, :])
    j = (r & np.uint64(127)).astype(np.intp)
    u = 2.0 * ((r >> np.uint64(11)).astype(np.float64) * _mc_reference._TWO53) - 1.0
    fast = np.abs(u) < ZIG_RATIO[j]
    assert 0.97 < fast.mean() < 1.0
    np.testing.assert_array_equal(z[fast], (u * ZIG_X[j])[fast])


def test_normals_are_standard_normal():
    z = np.empty((200, 1000))
    _simd.fill_normals(np.uint64(3), np.int64(0), z)
    v = z.ravel()
    assert abs(v.mean()) < 6.0 / np.sqrt(v.size)
    assert abs(v.var() - 1.0) < 6.0 * np.sqrt(2.0 / v.size)
    assert stats.kstest(v, "norm").pvalue > 1e-4
    # the tail beyond the ziggurat's base block (|z| > 3.44) in its normal share
    tail = np.mean(np.abs(v) > 3.442619855899)
    want = 2.0 * stats.norm.sf(3.442619855899)
    assert abs(tail - want) < 6.0 * np.sqrt(want / v.size)


def test_simd_floor_runs():
    # 16 draws x 3 steps x 3 sources: 4 lognormal-like exp (>0) and 2 pow in (0, 1) each
    a = _simd.simd_floor(np.uint64(1), 16, 3, 3)
    assert np.isfinite(a) and a > 16 * 3 * 3 * 2 * 0.0


def test_normal_at_is_the_block_forms_value():
    # the kernel's per-draw setup reads normal i alone; its steps read it in lanes
    keys = np.array([_simd.stream_key(np.uint64(5), d, 0) for d in range(_simd.BLOCK)], dtype=np.uint64)
    blk, flag = np.empty(400), np.empty(400, np.int64)
    _simd.normals_at(keys[2], 0, blk, flag)
    lane, lflag = np.empty((1, _simd.BLOCK)), np.empty(_simd.BLOCK, np.int64)
    for i in range(400):
        assert _simd.normal_at(keys[2], i) == blk[i]
        _simd.normals_lanes(_simd.BLOCK, keys, i, lane, 0, lflag)
        assert lane[0, 2] == blk[i]


def test_rejected_candidates_match_the_reference_twin():
    # wedge, tail and the sub-stream's fresh ziggurat: enough normals to hit each path
    seed = np.uint64(2**63 + 12345)
    z = np.empty((16, 4000))
    _simd.fill_normals(seed, np.int64(0), z)
    keys = _mc_reference.stream_keys(int(seed), np.arange(16), 2)
    want = np.stack([_mc_reference.normals(keys, i) for i in range(4000)], axis=1)
    np.testing.assert_array_equal(z, want)
    assert (np.abs(z) > ZIG_X[1]).sum() >= 10  # the tail beyond the base strip was drawn


def test_pow1_matches_numpy_and_is_zero_at_zero():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(1e-12, 1.0, 5000), [1.0, 1e-300]])
    a = rng.uniform(0.05, 3.0, x.size)
    got = np.array([_simd.pow1(xi, ai) for xi, ai in zip(x, a, strict=True)])
    np.testing.assert_allclose(got, x**a, rtol=2e-14, atol=1e-300)
    assert _simd.pow1(0.0, 0.7) == 0.0
