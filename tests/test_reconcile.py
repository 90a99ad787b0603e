"""Linear and bilinear reconciliation: hand-derived networks, statistics, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kenomill.errors import ValidationError
from kenomill.reconcile import MultilinearConstraints, reconcile_bilinear, reconcile_linear

# one node: feed F splits into product P and tails T: F - P - T = 0
NODE = np.array([[1.0, -1.0, -1.0]])


# ------------------------------------------------------------------------------------
# hand-derived linear networks
# ------------------------------------------------------------------------------------
def test_one_node_equal_sigma_by_hand():
    # r = 100 - 60 - 30 = 10; A V A' = 3; x = y - V A' r / 3
    res = reconcile_linear([100.0, 60.0, 30.0], [1.0, 1.0, 1.0], NODE)
    np.testing.assert_allclose(res.x, [100 - 10 / 3, 60 + 10 / 3, 30 + 10 / 3], rtol=1e-14)
    np.testing.assert_allclose(res.adjustments, [-10 / 3, 10 / 3, 10 / 3], rtol=1e-13)
    assert res.chi2 == pytest.approx(100 / 3, rel=1e-13)
    assert res.dof == 1
    # chi2 with 1 dof: P(chi2 > c) = erfc(sqrt(c / 2))
    assert res.p_value == pytest.approx(math.erfc(math.sqrt(100 / 3 / 2)), rel=1e-10)
    assert res.gross_error
    # Var(adjustment) = V A' A V / 3 = 1/3 on the diagonal; z = (10/3) / sqrt(1/3)
    np.testing.assert_allclose(res.z, 10 / math.sqrt(3), rtol=1e-13)
    a = NODE[0]
    np.testing.assert_allclose(res.cov, np.eye(3) - np.outer(a, a) / 3, atol=1e-15)
    # Sidak, m = 3, alpha = 0.05: beta = 1 - 0.95^(1/3) = 0.016952; z = 2.388 (tables)
    assert res.z_crit == pytest.approx(2.3877, abs=5e-4)
    assert res.flagged.all()


def test_one_node_unequal_sigma_by_hand():
    # V = diag(1, 4, 4): A V A' = 9, x = y - V a r / 9
    res = reconcile_linear([100.0, 60.0, 30.0], [1.0, 2.0, 2.0], NODE)
    np.testing.assert_allclose(res.x, [100 - 10 / 9, 60 + 40 / 9, 30 + 40 / 9], rtol=1e-14)
    assert res.chi2 == pytest.approx(100 / 9, rel=1e-13)
    # Var(adj_i) = V_ii^2 / 9: z_1 = (10/9)/(1/3), z_2 = (40/9)/(4/3); both 10/3
    np.testing.assert_allclose(res.z, [10 / 3, 10 / 3, 10 / 3], rtol=1e-13)
    assert res.sd[0] == pytest.approx(math.sqrt(1 - 1 / 9), rel=1e-13)


def test_consistent_data_is_left_alone():
    res = reconcile_linear([100.0, 70.0, 30.0], [2.0, 1.0, 1.0], NODE)
    np.testing.assert_allclose(res.x, [100, 70, 30], rtol=1e-15)
    assert res.chi2 == pytest.approx(0.0, abs=1e-20)
    assert res.p_value == pytest.approx(1.0)
    assert not res.gross_error and not res.flagged.any()


def test_unmeasured_stream_eliminated_by_projection():
    # F = P + T, T = T1 + T2 with T unmeasured: same as F = P + T1 + T2 on the measured
    y = [100.0, 55.0, 20.0, 15.0]  # F, P, T1, T2; r = 100 - 55 - 20 - 15 = 10
    A = np.array([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    B = np.array([[-1.0], [-1.0]])
    res = reconcile_linear(y, np.ones(4), A, B, names=["F", "P", "T1", "T2"], unmeasured_names=["T"])
    a = np.array([1.0, -1.0, -1.0, -1.0])
    np.testing.assert_allclose(res.x, np.array(y) - a * 10 / 4, rtol=1e-13)
    assert res.dof == 1 and res.chi2 == pytest.approx(100 / 4, rel=1e-12)
    # T = T1 + T2 = 20 + 2.5 + 15 + 2.5; Var = e'(I - a a'/4)e with e = (0, 0, 1, 1) = 2 - 1 = 1
    assert res.u[0] == pytest.approx(40.0, rel=1e-13)
    assert res.sd_u[0] == pytest.approx(1.0, rel=1e-12)
    assert res.unmeasured_names == ("T",)
    # same answer as writing the projected constraint by hand
    direct = reconcile_linear(y, np.ones(4), [a])
    np.testing.assert_allclose(res.x, direct.x, rtol=1e-13)
    np.testing.assert_allclose(res.cov, direct.cov, atol=1e-13)


def test_no_redundancy_left_gives_dof_zero():
    # F = P + T with T unmeasured: nothing to test, x = y, T = F - P
    res = reconcile_linear([100.0, 60.0], [1.0, 1.0], [[1.0, -1.0]], [[-1.0]])
    np.testing.assert_allclose(res.x, [100, 60])
    assert res.dof == 0 and res.chi2 == 0.0 and res.p_value == 1.0 and not res.gross_error
    assert np.isnan(res.z).all() and not res.flagged.any()
    assert res.u[0] == pytest.approx(40.0)
    assert res.sd_u[0] == pytest.approx(math.sqrt(2.0))


def test_exact_measurement_is_not_adjusted_and_not_tested():
    res = reconcile_linear([100.0, 60.0, 30.0], [0.0, 1.0, 1.0], NODE)
    # F fixed: P and T share the 10 equally
    np.testing.assert_allclose(res.x, [100, 65, 35], rtol=1e-14)
    assert np.isnan(res.z[0]) and not res.flagged[0]
    # two testable measurements: Sidak m = 2
    assert res.z_crit == pytest.approx(stats.norm.isf((1 - 0.95**0.5) / 2))


def test_correlated_duplicate_measurements_by_hand():
    # two readings of one quantity, x1 = x2: GLS weight from V A'(A V A')^-1
    s1, s2, rho = 1.0, 2.0, 0.3
    y1, y2 = 10.0, 13.0
    res = reconcile_linear([y1, y2], [s1, s2], [[1.0, -1.0]], corr=[[1, rho], [rho, 1]])
    k = (s1**2 - rho * s1 * s2) / (s1**2 + s2**2 - 2 * rho * s1 * s2)
    assert res.x[0] == pytest.approx(y1 + k * (y2 - y1), rel=1e-13)
    assert res.x[1] == pytest.approx(res.x[0], rel=1e-13)
    assert res.chi2 == pytest.approx((y1 - y2) ** 2 / (s1**2 + s2**2 - 2 * rho * s1 * s2), rel=1e-12)


def test_bonferroni_and_none_corrections():
    y, s = [100.0, 60.0, 30.0], [1.0, 1.0, 1.0]
    assert reconcile_linear(y, s, NODE, correction="bonferroni").z_crit == pytest.approx(
        stats.norm.isf(0.05 / 3 / 2)
    )
    assert reconcile_linear(y, s, NODE, correction="none").z_crit == pytest.approx(1.959964, abs=1e-6)


def test_linear_unit_rescaling_changes_nothing_but_units():
    rng = np.random.default_rng(1)
    A = np.array([[1.0, -1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0, -1.0]])
    y = np.array([100.0, 41.0, 62.0, 30.0, 29.0])
    s = np.array([2.0, 1.0, 1.5, 1.0, 0.5])
    c = rng.uniform(1e-3, 1e3, size=5)  # e.g. t -> kt, g/t -> oz/t
    a = reconcile_linear(y, s, A)
    b = reconcile_linear(y * c, s * c, A / c)
    np.testing.assert_allclose(b.x / c, a.x, rtol=1e-12)
    np.testing.assert_allclose(b.cov / np.outer(c, c), a.cov, rtol=1e-10, atol=1e-12)
    assert b.chi2 == pytest.approx(a.chi2, rel=1e-12)
    np.testing.assert_allclose(b.z, a.z, rtol=1e-10)


# ------------------------------------------------------------------------------------
# statistics on simulated data
# ------------------------------------------------------------------------------------
# two nodes: F = P + T, T = Z + R; truth consistent
TWO_NODES = np.array([[1.0, -1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, -1.0, -1.0]])
TRUTH = np.array([100.0, 40.0, 60.0, 25.0, 35.0])
SIGMA = np.array([2.0, 1.0, 1.5, 1.0, 1.0])


def test_global_test_false_alarm_rate_is_alpha():
    rng = np.random.default_rng(20240601)
    n = 1000
    rejects = sum(
        reconcile_linear(TRUTH + SIGMA * rng.standard_normal(5), SIGMA, TWO_NODES).gross_error
        for _ in range(n)
    )
    lo, hi = stats.binom.interval(0.999, n, 0.05)
    assert lo <= rejects <= hi, rejects


def test_measurement_test_family_wise_false_flags_at_most_alpha():
    rng = np.random.default_rng(7)
    n = 1000
    any_flag = sum(
        reconcile_linear(TRUTH + SIGMA * rng.standard_normal(5), SIGMA, TWO_NODES).flagged.any()
        for _ in range(n)
    )
    # Sidak is exact for independent tests and conservative for the correlated z here
    assert any_flag <= stats.binom.ppf(0.999, n, 0.05), any_flag


def test_planted_gross_error_found_and_pointed_at():
    rng = np.random.default_rng(3)
    hits = 0
    # T is the one stream both nodes see; (F, P) and (Z, R) enter a single node with
    # proportional columns of A, so a gross error in one of a pair cannot be told from
    # one in the other (their z are equal): those pairs are tested below
    for _ in range(50):
        y = TRUTH + SIGMA * rng.standard_normal(5)
        y[2] += 10 * SIGMA[2]  # T: 10 sigma too high
        res = reconcile_linear(y, SIGMA, TWO_NODES)
        hits += res.gross_error and int(np.nanargmax(res.z)) == 2 and res.flagged[2]
    assert hits >= 45


def test_equivalent_measurements_share_their_z():
    y = TRUTH.copy()
    y[4] += 10
    res = reconcile_linear(y, SIGMA, TWO_NODES)
    assert res.z[3] == pytest.approx(res.z[4], rel=1e-12)
    assert res.z[4] > res.z[2] > 0


# ------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw, match",
    [
        ({"sigma": [1.0, -1.0, 1.0]}, r"sigma: found -1 at index 1; a standard deviation must be >= 0"),
        ({"y": [100.0, np.nan, 30.0]}, r"y: found nan at index 1; every value must be a finite number"),
        ({"sigma": [1.0, np.inf, 1.0]}, r"sigma: found inf at index 1"),
        ({"sigma": [1.0, 1.0]}, r"sigma: found 2 values; 3 are required"),
        ({"y": [[100.0, 60.0, 30.0]]}, r"y: found an array of shape \(1, 3\); a 1-D array is required"),
        ({"y": []}, r"y: found no measurements"),
        ({"A": [[1.0, -1.0]]}, r"A: found shape \(1, 2\); 3 columns are required"),
        ({"A": [1.0, -1.0, -1.0]}, r"A: found an array of shape \(3,\); a 2-D array is required"),
        ({"A": [[1.0, np.nan, -1.0]]}, r"A: found nan at index \(0, 1\)"),
        ({"A": np.zeros((0, 3))}, r"A: found no constraint rows"),
        ({"b": [0.0, 1.0]}, r"b: found 2 values; 1 are required"),
        ({"B": [[1.0], [2.0]]}, r"B: found shape \(2, 1\); 1 rows are required"),
        ({"alpha": 1.5}, r"alpha: found 1.5; allowed: a number strictly between 0 and 1"),
        ({"correction": "holm"}, r"correction: found 'holm'; allowed: sidak, bonferroni, none"),
        ({"names": ["F", "P"]}, r"names: found 2 names; 3 are required"),
        ({"corr": [[1, 0.5, 0], [0.4, 1, 0], [0, 0, 1]]}, r"corr: a correlation matrix must be symmetric"),
        ({"corr": [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]}, r"corr: not positive definite"),
        ({"corr": np.eye(2)}, r"corr: found shape \(2, 2\); 3 rows are required"),
        ({"B": [[1.0]], "unmeasured_names": ["a", "b"]}, r"unmeasured_names: found 2 names; 1 are required"),
        ({"labels": ["a", "b"]}, r"labels: found 2 labels; 1 are required"),
    ],
)
def test_bad_input_is_refused(kw, match):
    args = {"y": [100.0, 60.0, 30.0], "sigma": [1.0, 1.0, 1.0], "A": NODE}
    args.update(kw)
    with pytest.raises(ValidationError, match=match):
        reconcile_linear(args.pop("y"), args.pop("sigma"), args.pop("A"), **args)


def test_rank_deficient_constraints_are_refused():
    A = np.vstack([NODE, 2 * NODE])
    with pytest.raises(
        ValidationError, match=r"rank-deficient constraints: constraint 1 is a combination of"
    ):
        reconcile_linear([100.0, 60.0, 30.0], [1.0, 1.0, 1.0], A)


def test_inconsistent_constraints_are_refused():
    A = np.vstack([NODE, NODE])
    with pytest.raises(ValidationError, match=r"inconsistent constraints: constraint 1 .*no values satisfy"):
        reconcile_linear([100.0, 60.0, 30.0], [1.0, 1.0, 1.0], A, b=[0.0, 5.0])


def test_constraint_on_exact_measurements_only():
    A = np.array([[1.0, -1.0, 0.0]])
    with pytest.raises(ValidationError, match=r"inconsistent constraints: constraint 0 involves only exact"):
        reconcile_linear([100.0, 60.0, 30.0], [0.0, 0.0, 1.0], A)
    with pytest.raises(
        ValidationError, match=r"rank-deficient constraints: constraint 0 involves only exact"
    ):
        reconcile_linear([100.0, 100.0, 30.0], [0.0, 0.0, 1.0], A)


def test_constraint_only_on_unmeasured_with_nonzero_rhs():
    # u1 - u2 = 5 and u1 + u2 = 3 fix u; the third row 0 = 1 after projection
    A = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    B = np.array([[1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])
    res = reconcile_linear([5.0, 5.0], [1.0, 1.0], A, B, b=[5.0, 3.0, 0.0])
    np.testing.assert_allclose(res.u, [4.0, -1.0])
    A2 = np.array([[0.0, 0.0], [1.0, -1.0]])
    B2 = np.array([[1.0], [0.0]])
    msg = (
        r"inconsistent constraints: once the unmeasured variables are eliminated, a combination of "
        r"constraint 0 \(u only\), constraint 2 \(2 u\) involves no measured variable and reads 0 = "
    )
    with pytest.raises(ValidationError, match=msg):
        reconcile_linear(
            [5.0, 5.0],
            [1.0, 1.0],
            np.vstack([A2, [0.0, 0.0]]),
            np.vstack([B2, [2.0]]),
            b=[1, 0, 3],
            labels=["u only", "x1 = x2", "2 u"],
        )


def test_unobservable_unmeasured_are_named():
    # F = P + (T1 + T2) with both T1 and T2 unmeasured: only their sum is fixed
    with pytest.raises(ValidationError, match=r"B: the unmeasured variables T1, T2 are not observable"):
        reconcile_linear(
            [100.0, 60.0], [1.0, 1.0], [[1.0, -1.0]], [[-1.0, -1.0]], unmeasured_names=["T1", "T2"]
        )
    with pytest.raises(ValidationError, match=r"B: unmeasured variable\(s\) u0 appear in no constraint"):
        reconcile_linear([100.0, 60.0, 30.0], [1.0, 1.0, 1.0], NODE, [[0.0]])


# ------------------------------------------------------------------------------------
# bilinear
# ------------------------------------------------------------------------------------
def _two_product(F, C, T, f, c, t):
    # variables 0..5: F, C, T, f, c, t; solids and metal balances
    rows = [
        [(1.0, (0,)), (-1.0, (1,)), (-1.0, (2,))],
        [(1.0, (0, 3)), (-1.0, (1, 4)), (-1.0, (2, 5))],
    ]
    return MultilinearConstraints(6, rows, ["solids", "metal"])


def test_two_product_node_with_exact_assays_by_hand():
    # assays exact: C = a F, T = (1 - a) F with a = (f - t)/(c - t) (two-product formula);
    # minimise over F:  (F-F0)^2/s0^2 + (aF-C0)^2/s1^2 + ((1-a)F-T0)^2/s2^2
    F0, C0, T0 = 1000.0, 70.0, 910.0
    f, c, t = 5.0, 60.0, 1.0
    s = np.array([20.0, 2.0, 20.0])
    a = (f - t) / (c - t)
    w = 1 / s**2
    F = (w[0] * F0 + w[1] * a * C0 + w[2] * (1 - a) * T0) / (w[0] + w[1] * a**2 + w[2] * (1 - a) ** 2)
    chi2 = w[0] * (F - F0) ** 2 + w[1] * (a * F - C0) ** 2 + w[2] * ((1 - a) * F - T0) ** 2
    res = reconcile_bilinear([F0, C0, T0, f, c, t], [*s, 0.0, 0.0, 0.0], _two_product(F0, C0, T0, f, c, t))
    np.testing.assert_allclose(res.x, [F, a * F, (1 - a) * F, f, c, t], rtol=1e-12)
    assert res.chi2 == pytest.approx(chi2, rel=1e-9)
    assert res.dof == 2  # three tonnages, one free (F): two balances to test
    assert res.iterations <= 3


def test_product_with_unmeasured_result_by_delta_method():
    # M = F g with M unmeasured: no redundancy; M = F g, Var M = (g sF)^2 + (F sg)^2
    cons = MultilinearConstraints(3, [[(1.0, (0, 1)), (-1.0, (2,))]])
    res = reconcile_bilinear([200.0, 0.05], [4.0, 0.001], cons, u0=[1.0])
    np.testing.assert_allclose(res.x, [200.0, 0.05])
    assert res.u[0] == pytest.approx(10.0, rel=1e-12)
    assert res.sd_u[0] == pytest.approx(math.hypot(0.05 * 4.0, 200.0 * 0.001), rel=1e-9)
    assert res.dof == 0 and res.p_value == 1.0


def test_bilinear_matches_a_general_optimiser():
    # feed x grade x recovery = metal = concentrate x concentrate grade; compare with SLSQP
    from scipy.optimize import minimize

    y = np.array([18050.0, 8.29, 0.93, 2376.0, 59.0, 14.4])  # F, g, R, C, c, M (arbitrary units)
    s = np.array([270.0, 0.17, 0.01, 24.0, 1.2, 0.15])
    cons = MultilinearConstraints(
        6,
        [
            [(1e-3, (0, 1, 2)), (-1.0, (5,))],  # F g R / 1000 = M
            [(1e-2, (3, 4)), (-1.0, (5,))],  # C c / 100 = M
        ],
    )
    res = reconcile_bilinear(y, s, cons)

    # the reference works on standardised adjustments d = (x - y) / s, which SLSQP handles
    # far better than the raw, badly scaled variables
    def x_of(d):
        return y + s * d

    ref = minimize(
        lambda d: float(d @ d),
        np.zeros(6),
        jac=lambda d: 2 * d,
        method="SLSQP",
        constraints=[
            {"type": "eq", "fun": lambda d: (lambda x: x[0] * x[1] * x[2] / 1e3 / x[5] - 1)(x_of(d))},
            {"type": "eq", "fun": lambda d: (lambda x: x[3] * x[4] / 1e2 / x[5] - 1)(x_of(d))},
        ],
        options={"ftol": 1e-15, "maxiter": 500},
    )
    assert ref.success
    np.testing.assert_allclose((res.x - x_of(ref.x)) / s, 0, atol=1e-5)  # SLSQP's own precision
    # first-order optimality (Lagrange): V^-1 (x - y) lies in the row space of the Jacobian
    g = (res.x - y) / s**2
    J = cons.jacobian(res.x)
    lam, *_ = np.linalg.lstsq(J.T, g, rcond=None)
    np.testing.assert_allclose(J.T @ lam, g, rtol=0, atol=1e-10 * np.abs(g).max())
    np.testing.assert_allclose(cons.residual(res.x), 0, atol=1e-12)
    assert res.chi2 == pytest.approx(ref.fun, rel=1e-8)


def test_bilinear_bad_input():
    cons = MultilinearConstraints(3, [[(1.0, (0, 1)), (-1.0, (2,))]])
    with pytest.raises(ValidationError, match=r"u0: found 0 starting values; 1 are required"):
        reconcile_bilinear([200.0, 0.05], [4.0, 0.001], cons)
    with pytest.raises(ValidationError, match=r"constraints: found dict; expected MultilinearConstraints"):
        reconcile_bilinear([1.0], [1.0], {})
    with pytest.raises(ValidationError, match=r"constraints: over 3 variables, fewer than the 4 measured"):
        reconcile_bilinear([1.0, 2.0, 3.0, 4.0], [1.0] * 4, cons)
    with pytest.raises(ValidationError, match=r"a term repeats a variable"):
        MultilinearConstraints(2, [[(1.0, (0, 0))]])
    with pytest.raises(ValidationError, match=r"variable index out of range 0..1"):
        MultilinearConstraints(2, [[(1.0, (0, 2))]])
    with pytest.raises(ValidationError, match=r"sigma: found -4 at index 0"):
        reconcile_bilinear([200.0, 0.05, 10.0], [-4.0, 0.001, 0.1], cons)


def test_bilinear_reports_non_convergence():
    cons = MultilinearConstraints(3, [[(1.0, (0, 1)), (-1.0, (2,))]])
    with pytest.raises(ValidationError, match=r"did not converge in 1 iterations"):
        reconcile_bilinear([200.0, 0.05, 11.0], [4.0, 0.001, 0.1], cons, max_iter=1)
