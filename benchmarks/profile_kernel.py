"""Where the Monte Carlo kernel's time goes: an instrumented decomposition on one core.

    python benchmarks/profile_kernel.py [DRAWS]
    python benchmarks/profile_kernel.py --scaling   # days and threads, sizes interleaved

The kernel inlines everything into one loop, so a sampling profiler sees one anonymous
JIT function plus libm (``perf record`` shows the exp/log/pow share; see README.md).
This script times the parts of one draw-step separately, each in a numba loop built from
the kernel's own functions, with the same per-step counts as the reference workload:

* random numbers: ``12`` normals and ``2 * N_FAIL = 8`` uniforms per step (3 sources x
  (3 grade innovations + 1 tonnage)), from the per-draw SplitMix64 streams;
* grades and tonnage: the AR(1) update of 3 log-grades and 3 exponentials plus the
  lognormal tonnage, per source (normals pre-generated, so without the generator);
* mill response: ``respond_feed`` (the per-step half of the hoisted response) per source;
* the rest (downtime, deliveries and holds, stockpile reclaim and split by source,
  ``forward_row`` closure, capacity diversion, the step record and its quarterly sums)
  is the whole kernel minus these parts.

The whole kernel and the compute floor (the same kernel reading pre-generated numbers)
are timed on one thread with the same draws (minimum of 7 runs each). Prints a Markdown
table.
"""

from __future__ import annotations

import sys
import time

import numba as nb
import numpy as np

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_support import KERNELS, mc_args, workload  # noqa: E402

from kenomill import _mc_kernels as K  # noqa: E402
from kenomill import recovery  # noqa: E402


@nb.njit(cache=True)
def _rng(seed, n_steps, n_normals, n_uniforms):
    st = np.empty(1, np.uint64)
    su = np.empty(1, np.uint64)
    st[0] = K.stream_key(seed, 0, 0)
    su[0] = K.stream_key(seed, 0, 1)
    acc = 0.0
    for _ in range(n_steps):
        for _ in range(n_normals):
            acc += K.normal(st)
        for _ in range(n_uniforms):
            acc += K.uniform(su)
    return acc


@nb.njit(cache=True)
def _grades(z, g_chol, g_phi, innov, g_mean, gfac, supply, rate_cv):
    ns = g_chol.shape[0]
    x = np.zeros((ns, 3))
    arr_g = np.empty((ns, 3))
    arr_t = np.empty(ns)
    zz = np.empty(3)
    pos = 0
    acc = 0.0
    for _ in range(z.shape[0] // (4 * ns)):
        for s in range(ns):
            for e in range(3):
                zz[e] = z[pos]
                pos += 1
            zr = z[pos]
            pos += 1
            for e in range(3):
                c = 0.0
                for j in range(e + 1):
                    c += g_chol[s, e, j] * zz[j]
                x[s, e] = g_phi[s, e] * x[s, e] + innov[s, e] * c
                arr_g[s, e] = g_mean[s, e] * gfac[s, e] * np.exp(x[s, e])
            cv = rate_cv[s]
            arr_t[s] = supply[s] * np.exp(cv * zr - 0.5 * cv * cv)
            acc += arr_t[s] + arr_g[s, 0]
    return acc


@nb.njit(cache=True)
def _respond(grade_dep, p, heads, offsets, rc):
    split = np.empty((3, 2))
    pull = np.empty(2)
    acc = 0.0
    for i in range(heads.shape[0]):
        recovery.respond_feed(grade_dep, p, heads[i], heads[i], offsets, rc, split, pull)
        acc += pull[0] + pull[1] + split[0, 0]
    return acc


def _time(f, *args, reps=7):
    # the minimum of several runs: the parts are subtracted from each other, and the
    # minimum is the estimate least disturbed by other processes on a shared machine
    f(*args)
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f(*args)
        ts.append(time.perf_counter() - t)
    return float(np.min(ts))


def main(draws: int = 2000) -> str:
    nb.set_num_threads(1)
    plan = workload()
    a = plan.arrays
    ns, steps = len(plan.sources), plan.n_steps
    n_ds = draws * steps
    inputs, outputs = mc_args(plan, draws)
    t_full = _time(KERNELS["mc_simulate"].numba, *inputs, *outputs)
    inputs_p, outputs_p = mc_args(plan, draws, pre=True)
    t_floor = _time(KERNELS["mc_simulate_pregenerated"].numba, *inputs_p, *outputs_p)
    # the parts, per draw-step
    t_rng = _time(_rng, np.uint64(1), n_ds, 4 * ns, 2 * K.N_FAIL)
    rng = np.random.default_rng(0)
    z = rng.standard_normal(4 * ns * n_ds)
    innov = np.sqrt(1.0 - a["g_phi"] ** 2) * a["g_sd"]
    gfac = np.exp(-0.5 * a["g_sd"] ** 2)
    t_grades = _time(
        _grades, z, a["g_chol"], a["g_phi"], innov, a["g_mean"][:, 0], gfac, a["supply"][:, 0], a["rate_cv"]
    )
    del z
    # heads: each source's mean grade with the workload's day-to-day spread; constants and
    # offsets as in a quarter of a draw (calibrated parameters, offsets of the scatter's size)
    g = a["g_mean"][:, 0, :]
    heads = np.concatenate([g[s] * np.exp(0.2 * rng.standard_normal((n_ds, 3))) for s in range(ns)])
    p = plan.calibration.full()
    off = 0.3 * rng.standard_normal(recovery.N_OFFSETS)
    rc = np.empty(K.N_RC)
    qr = a["mill_rate"][0] * 24.0 / recovery.REFERENCE_TPD
    K.response_constants(np.int64(a["kind"]), p, qr, off, rc)
    t_resp = _time(_respond, np.int64(a["grade_dep"]), p, heads, off, rc)
    parts = {
        "random numbers (12 normals, 8 uniforms)": t_rng,
        "grades and tonnage (AR(1), 12 exp)": t_grades,
        "mill response (3 x respond_feed: 2 pow, 10 divisions)": t_resp,
    }
    rest = t_full - sum(parts.values())
    parts["rest: downtime, stockpile, reclaim, closure, records, sums"] = rest
    lines = [
        f"One thread, {draws} draws x {steps} steps ({ns} sources): whole kernel "
        f"{t_full / n_ds * 1e9:.0f} ns per draw-step, compute floor (pre-generated numbers) "
        f"{t_floor / n_ds * 1e9:.0f} ns (ratio {t_full / t_floor:.2f}).",
        "",
        "| part of a draw-step | ns | share |",
        "|---|---:|---:|",
    ]
    for name, t in parts.items():
        lines.append(f"| {name} | {t / n_ds * 1e9:.0f} | {100 * t / t_full:.0f} % |")
    return "\n".join(lines)


def scaling(draws: int = 4000, reps: int = 5) -> str:
    """ns per draw-step for 3, 6 and 12 quarters on 1 and all threads, sizes interleaved.

    The scaling rows of a pytest-benchmark run time each size in a block; on a shared
    machine a busy spell then lands on one size. Interleaving the sizes round by round
    spreads it over all of them.
    """
    f = KERNELS["mc_simulate"].numba
    plans = {q: workload(q) for q in (3, 6, 12)}
    args = {q: mc_args(plans[q], draws) for q in plans}
    lines = ["| steps (quarters) | threads | min ns per draw-step | median |", "|---|---:|---:|---:|"]
    for threads in sorted({1, nb.config.NUMBA_NUM_THREADS}):
        nb.set_num_threads(threads)
        times = {q: [] for q in plans}
        for q in plans:
            f(*args[q][0], *args[q][1])
        for _ in range(reps):
            for q in plans:
                t = time.perf_counter()
                f(*args[q][0], *args[q][1])
                times[q].append(time.perf_counter() - t)
        for q, ts in times.items():
            per = draws * plans[q].n_steps
            lines.append(
                f"| {plans[q].n_steps} ({q}) | {threads} | {min(ts) / per * 1e9:.0f} | "
                f"{np.median(ts) / per * 1e9:.0f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    if "--scaling" in sys.argv:
        print(scaling())
    else:
        print(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
