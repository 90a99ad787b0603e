"""Where ``circuit.forward``'s time goes at 10^6 rows, against its kernel ``circuit_forward``.

    python benchmarks/wrapper_parts.py [ROWS]      # default 10^6; ~1 min

The inputs of ``test_circuit_wrapper`` (benchmarks/test_bench_circuit.py): feed tonnes, head
grades of Ag, Pb, Zn, recoveries to both concentrates and concentrate tonnes, one value per
row. Timed (median and minimum of 7 calls, ns per row): the kernel into arrays allocated once
and into fresh arrays each call; forward's numba pass (``circuit._forward_outputs``) writing
every output, the balance only (``variables=("tonnes", "<El>_t")``) or the tonnes alone
(which leaves the arithmetic of every output and the writing of one); ``circuit.forward``
whole, and the balance only; then the functions of forward that prepare its inputs, from
``cProfile`` of three calls (cumulative seconds per call, those above 0.5 ns per row; cProfile
adds its own overhead).
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time

import numpy as np
from test_bench_circuit import BALANCE, ELS, _outputs_pass_args, _wrapper_inputs

from kenomill import _kernels, circuit


def _best(n, f, rounds=7):
    f()
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return f"{np.median(ts) * 1e9 / n:7.1f} / {min(ts) * 1e9 / n:7.1f}"


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    raw, xin = _wrapper_inputs(n)
    inner, args, shape = _outputs_pass_args(*xin)
    *a, slot = args
    names = circuit._variable_names(list(ELS))
    bslot = np.full(len(names), -1, np.int64)
    for k, v in enumerate(BALANCE):
        bslot[names.index(v)] = k
    tslot = np.full(len(names), -1, np.int64)
    tslot[0] = 0
    ob, ot = np.empty((len(BALANCE), 4 * n)), np.empty((1, 4 * n))
    outs = (np.empty((n, 3)), np.empty((n, 3, len(ELS))))
    k = _kernels.circuit_forward
    ore, head, rec, con = xin
    rows = [
        ("kernel `circuit_forward`, arrays allocated once", lambda: k(*raw, *outs)),
        ("kernel, fresh arrays each call", lambda: k(*raw, np.empty((n, 3)), np.empty((n, 3, len(ELS))))),
        ("forward's pass, every output, fresh array", lambda: inner(*a, slot, np.empty(shape))),
        ("forward's pass, the balance, fresh array", lambda: inner(*a, bslot, np.empty(ob.shape))),
        ("forward's pass, the balance, array allocated once", lambda: inner(*a, bslot, ob)),
        ("forward's pass, tonnes alone, array allocated once", lambda: inner(*a, tslot, ot)),
        ("`circuit.forward`, every variable", lambda: circuit.forward(ore, head, rec, concentrate_t=con)),
        (
            "`circuit.forward(variables=tonnes and metal)`",
            lambda: circuit.forward(ore, head, rec, concentrate_t=con, variables=BALANCE),
        ),
    ]
    print(f"{n} rows, ns per row (median / min of 7 calls)\n")
    print("| what | ns per row |\n|---|---:|")
    for label, f in rows:
        print(f"| {label} | {_best(n, f)} |")
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(3):
        circuit.forward(ore, head, rec, concentrate_t=con, variables=BALANCE)
    pr.disable()
    st = pstats.Stats(pr)
    print("\nforward(variables=tonnes and metal): its steps, cumulative s per call (cProfile, 3 calls)\n")
    print("| function | s per call | ns per row |\n|---|---:|---:|")
    for (_file, _line, func), (_cc, _nc, _tt, ct, _callers) in sorted(
        st.stats.items(), key=lambda kv: -kv[1][3]
    ):
        if (
            _file.endswith("circuit.py")
            and func != "forward"
            and not func.startswith("<")
            and ct / 3 / n > 5e-10
        ):
            print(f"| `circuit.{func}` | {ct / 3:.4f} | {ct / 3 * 1e9 / n:.1f} |")


if __name__ == "__main__":
    main()
