"""The blend CLI and the uncertainty of the optimal blend (``value.blend_uncertainty``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kenomill import value
from kenomill.cli import main
from kenomill.errors import ValidationError

ROOT = Path(__file__).resolve().parents[1]
OQ = ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml"
NAMES = ["bellekeno", "onek", "lucky_queen"]


def test_simplex_grid_counts_sums_and_limits():
    g = value.simplex_grid(NAMES, 0.1)
    assert g.shape == (66, 3)  # C(10 + 2, 2) blends of three sources in steps of 0.1
    assert np.allclose(g.sum(axis=1), 1.0)
    lim = value.simplex_grid(NAMES, 0.1, {"bellekeno": 0.667, "lucky_queen": 0.117})
    assert (lim[:, 0] <= 0.667 + 1e-12).all() and (lim[:, 2] <= 0.117 + 1e-12).all()
    assert np.allclose(lim.sum(axis=1), 1.0)
    # the binding supply limits are on the grid: 0.667 / 0.216 / 0.117
    assert any(np.allclose(r, [0.667, 0.216, 0.117]) for r in lim)
    with pytest.raises(ValidationError, match="--grid-step"):
        value.simplex_grid(NAMES, 0.3)


def test_per_draw_optimum_equals_brute_force_over_separate_blend_runs():
    unc = value.blend_uncertainty(OQ, year=2013, draws=12, seed=2, step=0.5, zn_in_pbcon_max_pct=7.0)
    grid = unc["grid"]
    assert grid.shape == (6, 3)
    runs = [value.blend_nsr(OQ, dict(zip(NAMES, map(float, r), strict=True)), year=2013, draws=12, seed=2)
            for r in grid]  # fmt: skip
    nsr = np.array([r["nsr_usd_per_day"] for r in runs])
    zn = np.array([r["pbcon_zn_pct"] for r in runs])
    for k in range(12):
        ok = [i for i in range(len(grid)) if zn[i, k] <= 7.0]
        best = max(ok, key=lambda i: nsr[i, k])
        assert np.array_equal(unc["per_draw"][k], grid[best])
    mean_ok = [i for i in range(len(grid)) if zn[i].mean() <= 7.0]
    best_mean = max(mean_ok, key=lambda i: nsr[i].mean())
    assert [unc["best_mean"][n] for n in NAMES] == grid[best_mean].tolist()
    share = np.mean([np.array_equal(unc["per_draw"][k], grid[best_mean]) for k in range(12)])
    assert unc["share_at_best_mean"] == share


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--max-fraction", "onek"], "--max-fraction: found 'onek'"),
        (["--max-fraction", "oneck=0.3"], "unknown source 'oneck'"),
        (["--max-fraction", "onek=1.5"], "allowed: a share in [0, 1]"),
        (["--grid-step", "0.3"], "--grid-step: found 0.3"),
        (["--year", "2011"], "year 2011"),
    ],
)
def test_cli_blend_bad_options_one_line(tmp_path, args, words):
    out = tmp_path / "b.csv"
    res = CliRunner().invoke(main, ["blend", str(OQ), "--draws", "4", *args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and words in lines[0], res.stderr
    assert not out.exists()


def test_cli_blend_single_source_is_refused(tmp_path):
    res = CliRunner().invoke(main, ["blend", str(ROOT / "scenarios" / "bellekeno_only.toml"), "--draws", "4"])
    assert res.exit_code == 2 and "a blend needs at least two" in res.stderr


def test_cli_blend_writes_each_draws_optimum(tmp_path):
    out = tmp_path / "b.csv"
    res = CliRunner().invoke(
        main, ["blend", str(OQ), "--draws", "6", "--grid-step", "0.5", "--max-fraction", "lucky_queen=0.5",
               "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "Blend of largest expected NSR per day" in res.stdout and "per-draw SLSQP P10" in res.stdout
    assert "each draw's own optimum (SLSQP" in res.stdout and "beats its 0.5-grid optimum by" in res.stdout
    import pandas as pd

    df = pd.read_csv(out)
    assert list(df.columns)[:4] == ["draw", *NAMES] and len(df) == 6
    assert {f"{n}_grid" for n in NAMES} <= set(df.columns)
    assert np.allclose(df[NAMES].sum(axis=1), 1.0) and (df.lucky_queen <= 0.5).all()


def test_each_draws_slsqp_optimum_with_a_binding_zinc_limit_against_brute_force():
    """Zinc in the lead concentrate at most 3 % (below Bellekeno alone's ~3.4 %): the limit binds and
    the optimum is interior. Onek held at 0, so a brute force over Lucky Queen's share in steps of
    0.04 (26 separate blend runs, same seed) brackets each draw's optimum: SLSQP's optimum is feasible,
    at least as good as every feasible brute-force blend, and better by less than one step's change."""
    lim, draws, seed = 3.0, 3, 2
    own = value.per_draw_optimum(
        OQ, {"onek": 0.0}, year=2013, draws=draws, seed=seed, zn_in_pbcon_max_pct=lim
    )
    xs = np.linspace(0.0, 1.0, 26)
    runs = [value.blend_nsr(OQ, {"bellekeno": 1 - x, "onek": 0.0, "lucky_queen": x}, year=2013, draws=draws,
                            seed=seed) for x in xs]  # fmt: skip
    nsr = np.array([r["nsr_usd_per_day"] for r in runs])
    zn = np.array([r["pbcon_zn_pct"] for r in runs])
    assert (zn[0] > lim).any()  # Bellekeno alone breaks the limit in some draw: it binds there
    for d in range(draws):
        ok = zn[:, d] <= lim
        assert ok.any()
        best = nsr[ok, d].max()
        step = np.abs(np.diff(nsr[:, d])).max()
        assert own["feasible"][d] and own["pbcon_zn_pct"][d] <= lim + 1e-3
        assert own["fractions"][d, 1] == 0.0
        assert best - 1e-6 * best <= own["nsr_usd_per_day"][d] <= best + step
    assert own["binding"].any()
    d = int(np.flatnonzero(own["binding"])[0])
    assert 0.0 < own["fractions"][d, 2] < 1.0  # interior: the quality limit, not a supply limit, decides


def test_comparison_with_bellekeno_alone_says_when_that_blend_breaks_the_zinc_limit():
    from kenomill.cli.blend import _alone_breaks_limit

    opt = {"by_source": {"bellekeno": {"pbcon_zn_pct": 3.42}}}
    words = " (Bellekeno alone breaks the zinc limit: 3.4 % Zn in Pb con > 3 %)"
    assert _alone_breaks_limit(opt, 3.0) == words
    assert _alone_breaks_limit(opt, 7.0) == ""
    assert _alone_breaks_limit({"by_source": {}}, 3.0) == ""
