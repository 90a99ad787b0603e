"""The Monte Carlo kernel split into step functions vs the same kernel as one body (issue 13 item 3).

Group ``kernel_split``: the reference workload on one thread through the split kernel
(``kenomill._mc_kernels.simulate``) and through a frozen copy of the kernel before the
split (``_kernel_before_split.py``), in the same run; results must be bit-identical.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from bench_support import KERNELS, mc_args, timing, workload


@pytest.mark.benchmark(group="kernel_split")
@pytest.mark.parametrize("impl", ["split", "before_split"])
def test_kernel_split(benchmark, size, full, impl):
    if numba.config.DISABLE_JIT:
        pytest.skip("timing numba kernels")
    import _kernel_before_split

    func = KERNELS["mc_simulate"].numba if impl == "split" else _kernel_before_split.simulate
    n = size["hot_draws"]
    plan = workload()
    inputs, outputs = mc_args(plan, n)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        benchmark.extra_info.update(draws=n, steps=plan.n_steps, draw_steps=n * plan.n_steps, threads=1)
        benchmark.pedantic(func, args=(*inputs, *outputs), **timing(full))
    finally:
        numba.set_num_threads(before)
    m = min(n, 64)
    ins, outs = mc_args(plan, m)
    other = _kernel_before_split.simulate if impl == "split" else KERNELS["mc_simulate"].numba
    other(*ins, *outs)
    for got, want in zip(outputs, outs, strict=True):
        np.testing.assert_array_equal(got[:m], want)
