"""One registry pairing every numba kernel with its NumPy reference.

The tests (tests/test_kernels.py) and the benchmarks (benchmarks/) both iterate over
:data:`KERNELS`, so the code that is benchmarked is the code that is tested. Each entry
knows how to make a valid random workload of a given size and which outputs to compare.
Later kernels (Monte Carlo, ...) register themselves with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kenomill import _kernels, _reference, recovery


@dataclass(frozen=True)
class KernelPair:
    name: str
    numba: Callable
    reference: Callable
    #: make_args(n, rng) -> (inputs tuple, outputs tuple); outputs are filled in place
    make_args: Callable
    rtol: float = 1e-12


KERNELS: dict[str, KernelPair] = {}


def register(pair: KernelPair) -> KernelPair:
    KERNELS[pair.name] = pair
    return pair


def random_feed(n: int, rng: np.random.Generator, m: int = 3):
    """A physically valid random circuit workload of ``n`` rows and ``m`` elements."""
    feed_t = rng.uniform(1.0, 30_000.0, n)
    feed_frac = rng.uniform(1e-6, 0.15, (n, m))
    split = rng.dirichlet([5.0, 2.0, 1.0], (n, m))[:, :, :2].copy()
    pull = rng.dirichlet([1.0, 1.0, 8.0], n)[:, :2]
    con_t = pull * feed_t[:, None]
    return feed_t, feed_frac, split, con_t


def _forward_args(n, rng):
    feed_t, feed_frac, split, con_t = random_feed(n, rng)
    m = feed_frac.shape[1]
    return (feed_t, feed_frac, split, con_t), (np.empty((n, 3)), np.empty((n, 3, m)))


def _two_product_args(n, rng):
    t = rng.uniform(0.001, 0.02, n)
    c = rng.uniform(0.4, 0.8, n)
    f = t + rng.uniform(0.05, 0.9, n) * (c - t)
    return (f, c, t), (np.empty(n), np.empty(n))


def _three_product_args(n, rng):
    feed_t, feed_frac, split, con_t = random_feed(n, rng)
    out_t = np.empty((n, 3))
    metal = np.empty((n, 3, feed_frac.shape[1]))
    _reference.circuit_forward(feed_t, feed_frac, split, con_t, out_t, metal)
    assay = metal / out_t[:, :, None]
    m = feed_frac.shape[1]
    return (feed_frac, assay[:, 0].copy(), assay[:, 1].copy(), assay[:, 2].copy()), (
        np.empty((n, 2)),
        np.empty((n, 2, m)),
    )


register(KernelPair("circuit_forward", _kernels.circuit_forward, _reference.circuit_forward, _forward_args))
register(KernelPair("two_product", _kernels.two_product, _reference.two_product, _two_product_args))
register(
    KernelPair(
        "three_product", _kernels.three_product, _reference.three_product, _three_product_args, rtol=1e-9
    )
)


def _respond_args(n, rng):
    # the mill response (both halves) over random rows within the parameter bounds, every
    # kinetic kind, with and without the grade factor (kind and grade_dep vary with n)
    lo = np.array([q.lo for q in recovery.FULL_PARAMS])
    hi = np.array([q.hi for q in recovery.FULL_PARAMS])
    p = lo + (hi - lo) * rng.uniform(0.02, 0.98, (n, recovery.N_FULL))

    def feed():
        return np.stack([rng.uniform(1e-4, 2e-3, n), rng.uniform(0.0, 0.2, n), rng.uniform(0.0, 0.12, n)], 1)

    head = feed()
    # the blend each row's component is milled in: the row's own feed in every other row
    grade = feed()
    grade[::2] = head[::2]
    q = rng.uniform(0.5, 2.0, n)
    off = rng.normal(0.0, 0.5, (n, recovery.N_OFFSETS))
    off[::3] = 0.0  # the zero-offset branch of the logit shift
    kind, grade_dep = np.int64(n % 5), np.int64(n % 2)
    return (kind, grade_dep, p, head, grade, q, off), (np.empty((n, 3, 2)), np.empty((n, 2)))


register(KernelPair("respond", recovery.respond_rows, _reference.respond_rows, _respond_args))


def _mc_plan():
    # issue 6's reference workload (three sources, daily steps, six quarters)
    import numba

    from kenomill import simulate

    sc = simulate.reference_workload()
    if numba.config.DISABLE_JIT:
        # the kernel runs as plain Python under NUMBA_DISABLE_JIT=1 (~0.3 s per draw-year):
        # one quarter keeps that pass of the suite short; the code paths are the same
        sc = sc.model_copy(update={"horizon": sc.horizon.model_copy(update={"quarters": 1})})
    return simulate.compile_plan(sc)


def _mc_simulate_args(n, rng):
    return _mc_plan().kernel_args(int(rng.integers(0, 2**63)), int(rng.integers(0, 1000)), n)


def _mc_simulate_pregenerated_args(n, rng):
    # the same workload fed pre-generated random numbers (issue 6's compute floor): the
    # kernel reads them instead of generating them; results are identical by design
    from kenomill import _mc_kernels

    plan = _mc_plan()
    seed, draw0 = int(rng.integers(0, 2**63)), int(rng.integers(0, 1000))
    nz, nu = plan.n_random()
    z, u = np.empty((n, nz)), np.empty((n, nu))
    _mc_kernels.fill_random(np.uint64(seed), draw0, z, u)
    return plan.kernel_args(seed, draw0, n, pre=(z, u))


def _mc_fill_random_args(n, rng):
    # the per-draw streams alone (issue 6's profile: cost of the random numbers); a few
    # hundred numbers per draw exercise the ziggurat's wedge and tail paths
    seed, draw0 = np.uint64(rng.integers(0, 2**63)), np.int64(rng.integers(0, 1000))
    return (seed, draw0), (np.empty((n, 257)), np.empty((n, 64)))


def _register_mc():
    from kenomill import _mc_kernels, _mc_reference

    register(
        KernelPair("mc_simulate", _mc_kernels.simulate, _mc_reference.simulate, _mc_simulate_args, rtol=1e-9)
    )
    register(
        KernelPair(
            "mc_simulate_pregenerated",
            _mc_kernels.simulate,
            _mc_reference.simulate,
            _mc_simulate_pregenerated_args,
            rtol=1e-9,
        )
    )
    register(
        KernelPair("mc_fill_random", _mc_kernels.fill_random, _mc_reference.fill_random, _mc_fill_random_args)
    )


_register_mc()
