"""The mill outputs' derivatives (kenomill._jacobian) against central differences of the outputs."""

from __future__ import annotations

import numpy as np
import pytest

from kenomill import _jacobian, recovery


def _rows(n, seed, offsets):
    rng = np.random.default_rng(seed)
    head = np.stack([rng.uniform(5e-4, 1e-3, n), rng.uniform(0.05, 0.15, n), rng.uniform(0.03, 0.09, n)], 1)
    ore = rng.uniform(1e4, 3e4, n)
    q = rng.uniform(0.6, 1.6, n)
    off = rng.normal(0.0, 0.3, (n, recovery.N_OFFSETS)) if offsets else np.zeros((n, recovery.N_OFFSETS))
    # parameters inside their bounds, away from them (a clip is not differentiable there)
    lo = np.array([p.lo for p in recovery.FULL_PARAMS])
    hi = np.array([p.hi for p in recovery.FULL_PARAMS])
    p = lo + (hi - lo) * rng.uniform(0.15, 0.6, (n, recovery.N_FULL))
    p[:, recovery.I_TAIL_PB] = rng.uniform(0.002, 0.01, n)  # tails below the head grades
    p[:, recovery.I_TAIL_ZN] = rng.uniform(0.005, 0.02, n)
    p[:, recovery.I_KTAU_PB] = rng.uniform(1.0, 8.0, n)
    p[:, recovery.I_KTAU_ZN] = rng.uniform(0.5, 5.0, n)
    return p, ore, head, q, off


def _outputs(spec, p, ore, head, q, off):
    out = np.empty((ore.size, len(recovery.ALL_OUTPUTS)))
    recovery.outputs_rows(spec.kind, spec.grade_dep, p, ore, head, q, off, out)
    return out


def _central(spec, p, ore, head, q, off):
    """d out / d (p_j, q) by central differences of outputs_rows, one input at a time."""
    n = ore.size
    d = np.empty((n, len(recovery.ALL_OUTPUTS), _jacobian.N_GRAD))
    for j in range(_jacobian.N_GRAD):
        h = 1e-6 * (np.abs(p[:, j]) if j < recovery.N_FULL else q) + 1e-9
        pp, pm, qp, qm = p.copy(), p.copy(), q.copy(), q.copy()
        if j < recovery.N_FULL:
            pp[:, j] += h
            pm[:, j] -= h
        else:
            qp += h
            qm -= h
        d[:, :, j] = (_outputs(spec, pp, ore, head, qp, off) - _outputs(spec, pm, ore, head, qm, off)) / (
            2 * h[:, None]
        )
    return d


@pytest.mark.parametrize("model", list(recovery.MODELS))
@pytest.mark.parametrize("offsets", [False, True])
def test_derivatives_equal_central_differences(model, offsets):
    spec = recovery.get_model(model)
    p, ore, head, q, off = _rows(7, 3, offsets)
    dout = np.empty((ore.size, len(recovery.ALL_OUTPUTS), _jacobian.N_GRAD))
    _jacobian.outputs_jacobian_rows(spec.kind, spec.grade_dep, p, ore, head, q, off, dout)
    num = _central(spec, p, ore, head, q, off)
    # scale of each output's derivatives, so that an exact zero is compared to rounding noise
    scale = np.abs(num).max(axis=2, keepdims=True) + 1e-300
    np.testing.assert_allclose(dout / scale, num / scale, rtol=0, atol=2e-6)
    # the derivatives that are not zero are not all zero: every kind moves something
    assert np.count_nonzero(np.abs(dout) > 1e-12 * scale) > 0.3 * dout.size / recovery.N_FULL


def test_tonnes_derivatives_close_like_the_tonnes():
    """Tails by difference: the derivative of pbcon + zncon + tails tonnes is zero."""
    spec = recovery.get_model("cells_pb_tail_zn")
    p, ore, head, q, off = _rows(5, 8, True)
    dout = np.empty((ore.size, len(recovery.ALL_OUTPUTS), _jacobian.N_GRAD))
    _jacobian.outputs_jacobian_rows(spec.kind, spec.grade_dep, p, ore, head, q, off, dout)
    ix = {k: i for i, k in enumerate(recovery.ALL_OUTPUTS)}
    total = dout[:, ix["pbcon_t"]] + dout[:, ix["zncon_t"]] + dout[:, ix["tails_t"]]
    np.testing.assert_allclose(total, 0.0, atol=1e-9 * ore.max())
