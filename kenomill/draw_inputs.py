"""Per-draw uncertain inputs of a scenario drawn outside the kernel: rates and prices.

A scenario's ``sources.NAME.rate_uncertainty`` and ``mill.target_uncertainty`` (per-draw
factors on the stated rates) and its ``[prices]`` (lognormal metal prices of the NSR) take
one value per Monte Carlo draw. Each comes from its own counter-based stream keyed by
``(seed, draw)``, the same SplitMix64 keying as the kernel's streams
(:func:`kenomill._mc_kernels.stream_key`, streams 0 and 1 there) with stream numbers of
its own (:data:`RATE_STREAM`, :data:`PRICE_STREAM`): a draw's rates and prices depend on
the seed and the draw's index only, never on chunks, threads or how many draws run, and
the kernel's own numbers are untouched (scenarios without these fields give the results
they gave before).

Uniforms are SplitMix64's top 53 bits (as :func:`kenomill._mc_kernels.uniform`); a value
is the distribution's inverse CDF at its uniform (:meth:`kenomill.scenario.Distribution.ppf`),
and the prices' correlated normals are ``L @ ndtri(u)`` with L the Cholesky factor of the
stated correlation. Column ``j`` of a stream belongs to the same input whatever else the
scenario draws: source ``j`` in file order, then the mill (rates); Ag, Pb, Zn (prices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kenomill.scenario import METALS, Scenario, per_quarter

#: stream numbers of :func:`stream_uniforms` (0 and 1 are the kernel's normals and uniforms)
RATE_STREAM = 2
PRICE_STREAM = 3
#: the posterior predictive of :func:`kenomill.calibrate.predict` (posterior pick, availability, offsets)
PREDICT_STREAM = 4

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_C_DRAW = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_uniforms(seed: int, draws, stream: int, k: int) -> np.ndarray:
    """The first ``k`` uniforms on [0, 1) of stream ``stream`` of each draw in ``draws``.

    Equal to ``kenomill._mc_kernels.uniform`` called ``k`` times on the state
    ``stream_key(seed, draw, stream)`` (tests/test_scenario_uncertain.py checks it).

    Returns
    -------
    numpy.ndarray
        Shape (len(draws), k).
    """
    d = np.asarray(draws, dtype=np.uint64).reshape(-1)
    seed_a = np.full(d.shape, np.uint64(seed), dtype=np.uint64)
    with np.errstate(over="ignore"):
        key = _mix64(seed_a + _GAMMA)
        key = _mix64(key + (d + np.uint64(1)) * _C_DRAW)
        state = _mix64(key + np.uint64(stream + 1) * _GAMMA)
        out = np.empty((d.size, k))
        for j in range(k):
            state = state + _GAMMA
            out[:, j] = (_mix64(state) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return out


# ------------------------------------------------------------------ rates
@dataclass(frozen=True)
class RateDraws:
    """What a plan needs to give each draw its own mining rates and mill target.

    ``source_dists[j]`` is source j's ``rate_uncertainty`` (None: fixed); ``mill_dist`` the
    mill's ``target_uncertainty``. A draw's supply is the plan's times its factor; its mill
    feed rate while running is ``min(target_tpd * factor / availability, capacity) / 24``.
    """

    source_dists: tuple
    mill_dist: object
    target_tpd: np.ndarray
    availability: float
    capacity_tpd: float
    #: per source (and for the mill) which quarters the factor applies to (from_quarter on)
    source_on: np.ndarray  # (ns, nq) bool
    mill_on: np.ndarray  # (nq,) bool

    def factors(self, seed: int, draws) -> tuple[np.ndarray, np.ndarray]:
        """Per-draw factors: (n, n_sources) on the sources' rates and (n,) on the mill's target."""
        ns = len(self.source_dists)
        u = stream_uniforms(seed, draws, RATE_STREAM, ns + 1)
        fs = np.ones((u.shape[0], ns))
        for j, dist in enumerate(self.source_dists):
            if dist is not None:
                fs[:, j] = dist.ppf(u[:, j])
        fm = np.ones(u.shape[0]) if self.mill_dist is None else self.mill_dist.ppf(u[:, ns])
        return fs, fm

    def arrays_for(self, arrays: dict, f_source: np.ndarray, f_mill: float) -> dict:
        """The plan's kernel arrays for one draw with its factors."""
        a = dict(arrays)
        fq = np.where(self.source_on, f_source[:, None], 1.0)
        a["supply"] = np.ascontiguousarray(arrays["supply"] * fq)
        fm = np.where(self.mill_on, f_mill, 1.0)
        a["mill_rate"] = np.ascontiguousarray(
            np.minimum(self.target_tpd * fm / self.availability, self.capacity_tpd) / 24.0
        )
        return a


def rate_draws(
    sc: Scenario, *, target_tpd=None, availability=None, capacity_tpd=None, feed_unlimited=False
) -> RateDraws | None:
    """The scenario's rate uncertainty as :class:`RateDraws`, or None when it has none.

    Overrides of a what-if fix what they override: a given ``target_tpd`` drops the mill's
    factor, ``feed_unlimited`` (rates become blend shares) the sources'.
    """
    names = list(sc.sources)
    src = tuple(None if feed_unlimited else sc.sources[n].rate_uncertainty for n in names)
    mill = sc.mill.target_uncertainty if target_tpd is None else None
    if sc.feed.mode != "rates":
        src = tuple(None for _ in names)
    if mill is None and all(d is None for d in src):
        return None
    labels = sc.horizon.labels
    m = sc.mill

    def on(dist) -> np.ndarray:
        first = 0 if dist is None or dist.from_quarter is None else labels.index(dist.from_quarter)
        return np.arange(len(labels)) >= first

    return RateDraws(
        source_dists=src,
        mill_dist=mill,
        target_tpd=per_quarter(m.target_tpd if target_tpd is None else target_tpd, len(labels)),
        availability=float(m.availability if availability is None else availability),
        capacity_tpd=float(m.capacity_tpd if capacity_tpd is None else capacity_tpd),
        source_on=np.array([on(d) for d in src]).reshape(len(src), len(labels)),
        mill_on=on(mill),
    )


# ------------------------------------------------------------------ prices
def price_draws(sc: Scenario, seed: int, draws) -> dict | None:
    """The scenario's prices per draw for :func:`kenomill.value.simulation_nsr`, or None without ``[prices]``.

    Lognormal around each metal's median with its ``sd_log``, correlated as stated
    (:func:`kenomill.value.price_draws` given the draws' own normals).
    """
    from scipy.special import ndtri

    from kenomill import value

    p = sc.prices
    if p is None:
        return None
    z = ndtri(stream_uniforms(seed, draws, PRICE_STREAM, len(METALS)))
    sd_log = {m: float(getattr(p, m).sd_log) for m in METALS}
    out = value.price_draws(p.central(), z.shape[0], sd_log=sd_log, corr=p.correlation, normals=z)
    out["source"] = p.source
    return out
