"""The circuit kernels alone, and calibration end to end (which calls the circuit model many times).

``test_circuit_kernel[<name>-numba|numpy]`` runs every non-Monte-Carlo pair of the
registry on ``circuit_rows`` random rows (a physically valid workload from the
registry's ``make_args``). ``test_calibration_end_to_end`` is the packaged calibration
made from scratch: the six reported quarters, the default model, its starting points,
the covariance and the scatter (``kenomill calibrate``'s work without the printing).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import xarray as xr
from bench_support import KERNELS, timing

from kenomill import calibrate, circuit, recovery
from kenomill._registry import random_feed
from kenomill.calibration_file import default_calibration

ELS = ("Ag", "Pb", "Zn")
CIRCUIT = sorted(name for name in KERNELS if not name.startswith("mc_"))


@pytest.mark.benchmark(group="circuit")
@pytest.mark.parametrize("impl", ["numba", "numpy"])
@pytest.mark.parametrize("name", CIRCUIT)
def test_circuit_kernel(benchmark, size, full, name, impl):
    pair = KERNELS[name]
    n = size["circuit_rows"]
    inputs, outputs = pair.make_args(n, np.random.default_rng(7))
    func = pair.numba if impl == "numba" else pair.reference
    benchmark.extra_info.update(rows=n)
    benchmark.pedantic(func, args=(*inputs, *outputs), **timing(full))
    other = tuple(np.full_like(o, np.nan) for o in outputs)
    (pair.reference if impl == "numba" else pair.numba)(*inputs, *other)
    for got, want in zip(outputs, other, strict=True):
        np.testing.assert_allclose(got, want, rtol=pair.rtol, atol=0)


@functools.cache
def _wrapper_inputs(n):
    feed_t, feed_frac, split, _ = random_feed(n, np.random.default_rng(7))
    # concentrates at twice their metal's mass: grades below any pure mineral's
    con_t = np.ascontiguousarray((feed_t[:, None, None] * feed_frac[:, :, None] * split).sum(1) / 0.5)
    cdim = {"concentrate": list(circuit.CONCENTRATES)}
    ore = xr.DataArray(feed_t, dims="row")
    head = xr.Dataset(
        {e: xr.DataArray(feed_frac[:, j], dims="row", attrs={"units": "fraction"}) for j, e in enumerate(ELS)}
    )
    rec = xr.Dataset(
        {
            e: xr.DataArray(100 * split[:, j], dims=("row", "concentrate"), coords=cdim)
            for j, e in enumerate(ELS)
        }
    )
    con = xr.DataArray(con_t, dims=("row", "concentrate"), coords=cdim)
    return (feed_t, feed_frac, split, con_t), (ore, head, rec, con)


def _outputs_pass_args(ore, head, rec, con):
    """The arguments ``circuit.forward`` hands its numba pass ``_forward_outputs`` (caught once)."""
    caught = {}
    inner = circuit._forward_outputs

    def spy(*args):
        caught["args"] = args
        return inner(*args)

    circuit._forward_outputs = spy
    try:
        circuit.forward(ore, head, rec, concentrate_t=con)
    finally:
        circuit._forward_outputs = inner
    *args, out = caught["args"]
    return inner, args, out.shape


#: what ``forward_balance`` asks forward for: the kernel's quantities (tonnes and metal of the
#: streams; forward's four streams include the feed, the kernel's three do not)
BALANCE = ("tonnes", *(f"{e}_t" for e in ELS))


@pytest.mark.benchmark(group="circuit_wrapper")
@pytest.mark.parametrize("impl", ["forward", "forward_balance", "kernel", "outputs_pass"])
def test_circuit_wrapper(benchmark, size, full, impl):
    """``circuit.forward`` (validation, every output, the Dataset) against its kernel, same rows;
    ``forward_balance``: forward asked for ``variables=BALANCE`` only (4 + 4 x 3 values per row
    written, every check still run); ``outputs_pass``: the numba pass forward runs (every output
    of the Dataset: 4 + 4 x 4 x 3 + 8 values per row where ``circuit_forward`` writes 12) into a
    fresh array each call, as forward does. ``kernel`` writes into arrays allocated once, outside
    the timed call; forward allocates its result every call."""
    n = size["wrapper_rows"]
    raw, xin = _wrapper_inputs(n)
    benchmark.extra_info.update(rows=n)
    if impl == "kernel":
        outs = (np.empty((n, 3)), np.empty((n, 3, len(ELS))))
        benchmark.pedantic(KERNELS["circuit_forward"].numba, args=(*raw, *outs), **timing(full))
        return
    if impl == "outputs_pass":
        inner, args, shape = _outputs_pass_args(*xin)
        benchmark.extra_info.update(values_per_row=shape[0] * shape[1] // n)
        bad = benchmark.pedantic(lambda: inner(*args, np.empty(shape)), **timing(full))
        assert bad == 0
        return
    ore, head, rec, con = xin
    kwargs = {"concentrate_t": con} | ({"variables": BALANCE} if impl == "forward_balance" else {})
    ds = benchmark.pedantic(circuit.forward, args=(ore, head, rec), kwargs=kwargs, **timing(full))
    benchmark.extra_info.update(values_per_row=4 * len(ds.data_vars))
    if impl == "forward_balance":
        assert list(ds.data_vars) == list(BALANCE)
    # closure of the solids, and the kernel's concentrate tonnes and metal
    np.testing.assert_allclose(
        ds["tonnes"].sel(stream="feed"),
        ds["tonnes"].sel(stream=["pbcon", "zncon", "tails"]).sum("stream"),
        rtol=1e-12,
    )
    want_t, want_m = np.empty((n, 3)), np.empty((n, 3, len(ELS)))
    KERNELS["circuit_forward"].reference(*raw, want_t, want_m)
    np.testing.assert_allclose(ds["tonnes"].values[:, 1:], want_t, rtol=1e-12, atol=1e-9)
    for j, e in enumerate(ELS):
        np.testing.assert_allclose(ds[f"{e}_t"].values[:, 1:], want_m[:, :, j], rtol=1e-12, atol=1e-9)


def _calibrate():
    fit = calibrate.default_fit()
    return fit.to_calibration()


@pytest.mark.benchmark(group="calibration")
def test_calibration_end_to_end(benchmark, full, monkeypatch):
    # count the circuit-model evaluations of one calibration (outside the timed rounds)
    calls = {"calls": 0, "rows": 0}
    inner = recovery.outputs_rows

    def counting(kind, grade_dep, p, ore_t, head, q, off, out):
        calls["calls"] += 1
        calls["rows"] += ore_t.shape[0]
        return inner(kind, grade_dep, p, ore_t, head, q, off, out)

    monkeypatch.setattr(recovery, "outputs_rows", counting)
    _calibrate()
    monkeypatch.setattr(recovery, "outputs_rows", inner)
    benchmark.extra_info.update(model=calibrate.DEFAULT_MODEL, model_calls=calls["calls"], rows=calls["rows"])
    cal = benchmark.pedantic(_calibrate, rounds=5 if full else 1, warmup_rounds=1 if full else 0)
    # the packaged calibration is this fit (the test suite checks the same, tighter)
    want = default_calibration()
    np.testing.assert_allclose(cal.theta, want.theta, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(cal.cov, want.cov, rtol=1e-4, atol=1e-12)
    assert calls["calls"] > 100
