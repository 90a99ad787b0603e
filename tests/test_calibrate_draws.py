"""Contract 2: Calibration.posterior_draws(), with and without draws in the file."""

import json

import numpy as np
import pytest
from scipy import stats

from kenomill import recovery
from kenomill.calibration_file import Calibration, default_calibration
from kenomill.errors import ValidationError


def _cal(dof=5.0, corr=None):
    spec = recovery.get_model("plug_flow")
    theta = spec.defaults()
    # interior optimum, so the Gaussian is not folded
    theta[spec.free.index("rmax_pb")] = 0.9
    sd = 0.02 * theta  # far from every bound: no folding or clipping
    meta = {"scatter_dof": dof}
    if corr is not None:
        meta["scatter_corr"] = corr.tolist()
    return Calibration(
        model="plug_flow",
        theta=theta,
        cov=np.diag(sd**2),
        base=spec.base_full(),
        scatter=np.array([0.3, 0.2, 0.4, 0.1, 0.05]),
        meta=meta,
    )


def test_fallback_shapes_and_determinism():
    cal = _cal()
    d1, d2 = cal.posterior_draws(), cal.posterior_draws()
    k = len(cal.theta)
    assert d1["theta"].shape == (1000, k)
    assert d1["offset_mean"].shape == (1000, 5)
    assert d1["scatter_sd"].shape == (1000, 5)
    assert d1["scatter_chol"].shape == (1000, 5, 5)
    for key in d1:
        assert d1[key].dtype == np.float64
        assert np.array_equal(d1[key], d2[key])
    assert not d1["offset_mean"].any()


def test_fallback_theta_is_the_gaussian():
    cal = _cal()
    th = cal.posterior_draws()["theta"]
    sd = np.sqrt(np.diag(cal.cov))
    # 1000 draws: mean within 4 standard errors, SD within 10 %
    assert np.all(np.abs(th.mean(0) - cal.theta) < 4 * sd / np.sqrt(1000))
    assert np.allclose(th.std(0), sd, rtol=0.1)


def test_fallback_offsets_are_student_t_with_the_correlation():
    corr = np.eye(5)
    corr[0, 2] = corr[2, 0] = -0.7
    cal = _cal(dof=5.0, corr=corr)
    d = cal.posterior_draws()
    assert np.allclose(d["scatter_chol"][0] @ d["scatter_chol"][0].T, corr)
    # scatter_sd / scatter = sqrt(dof / chi2_dof): same for all offsets of a draw
    ratio = d["scatter_sd"] / cal.scatter
    assert np.allclose(ratio, ratio[:, :1])
    nu = cal.scatter_predictive_dof
    assert nu == 11.0
    # the contract's rule for a new quarter's offsets gives a Student-t(nu) marginal
    rng = np.random.default_rng(1)
    z = rng.standard_normal((1000, 5))
    off = d["offset_mean"] + d["scatter_sd"] * np.einsum("sij,sj->si", d["scatter_chol"], z)
    for j in range(5):
        assert stats.kstest(off[:, j] / cal.scatter[j], stats.t(nu).cdf).pvalue > 1e-3
    r = np.corrcoef(off[:, 0], off[:, 2])[0, 1]
    assert -0.8 < r < -0.6


def test_fallback_gaussian_without_dof():
    cal = Calibration.from_defaults("plug_flow")
    d = cal.posterior_draws()
    assert np.array_equal(d["theta"], np.tile(cal.theta, (1000, 1)))
    assert not d["scatter_sd"].any()
    assert np.array_equal(d["scatter_chol"][0], np.eye(5))


def test_stored_draws_round_trip(tmp_path):
    cal = _cal()
    d = cal.posterior_draws()
    post = {key: v[:50] for key, v in d.items()}
    cal.posterior = post
    cal2 = Calibration.load(cal.save(tmp_path / "c.json"))
    d2 = cal2.posterior_draws()
    for key in post:
        assert np.array_equal(d2[key], post[key])


def test_bad_stored_draws(tmp_path):
    cal = _cal()
    d = cal.to_dict()
    post = {key: v[:3].tolist() for key, v in cal.posterior_draws().items()}
    post["theta"] = [[1.0, 2.0]] * 3
    d["posterior"] = post
    with pytest.raises(ValidationError, match=r"posterior theta: found shape \(3, 2\)"):
        Calibration.from_dict(d)
    del post["theta"]
    with pytest.raises(ValidationError, match="posterior: missing theta"):
        Calibration.from_dict(d)


def test_packaged_calibration_has_draws():
    d = default_calibration().posterior_draws()
    assert d["theta"].shape[1] == len(default_calibration().theta)
    assert np.isfinite(d["theta"]).all()
    json.dumps({k: v.tolist() for k, v in d.items()})
