"""The calibration as a file: what `kenomill calibrate` writes and every other command reads.

A :class:`Calibration` holds a named model of :mod:`kenomill.recovery`, its fitted free
parameters with their covariance, the full parameter vector for the fixed ones, and the
quarter-to-quarter scatter the model could not explain (standard deviations of the
:data:`kenomill.recovery.OFFSET_NAMES` offsets). It is stored as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from kenomill import recovery
from kenomill.errors import ValidationError

FORMAT_VERSION = 1

#: number of draws :meth:`Calibration.posterior_draws` makes for files without posterior draws
FALLBACK_DRAWS = 1000
#: the arrays of a posterior, with their shape after the draw axis (k = free parameters)
POSTERIOR_KEYS = ("theta", "offset_mean", "scatter_sd", "scatter_chol")

#: Prior degrees of freedom on the quarter-to-quarter scatter (a scaled-inverse-chi2 prior
#: centred on the fitted scatter, i.e. worth this many quarters of a running mill). The
#: fit estimates each offset's SD from six quarters (about 5 dof); alone, the Student-t
#: predictive of 5 dof sent one draw in ~1000 to scatter 30-70 times the fitted SD, a
#: quarter losing nearly all its lead recovery, which a running mill does not do. With
#: the prior the SD is unchanged and the predictive has dof = fitted + prior.
SCATTER_PRIOR_DOF = 6.0


@dataclass
class Calibration:
    model: str
    theta: np.ndarray
    cov: np.ndarray
    base: np.ndarray = field(default_factory=recovery.default_full)
    scatter: np.ndarray = field(default_factory=lambda: np.zeros(recovery.N_OFFSETS))
    data: str = "raw"
    meta: dict = field(default_factory=dict)
    #: thinned posterior draws (see :meth:`posterior_draws`); None = Gaussian fallback
    posterior: dict | None = None

    def __post_init__(self):
        spec = recovery.get_model(self.model)
        self.theta = np.asarray(self.theta, dtype=float)
        self.cov = np.asarray(self.cov, dtype=float)
        self.base = np.asarray(self.base, dtype=float)
        self.scatter = np.asarray(self.scatter, dtype=float)
        k = len(spec.free)
        for name, arr, shape in (
            ("theta", self.theta, (k,)),
            ("cov", self.cov, (k, k)),
            ("base", self.base, (recovery.N_FULL,)),
            ("scatter", self.scatter, (recovery.N_OFFSETS,)),
        ):
            if arr.shape != shape:
                raise ValidationError(
                    f"calibration {name}: found shape {arr.shape}; expected {shape} for model {self.model!r}"
                )
            if not np.isfinite(arr).all():
                raise ValidationError(f"calibration {name}: found a non-finite value")
        if self.posterior is not None:
            self.posterior = _check_posterior(self.posterior, k, self.model)

    @property
    def spec(self) -> recovery.ModelSpec:
        return recovery.get_model(self.model)

    @property
    def scatter_predictive_dof(self) -> float:
        """Degrees of freedom of the Student-t a new quarter's offsets are drawn from.

        The fit's ``meta["scatter_dof"]`` plus :data:`SCATTER_PRIOR_DOF`; ``inf`` (Gaussian)
        when the calibration records none.
        """
        dof = float(self.meta.get("scatter_dof", np.inf) or np.inf)
        if not np.isfinite(dof) or dof <= 0:
            return np.inf
        return dof + SCATTER_PRIOR_DOF

    @property
    def param_names(self) -> tuple[str, ...]:
        return self.spec.free

    def full(self, theta=None) -> np.ndarray:
        """Full parameter vector (fixed parameters from ``base``)."""
        return self.spec.full(self.theta if theta is None else theta, self.base)

    def draw_theta(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` draws of the free parameters from N(theta, cov) restricted to the model bounds.

        Where the optimum sits on a bound (e.g. ``rmax_pb = 1``) the Gaussian is folded at it
        (:meth:`fold_vectors`, :func:`kenomill.recovery.fold_deviation`): a draw beyond the
        bound is reflected along the regression of the other parameters on that one, which
        gives exactly the Gaussian truncated at the bound (for one bound; for several,
        applied in turn) and keeps the trade-off between the pinned parameter and its
        partners (rmax lower, k tau higher). Anything still outside its bounds is clipped.
        Each draw uses one standard-normal vector, so results do not depend on ``n``.
        """
        lo, hi = self.spec.bounds()
        # eigh tolerates a singular (weakly identified) covariance where cholesky fails
        w, v = np.linalg.eigh(self.cov)
        a = v * np.sqrt(np.clip(w, 0.0, None))
        z = rng.standard_normal((n, len(self.theta)))
        dev = z @ a.T
        idx, side, vecs = self.fold_vectors()
        for i in range(n):
            recovery.fold_deviation(dev[i], idx, side, vecs)
        return np.clip(self.theta + dev, lo, hi)

    def posterior_draws(self) -> dict[str, np.ndarray]:
        """Posterior draws of everything a new quarter's prediction needs (S draws).

        Returns
        -------
        dict of float64 arrays
            ``theta`` (S, k): free parameters in ``spec.free`` order;
            ``offset_mean`` (S, 5): mean of a new quarter's offsets (zeros unless the model
            has a trend in its quarter offsets); ``scatter_sd`` (S, 5): random-effect SD per
            offset in :data:`kenomill.recovery.OFFSET_NAMES` order; ``scatter_chol``
            (S, 5, 5): lower Cholesky factor of their correlation.
            A new quarter's offsets for draw ``s`` are
            ``offset_mean[s] + scatter_sd[s] * (scatter_chol[s] @ z)``, ``z`` standard normal.

        Notes
        -----
        A calibration written by the Bayesian calibration carries its thinned draws. For
        files without them (older files, uncalibrated defaults) the draws are made here,
        deterministically (``np.random.default_rng(0)``, :data:`FALLBACK_DRAWS` draws): the
        parameters from the Gaussian approximation folded at active bounds
        (:meth:`draw_theta`), ``scatter_sd = scatter * sqrt(dof / chi2_dof)`` per draw,
        which makes the offsets' predictive the Student-t of :attr:`scatter_predictive_dof`
        (Gaussian when it is infinite), and ``scatter_chol`` the Cholesky factor of
        ``meta["scatter_corr"]`` (identity when absent).
        """
        if self.posterior is not None:
            return {key: np.array(self.posterior[key], dtype=np.float64) for key in POSTERIOR_KEYS}
        s_n = FALLBACK_DRAWS
        rng = np.random.default_rng(0)
        theta = self.draw_theta(rng, s_n)
        dof = self.scatter_predictive_dof
        if np.isfinite(dof):
            scale = np.sqrt(dof / rng.chisquare(dof, s_n))
        else:
            scale = np.ones(s_n)
        corr = np.asarray(self.meta.get("scatter_corr", np.eye(recovery.N_OFFSETS)), dtype=float)
        chol = correlation_cholesky(corr)
        return {
            "theta": np.ascontiguousarray(theta, dtype=np.float64),
            "offset_mean": np.zeros((s_n, recovery.N_OFFSETS)),
            "scatter_sd": scale[:, None] * self.scatter[None, :],
            "scatter_chol": np.ascontiguousarray(np.broadcast_to(chol, (s_n, *chol.shape)), dtype=np.float64),
        }

    def fold_vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What :func:`kenomill.recovery.fold_deviation` needs to fold draws at active bounds.

        Returns ``idx`` (int64[m], parameters whose optimum is on a bound), ``side``
        (float64[m], +1 upper bound, -1 lower) and ``vecs`` (float64[m, k], column ``j`` of
        the covariance over its variance: the regression of every parameter on that one).
        """
        lo, hi = self.spec.bounds()
        span = hi - lo
        idx, side, vecs = [], [], []
        for j in range(len(self.theta)):
            var = self.cov[j, j]
            if var <= 0:
                continue
            if abs(hi[j] - self.theta[j]) <= 1e-6 * span[j]:
                idx.append(j)
                side.append(1.0)
            elif abs(self.theta[j] - lo[j]) <= 1e-6 * span[j]:
                idx.append(j)
                side.append(-1.0)
            else:
                continue
            vecs.append(self.cov[:, j] / var)
        k = len(self.theta)
        return (
            np.array(idx, dtype=np.int64),
            np.array(side, dtype=float),
            np.array(vecs, dtype=float).reshape(len(idx), k),
        )

    def to_dict(self) -> dict:
        d = {
            "format_version": FORMAT_VERSION,
            "model": self.model,
            "param_names": list(self.param_names),
            "theta": self.theta.tolist(),
            "cov": self.cov.tolist(),
            "base": self.base.tolist(),
            "base_names": [p.name for p in recovery.FULL_PARAMS],
            "scatter": self.scatter.tolist(),
            "scatter_names": list(recovery.OFFSET_NAMES),
            "data": self.data,
            "meta": self.meta,
        }
        if self.posterior is not None:
            d["posterior"] = {key: np.asarray(v).tolist() for key, v in self.posterior.items()}
        return d

    def save(self, path) -> Path:
        from kenomill.io import atomic_path

        p = Path(path)
        with atomic_path(p) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=1))
        return p

    @classmethod
    def from_dict(cls, d: dict, where: str = "calibration") -> Calibration:
        for key in ("model", "theta", "cov"):
            if key not in d:
                raise ValidationError(f"{where}: field {key!r} missing; found {sorted(d)}")
        if "param_names" in d and list(d["param_names"]) != list(recovery.get_model(d["model"]).free):
            raise ValidationError(
                f"{where}: param_names {d['param_names']} do not match model "
                f"{d['model']!r} ({list(recovery.get_model(d['model']).free)})"
            )
        kw = {k: d[k] for k in ("base", "scatter", "data", "meta", "posterior") if k in d}
        return cls(model=d["model"], theta=d["theta"], cov=d["cov"], **kw)

    @classmethod
    def load(cls, path) -> Calibration:
        from kenomill.io import read_json

        p = Path(path)
        d = read_json(p, what="calibration")
        if not isinstance(d, dict):
            raise ValidationError(f"{p}: not a calibration file (expected a JSON object)")
        try:
            return cls.from_dict(d, where=str(p))
        except ValidationError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            # a hand-edited or truncated file: arrays of the wrong shape, text for numbers
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValidationError(f"{p}: not a valid calibration file ({reason})") from None

    @classmethod
    def from_defaults(cls, model: str = "plug_flow") -> Calibration:
        """Uncalibrated defaults of :data:`kenomill.recovery.FULL_PARAMS` (for tests and examples)."""
        spec = recovery.get_model(model)
        return cls(
            model=model,
            theta=spec.defaults(),
            cov=np.zeros((len(spec.free),) * 2),
            base=spec.base_full(),
            meta={"note": "uncalibrated defaults"},
        )


def correlation_cholesky(corr: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of a correlation matrix; a tiny ridge if it is singular."""
    corr = np.asarray(corr, dtype=float)
    for ridge in (0.0, 1e-12, 1e-9, 1e-6):
        try:
            c = np.linalg.cholesky((corr + ridge * np.eye(len(corr))) / (1.0 + ridge))
        except np.linalg.LinAlgError:
            continue
        return c
    raise ValidationError("calibration scatter_corr: not a positive semi-definite correlation matrix")


def _check_posterior(post, k: int, model: str) -> dict:
    """Validate the posterior draws of a calibration file -> dict of float64 arrays."""
    if not isinstance(post, dict):
        raise ValidationError(f"calibration posterior: expected an object with {', '.join(POSTERIOR_KEYS)}")
    missing = [key for key in POSTERIOR_KEYS if key not in post]
    if missing:
        raise ValidationError(
            f"calibration posterior: missing {', '.join(missing)}; required: {', '.join(POSTERIOR_KEYS)}"
        )
    out = {}
    m = recovery.N_OFFSETS
    shapes = {"theta": (k,), "offset_mean": (m,), "scatter_sd": (m,), "scatter_chol": (m, m)}
    n = None
    for key, v in post.items():
        try:
            arr = np.asarray(v, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValidationError(f"calibration posterior {key}: not an array of numbers") from None
        if key in shapes:
            if arr.ndim != 1 + len(shapes[key]) or arr.shape[1:] != shapes[key]:
                raise ValidationError(
                    f"calibration posterior {key}: found shape {arr.shape}; "
                    f"expected (S, {', '.join(map(str, shapes[key]))}) for model {model!r}"
                )
            n = arr.shape[0] if n is None else n
            if arr.shape[0] != n or n == 0:
                raise ValidationError(
                    f"calibration posterior {key}: found {arr.shape[0]} draws; expected {n} (same S for all)"
                )
        if not np.isfinite(arr).all():
            raise ValidationError(f"calibration posterior {key}: found a non-finite value")
        out[key] = arr
    if (out["scatter_sd"] < 0).any():
        raise ValidationError("calibration posterior scatter_sd: found a negative value; allowed: >= 0")
    return out


DEFAULT_CALIBRATION = "data/default_calibration.json"


def default_calibration() -> Calibration:
    """The packaged calibration: the default model fitted to the raw quarters.

    Written by ``python -m kenomill.calibrate`` (:func:`kenomill.calibrate.write_default_calibration`).
    """
    res = resources.files("kenomill").joinpath(DEFAULT_CALIBRATION)
    if not res.is_file():
        raise ValidationError("no packaged calibration: run `kenomill calibrate` and pass --calibration")
    return Calibration.from_dict(json.loads(res.read_text()), where="packaged calibration")
