"""Size before work: runs that do not fit chunk to fit where they can, with the same numbers.

The memory of the machine is replaced (``budget.available_memory``) so that a run lands
exactly between "fits the usual way", "fits only built block by block" and "does not fit".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import xarray as xr
from click.testing import CliRunner

from kenomill import budget, scenario
from kenomill import simulate as sim
from kenomill.cli import main
from kenomill.errors import ValidationError

SCEN = Path(__file__).resolve().parents[1] / "scenarios" / "bellekeno_only.toml"


@pytest.fixture(scope="module")
def plan():
    return sim.compile_plan(scenario.load(SCEN), base_dir=SCEN.parent)


def test_runs_built_block_by_block_are_bit_identical(plan):
    a = sim.run(plan, 300, 7, chunk_size=64)
    b = sim.run(plan, 300, 7, chunk_size=64, block_draws=100)
    xr.testing.assert_identical(a, b)
    c = sim.run(plan, 40, 3, chunk_size=16, daily=True)
    d = sim.run(plan, 40, 3, chunk_size=16, daily=True, block_draws=20)
    xr.testing.assert_identical(c, d)


def _memory_between(plan, draws, monkeypatch, where: float):
    """Available memory placing the run's usual peak just above the limit (where=0.5: between
    the usual and the block-by-block estimates; 0: below even the blocks)."""
    per_b, _ = budget.simulate_estimate(plan, draws)
    lean = per_b * budget.SIMULATE_LEAN_COPIES / budget.SIMULATE_COPIES
    block = min(budget.SIMULATE_BLOCK_DRAWS, draws)
    usual = budget.BASE_BYTES + draws * per_b
    blocks = budget.BASE_BYTES + draws * lean + block * per_b
    assert blocks < usual
    limit = blocks + where * (usual - blocks) if where > 0 else blocks * 0.999
    monkeypatch.setattr(budget, "available_memory", lambda: limit / budget.MEMORY_SHARE)


def test_simulate_blocks_chooses_usual_blocks_or_refuses(plan, monkeypatch):
    monkeypatch.setattr(budget, "SIMULATE_BLOCK_DRAWS", 64)
    draws = 4000
    assert budget.simulate_blocks(plan, draws) is None  # this machine: fits the usual way
    _memory_between(plan, draws, monkeypatch, 0.5)
    assert budget.simulate_blocks(plan, draws) == 64
    with pytest.raises(ValidationError, match="allowed here: at most about"):
        budget.simulate_blocks(plan, draws, keep_all=True)  # --attribution: no chunking
    _memory_between(plan, draws, monkeypatch, 0.0)
    with pytest.raises(ValidationError, match=r"--draws: 4,000 draws need about .* allowed here"):
        budget.simulate_blocks(plan, draws)


def test_cli_simulate_chunks_to_fit_and_prints_the_same_numbers(plan, monkeypatch):
    usual = CliRunner().invoke(main, ["simulate", str(SCEN), "--draws", "400", "--seed", "5"])
    assert usual.exit_code == 0, usual.output
    monkeypatch.setattr(budget, "SIMULATE_BLOCK_DRAWS", 8)
    _memory_between(plan, 400, monkeypatch, 0.5)
    chunked = CliRunner().invoke(main, ["simulate", str(SCEN), "--draws", "400", "--seed", "5"])
    assert chunked.exit_code == 0, chunked.output
    assert "chunked to fit" in chunked.stderr
    assert chunked.stdout == usual.stdout


def test_posterior_and_report_sizes_refuse_what_cannot_fit(plan, monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 1e9)
    # 38 walkers x 19 unknowns: 3 x 8 x 38 x 20 = 18,240 B a step; 10^6 steps = 18 GB
    with pytest.raises(ValidationError, match=r"--posterior-steps: 1,000,000 steps need about 18.5 GB"):
        budget.posterior_check(1_000_000, 38, 19)
    peak, secs = budget.posterior_check(10_000, 38, 19)
    assert peak == pytest.approx(budget.BASE_BYTES + 10_000 * 18_240)
    assert secs == pytest.approx(10_000 * 38 * budget.POSTERIOR_SECONDS_PER_WALKER_STEP)
    with pytest.raises(ValidationError, match="--draws"):
        budget.report_check([plan, plan], 10**6, plan, 36, 200)


def test_cli_report_too_many_draws_is_one_line_before_any_work(tmp_path):
    out = tmp_path / "r.html"
    res = CliRunner().invoke(main, ["report", "--draws", "100000000", "--out", str(out)])
    assert res.exit_code == 2
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and "compiling" not in ln]
    assert len(lines) == 1 and "--draws: 100,000,000 draws need about" in lines[0], res.stderr
    assert "allowed here: at most about" in lines[0] and not out.exists()


def test_cli_calibrate_posterior_that_cannot_fit_is_one_line_before_the_fit(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 400e6)  # 320 MB usable, 300 MB base
    out = tmp_path / "cal"
    res = CliRunner().invoke(main, ["calibrate", "--posterior-steps", "100000", "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--posterior-steps: 100,000 steps need about" in lines[0], res.stderr
    assert "fitting" not in res.output and not (out / "calibration.json").exists()
