"""What each step of the Monte Carlo kernel costs: the kernel with one step left out at a time.

    python benchmarks/ablate.py [DRAWS] [ROUNDS]     # default 512 draws, 3 rounds (~12 min on 2 cores)

For each step function called in the time loop of :func:`kenomill._mc_kernels.simulate`
(the deliveries' normals and ``exp``, the downtime, the stockpile, the reclaim, the mill's
response and balance, the end of a step), a copy of the package is made in a temporary
directory with that call replaced by ``pass``; each copy is compiled once (numba's cache in
the copy) and timed in a fresh process: one thread, process CPU time per draw-step, the
minimum of 15 calls of ``DRAWS`` draws x 547 steps of the reference workload. The copies and
the unchanged kernel are run in turn, ``ROUNDS`` times, so that the machine's drift falls on
all of them alike; the table gives each variant's minimum over the rounds and what leaving
the step out saves. The results of a copy are wrong (a step is missing): it measures time
only. LLVM may drop work that only the missing step used, so a saving is an upper bound
of the step's own cost; the savings need not add up to the whole.

Beside it, the SIMD floor of the hot-loop benchmark (:func:`kenomill._simd.simd_floor`: 12
normals, 12 ``exp`` and 6 ``pow`` per draw-step, vectorised) on one thread, same draws.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: step -> the functions whose calls in simulate's time loop the variant leaves out
CALLS = {
    "deliveries (normals, exp of grades and tonnage)": ("deliveries",),
    "downtime (block_hours)": ("block_hours",),
    "stockpile in and diversion": ("stockpile_in", "stockpile_divert"),
    "reclaim": ("reclaim",),
    "mill (response, pow, balance, sums)": ("mill",),
    "end of step (levels)": ("end_of_step",),
}

_TIMER = r"""
import sys, time
import numba, numpy as np
from kenomill import _mc_kernels, _simd, simulate
n, what = int(sys.argv[1]), sys.argv[2]
numba.set_num_threads(1)
plan = simulate.compile_plan(simulate.reference_workload())
if what == "floor":
    a = (np.uint64(20121231), np.int64(n), np.int64(plan.n_steps), np.int64(3))
    f = lambda: _simd.simd_floor(*a)
else:
    inputs, outputs = plan.kernel_args(20121231, 0, n)
    f = lambda: _mc_kernels.simulate(*inputs, *outputs)
f()
ts = []
for _ in range(15):
    t0 = time.process_time(); f(); ts.append(time.process_time() - t0)
print(_mc_kernels.__file__, min(ts) / (n * plan.n_steps) * 1e9)
"""


def _without(text: str, func: str) -> str:
    """``text`` with the statement ``func(...)`` of simulate's time loop replaced by ``pass``."""
    loop = text.index("        for t in range(n_steps):")
    i = text.find(f"\n            {func}(", loop)
    if i < 0:
        raise SystemExit(f"ablate.py: no call of {func} in simulate's time loop any more: update CALLS")
    j, depth = text.index("(", i), 0
    while True:  # to the parenthesis that closes the call, then to the end of its line
        depth += {"(": 1, ")": -1}.get(text[j], 0)
        if depth == 0:
            break
        j += 1
    return text[: i + 1] + "            pass" + text[text.index("\n", j) :]


def _copy(tmp: Path, name: str, funcs: tuple[str, ...]) -> Path:
    dst = tmp / name.split()[0]
    shutil.copytree(ROOT / "kenomill", dst / "kenomill", ignore=shutil.ignore_patterns("__pycache__"))
    path = dst / "kenomill" / "_mc_kernels.py"
    text = path.read_text()
    for func in funcs:
        text = _without(text, func)
    path.write_text(text)
    return dst


def _time(tree: Path | None, n: int, what: str = "kernel") -> float:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
        env["NUMBA_CACHE_DIR"] = str(tree / "numba_cache")
    # run in the copy: "python -c" puts the working directory first on sys.path, so from the
    # repository every copy would import the repository's own kenomill
    cwd = tree if tree is not None else ROOT
    out = subprocess.run(
        [sys.executable, "-c", _TIMER, str(n), what],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    module, ns = out.stdout.split()[-2:]
    if not module.startswith(str(cwd)):
        raise SystemExit(f"ablate.py: the timed process imported {module}, not the copy in {cwd}")
    return float(ns)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory(prefix="kenomill-ablate-") as d:
        tmp = Path(d)
        trees = {name: _copy(tmp, name, calls) for name, calls in CALLS.items()}
        print(f"compiling {len(trees)} copies of the kernel, two at a time (~3 min each)", file=sys.stderr)
        with ThreadPoolExecutor(2) as pool:
            for name in pool.map(lambda kv: (_time(kv[1], 8), kv[0])[1], trees.items()):
                print(f"  compiled: without {name}", file=sys.stderr)
        best: dict[str, float] = {}
        for r in range(rounds):
            for name, tree in [("whole kernel", None), *trees.items(), ("SIMD floor", None)]:
                t = _time(tree, n, "floor" if name == "SIMD floor" else "kernel")
                best[name] = min(best.get(name, t), t)
            print(f"  round {r + 1} of {rounds} done", file=sys.stderr)
    whole = best["whole kernel"]
    print(f"One thread, {n} draws x 547 steps, process CPU time per draw-step, min over {rounds} rounds\n")
    print("| variant | ns per draw-step | saving |")
    print("|---|---:|---:|")
    print(f"| whole kernel | {whole:.1f} | |")
    for name in CALLS:
        print(f"| without {name} | {best[name]:.1f} | {whole - best[name]:.1f} |")
    print(f"| SIMD floor (12 normals, 12 exp, 6 pow, vectorised) | {best['SIMD floor']:.1f} | |")


if __name__ == "__main__":
    main()
