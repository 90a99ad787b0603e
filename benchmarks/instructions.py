"""Instructions per draw-step of the Monte Carlo kernel, counted by callgrind (load-independent).

On a shared machine wall-clock medians measure the neighbours too; an instruction count
does not. One process runs the kernel on one thread over the reference workload
(``simulate.reference_workload()``: 547 daily steps, 3 sources) under
``valgrind --tool=callgrind --instr-atstart=no``; instrumentation is switched on
(``callgrind_control -i on``) only around one call of :func:`kenomill._mc_kernels.simulate`
on ``DRAWS`` draws, after a first call has loaded the kernel::

    python benchmarks/instructions.py [DRAWS]    # default 64; prints instructions per draw-step

valgrind emulates no AVX-512, so the kernel is compiled for ``NUMBA_CPU_NAME=haswell``
(AVX2 + FMA, 4 float64 lanes) into its own cache directory (a native run fills it first:
compiling under valgrind would take an hour). Instructions are not time: a vector
instruction counts once, a libm call as the tens of instructions it executes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SEED = 20121231


def payload(n: int, wait: bool) -> None:
    import numpy as np

    from kenomill import _mc_kernels as K
    from kenomill import simulate

    plan = simulate.compile_plan(simulate.reference_workload())
    inputs, outputs = plan.kernel_args(SEED, 0, 8)
    K.simulate(*inputs, *outputs)  # loads (or compiles) the kernel
    inputs, outputs = plan.kernel_args(SEED, 0, n)
    if wait:
        print("ready", flush=True)
        sys.stdin.readline()
    K.simulate(*inputs, *outputs)
    if wait:
        print(f"done {plan.n_steps}", flush=True)
        sys.stdin.readline()
    assert np.isfinite(outputs[0]).all()


def main(n: int) -> None:
    env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.setdefault("NUMBA_CACHE_DIR", str(Path(tempfile.gettempdir()) / "kenomill-numba-haswell"))
    subprocess.run([sys.executable, __file__, "--run", "8", "--no-wait"], env=env, check=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        cmd += [sys.executable, __file__, "--run", str(n)]
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        proc.stdin.write("\n")
        proc.stdin.flush()
        steps = int(proc.stdout.readline().split()[1])
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait()
        text = out.read_text()
    # "totals:" is the whole run; "summary:" may be 0 when collection started switched off
    total = int(re.search(r"^totals: (\d+)", text, re.M).group(1))
    print(f"{total:,} instructions for {n} draws x {steps} steps: {total / (n * steps):,.0f} per draw-step")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--run":
        payload(int(sys.argv[2]), "--no-wait" not in sys.argv)
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else 64)
