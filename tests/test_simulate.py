"""Monte Carlo engine: closure, determinism, reproducibility, the deterministic limit, scenarios, what-ifs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from kenomill import _mc_kernels as K
from kenomill import _mc_reference as R
from kenomill import calibrate, scenario, simulate
from kenomill.calibration_file import default_calibration
from kenomill.cli import main
from kenomill.errors import ValidationError

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted((ROOT / "scenarios").glob("*.toml"))
CLOSURE_RTOL = 1e-9


@pytest.fixture(scope="module")
def workload():
    return simulate.compile_plan(simulate.reference_workload())


def _small(sc: scenario.Scenario, quarters: int) -> scenario.Scenario:
    """The scenario cut to its first quarters (per-quarter lists cut too)."""
    d = sc.model_dump()
    d["horizon"]["quarters"] = quarters
    n = sc.horizon.quarters

    def cut(x):
        return x[:quarters] if isinstance(x, list) and len(x) == n and not isinstance(x[0], list) else x

    for s in d["sources"].values():
        for k in ("rate_tpd", "blend"):
            s[k] = cut(s[k])
        for el in scenario.GRADES:
            s[el]["mean"] = cut(s[el]["mean"])
    d["mill"]["target_tpd"] = cut(d["mill"]["target_tpd"])
    years = {int(q[:4]) for q in scenario.quarter_range(sc.horizon.start, quarters)}
    d["targets"] = [t for t in d["targets"] if t["year"] in years]
    return scenario.from_dict(d)


# ------------------------------------------------------------------ random numbers
def test_normals_are_standard_normal_and_uniforms_uniform():
    z = np.empty((50, 2000))
    u = np.empty((50, 2000))
    K.fill_random(np.uint64(12345), 0, z, u)
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert stats.kstest(u.ravel(), "uniform").pvalue > 1e-3
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    # the tail beyond the ziggurat's base strip (|z| > 3.44) has its normal share
    share = (np.abs(z) > K.ZIG_R).mean()
    assert share == pytest.approx(2 * stats.norm.sf(K.ZIG_R), rel=0.25)
    # draws are independent streams
    assert abs(np.corrcoef(z[:, :1000].reshape(50, -1))[np.triu_indices(50, 1)]).max() < 0.15


def test_kernel_and_reference_generators_are_bit_identical():
    z1, u1 = np.empty((9, 300)), np.empty((9, 40))
    z2, u2 = np.empty((9, 300)), np.empty((9, 40))
    K.fill_random(np.uint64(2**64 - 1), 17, z1, u1)
    R.fill_random(2**64 - 1, 17, z2, u2)
    np.testing.assert_array_equal(z1, z2)
    np.testing.assert_array_equal(u1, u2)


def test_a_draw_depends_only_on_seed_and_its_index():
    a, ua = np.empty((10, 50)), np.empty((10, 5))
    b, ub = np.empty((4, 50)), np.empty((4, 5))
    K.fill_random(np.uint64(3), 0, a, ua)
    K.fill_random(np.uint64(3), 6, b, ub)
    np.testing.assert_array_equal(a[6:], b)
    c, uc = np.empty((10, 50)), np.empty((10, 5))
    K.fill_random(np.uint64(4), 0, c, uc)
    assert not np.isin(a, c).any()


# ------------------------------------------------------------------ kernel vs reference
def test_kernel_inputs_have_one_specification(workload):
    """The kernel, its NumPy reference and the plan agree with _mc_kernels.INPUTS/OUTPUTS."""
    import inspect

    from numba.core import sigutils

    names = [n for n, _ in K.INPUTS + K.OUTPUTS]
    assert list(K.ARGS) == names
    kernel = getattr(K.simulate, "py_func", K.simulate)
    assert list(inspect.signature(kernel).parameters) == names
    # the reference takes the arguments by position and names them from the same list
    assert R.ARGS is K.ARGS
    assert list(inspect.signature(R.simulate).parameters) == ["args"]
    assert sorted(workload.arrays) == sorted(K.PLAN_INPUTS)
    nz, nu = workload.n_random()
    args = workload.kernel_args(1, 0, 2, daily=True, pre=(np.zeros((2, nz)), np.zeros((2, nu))))
    want, _ = sigutils.normalize_signature(K.SIGNATURE)
    assert len(want) == len(names)
    for name, ty, value in zip(names, want, (*args[0], *args[1]), strict=True):
        assert numba.typeof(value) == ty, f"{name}: {numba.typeof(value)} != {ty}"
    if not numba.config.DISABLE_JIT:
        assert [tuple(s) for s in K.simulate.signatures] == [tuple(want)]


@pytest.mark.kernel
def test_kernel_matches_reference_step_by_step(workload):
    plan = simulate.compile_plan(_small(simulate.reference_workload(), 1))
    got = plan.kernel_args(99, 5, 6, daily=True)
    want = plan.kernel_args(99, 5, 6, daily=True)
    K.simulate(*got[0], *got[1])
    R.simulate(*want[0], *want[1])
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def rate_plan():
    """A shipped scenario with rate uncertainty (mining rates and the mill target), cut to 2 quarters."""
    sc = scenario.load(ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml")
    plan = simulate.compile_plan(_small(sc, 2))
    assert plan.rates is not None
    return plan


def _one_draw_at_a_time(plan, seed, draw0, n):
    """Draws with their own rates the way they ran before the kernel took per-draw rates: one
    kernel call per draw on the plan's arrays with that draw's factors (RateDraws.arrays_for)."""
    from dataclasses import replace

    fs, fm = plan.rates.factors(seed, np.arange(draw0, draw0 + n))
    _, outputs = plan.kernel_args(seed, draw0, n, rates=False)
    for i in range(n):
        one = replace(plan, arrays=plan.rates.arrays_for(plan.arrays, fs[i], float(fm[i])), rates=None)
        inputs, ones = one.kernel_args(seed, draw0 + i, 1)
        K.simulate(*inputs, *ones)
        for out, o1 in zip(outputs, ones, strict=True):
            out[i] = o1[0]
    return outputs


def test_per_draw_rates_in_blocks_equal_one_draw_at_a_time(rate_plan):
    """The kernel's per-draw rate input: blocks and threads give the one-draw-per-call bits."""
    want = _one_draw_at_a_time(rate_plan, 11, 3, 37)
    n0 = numba.get_num_threads()
    try:
        for threads in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            got = simulate.run_chunk(rate_plan, 11, 3, 37, n_threads=threads)
            for g, w in zip(got, want, strict=True):
                np.testing.assert_array_equal(g, w)
    finally:
        numba.set_num_threads(n0)
    # the factors act: the draws' mill rates differ, so do their feeds
    _, mill = rate_plan.draw_rates(11, 3, 37)
    assert np.ptp(mill[:, -1]) > 0.0 and np.ptp(want[0][:, -1, K.F_FEED_T]) > 0.0


def test_per_draw_rates_match_the_reference(rate_plan):
    got = rate_plan.kernel_args(5, 0, 6, daily=True)
    want = rate_plan.kernel_args(5, 0, 6, daily=True)
    assert got[0][K.ARGS.index("draw_supply")].shape[0] == 6
    K.simulate(*got[0], *got[1])
    R.simulate(*want[0], *want[1])
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


def test_pregenerated_numbers_give_identical_results(workload):
    nz, nu = workload.n_random()
    z, u = np.empty((5, nz)), np.empty((5, nu))
    K.fill_random(np.uint64(8), 3, z, u)
    a_in, a_out = workload.kernel_args(8, 3, 5)
    b_in, b_out = workload.kernel_args(8, 3, 5, pre=(z, u))
    K.simulate(*a_in, *a_out)
    K.simulate(*b_in, *b_out)
    for a, b in zip(a_out, b_out, strict=True):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ closure
def test_closure_in_every_draw_and_step(workload):
    inputs, (oq, od, odraw) = workload.kernel_args(2024, 0, 24, daily=True)
    K.simulate(*inputs, oq, od, odraw)
    feed_t = od[..., K.F_FEED_T]
    streams = od[..., K.F_STREAM_T : K.F_STREAM_T + 3]
    scale = np.maximum(feed_t, 1e-300)
    assert (np.abs(streams.sum(-1) - feed_t) <= CLOSURE_RTOL * scale).all()
    metal = od[..., K.F_STREAM_M : K.F_STREAM_M + 9].reshape(*od.shape[:2], 3, 3)
    feed_m = od[..., K.F_FEED_M : K.F_FEED_M + 3]
    assert (np.abs(metal.sum(-2) - feed_m) <= CLOSURE_RTOL * np.maximum(feed_m, 1e-300)).all()
    # every stream non-negative, and no stream carries more of an element than its solids
    tol = 1e-9 * feed_t[..., None]
    assert (streams >= -tol).all()
    assert (metal >= -tol[..., None]).all()
    assert (metal.sum(-1) <= streams + tol).all()
    # feed by source adds up to the feed
    src = od[..., K.F_SRC_T :]
    np.testing.assert_allclose(src.sum(-1), feed_t, rtol=CLOSURE_RTOL, atol=1e-9)
    # the stockpile balance closes for solids and each element over the whole horizon
    init = workload.arrays["stock0"]
    init_m = (init[:, None] * workload.arrays["g_mean"][:, 0, :]).sum(0)
    last = od[:, -1]
    for f_in, f_out, f_div, f_st, f_hd, start in (
        (K.F_MINED_T, K.F_FEED_T, K.F_DIVERTED_T, K.F_STOCK_T, K.F_HOLD_T, init.sum()),
        *(
            (K.F_MINED_M + e, K.F_FEED_M + e, K.F_DIVERTED_M + e, K.F_STOCK_M + e, K.F_HOLD_M + e, init_m[e])
            for e in range(3)
        ),
    ):
        lhs = start + od[..., f_in].sum(1)
        rhs = od[..., f_out].sum(1) + od[..., f_div].sum(1) + last[:, f_st] + last[:, f_hd]
        np.testing.assert_allclose(lhs, rhs, rtol=1e-9)
    # quarterly records are the sums of the steps (flows) and the last step (levels)
    q = workload.arrays["step_q"]
    for i in range(oq.shape[1]):
        steps = od[:, q == i]
        np.testing.assert_allclose(oq[:, i, : K.F_STOCK_T], steps[..., : K.F_STOCK_T].sum(1), rtol=1e-12)
        np.testing.assert_array_equal(
            oq[:, i, K.F_STOCK_T : K.F_SRC_T], steps[:, -1, K.F_STOCK_T : K.F_SRC_T]
        )


def test_reclaimed_ore_has_the_stockpile_grade(workload):
    # the stockpile is one mixed inventory: what the mill takes has the grade of the pile
    # after the day's deliveries, whatever the mix of sources
    inputs, (oq, od, odraw) = workload.kernel_args(5, 0, 4, daily=True)
    K.simulate(*inputs, oq, od, odraw)
    prev_t = np.concatenate([np.full((4, 1), workload.arrays["stock0"].sum()), od[:, :-1, K.F_STOCK_T]], 1)
    init_m = (workload.arrays["stock0"][:, None] * workload.arrays["g_mean"][:, 0, :]).sum(0)
    for e in range(3):
        prev_m = np.concatenate([np.full((4, 1), init_m[e]), od[:, :-1, K.F_STOCK_M + e]], 1)
        pile = (prev_m + od[..., K.F_MINED_M + e]) / (prev_t + od[..., K.F_MINED_T])
        on = od[..., K.F_FEED_T] > 0  # days the mill did not run at all feed nothing
        assert on.mean() > 0.9
        fed = od[..., K.F_FEED_M + e][on] / od[..., K.F_FEED_T][on]
        np.testing.assert_allclose(fed, pile[on], rtol=1e-9)


# ------------------------------------------------------------------ deterministic limit
NO_VARIABILITY = """
name = "no_variability"
description = "Bellekeno at constant grade and rate, no uncertainty"
assumptions = ["everything fixed"]
[horizon]
start = "2012Q1"
quarters = 3
[feed]
mode = "blend"
[sources.bellekeno]
blend = 1.0
ag_gpt = { mean = 822.0576 }
pb_pct = { mean = 10.1447 }
zn_pct = { mean = 5.7759 }
[mill]
target_tpd = [234, 244, 260]
capacity_tpd = 400
availability = 0.92
[uncertainty]
parameters = false
scatter = false
"""


def test_no_variability_equals_the_deterministic_model(tmp_path):
    p = tmp_path / "nv.toml"
    p.write_text(NO_VARIABILITY)
    ds = simulate.simulate(p, draws=3, seed=1)
    # every draw the same
    for v in ("ag_oz", "pb_lb", "zn_lb"):
        assert (ds[v] == ds[v].isel(draw=0)).all()
    days = np.array([91, 91, 92])
    tpd = np.array([234.0, 244, 260])
    feed = pd.DataFrame(
        {
            "period": ds.quarter.values,
            "ore_processed_t": tpd * days,
            "head_ag_gpt": 822.0576,
            "head_pb_pct": 10.1447,
            "head_zn_pct": 5.7759,
            "tpd": tpd,
            "days": days,
            "availability_pct": 92.0,
        }
    )
    pred = calibrate.predict(default_calibration(), feed, n_draws=2)
    sim = ds.isel(draw=0)
    np.testing.assert_allclose(sim.ore_processed_t, tpd * days, rtol=1e-12)
    for v in (
        "ag_oz",
        "pb_lb",
        "zn_lb",
        "rec_ag_pct",
        "rec_pb_pct",
        "rec_zn_pct",
        "pbcon_t",
        "pbcon_ag_gpt",
        "pbcon_pb_pct",
        "zncon_t",
        "zncon_ag_gpt",
        "zncon_zn_pct",
    ):
        np.testing.assert_allclose(sim[v].values, pred[v].values, rtol=1e-9, err_msg=v)


# ------------------------------------------------------------------ the blend
def _blend_scenario(tmp_path, sources: dict[str, tuple[float, float, float, float]]):
    """NO_VARIABILITY with the given sources: name -> (blend share, Ag g/t, Pb %, Zn %)."""
    head = NO_VARIABILITY.split("[sources.bellekeno]")[0]
    tail = "[mill]" + NO_VARIABILITY.split("[mill]")[1]
    body = "".join(
        f"[sources.{n}]\nblend = {b}\nag_gpt = {{ mean = {ag} }}\npb_pct = {{ mean = {pb} }}\n"
        f"zn_pct = {{ mean = {zn} }}\n"
        for n, (b, ag, pb, zn) in sources.items()
    )
    p = tmp_path / "blend.toml"
    p.write_text(head + body + tail)
    return simulate.simulate(p, draws=2, seed=3)


def test_blend_of_identical_sources_is_the_single_source(tmp_path):
    bk = (822.0576, 10.1447, 5.7759)
    one = _blend_scenario(tmp_path, {"a": (1.0, *bk)})
    three = _blend_scenario(tmp_path, {"a": (0.2, *bk), "b": (0.5, *bk), "c": (0.3, *bk)})
    for v in ("ore_processed_t", "ag_oz", "pb_lb", "zn_lb", "pbcon_t", "zncon_t", "tails_t", "metal_t"):
        np.testing.assert_allclose(three[v].values, one[v].values, rtol=1e-12, err_msg=v)


def test_blend_zinc_recovery_is_the_fixed_tail_of_the_blend(tmp_path):
    """A 1.4 % Zn ore below the zinc tail (1.93 %) blended with Bellekeno ore recovers zinc.

    Hand calculation with the packaged calibration (zinc circuit: fixed tail, no rate limit,
    no offsets): R_Zn = (1 - zn_pb) rmax_zn K (1 - tail_zn / f_blend) for the whole blend,
    where f_blend is the blend's zinc grade; milled on its own the 1.4 % ore would give 0.
    """
    from kenomill import recovery

    ds = _blend_scenario(tmp_path, {"bk": (0.5, 822.0576, 10.1447, 5.7759), "lq": (0.5, 1022.5, 2.14, 1.4)})
    p = default_calibration().full()
    ix = recovery.PARAM_INDEX
    assert p[ix["tail_zn"]] > 0.014  # Lucky Queen's zinc grade is below the tail
    f_blend = 0.5 * (5.7759 + 1.4) / 100.0
    k = recovery.mixed_cells(p[ix["ktau_zn"]] / 1.0, recovery.N_CELLS)  # 1 - ~1e-40 whatever q
    want = 100.0 * (1 - p[ix["zn_pb"]]) * p[ix["rmax_zn"]] * k * (1 - p[ix["tail_zn"]] / f_blend)
    np.testing.assert_allclose(ds.head_zn_pct.values, 100 * f_blend, rtol=1e-12)
    np.testing.assert_allclose(ds.rec_zn_pct.values, want, rtol=1e-9)
    # milled on their own, Bellekeno ore would recover 1 - t/f of its zinc and the 1.4 % ore
    # none; but its tails would then assay 1.4 % Zn, below the circuit's fixed tail. In the
    # blend every tonne of tails carries the tail grade, so the blend recovers less zinc in
    # total than the two ores separately: T (f_blend - t) < sum_s T_s max(f_s - t, 0)
    separate = 100.0 * (1 - p[ix["zn_pb"]]) * (1 - p[ix["tail_zn"]] / 0.057759) * 5.7759 / (5.7759 + 1.4)
    assert (ds.rec_zn_pct.values < separate - 5.0).all()
    # and the 1.4 % ore's own zinc is recovered at the blend's rate, not at 0
    lq = np.array([[1022.5e-6, 0.0214, 0.014]])
    split, pull = np.empty((1, 3, 2)), np.empty((1, 2))
    args = (recovery.MODELS["cells_pb_tail_zn"].kind, 1, p[None], lq)
    recovery.respond_rows(*args, np.array([[0.0, 0.0, f_blend]]), np.ones(1), np.zeros((1, 5)), split, pull)
    np.testing.assert_allclose(100 * split[0, 2, 1], want, rtol=1e-9)
    recovery.respond_rows(*args, lq, np.ones(1), np.zeros((1, 5)), split, pull)
    assert split[0, 2, 1] == 0.0


@given(
    n=st.integers(1, 4),
    kind=st.integers(0, 4),
    grade_dep=st.integers(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_blend_response_closes_for_every_stream_and_element(n, kind, grade_dep, seed):
    """Components milled as one blend: every element and the solids close, no stream negative."""
    from kenomill import recovery
    from kenomill._kernels import forward_row

    rng = np.random.default_rng(seed)
    lo = np.array([q.lo for q in recovery.FULL_PARAMS])
    hi = np.array([q.hi for q in recovery.FULL_PARAMS])
    p = np.tile(lo + (hi - lo) * rng.uniform(0, 1, recovery.N_FULL), (n, 1))
    tonnes = rng.uniform(0.0, 500.0, n)
    head = np.stack([rng.uniform(0, 2e-3, n), rng.uniform(0, 0.2, n), rng.uniform(0, 0.15, n)], axis=1)
    blend = (tonnes[:, None] * head).sum(0) / max(tonnes.sum(), 1e-300)
    off = rng.normal(0, 1, (n, recovery.N_OFFSETS))
    split, pull = np.empty((n, 3, 2)), np.empty((n, 2))
    q = np.full(n, rng.uniform(0.3, 3.0))
    recovery.respond_rows(kind, grade_dep, p, head, np.tile(blend, (n, 1)), q, off, split, pull)
    assert ((split >= 0) & (split <= 1)).all() and (split.sum(-1) <= 1 + 1e-12).all()
    out_t, out_m = np.zeros(3), np.zeros((3, 3))
    o_t, o_m = np.empty(3), np.empty((3, 3))
    for i in range(n):
        forward_row(tonnes[i], head[i], split[i], pull[i] * tonnes[i], o_t, o_m)
        out_t += o_t
        out_m += o_m
    feed_m = (tonnes[:, None] * head).sum(0)
    np.testing.assert_allclose(out_t.sum(), tonnes.sum(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out_m.sum(0), feed_m, rtol=1e-12, atol=1e-15)
    assert (out_t >= -1e-9).all() and (out_m >= -1e-12).all()
    assert (out_m.sum(-1) <= out_t + 1e-9).all()  # no stream carries more metal than solids


# ------------------------------------------------------------------ reproducibility
def _run(plan, **kw):
    return simulate.run(plan, 40, seed=77, **kw)


def _identical(a: xr.Dataset, b: xr.Dataset):
    for v in a.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)


def test_bit_identical_across_thread_counts_and_chunk_sizes(workload):
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _run(workload, chunk_size=40)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = _run(workload, chunk_size=40)
    finally:
        numba.set_num_threads(before)
    _identical(one, two)
    _identical(one, _run(workload, chunk_size=7))
    _identical(one, _run(workload, chunk_size=1))


def test_bit_identical_on_a_dask_local_cluster(workload):
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            on_dask = _run(workload, chunk_size=9, scheduler=client)
    _identical(_run(workload), on_dask)


def test_an_unreachable_scheduler_is_one_error(workload, monkeypatch):
    monkeypatch.setattr(simulate, "SCHEDULER_TIMEOUT", "0.5s")
    with pytest.raises(ValidationError, match=r"--scheduler: could not reach 'tcp://127\.0\.0\.1:1'"):
        simulate.run(workload, 2, scheduler="tcp://127.0.0.1:1")


def test_different_seeds_differ(workload):
    a = simulate.run(workload, 5, seed=1)
    b = simulate.run(workload, 5, seed=2)
    assert not np.array_equal(a.ag_oz.values, b.ag_oz.values)


# ------------------------------------------------------------------ statistics of the inputs
@pytest.mark.parametrize(("availability", "mttr_h"), [(0.92, 8.0), (0.8, 4.0), (0.97, 24.0)])
def test_downtime_gives_the_stated_availability(availability, mttr_h):
    # MTBF = A / (1 - A) * MTTR: 16 h for (0.8, 4 h), shorter than a daily step, which
    # needs several failures per step (one per step gave 0.851)
    sc = scenario.load(ROOT / "scenarios" / "bellekeno_only.toml")
    d = sc.model_dump()
    d["mill"]["mean_repair_h"] = mttr_h
    d["mill"]["availability_uncertainty"] = 0.0
    plan = simulate.compile_plan(_small(scenario.from_dict(d), 4), availability=availability)
    a = simulate.run(plan, 300, seed=3)
    realised = float(a.operating_h.sum() / (a.days.sum() * 24))
    assert realised == pytest.approx(availability, abs=0.003)
    # and it varies from quarter to quarter
    assert float(a.availability.std()) > 0.003


def test_grade_means_are_kept_and_autocorrelation_is_as_stated(tmp_path):
    text = NO_VARIABILITY.replace(
        "ag_gpt = { mean = 822.0576 }", "ag_gpt = { mean = 822.0576, cv = 0.3, autocorrelation = 0.9 }"
    )
    sc = scenario.from_dict(tomllib.loads(text))
    plan = simulate.compile_plan(sc)
    inputs, (oq, od, odraw) = plan.kernel_args(11, 0, 200, daily=True)
    K.simulate(*inputs, oq, od, odraw)
    g = od[..., K.F_FEED_M] / od[..., K.F_FEED_T] * 1e6
    assert g.mean() == pytest.approx(822.0576, rel=0.02)
    assert (g.std(1) / g.mean(1)).mean() == pytest.approx(0.3, rel=0.1)
    lg = np.log(g) - np.log(g).mean(1, keepdims=True)
    r1 = (lg[:, 1:] * lg[:, :-1]).sum() / (lg * lg).sum()
    assert r1 == pytest.approx(0.9, abs=0.03)


# ------------------------------------------------------------------ scenarios and results
@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_runs(path):
    sc = scenario.load(path)
    ds = simulate.simulate(sc, draws=6, seed=0)
    assert ds.sizes == {
        "draw": 6,
        "quarter": sc.horizon.quarters,
        "source": len(sc.sources),
        "stream": 4,
        "element": 3,
        "offset": 5,
        "parameter": len(default_calibration().param_names),
    }
    for v in ("ag_oz", "pb_lb", "zn_lb", "ore_processed_t"):
        assert np.isfinite(ds[v]).all() and (ds[v] > 0).all(), v
        assert ds[v].attrs["units"]
    yr = simulate.annual(ds)
    # a scenario that starts after the reported quarters counts them in its years' totals
    reported = 0.0
    if sc.horizon.reported_before:
        from kenomill.data import reported_periods

        reported = float(reported_periods().ag_oz.sel(period=sc.horizon.reported_before).sum())
    np.testing.assert_allclose(yr.ag_oz.sum("year"), ds.ag_oz.sum("quarter") + reported, rtol=1e-12)
    probs = simulate.target_probabilities(ds, sc)
    assert ((probs.probability >= 0) & (probs.probability <= 1)).all()
    assert not simulate.drivers(ds, "ag_oz").empty


def test_permitting_hold_keeps_new_ore_out_of_the_mill_until_2013():
    sc = _small(scenario.load(ROOT / "scenarios" / "permitting_delay_2013.toml"), 5)
    ds = simulate.simulate(sc, draws=8, seed=4)
    new = ds.feed_by_source_t.sel(source=["onek", "lucky_queen"]).sum("source")
    # the scenario starts after the reported 2012Q1-Q2 (Alexco news release 16 Jul 2012)
    assert (new.sel(quarter=["2012Q3", "2012Q4"]) == 0).all()
    assert (ds.held_t.sel(quarter="2012Q4") > 0).all()
    assert (ds.held_t.sel(quarter="2013Q1") == 0).all()
    assert (new.sel(quarter="2013Q1") > 0).all()
    no_hold = simulate.simulate(
        _small(scenario.load(ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml"), 4), 8
    )
    assert (no_hold.feed_by_source_t.sel(source="onek", quarter="2012Q4") > 0).all()


def test_summaries_are_the_percentiles_of_the_draws(workload):
    ds = simulate.run(workload, 30, seed=5)
    sm = simulate.summarize(ds, ["ag_oz"])
    x = ds.ag_oz.values
    np.testing.assert_allclose(sm.ag_oz.sel(stat="p10"), np.percentile(x, 10, axis=0))
    np.testing.assert_allclose(sm.ag_oz.sel(stat="p90"), np.percentile(x, 90, axis=0))
    np.testing.assert_allclose(sm.ag_oz.sel(stat="mean"), x.mean(0))
    assert sm.ag_oz.attrs["units"] == "troy_oz"


def test_target_probability_counts_draws():
    sc = scenario.load(ROOT / "scenarios" / "bellekeno_only.toml")
    ds = simulate.simulate(_small(sc, 4), draws=20, seed=6)
    yr = simulate.annual(ds).sel(year=2012)
    probs = simulate.target_probabilities(ds, sc.targets).set_index("target")
    ag = yr.ag_oz.values
    want = ((ag >= 2.2e6) & (ag <= 2.5e6)).mean()
    assert probs.loc["2012 guidance: 2.2-2.5 Moz Ag", "probability"] == want
    assert (
        probs.loc["2012 guidance: more than 7.5 Mlb Zn", "probability"] == (yr.zn_lb.values >= 7.5e6).mean()
    )


def test_run_refuses_bad_arguments(workload):
    with pytest.raises(ValidationError, match=r"--draws: found 0; allowed: >= 1"):
        simulate.run(workload, 0)
    with pytest.raises(ValidationError, match=r"--seed: found -1"):
        simulate.run(workload, 2, seed=-1)
    with pytest.raises(ValidationError, match=r"--tpd: found '200:100:25'"):
        simulate.parse_range("200:100:25", "--tpd")
    np.testing.assert_allclose(simulate.parse_range("200:400:25", "--tpd"), np.arange(200, 401, 25))
    assert simulate.parse_range("0.85:0.98:0.01", "a").size == 14


# ------------------------------------------------------------------ what-ifs
def test_whatif_trades_recovery_for_tonnes():
    sc = _small(scenario.load(ROOT / "scenarios" / "bellekeno_only.toml"), 4)
    wi = simulate.whatif(sc, [200, 300, 400], [0.85, 0.97], draws=16, seed=1)
    p50 = wi.sel(stat="p50")
    # faster: more ore and more metal, lower recovery (shorter residence time)
    assert (p50.ore_processed_t.diff("tpd") > 0).all()
    assert (p50.pb_lb.diff("tpd") > 0).all()
    assert (p50.rec_pb_pct.diff("tpd") < 0).all()
    # same calendar tonnes at higher availability: slower while running, better recovery
    assert (p50.rec_pb_pct.diff("availability") > 0).all()
    # (realised availability is random around the stated one, hence the tolerance)
    np.testing.assert_allclose(
        p50.ore_processed_t.sel(availability=0.85), p50.ore_processed_t.sel(availability=0.97), rtol=0.02
    )
    np.testing.assert_allclose(
        p50.operating_tpd.sel(availability=0.85), np.array([200, 300, 400]) / 0.85, rtol=1e-9
    )
    assert (wi.sel(stat="p10").ag_oz <= wi.sel(stat="p90").ag_oz).all()
    with pytest.raises(ValidationError, match=r"--availability: found \[1\.5\]"):
        simulate.whatif(sc, [200], [1.5])


# ------------------------------------------------------------------ command line
def test_cli_simulate_writes_netcdf_with_units_and_plots(tmp_path):
    sc = _small(scenario.load(ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml"), 4)
    text = (ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml").read_text()
    p = tmp_path / "s.toml"
    p.write_text(text)
    out = tmp_path / "r.nc"
    res = CliRunner().invoke(
        main, ["simulate", str(p), "--draws", "12", "--seed", "3", "--out", str(out), "--plot"]
    )
    assert res.exit_code == 0, res.output
    assert "P50" in res.output and "2012 guidance" in res.output and "What drives the spread" in res.output
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert ds.ag_oz.attrs["units"] == "troy_oz"
        assert ds.attrs["seed"] == 3 and ds.sizes["draw"] == 12
        again = simulate.simulate(p, draws=12, seed=3)
        np.testing.assert_array_equal(ds.ag_oz.values, again.ag_oz.values)
    assert (tmp_path / "r_fan.png").stat().st_size > 10_000
    assert (tmp_path / "r_hist.png").stat().st_size > 10_000
    assert sc.name == "onek_lucky_queen_2012q4"


def test_cli_whatif_small_grid(tmp_path):
    out = tmp_path / "w.csv"
    res = CliRunner().invoke(
        main,
        [
            "whatif",
            "--tpd",
            "250:300:50",
            "--availability",
            "0.9,0.95",
            "--draws",
            "8",
            "--out",
            str(out),
            "--plot",
        ],
    )
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert len(df) == 2 * 2 * 4 and {"tpd", "availability", "stat", "ag_oz", "rec_ag_pct"} <= set(df.columns)
    assert (tmp_path / "w_surface.png").exists()


def test_cli_refuses_a_bad_out_before_any_work(tmp_path):
    res = CliRunner().invoke(main, ["simulate", str(SCENARIOS[0]), "--out", str(tmp_path / "x.txt")])
    assert res.exit_code == 2
    assert "--out: found" in res.output and "x.txt" in res.output


def test_long_run_availability_is_drawn_per_draw():
    sc = scenario.load(ROOT / "scenarios" / "bellekeno_only.toml")
    ds = simulate.simulate(_small(sc, 4), draws=400, seed=12)
    a = ds.availability_drawn.values
    assert a.mean() == pytest.approx(0.92, abs=0.004)
    assert a.std() == pytest.approx(sc.mill.availability_uncertainty, rel=0.15)
    realised = (ds.operating_h.sum("quarter") / (ds.days.sum("quarter") * 24)).values
    # a draw's realised availability follows its drawn long-run value
    assert np.corrcoef(a, realised)[0, 1] > 0.7


def test_shift_steps_give_the_same_mill_as_daily_steps():
    sc = _small(scenario.load(ROOT / "scenarios" / "bellekeno_only.toml"), 2)
    d = sc.model_dump()
    d["horizon"]["step"] = "shift"
    d["horizon"]["shifts_per_day"] = 3
    shift = scenario.from_dict(d)
    a = simulate.simulate(sc, draws=60, seed=2)
    b = simulate.simulate(shift, draws=60, seed=2, daily=True)
    assert b.sizes["step"] == 3 * (92 + 92)  # 2012Q3 and 2012Q4
    assert b.step_ore_processed_t.attrs["units"] == "t"
    np.testing.assert_allclose(
        b.step_ore_processed_t.sum("step"), b.ore_processed_t.sum("quarter"), rtol=1e-12
    )
    # the same mill and mines, a finer clock: the same tonnes and recoveries on average
    for v, rel in (("ore_processed_t", 0.01), ("rec_pb_pct", 0.01), ("ag_oz", 0.03)):
        assert float(b[v].mean()) == pytest.approx(float(a[v].mean()), rel=rel), v
    # AR(1) per day 0.9 becomes 0.9 ** (1/3) per shift
    np.testing.assert_allclose(simulate.compile_plan(shift).arrays["g_phi"][0], 0.9 ** (1 / 3))


def test_bellekeno_grade_variability_reproduces_the_reported_quarters():
    # the scenario's assumption: daily AR(1) variability chosen so that quarterly means vary
    # within a run as the six reported quarters did (CV 8.6 % Ag, 9.9 % Pb, 12.9 % Zn)
    from kenomill.data import reported_periods

    rep = reported_periods("quarter")
    sc = scenario.load(ROOT / "scenarios" / "bellekeno_only.toml")
    ds = simulate.simulate(sc, draws=300, seed=8)
    for v in ("head_ag_gpt", "head_pb_pct", "head_zn_pct"):
        r = rep[v].values
        x = ds[v].values
        sim_cv = (x.std(1, ddof=1) / x.mean(1)).mean()
        assert sim_cv == pytest.approx(r.std(ddof=1) / r.mean(), rel=0.15), v


def test_spread_attribution_finds_the_only_source_of_spread(tmp_path):
    # only the mean-grade uncertainty is on: it must carry all the variance, the rest none
    text = NO_VARIABILITY.replace(
        "ag_gpt = { mean = 822.0576 }", "ag_gpt = { mean = 822.0576, mean_uncertainty = 0.1 }"
    )
    text = text.replace("quarters = 3", "quarters = 4").replace("[234, 244, 260]", "250")
    plan = simulate.compile_plan(scenario.from_dict(tomllib.loads(text)))
    df = simulate.spread_attribution(plan, draws=200, seed=1).set_index("group")
    assert list(df.index) == ["mean grades (resource / plan)"]
    assert df.loc["mean grades (resource / plan)", "ag_oz_share"] == pytest.approx(1.0)
    assert np.isnan(df.loc["mean grades (resource / plan)", "pb_lb_share"])  # Pb does not vary at all
    full = scenario.load(ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml")
    df = simulate.spread_attribution(simulate.compile_plan(_small(full, 4)), draws=64, seed=2).set_index(
        "group"
    )
    assert set(df.index) == set(simulate.UNCERTAINTY_GROUPS)
    assert (df.ag_oz_share < 1.0 + 1e-12).all()


def test_quarterly_scatter_is_the_calibrations_posterior_predictive():
    """A quarter's offsets of a draw that took posterior draw s: offset_mean[s] + sd[s] * chol[s] @ z."""
    cal = default_calibration()
    post = cal.posterior_draws()
    plan = simulate.compile_plan(_small(simulate.reference_workload(), 2))
    ds = simulate.run(plan, 3000, seed=21)
    s = ds.posterior_draw.values
    off = ds.scatter_offset.values  # (draw, quarter, offset)
    # undo each draw's posterior mean, SD and correlation: independent standard normals
    z = (off - post["offset_mean"][s][:, None, :]) / post["scatter_sd"][s][:, None, :]
    z = np.linalg.solve(post["scatter_chol"][s][:, None], z[..., None])[..., 0]
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3
    assert np.abs(np.corrcoef(z.reshape(-1, 5).T) - np.eye(5)).max() < 0.05
    # the marginal SD is the posterior predictive's (a mixture over the posterior draws)
    want = np.sqrt((post["scatter_sd"] ** 2).mean(0) + post["offset_mean"].var(0))
    np.testing.assert_allclose(off.std(axis=(0, 1)), want, rtol=0.1)
    if np.ptp(post["scatter_sd"][:, 0]) > 0:
        # the quarters of one draw share its posterior scatter: offsets correlated in size
        assert stats.spearmanr(np.abs(off[:, 0, 0]), np.abs(off[:, 1, 0])).statistic > 0.03


def test_parameter_draws_are_the_posterior_draws(workload):
    """Each draw's parameters are posterior draw floor(U S), U its first uniform (contract 2)."""
    post = default_calibration().posterior_draws()
    n_post = post["theta"].shape[0]
    n = 64
    nz, nu = workload.n_random()
    z, u = np.empty((n, nz)), np.empty((n, nu))
    K.fill_random(np.uint64(31), 0, z, u)
    inputs, outputs = workload.kernel_args(31, 0, n, pre=(z, u))
    K.simulate(*inputs, *outputs)
    k = post["theta"].shape[1]
    s = np.floor(u[:, 0] * n_post).astype(int)
    np.testing.assert_array_equal(outputs[2][:, :k], post["theta"][s])
    np.testing.assert_array_equal(outputs[2][:, k + 9 * len(workload.sources)], s)
    # over many draws every posterior draw is equally likely
    ds = simulate.run(simulate.compile_plan(_small(simulate.reference_workload(), 1)), 4000, seed=5)
    counts = np.bincount(ds.posterior_draw.values, minlength=n_post)
    assert stats.chisquare(counts).pvalue > 1e-3


# ------------------------------------------------------------------ properties


@given(
    mode=st.sampled_from(["rates", "blend"]),
    rate=st.floats(0.0, 500.0),
    cv=st.floats(0.0, 1.0),
    phi=st.floats(0.0, 0.99),
    target=st.floats(50.0, 600.0),
    capacity=st.floats(50.0, 700.0),
    availability=st.floats(0.3, 1.0),
    repair=st.sampled_from([0.0, 2.0, 24.0]),
    stock_cap=st.sampled_from([0.0, 500.0, 1e6]),
    hold=st.booleans(),
    seed=st.integers(0, 2**64 - 1),
)
def test_closure_and_bounds_hold_for_any_valid_scenario(
    mode, rate, cv, phi, target, capacity, availability, repair, stock_cap, hold, seed
):
    g = {"cv": cv, "autocorrelation": phi}
    src = {
        "a": {"ag_gpt": {"mean": 800, **g}, "pb_pct": {"mean": 10, **g}, "zn_pct": {"mean": 6, **g}},
        "b": {"grades_from": "deposit:Onek:Indicated", "start_delay_days": [0, 30], "ag_gpt": g},
    }
    for s in src.values():
        if mode == "rates":
            s.update(rate_tpd=rate, rate_cv=cv)
        else:
            s["blend"] = 0.5
    if hold:
        src["b"]["hold_until"] = "2012Q2"
    sc = scenario.from_dict(
        {
            "name": "p",
            "description": "property",
            "assumptions": ["random"],
            "horizon": {"start": "2012Q1", "quarters": 2},
            "feed": {"mode": mode},
            "sources": src,
            "stockpile": {"initial_t": {"a": 100.0}, "capacity_t": stock_cap},
            "mill": {
                "target_tpd": target,
                "capacity_tpd": capacity,
                "availability": availability,
                "mean_repair_h": repair,
            },
        }
    )
    plan = simulate.compile_plan(sc)
    inputs, (oq, od, odraw) = plan.kernel_args(seed, 0, 3, daily=True)
    K.simulate(*inputs, oq, od, odraw)
    assert np.isfinite(od).all()
    feed = od[..., K.F_FEED_T]
    streams = od[..., K.F_STREAM_T : K.F_STREAM_T + 3]
    tol = 1e-9 * np.maximum(feed, 1.0)
    assert (np.abs(streams.sum(-1) - feed) <= tol).all()
    assert (streams >= -tol[..., None]).all()
    assert (od[..., K.F_UP_H] >= 0).all() and (od[..., K.F_UP_H] <= 24.0 + 1e-9).all()
    # the mill never feeds faster than its rate while running, nor above its capacity
    rate_h = plan.arrays["mill_rate"][plan.arrays["step_q"]]
    assert (feed <= rate_h * od[..., K.F_UP_H] * (1 + 1e-12) + 1e-9).all()
    assert (rate_h <= capacity / 24.0 * (1 + 1e-12)).all()
    assert (od[..., K.F_STOCK_T] <= stock_cap * (1 + 1e-12) + 1e-9).all()
    if hold:
        q2 = plan.arrays["step_q"] == 1
        assert (od[:, ~q2, K.F_SRC_T + 1] == 0).all()


def test_cli_whatif_without_the_repository_asks_for_a_scenario(monkeypatch, tmp_path):
    import kenomill.cli.simulate as cli_sim

    monkeypatch.setattr(cli_sim, "DEFAULT_WHATIF_SCENARIO", tmp_path / "bellekeno_only.toml")
    res = CliRunner().invoke(main, ["whatif", "--draws", "2"])
    assert res.exit_code == 2
    assert "--scenario: none given and the default" in res.output and "give --scenario FILE" in res.output
