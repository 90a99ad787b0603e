"""``kenomill warmup`` and dev.py's compile step after installing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from click.testing import CliRunner

from kenomill.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_warmup_runs_every_kernel_once_and_says_so():
    res = CliRunner().invoke(main, ["warmup"])
    assert res.exit_code == 0, res.output
    assert res.stderr.strip().splitlines()[-1].startswith("kenomill warmup: kernels ready in ")


def test_dev_py_knows_a_cold_cache(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("dev", ROOT / "dev.py")
    dev = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dev)
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not dev.kernels_cached()  # an empty cache: dev.py compiles right after installing
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "_mc_kernels.simulate-655.py311.nbi").write_bytes(b"")
    assert not dev.kernels_cached()  # the circuit kernel too
    (tmp_path / "k" / "_kernels.circuit_forward-41.py311.nbi").write_bytes(b"")
    assert dev.kernels_cached()


def test_after_warmup_the_commands_compile_nothing_more(tmp_path):
    """Every numba dispatcher's compiled signatures before and after a predict (one and six
    periods), simulate, whatif and balance run following warm(): none added."""
    from numba.core.registry import CPUDispatcher

    import kenomill._kernels as k
    import kenomill._mc_kernels as m
    import kenomill._simd as s
    import kenomill.circuit as c
    import kenomill.recovery as r
    from kenomill.cli.warmup import warm

    warm()

    def sigs():
        return {
            f"{mod.__name__}.{n}": len(f.signatures)
            for mod in (r, k, m, s, c)
            for n, f in vars(mod).items()
            if isinstance(f, CPUDispatcher)
        }

    before = sigs()
    one = tmp_path / "one.csv"
    one.write_text(
        "period,ore_processed_t,head_ag_gpt,head_pb_pct,head_zn_pct,tpd\n2013Q1,18000,800,9.5,6,200\n"
    )
    six = tmp_path / "six.csv"
    rows = [f"2013Q{i},18000,800,9.5,6,{200 + i}" for i in range(1, 7)]
    six.write_text(
        "period,ore_processed_t,head_ag_gpt,head_pb_pct,head_zn_pct,tpd\n" + "\n".join(rows) + "\n"
    )
    for args in (
        ["predict", str(one), "--draws", "5", "--out", str(tmp_path / "p1.csv")],
        ["predict", str(six), "--draws", "5", "--out", str(tmp_path / "p6.csv")],
        ["simulate", str(ROOT / "scenarios" / "bellekeno_only.toml"), "--draws", "5"],
        ["whatif", "--draws", "3"],
        ["balance"],
    ):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, (args, res.output)
    after = sigs()
    assert {n: (before.get(n), v) for n, v in after.items() if v != before.get(n)} == {}
