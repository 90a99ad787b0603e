"""Table of medians and target ratios from one pytest-benchmark run.

    pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python benchmarks/ratios.py bench.json            # Markdown tables on stdout

Every ratio comes from medians (and, beside them, minimums) of the same run (same
machine, same load). Issue 14's targets: the kernel <= 150 ns per draw-step on one core;
>= 3x the fast NumPy peer per core and >= 5x on all threads; within 1.5x of the SIMD floor;
parallel efficiency >= 85 %. Issue 6's targets: numba >= 5x faster than the NumPy
reference; <= 1.5x slower than the compute floor (pre-generated numbers); near-linear
scaling with draws and days (time per draw-step within 15 % of the best); >= 80 %
parallel efficiency from 1 thread to all;
peak memory that follows the returned result; a second process's first result < 1 s.
"""

from __future__ import annotations

import json
import sys


def _fmt_s(t: float) -> str:
    if t >= 1.0:
        return f"{t:.2f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.1f} ms"
    return f"{t * 1e6:.1f} us"


def load(path: str) -> tuple[dict, dict]:
    with open(path) as fh:
        data = json.load(fh)
    return {b["name"]: b for b in data["benchmarks"]}, data


def tables(path: str) -> str:
    b, data = load(path)
    med = {k: v["stats"]["median"] for k, v in b.items()}
    info = {k: v.get("extra_info", {}) for k, v in b.items()}
    mi = data["machine_info"]
    lines = [
        f"Machine: {mi.get('cpu', {}).get('brand_raw', mi.get('processor', '?'))}, "
        f"{mi.get('cpu_count', '?')} cores, numba {mi.get('numba_version', '?')} "
        f"({mi.get('numba_threads', '?')} threads, layer {mi.get('numba_threading_layer', '?')}), "
        f"Python {mi.get('python_version', '?')}; run {data.get('datetime', '?')[:19]} UTC; "
        f"load average at start {_load(mi.get('loadavg_start'))}, at end {_load(mi.get('loadavg_end'))}.",
        "",
        "| benchmark | median | min | rounds | size |",
        "|---|---:|---:|---:|---|",
    ]
    for name, v in b.items():
        s = v["stats"]
        size = ", ".join(f"{k}={x}" for k, x in info[name].items() if isinstance(x, int | float | str))
        lines.append(f"| `{name}` | {_fmt_s(s['median'])} | {_fmt_s(s['min'])} | {s['rounds']} | {size} |")
    lines += [
        "",
        "| target | from medians | from minimums | goal | met (medians) |",
        "|---|---:|---:|---|:-:|",
    ]
    stat = {
        "median": med,
        "min": {k: v["stats"]["min"] for k, v in b.items()},
    }

    def ratio_row(what, fn, goal, ok, fmt="{:.2f}"):
        # fn(times) -> value, evaluated on the medians and on the minimums of the same run
        try:
            vm, vn = fn(stat["median"]), fn(stat["min"])
        except (KeyError, ZeroDivisionError):
            return
        met = "" if goal == "info" else ("yes" if ok(vm) else "NO")
        lines.append(f"| {what} | {fmt.format(vm)} | {fmt.format(vn)} | {goal} | {met} |")

    def row(what, value, goal, ok, fmt="{:.2f}"):
        lines.append(f"| {what} | {fmt.format(value)} | | {goal} | {'yes' if ok else 'NO'} |")

    hl = "test_hot_loop[{}]".format
    if hl("numba_1thread") in info and "draw_steps" in info[hl("numba_1thread")]:
        ds = info[hl("numba_1thread")]["draw_steps"]
        n_thr = info[hl("numba")].get("threads", 2)
        ratio_row(
            "kernel, one core: ns per draw-step (issue 14)",
            lambda t: t[hl("numba_1thread")] / ds * 1e9,
            "<= 150 ns",
            lambda v: v <= 150.0,
            "{:.0f} ns",
        )
        for impl in ("numba", "numpy_peer", "numpy_reference", "simd_floor"):
            ratio_row(
                f"`{impl}`: ns per draw-step",
                lambda t, impl=impl: t[hl(impl)] / info[hl(impl)]["draw_steps"] * 1e9,
                "info",
                lambda v: True,
                "{:.0f} ns",
            )
        ratio_row(
            "fast NumPy peer / kernel on one thread (per core)",
            lambda t: t[hl("numpy_peer")] / t[hl("numba_1thread")],
            ">= 3",
            lambda v: v >= 3.0,
            "{:.2f}x",
        )
        ratio_row(
            f"fast NumPy peer / kernel on {n_thr} threads",
            lambda t: t[hl("numpy_peer")] / t[hl("numba")],
            ">= 5",
            lambda v: v >= 5.0,
            "{:.2f}x",
        )
        ratio_row(
            f"kernel / SIMD floor (both on {n_thr} threads)",
            lambda t: t[hl("numba")] / t[hl("simd_floor")],
            "<= 1.5",
            lambda v: v <= 1.5,
            "{:.2f}x",
        )
        ratio_row(
            f"parallel efficiency 1 -> {n_thr} threads (hot loop), t1 / ({n_thr} t{n_thr})",
            lambda t: 100.0 * t[hl("numba_1thread")] / (n_thr * t[hl("numba")]),
            ">= 85 %",
            lambda v: v >= 85.0,
            "{:.0f} %",
        )
        ratio_row(
            "NumPy reference (the exact oracle, same numbers) / kernel on all threads",
            lambda t: t[hl("numpy_reference")] / t[hl("numba")],
            "info",
            lambda v: True,
            "{:.1f}x",
        )
        ratio_row(
            "NumPy reference / fast NumPy peer",
            lambda t: t[hl("numpy_reference")] / t[hl("numpy_peer")],
            "info",
            lambda v: True,
            "{:.1f}x",
        )
    else:  # runs saved before issue 14 named the reference test_hot_loop[numpy]
        ratio_row(
            "NumPy reference / numba (hot loop, numba on all threads)",
            lambda t: t["test_hot_loop[numpy]"] / t["test_hot_loop[numba]"],
            ">= 5",
            lambda v: v >= 5.0,
            "{:.1f}x",
        )
        ratio_row(
            "NumPy reference / numba on one thread (per core, info)",
            lambda t: t["test_hot_loop[numpy]"] / t["test_threads[1]"],
            "info",
            lambda v: True,
            "{:.1f}x",
        )
    ratio_row(
        "numba / compute floor (pre-generated numbers)",
        lambda t: t["test_hot_loop[numba]"] / t["test_compute_floor"],
        "<= 1.5",
        lambda v: v <= 1.5,
        "{:.2f}x",
    )
    ratio_row(
        "generating all the numbers alone / numba hot loop (info)",
        lambda t: t["test_rng_alone"] / t["test_hot_loop[numba]"],
        "info",
        lambda v: True,
    )
    for group, key in (("test_scaling_draws", "draws"), ("test_scaling_days", "steps")):
        names = sorted((n for n in med if n.startswith(group + "[")), key=lambda n: info[n][key])
        if len(names) < 2:
            continue

        def spread(t, names=names):
            per = [t[n] / info[n]["draw_steps"] for n in names]
            return max(per) / min(per)

        per = ", ".join(
            f"{info[n][key]}: {stat['median'][n] / info[n]['draw_steps'] * 1e9:.0f} "
            f"({stat['min'][n] / info[n]['draw_steps'] * 1e9:.0f}) ns"
            for n in names
        )
        ratio_row(
            f"time per draw-step vs {key}, median (min): {per}; worst / best",
            spread,
            "<= 1.15",
            lambda v: v <= 1.15,
        )
    if "test_threads[all]" in info:
        n_thr = info["test_threads[all]"]["threads"]
        ratio_row(
            f"parallel efficiency 1 -> {n_thr} threads, t1 / ({n_thr} t{n_thr})",
            lambda t: 100.0 * t["test_threads[1]"] / (n_thr * t["test_threads[all]"]),
            ">= 80 %",
            lambda v: v >= 80.0,
            "{:.0f} %",
        )
    mem = info.get("test_peak_memory", {}).get("cases")
    if mem:
        ratio = max(c["traced_peak_bytes"] / c["result_bytes"] for c in mem)
        cases = "; ".join(
            f"{c['draws']} draws x {c['steps']} steps: result {c['result_bytes'] / 2**20:.1f} MiB, "
            f"peak traced {c['traced_peak_bytes'] / 2**20:.1f} MiB, "
            f"RSS +{c['rss_growth_bytes'] / 2**20:.1f} MiB"
            for c in mem
        )
        row(
            f"peak memory / returned result ({cases})",
            ratio,
            "flat in steps, ~ result",
            ratio <= 4.0,
            "{:.2f}",
        )
    st = info.get("test_startup_second_process", {})
    if "median_dataset_result_s" in st:
        k, d = st["median_kernel_result_s"], st["median_dataset_result_s"]
        row("second process: first kernel result", k, "< 1 s", k < 1.0, "{:.2f} s")
        row("second process: first Dataset (simulate.run)", d, "< 1 s", d < 1.0, "{:.2f} s")
        if "median_floor_dataset_s" in st:
            f = st["median_floor_dataset_s"]
            lines.append(
                f"| (libraries alone: numpy, numba + its first cached function, scipy.linalg, pydantic, "
                f"pandas, xarray, first Dataset) "
                f"| {f:.2f} s | | info | |"
            )
    circ = sorted({n.split("[")[1].split("-")[0] for n in med if n.startswith("test_circuit_kernel[")})
    for c in circ:
        a, r = med.get(f"test_circuit_kernel[{c}-numba]"), med.get(f"test_circuit_kernel[{c}-numpy]")
        if a and r:
            lines.append(f"| circuit kernel `{c}`: NumPy / numba | {r / a:.1f}x | | info | |")
    ratio_row(
        "`circuit.forward` / its kernel per row (same rows)",
        lambda t: t["test_circuit_wrapper[forward]"] / t["test_circuit_wrapper[kernel]"],
        "<= 2",
        lambda v: v <= 2.0,
        "{:.1f}x",
    )
    ratio_row(
        "`circuit.forward(variables=tonnes and metal)` / its kernel per row (same rows)",
        lambda t: t["test_circuit_wrapper[forward_balance]"] / t["test_circuit_wrapper[kernel]"],
        "<= 2",
        lambda v: v <= 2.0,
        "{:.1f}x",
    )
    ratio_row(
        "`circuit.forward` / the numba pass it runs (every output, fresh memory; info)",
        lambda t: t["test_circuit_wrapper[forward]"] / t["test_circuit_wrapper[outputs_pass]"],
        "info",
        lambda v: True,
        "{:.2f}x",
    )
    cal = info.get("test_calibration_end_to_end")
    if cal and "test_calibration_end_to_end" in med:
        lines.append(
            f"| calibration end to end: {cal.get('model_calls')} model calls, "
            f"{cal.get('rows')} rows | {_fmt_s(med['test_calibration_end_to_end'])} | | info | |"
        )
    return "\n".join(lines)


def _load(x) -> str:
    return "/".join(f"{v:.2f}" for v in x) if x else "?"


if __name__ == "__main__":
    print(tables(sys.argv[1] if len(sys.argv) > 1 else "bench.json"))
