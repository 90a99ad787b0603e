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
