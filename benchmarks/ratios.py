"""Table of medians and target ratios from one pytest-benchmark run.

    pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python benchmarks/ratios.py bench.json            # Markdown tables on stdout

Every ratio comes from medians of the same run (same machine, same load), as issue 6
asks. Targets: numba >= 5x faster than the NumPy reference; <= 1.5x slower than the
compute floor (pre-generated numbers); near-linear scaling with draws and days (time per
draw-step within 15 % of the best); >= 80 % parallel efficiency from 1 thread to all;
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
    lines += ["", "| target | measured | goal | met |", "|---|---:|---|:-:|"]

    def row(what, value, goal, ok, fmt="{:.2f}"):
        lines.append(f"| {what} | {fmt.format(value)} | {goal} | {'yes' if ok else 'NO'} |")

    hn, hp = med.get("test_hot_loop[numba]"), med.get("test_hot_loop[numpy]")
    floor = med.get("test_compute_floor")
    if hn and hp:
        row("NumPy reference / numba (hot loop)", hp / hn, ">= 5", hp / hn >= 5.0, "{:.1f}x")
    if hn and floor:
        row(
            "numba / compute floor (pre-generated numbers)",
            hn / floor,
            "<= 1.5",
            hn / floor <= 1.5,
            "{:.2f}x",
        )
    rng = med.get("test_rng_alone")
    if hn and rng:
        lines.append(f"| (generating all the numbers alone / numba hot loop) | {rng / hn:.2f} | info | |")
    for group, key in (("test_scaling_draws", "draws"), ("test_scaling_days", "steps")):
        pts = sorted((info[n][key], med[n] / info[n]["draw_steps"]) for n in med if n.startswith(group + "["))
        if len(pts) > 1:
            best = min(p for _, p in pts)
            worst = max(p for _, p in pts)
            per = ", ".join(f"{x}: {p * 1e9:.0f} ns" for x, p in pts)
            row(
                f"time per draw-step vs {key} ({per})",
                worst / best,
                "<= 1.15 (worst / best)",
                worst / best <= 1.15,
            )
    t1, tn = med.get("test_threads[1]"), med.get("test_threads[all]")
    if t1 and tn:
        n = info["test_threads[all]"]["threads"]
        eff = t1 / (n * tn)
        row(
            f"parallel efficiency 1 -> {n} threads (t1 / ({n} t{n}))",
            eff * 100,
            ">= 80 %",
            eff >= 0.8,
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
                f"| {f:.2f} s | info | |"
            )
    circ = sorted({n.split("[")[1].split("-")[0] for n in med if n.startswith("test_circuit_kernel[")})
    for c in circ:
        a, r = med.get(f"test_circuit_kernel[{c}-numba]"), med.get(f"test_circuit_kernel[{c}-numpy]")
        if a and r:
            lines.append(f"| circuit kernel `{c}`: NumPy / numba | {r / a:.1f}x | info | |")
    cal = info.get("test_calibration_end_to_end")
    if cal and "test_calibration_end_to_end" in med:
        lines.append(
            f"| calibration end to end: {cal.get('model_calls')} model calls, "
            f"{cal.get('rows')} rows | {_fmt_s(med['test_calibration_end_to_end'])} | info | |"
        )
    return "\n".join(lines)


def _load(x) -> str:
    return "/".join(f"{v:.2f}" for v in x) if x else "?"


if __name__ == "__main__":
    print(tables(sys.argv[1] if len(sys.argv) > 1 else "bench.json"))
