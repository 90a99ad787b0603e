"""Recovery curves and the mill response: hand values, a NumPy reference, invariants, registry."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kenomill import calibrate, recovery
from kenomill._registry import KERNELS
from kenomill.errors import ValidationError

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")

pytestmark = pytest.mark.kernel


# ------------------------------------------------------------------ curves, by hand
def test_plug_flow_hand_value():
    assert recovery.plug_flow(1.0) == pytest.approx(1.0 - math.exp(-1.0), rel=1e-15)
    assert recovery.plug_flow(0.0) == 0.0


def test_mixed_cells_one_cell_and_many_cells():
    # one perfectly mixed cell: R = k tau / (1 + k tau)
    assert recovery.mixed_cells(2.0, 1.0) == pytest.approx(2.0 / 3.0, rel=1e-14)
    # many cells in series tend to plug flow
    assert recovery.mixed_cells(2.0, 1e6) == pytest.approx(1.0 - math.exp(-2.0), rel=1e-5)
    # eight cells, by hand: 1 - (1 + 2/8)^-8 = 1 - 1.25^-8
    assert recovery.mixed_cells(2.0, 8.0) == pytest.approx(1.0 - 1.25**-8, rel=1e-14)


def test_klimpel_hand_value_and_zero():
    # 1 - (1 - e^-1) / 1 = e^-1
    assert recovery.klimpel(1.0) == pytest.approx(math.exp(-1.0), rel=1e-14)
    assert recovery.klimpel(0.0) == 0.0


def test_two_component_limits():
    assert recovery.two_component(1.5, 1.0, 0.1) == pytest.approx(recovery.plug_flow(1.5), rel=1e-15)
    # all slow: plug flow at the slow rate
    assert recovery.two_component(1.5, 0.0, 0.1) == pytest.approx(recovery.plug_flow(0.15), rel=1e-15)
    # 0.7 e-fast + 0.3 slow, by hand
    want = 0.7 * (1 - math.exp(-3.0)) + 0.3 * (1 - math.exp(-0.3))
    assert recovery.two_component(3.0, 0.7, 0.1) == pytest.approx(want, rel=1e-14)


def test_fixed_tail_hand_value():
    # head 10 %, tail 1 %, concentrate 70 %: (1 - 0.1) / (1 - 1/70)
    assert recovery.fixed_tail(0.10, 0.01, 0.70) == pytest.approx(0.9 / (1 - 1 / 70), rel=1e-14)
    assert recovery.fixed_tail(0.005, 0.01, 0.70) == 0.0  # head below the tail: nothing floats


def test_kinetic_dispatch():
    assert recovery.kinetic(recovery.KIN_NONE, 0.3, 0.5, 0.1) == 1.0
    assert recovery.kinetic(recovery.KIN_PLUG, 0.3, 0.5, 0.1) == recovery.plug_flow(0.3)
    assert recovery.kinetic(recovery.KIN_CELLS, 0.3, 0.5, 0.1) == recovery.mixed_cells(0.3, recovery.N_CELLS)
    assert recovery.kinetic(recovery.KIN_KLIMPEL, 0.3, 0.5, 0.1) == recovery.klimpel(0.3)
    assert recovery.kinetic(recovery.KIN_TWO, 0.3, 0.5, 0.1) == recovery.two_component(0.3, 0.5, 0.1)


# ---------------------------------------------------------- response vs the reference
# the NumPy reference of the mill response is the registry's (kenomill._reference.respond),
# the one the benchmarks use too
RESPONSE = KERNELS["respond"]


def respond_reference(kind, grade_dep, p, head, q, off):
    split, pull = np.empty((1, 3, 2)), np.empty((1, 2))
    h = np.asarray(head, dtype=float)[None]
    RESPONSE.reference(kind, grade_dep, p[None], h, h, np.array([q]), np.asarray(off)[None], split, pull)
    return split[0], pull[0]


def test_parameters_and_offsets_are_addressed_by_name():
    """Every I_<NAME> / O_<NAME> constant the numba code reads is the table's position."""
    for prm in recovery.FULL_PARAMS:
        assert getattr(recovery, f"I_{prm.name.upper()}") == recovery.PARAM_INDEX[prm.name]
    for i, name in enumerate(recovery.OFFSET_NAMES):
        assert getattr(recovery, f"O_{name.upper()}") == i


@pytest.mark.parametrize("kind", range(5))
@pytest.mark.parametrize("grade_dep", [0, 1])
def test_response_halves_match_reference_with_extreme_offsets(kind, grade_dep):
    """The hoisted logit shift (exp(-off) per quarter) is the log/exp form to rounding, incl. 0 and 1.

    And recovery.respond (the calibration's entry) is the two halves: the same numbers.
    """
    rng = np.random.default_rng(31 + kind)
    n = 200
    lo = np.array([q.lo for q in recovery.FULL_PARAMS])
    hi = np.array([q.hi for q in recovery.FULL_PARAMS])
    p = lo + (hi - lo) * rng.uniform(0.0, 1.0, (n, recovery.N_FULL))
    head = np.stack([rng.uniform(0, 2e-3, n), rng.uniform(0.0, 0.2, n), rng.uniform(0.0, 0.12, n)], axis=1)
    head[:5] = 0.0  # a source with no lead or zinc
    q = rng.uniform(0.3, 3.0, n)
    off = rng.normal(0.0, 1.0, (n, recovery.N_OFFSETS))
    off[::4] = 0.0
    if not JIT_DISABLED:  # as plain Python, math.exp(800) overflows
        off[5:10, :3] = 800.0  # exp(-off) underflows: recoveries at 1
        off[10:15, :3] = -800.0  # exp(-off) overflows: recoveries at 0
    split, pull = np.empty((n, 3, 2)), np.empty((n, 2))
    recovery.respond_rows(kind, grade_dep, p, head, head, q, off, split, pull)
    want_s, want_p = np.empty((n, 3, 2)), np.empty((n, 2))
    RESPONSE.reference(kind, grade_dep, p, head, head, q, off, want_s, want_p)
    np.testing.assert_allclose(split, want_s, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pull, want_p, rtol=1e-12, atol=1e-15)
    one_s, one_p = np.empty((3, 2)), np.empty(2)
    for i in range(0, n, 17):
        recovery.respond(kind, grade_dep, p[i], head[i], q[i], off[i], one_s, one_p)
        np.testing.assert_array_equal(one_s, split[i])
        np.testing.assert_array_equal(one_p, pull[i])


def _params(draw_unit):
    lo = np.array([p.lo for p in recovery.FULL_PARAMS])
    hi = np.array([p.hi for p in recovery.FULL_PARAMS])
    return lo + np.asarray(draw_unit) * (hi - lo)


unit = st.floats(0.01, 0.99)
feeds = st.tuples(st.floats(100e-6, 3000e-6), st.floats(0.01, 0.3), st.floats(0.01, 0.2))


@given(
    kind=st.sampled_from(list(recovery.KINETIC_KINDS.values())),
    grade_dep=st.sampled_from([0, 1]),
    u=st.lists(unit, min_size=recovery.N_FULL, max_size=recovery.N_FULL),
    head=feeds,
    q=st.floats(0.3, 3.0),
    off=st.lists(st.floats(-1.0, 1.0), min_size=recovery.N_OFFSETS, max_size=recovery.N_OFFSETS),
)
def test_respond_matches_reference_and_is_physical(kind, grade_dep, u, head, q, off):
    p = _params(u)
    head = np.array(head)
    off = np.array(off)
    split, pull = np.empty((3, 2)), np.empty(2)
    recovery.respond(kind, grade_dep, p, head, q, off, split, pull)
    ref_split, ref_pull = respond_reference(kind, grade_dep, p, head, q, off)
    np.testing.assert_allclose(split, ref_split, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pull, ref_pull, rtol=1e-12, atol=1e-15)
    # invariants: shares in [0, 1], no element over-recovered, concentrates lighter than feed
    assert (split >= 0).all() and (split <= 1).all()
    assert (split.sum(1) <= 1 + 1e-12).all()
    assert (pull >= 0).all() and pull.sum() <= 1 + 1e-12


def test_throughput_enters_only_through_residence_time():
    """Recoveries at q_ratio 2 with k tau equal those at q_ratio 1 with k tau / 2."""
    spec = recovery.get_model("plug_flow")
    p = spec.base_full()
    p2 = p.copy()
    p2[recovery.PARAM_INDEX["ktau_pb"]] /= 2
    p2[recovery.PARAM_INDEX["ktau_zn"]] /= 2
    head = np.array([[800e-6, 0.10, 0.06]])
    s_fast, _ = recovery.respond_many(spec, p, head, 2.0)
    s_slow, _ = recovery.respond_many(spec, p2, head, 1.0)
    np.testing.assert_allclose(s_fast[:, 1:, :], s_slow[:, 1:, :], rtol=1e-14)
    # and higher throughput means lower lead recovery
    s_ref, _ = recovery.respond_many(spec, p, head, 1.0)
    assert s_fast[0, 1, 0] < s_ref[0, 1, 0]


def test_grade_tradeoff_more_gangue_lower_grade():
    """A longer residence time floats more gangue: more mass pull per unit of lead recovered."""
    spec = recovery.get_model("plug_flow")
    p = spec.base_full()
    head = np.array([[800e-6, 0.10, 0.06]])
    s1, pull1 = recovery.respond_many(spec, p, head, 0.5)
    s2, pull2 = recovery.respond_many(spec, p, head, 2.0)
    grade1 = head[0, 1] * s1[0, 1, 0] / pull1[0, 0]
    grade2 = head[0, 1] * s2[0, 1, 0] / pull2[0, 0]
    assert s1[0, 1, 0] > s2[0, 1, 0]  # slower: higher recovery
    assert grade1 < grade2  # ... at a lower concentrate grade


# ------------------------------------------------------------------------ registry
def test_every_model_is_documented_and_within_bounds():
    for name, spec in recovery.MODELS.items():
        assert spec.name == name and spec.doc and spec.reference
        lo, hi = spec.bounds()
        d = spec.defaults()
        assert ((lo <= d) & (d <= hi)).all(), name
        assert set(spec.free) <= set(recovery.PARAM_INDEX)
        for fixed_name, _ in spec.fixed:
            assert fixed_name not in spec.free
    for prm in recovery.FULL_PARAMS:
        assert prm.lo <= prm.default <= prm.hi and prm.units and prm.doc


def test_required_model_families_present():
    kinds = {(m.kind, m.grade_dep) for m in recovery.MODELS.values()}
    for kind in recovery.KINETIC_KINDS.values():
        assert any(k == kind for k, _ in kinds)
    assert (recovery.KIN_NONE, 0) in kinds  # constant
    assert (recovery.KIN_NONE, 1) in kinds  # fixed tail
    assert any(k != recovery.KIN_NONE and g == 1 for k, g in kinds)  # combinations


def test_combined_model_switches_mechanisms_per_circuit():
    spec = recovery.get_model("cells_pb_tail_zn")
    base = spec.base_full()
    assert base[recovery.PARAM_INDEX["tail_pb"]] == 0.0
    head = np.array([[800e-6, 0.10, 0.06]])
    theta = spec.defaults()
    p = spec.full(theta)
    s1, _ = recovery.respond_many(spec, p, head, 0.8)
    s2, _ = recovery.respond_many(spec, p, head, 1.6)
    assert s1[0, 1, 0] > s2[0, 1, 0]  # lead: throughput dependent
    zc1 = s1[0, 2, 1] / (1 - base[recovery.PARAM_INDEX["zn_pb"]])
    zc2 = s2[0, 2, 1] / (1 - base[recovery.PARAM_INDEX["zn_pb"]])
    assert zc1 == pytest.approx(zc2, rel=1e-6)  # zinc: not throughput dependent
    tail = theta[spec.free.index("tail_zn")]
    rmax = theta[spec.free.index("rmax_zn")]
    assert zc1 == pytest.approx(rmax * (1 - tail / 0.06), rel=1e-5)  # fixed tail in zinc


def test_unknown_model_lists_valid_ones():
    with pytest.raises(ValidationError, match=r"model: found 'nope'; allowed: constant, fixed_tail"):
        recovery.get_model("nope")


def test_full_rejects_wrong_theta_shape():
    with pytest.raises(ValidationError, match=r"theta: found shape \(2,\); model 'constant' has 6"):
        recovery.get_model("constant").full([0.9, 0.6])


def test_outputs_rows_close_exactly():
    spec = recovery.get_model("cells_pb_tail_zn")
    n = 5
    rng = np.random.default_rng(1)
    head = np.stack([rng.uniform(5e-4, 1e-3, n), rng.uniform(0.05, 0.15, n), rng.uniform(0.03, 0.09, n)], 1)
    ore = rng.uniform(1e4, 3e4, n)
    p = np.tile(spec.base_full(), (n, 1))
    out = np.empty((n, len(recovery.ALL_OUTPUTS)))
    q = rng.uniform(0.5, 2, n)
    recovery.outputs_rows(spec.kind, spec.grade_dep, p, ore, head, q, np.zeros((n, 5)), out)
    ix = {k: i for i, k in enumerate(recovery.ALL_OUTPUTS)}
    t = {c: out[:, ix[f"{c}_t"]] for c in ("pbcon", "zncon", "tails")}
    np.testing.assert_allclose(t["pbcon"] + t["zncon"] + t["tails"], ore, rtol=1e-12)
    # the kernel returns base units: grades as mass fractions, contained metal in tonnes.
    # Silver: every stream's grade is an output, so the element balance can be closed here
    ag = sum(t[c] * out[:, ix[f"{c}_ag_gpt"]] for c in t)
    np.testing.assert_allclose(ag, ore * head[:, 0], rtol=1e-12)
    # contained silver = silver in both concentrates [t]
    ag_con = t["pbcon"] * out[:, ix["pbcon_ag_gpt"]] + t["zncon"] * out[:, ix["zncon_ag_gpt"]]
    np.testing.assert_allclose(out[:, ix["ag_oz"]], ag_con, rtol=1e-12)
    # and the same rows in reported units through calibrate.mill_outputs: troy ounces
    # (31.1034768 g each), g/t, % and pounds (2204.62262 lb/t), the factors written out here
    rep = calibrate.mill_outputs(spec, p, ore, head, q, np.zeros((n, 5)))
    np.testing.assert_allclose(rep[:, ix["ag_oz"]], ag_con * 1e6 / 31.1034768, rtol=1e-13)
    np.testing.assert_allclose(rep[:, ix["pbcon_ag_gpt"]], out[:, ix["pbcon_ag_gpt"]] * 1e6, rtol=1e-13)
    np.testing.assert_allclose(rep[:, ix["rec_pb_pct"]], out[:, ix["rec_pb_pct"]] * 100, rtol=1e-13)
    np.testing.assert_allclose(rep[:, ix["pb_lb"]], out[:, ix["pb_lb"]] * 2204.62262, rtol=1e-13)
    np.testing.assert_array_equal(rep[:, ix["pbcon_t"]], t["pbcon"])
