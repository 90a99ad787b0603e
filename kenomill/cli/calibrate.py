"""``kenomill calibrate`` and ``kenomill predict``: fit recovery models; predict new quarters."""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kenomill.budget import POSTERIOR_STEPS
from kenomill.cli import SEED, guarded
from kenomill.cli.periods import load_periods, periods_label, periods_option


def _num(v: float, digits: int = 4) -> str:
    if v != v:  # NaN
        return "-"
    if v == math.inf:
        return "inf"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}g}"


def print_fit(fit, console: Console) -> None:
    """Per quarter reported vs fitted, then the parameters with uncertainty, then warnings."""
    t = Table(
        title=f"Reported vs fitted, model {fit.spec.name} ({fit.data.source} quarters); "
        "z = (fitted - reported) / sigma of the error model",
        caption=f"error model: {fit.data.error_model}. chi2 = {fit.chi2:.1f} over {fit.n_obs} figures; "
        f"residual scale s = {fit.scale:.2f} (quarters scatter s times more than the error model allows).",
    )
    t.add_column("period")
    from kenomill.calibrate import FIT_FIGURES

    for c in FIT_FIGURES:
        t.add_column(c, justify="right")
    for i, p in enumerate(fit.data.periods):
        t.add_row(p, *[_num(v) for v in fit.data.y[i]])
        t.add_row("  fitted", *[_num(v) for v in fit.fitted[i]])
        t.add_row(
            "  z",
            *[f"{v:+.1f}" for v in fit.residuals[i]],
            end_section=True,
        )
    console.print(t)
    pt = Table(title="Parameters (free), with standard errors from the covariance")
    for col, just in (
        ("parameter", "left"),
        ("value", "right"),
        ("se", "right"),
        ("range", "right"),
        ("units", "left"),
        ("meaning", "left"),
    ):
        pt.add_column(col, justify=just)
    for r in fit.parameters().itertuples():
        pt.add_row(
            r.parameter,
            f"{r.value:.4g}",
            f"{r.se:.2g} (at bound)"
            if r.at_bound
            else ("not identified" if not r.identified else f"{r.se:.2g}"),
            f"{r.lo:g}-{r.hi:g}",
            r.units,
            escape(r.meaning),
        )
    console.print(pt)
    ct = Table(title="Correlation of the parameter estimates (0 for a parameter held in draws)")
    ct.add_column("")
    for n in fit.spec.free:
        ct.add_column(n, justify="right")
    for n, row in zip(fit.spec.free, fit.corr, strict=True):
        ct.add_row(n, *[f"{v:+.2f}" for v in row])
    console.print(ct)
    a = ", ".join(
        f"{p} {100 * v:.1f}%{'*' if f else ''}"
        for p, v, f in zip(fit.data.periods, fit.availability, fit.availability_fitted, strict=True)
    )
    console.print(
        f"availability used: {a}  (* fitted with prior "
        f"{fit.availability_prior[0]:g} +- {fit.availability_prior[1]:g})"
    )
    from kenomill.recovery import OFFSET_NAMES

    console.print(
        "quarter-to-quarter scatter (SD of offsets): "
        + ", ".join(f"{n} {v:.3f}" for n, v in zip(OFFSET_NAMES, fit.scatter, strict=True))
    )
    console.print(
        f"starting points reaching the best optimum: {fit.n_same_optimum} of {len(fit.start_costs)}"
    )
    for w in fit.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")


def print_posterior(post, calibration, console: Console) -> None:
    """Posterior medians and 90 % credible intervals, and the convergence diagnostics."""
    from kenomill.recovery import OFFSET_NAMES

    meta = calibration.meta["posterior"]
    t = Table(
        title=f"Posterior of {post.model} ({post.n_draws} thinned draws of {post.n_walkers} walkers x "
        f"{post.n_steps} steps; R-hat max {meta['rhat_max']:.3f}, bulk ESS min {meta['ess_bulk_min']:.0f})"
    )
    for c in ("quantity", "p05", "p50", "p95"):
        t.add_column(c, justify="right" if c != "quantity" else "left")
    rows = [(n, post.theta[:, j]) for j, n in enumerate(recovery_free(post.model))]
    rows += [(f"scatter {n}", post.scale[:, j]) for j, n in enumerate(OFFSET_NAMES)]
    rows.append(("rho (logit Pb, logit Ag to lead con)", post.rho))
    for j, p in enumerate(post.periods):
        if np.ptp(post.availability[:, j]) > 0:
            rows.append((f"availability {p}", post.availability[:, j]))
    for n, v in rows:
        q = np.quantile(v, [0.05, 0.5, 0.95])
        t.add_row(n, *(_num(x) for x in q))
    console.print(t)


def recovery_free(model):
    from kenomill import recovery

    return recovery.get_model(model).free


def print_comparison(df, console: Console, chosen: str | None = None) -> None:
    t = Table(
        title="Model comparison: information criteria and leave-one-quarter-out (LOO) errors",
        caption="k: free parameters; k_eff: effective (trace of the hat matrix, incl. availability "
        "nuisances). LOO rec: RMSE of the held-out quarter's recovery \\[percentage points]; LOO metal: "
        "RMS error of its contained Ag oz / Pb lb / Zn lb \\[%]; score: mean of the three metal errors; "
        "cover90: share of held-out figures inside their 90 % prediction band; starts: starting points "
        "reaching the best optimum.",
    )
    t.add_column("model", justify="left", no_wrap=True, min_width=18)
    cols = [
        ("k", "right"),
        ("k_eff", "right"),
        ("chi2", "right"),
        ("AICc", "right"),
        ("dAICc", "right"),
        ("dBIC", "right"),
        ("LOO rec Ag", "right"),
        ("LOO rec Pb", "right"),
        ("LOO rec Zn", "right"),
        ("LOO Ag oz %", "right"),
        ("LOO Pb lb %", "right"),
        ("LOO Zn lb %", "right"),
        ("score", "right"),
        ("cover90", "right"),
        ("starts", "right"),
    ]
    for c, j in cols:
        t.add_column(c, justify=j)
    for r in df.itertuples():
        name = f"[bold]{r.model}[/]" if r.model == chosen else r.model
        t.add_row(
            name,
            str(r.k),
            f"{r.k_eff:.1f}",
            f"{r.chi2:.0f}",
            f"{r.aicc:.1f}",
            f"{r.d_aicc:.1f}",
            f"{r.d_bic:.1f}",
            f"{r.loo_rec_ag_pts:.2f}",
            f"{r.loo_rec_pb_pts:.2f}",
            f"{r.loo_rec_zn_pts:.2f}",
            f"{getattr(r, 'loo_ag_oz_pct', float('nan')):.2f}",
            f"{getattr(r, 'loo_pb_lb_pct', float('nan')):.2f}",
            f"{getattr(r, 'loo_zn_lb_pct', float('nan')):.2f}",
            f"{r.loo_score:.2f}",
            f"{getattr(r, 'loo_cover90', float('nan')):.2f}",
            r.same_optimum,
        )
    console.print(t)


def print_predictive(cmp, console: Console) -> None:
    """The comparison by prediction (:func:`kenomill.validation.compare`) as one table."""
    from kenomill import validation

    t = Table(
        title=f"Model comparison by prediction of held-out quarters ({cmp.n_periods} quarters): "
        "leave-one-quarter-out (LOQO) and rolling origin (fit on quarters 1..k, predict k+1)",
        caption="Scores of the held-out quarters' silver, lead and zinc recoveries, mean over held-out "
        "quarters. lpd: log predictive density \\[nats per quarter, higher is better; ± its Monte Carlo "
        "SE]; CRPS \\[percentage points, lower is better]; metal: absolute error of contained metal "
        "against the release \\[%]; "
        "c50/c90: share of recoveries inside the 50 %/90 % bands \\[%]; w: stacking weight (Yao et al. "
        "2018, on LOQO); k: largest Pareto k of the folds' importance sampling (above 0.7: that fold's "
        "posterior is approximate). naive_mean: the training quarters' mean recovery; naive_last: the "
        "latest training quarter's recovery.",
    )
    t.add_column("candidate", justify="left", no_wrap=True, min_width=22)
    heads = ["lpd", "CRPS", "metal %", "c50", "c90"]
    for sch in ("LOQO", "rolling"):
        for h in heads:
            t.add_column(f"{sch} {h}", justify="right")
    t.add_column("w", justify="right")
    t.add_column("k", justify="right")
    for r in cmp.table.itertuples():
        name = r.candidate
        if name == cmp.chosen:
            name = f"[bold]{name}[/]"
        elif name in validation.BASELINES:
            name = f"[italic]{name}[/]"
        cells = [name]
        for sch in ("loqo", "rolling"):
            se = getattr(r, f"lpd_se_{sch}", 0.0)
            cells += [
                f"{getattr(r, f'lpd_{sch}'):.2f}" + (f" ±{se:.2f}" if se > 0 else ""),
                f"{getattr(r, f'crps_{sch}'):.2f}",
                f"{getattr(r, f'mape_metal_{sch}'):.2f}",
                f"{getattr(r, f'cover50_{sch}'):.0f}",
                f"{getattr(r, f'cover90_{sch}'):.0f}",
            ]
        w = r.stacking_weight
        k = r.pareto_k_max
        cells += ["" if w != w else f"{w:.2f}", "" if k != k else f"{k:.2f}"]
        t.add_row(*cells)
    console.print(t)
    console.print(escape(cmp.describe_choice()))


def _figures(fit, calibration, profiles, predictive) -> list:
    """(file name, figure) of --plot."""
    from kenomill import plots

    figs = [
        ("reported_vs_fitted.png", plots.reported_vs_fitted(fit)),
        ("recovery_curves.png", plots.recovery_curves(fit, calibration)),
    ]
    figs += [(f"profile_{k}.png", plots.profile_plot(v, k)) for k, v in profiles.items()]
    if predictive is not None:
        figs.append(
            ("comparison_by_prediction.png", plots.predictive_comparison(predictive.table, predictive.chosen))
        )
    return figs


def _robust_df(choice):
    from kenomill import bayes

    return bayes.ROBUST_DF if choice == "robust" else None


def _rate_profiles(fit, fd, priors, console) -> dict:
    """The profile of each rate constant off its bounds (others refitted), printed: rate
    constants are what six quarters at 201-245 t/d determine worst."""
    from kenomill import calibrate as cal_mod
    from kenomill import recovery

    profiles = {}
    for j, pname in enumerate(fit.spec.free):
        if pname.startswith("ktau") and not fit.at_bound[j]:
            prm = recovery.FULL_PARAMS[recovery.PARAM_INDEX[pname]]
            grid = cal_mod.profile_grid(fit.theta[j], prm.lo, prm.hi)
            prof = cal_mod.profile(fit.spec, pname, grid, fd, priors=priors, start=fit.theta, scale=fit.scale)
            profiles[pname] = prof
            console.print(
                f"profile of {pname} (others refitted; rise of the scaled sum of squares, 1 = one sigma, "
                "4 = two): "
                + ", ".join(f"{v:.3g}: {d:.1f}" for v, d in zip(prof[pname], prof["delta"], strict=True))
            )
    return profiles


def _say_gross_errors(fd, choice, console) -> None:
    """What ``--gross-errors`` did: the figures left out (exclude), or how they are kept."""
    from kenomill import bayes

    if choice != "exclude":
        console.print(
            "gross errors: robust likelihood in the posterior (quarters' figures Student-t, "
            f"{bayes.ROBUST_DF:g} degrees of freedom)"
            if choice == "robust"
            else "gross errors: all figures kept (--gross-errors keep)"
        )
        return
    console.print(
        "gross errors flagged by the reconciliation and left out of the fit: "
        + (", ".join(fd.excluded) if fd.excluded else "none")
    )


def _sensitivity(fd, name, seed, console) -> list[dict]:
    """--sensitivity: lead recovery at 250-400 t/d under four ktau_pb priors, printed."""
    from kenomill import validation
    from kenomill.progress import progress

    with progress(len(validation.SENSITIVITY_PRIORS), f"prior sensitivity of {name}", unit="priors") as bar:
        df = validation.prior_sensitivity(fd, model=name, seed=seed, progress=bar.advance)
    t = Table(
        title="Prior sensitivity: lead recovery, 90 % band [%], at 10 % Pb, availability 92 %",
        caption="The same posterior sampler under each prior on ktau_pb (the other priors as packaged); "
        "the quarters ran at 201-245 t/d, so beyond that the band is the prior's.",
    )
    t.add_column("ktau_pb prior", justify="left")
    t.add_column("ktau_pb 5/50/95 %", justify="right")
    for tpd in validation.SENSITIVITY_TPD:
        t.add_column(f"{tpd:g} t/d", justify="right")
    t.add_column("R-hat max", justify="right")
    for r in df.to_dict(orient="records"):
        t.add_row(
            r["prior"],
            f"{r['ktau_pb_p05']:.1f} / {r['ktau_pb_p50']:.1f} / {r['ktau_pb_p95']:.1f}",
            *(
                f"{r[f'rec_pb_p05_{x:g}']:.1f}-{r[f'rec_pb_p95_{x:g}']:.1f}"
                for x in validation.SENSITIVITY_TPD
            ),
            f"{r['rhat_max']:.3f}",
        )
    console.print(t)
    return [
        {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in df.to_dict("records")
    ]


def _parse_priors(items) -> dict[str, tuple[float, float]]:
    from kenomill.errors import ValidationError

    out = {}
    for item in items:
        name, sep, rest = item.partition("=")
        parts = rest.split(",")
        try:
            if not sep or len(parts) != 2:
                raise ValueError
            out[name.strip()] = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise ValidationError(
                f"--prior: found {item!r}; expected NAME=MEAN,SD, e.g. ktau_pb=2.5,1.0"
            ) from None
    return out


def _check_out_dir(out: str) -> Path:
    from kenomill.errors import ValidationError

    p = Path(out)
    if p.exists() and not p.is_dir():
        raise ValidationError(f"--out: {str(p)!r} exists and is not a directory")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise ValidationError(f"--out: parent directory {str(parent)!r} does not exist")
    return p


def _how_to_fit(candidate: str) -> str:
    """The command that calibrates ``candidate``, or why none does yet."""
    from kenomill import recovery, validation

    c = validation.get_candidate(candidate)
    if c.robust_df is not None and not c.free_extra and not c.trend:
        return f"kenomill calibrate --model {c.model} --gross-errors robust"
    if c.name in recovery.MODELS:
        return f"kenomill calibrate --model {c.name}"
    return "a candidate the calibration file cannot hold yet: compared, not saved"


def _validation_min() -> int:
    from kenomill import validation

    return validation.ROLLING_MIN


def _comparisons(compare, compare_fit, compare_names, name, study, choice, starts, priors, workers, console):
    """The comparison by prediction (and, with --compare-fit, by fit); printed, then returned."""
    fd = study.fit_data(**choice)
    comparison = None
    predictive = None
    if compare and fd.n <= _validation_min():
        console.print(
            f"comparison by prediction skipped: it needs at least {_validation_min() + 1} base periods "
            f"(rolling origin fits {_validation_min()} and predicts the next); found {fd.n}"
        )
        compare = False
    if compare:
        from kenomill import validation
        from kenomill.progress import progress

        cands = compare_names or [c.name for c in validation.CANDIDATES]
        with progress(
            len(cands), "comparing candidates by prediction (LOQO and rolling origin)", unit="candidates"
        ) as bar:
            predictive = study.compare_by_prediction(
                cands, progress=bar.advance, workers=workers or None, **choice
            )
        print_predictive(predictive, console)
        if predictive.chosen == name:
            console.print(f"fitted and saved: {name}, the best by prediction")
        else:
            console.print(
                f"fitted and saved: {name}; best by prediction among those compared: {predictive.chosen} "
                f"({_how_to_fit(predictive.chosen)})"
            )
    if compare_fit:
        from kenomill import recovery as _rec
        from kenomill.progress import progress

        fit_names = [m for m in (compare_names or _rec.MODELS) if m in _rec.MODELS]
        if name not in fit_names:
            fit_names.append(name)
        with progress(
            len(fit_names), "comparing models by fit (AICc, least-squares LOO)", unit="models"
        ) as bar:
            # compare_models' table: bands (its loo_cover90 column), in this process
            comparison = study.compare(
                fit_names,
                starts=min(starts, 4),
                loo_starts=2,
                workers=1,
                bands=True,
                priors=priors,
                progress=bar.advance,
                **choice,
            )
        print_comparison(comparison, console, chosen=name)
        best = comparison.iloc[0]
        best_loo = comparison.sort_values("loo_score").iloc[0]
        mine = comparison.set_index("model").loc[name]
        console.print(
            f"lowest AICc: {best['model']}; lowest leave-one-out score: {best_loo['model']} "
            f"({best_loo['loo_score']:.2f} %); fitted: {name} (dAICc {mine['d_aicc']:.1f}, "
            f"score {mine['loo_score']:.2f} %)"
        )
    return predictive, comparison


@click.command()
@click.option(
    "--model", default=None, help="Model to fit (default: the packaged default). See --list-models."
)
@click.option(
    "--data",
    "data",
    type=click.Choice(["raw", "reconciled"]),
    default="raw",
    show_default=True,
    help="Fit to the figures as printed, or to the reconciled figures (kenomill reconcile).",
)
@click.option(
    "--out",
    "out",
    type=str,
    default="kenomill_calibration",
    show_default=True,
    help="Directory for calibration.json, fit.csv, parameters.csv, comparison.csv (and plots).",
)
@click.option("--plot", is_flag=True, help="Also write reported_vs_fitted.png and recovery_curves.png.")
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="Compare the candidate models by prediction of held-out quarters (leave-one-quarter-out and "
    "rolling origin) next to two naive baselines.",
)
@click.option(
    "--compare-fit",
    is_flag=True,
    help="Also the older comparison by fit: AICc, BIC and least-squares leave-one-out (comparison_fit.csv).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=64),
    default=None,
    help="Processes for the comparison (default: one per core); results do not depend on it.",
)
@click.option(
    "--starts", type=click.IntRange(min=1), default=6, show_default=True, help="Optimizer starting points."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random starting points.")
@click.option(
    "--prior",
    "prior",
    multiple=True,
    metavar="NAME=MEAN,SD",
    help="Gaussian prior on a free parameter, e.g. ktau_pb=2.5,1.0. Repeatable.",
)
@click.option(
    "--error-model",
    "error_model",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML error model of the raw figures (see kenomill.errormodel).",
)
@click.option(
    "--models",
    "models",
    default=None,
    metavar="A,B,...",
    help="Candidates to compare by prediction (default: kenomill.validation.CANDIDATES; any model "
    "of --list-models is also a candidate).",
)
@click.option(
    "--posterior-steps",
    type=click.IntRange(0, 1_000_000),
    default=POSTERIOR_STEPS,
    show_default=True,
    help="emcee steps per walker of the quarter-level posterior (a quarter burn-in); 0: no posterior "
    "draws (predictions then use the Gaussian approximation).",
)
@click.option(
    "--gross-errors",
    "gross_errors",
    type=click.Choice(["exclude", "robust", "keep"]),
    default="exclude",
    show_default=True,
    help="Figures the reconciliation flags as gross errors: left out of the fit (exclude), a robust "
    "Student-t likelihood in the posterior (robust), or fitted as they are (keep).",
)
@click.option(
    "--sensitivity",
    is_flag=True,
    help="Also the prior sensitivity: lead recovery at 250-400 t/d under four priors on ktau_pb "
    "(four posterior runs; recorded in calibration.json).",
)
@click.option("--list-models", is_flag=True, help="List the models and exit.")
@periods_option
@guarded
def calibrate(
    model,
    data,
    out,
    plot,
    compare,
    starts,
    seed,
    prior,
    error_model,
    models,
    posterior_steps,
    list_models,
    periods,
    compare_fit=False,
    workers=None,
    gross_errors="exclude",
    sensitivity=False,
):
    """Fit a recovery model to the six reported quarters; compare models; save the calibration.

    Weighted nonlinear least squares (weights from the error model: printed rounding and a
    relative error per kind of figure), several starting points, covariance of the
    parameters and warnings for what the data cannot determine. The calibration is saved
    to OUT/calibration.json, which `kenomill predict --calibration` reads.
    """
    from kenomill import calibrate as cal_mod
    from kenomill import recovery

    console = Console(width=160)
    if list_models:
        _print_models(console)
        return
    name = model or cal_mod.DEFAULT_MODEL
    recovery.get_model(name)
    compare_names = None
    if models:
        compare_names = [m.strip() for m in models.split(",") if m.strip()]
        from kenomill import validation

        for m in compare_names:
            validation.get_candidate(m)
    priors = _parse_priors(prior)
    out_dir = _check_out_dir(out)
    given = load_periods(periods)
    if given is not None:
        console.print(escape(periods_label(given)))
    from kenomill.study import Study

    study = Study(given, seed=seed)
    # size before any work (the reconciliation, the gross-error screen, the fit): emcee keeps
    # every step of every walker; its dimension depends on the model and the periods only
    from kenomill import budget

    if posterior_steps:
        budget.size_posterior(name, study.fit_data(), posterior_steps, announce=False)
    # the figures every fit, posterior and comparison below sees
    choice = dict(data=data, error_model=error_model, exclude_flagged=gross_errors == "exclude")
    fd = study.fit_data(**choice)
    _say_gross_errors(fd, gross_errors, console)
    from kenomill.progress import phase

    with phase(f"fitting {name} ({starts} starting points)"):
        fit = study.fit(name, starts=starts, priors=priors, **choice)
    calibration = fit.to_calibration()
    # which periods the calibration saw: predict, whatif, simulate and the report say so
    calibration.meta["periods_files"] = "packaged" if given is None else given.attrs["periods_files"]
    calibration.meta["gross_errors"] = {"choice": gross_errors, "excluded": list(fd.excluded)}
    print_fit(fit, console)
    if posterior_steps:
        from kenomill.progress import progress

        # the estimate of a long sampling, printed when it starts
        budget.size_posterior(name, fd, posterior_steps, what=f"calibrate {name}")

        with progress(posterior_steps, f"posterior of {name} (emcee)") as bar:
            post = cal_mod.attach_posterior(
                calibration,
                fd,
                seed=seed,
                n_steps=posterior_steps,
                progress=bar.advance,
                robust_df=_robust_df(gross_errors),
            )
        print_posterior(post, calibration, console)
    profiles = _rate_profiles(fit, fd, priors, console)
    predictive, comparison = _comparisons(
        compare, compare_fit, compare_names, name, study, choice, starts, priors, workers, console
    )
    if predictive is not None:
        calibration.meta["comparison_by_prediction"] = predictive.to_meta()
    if sensitivity:
        calibration.meta["prior_sensitivity"] = _sensitivity(fd, name, seed, console)
    # everything is computed before anything is written: no half-written output directory
    figs = _figures(fit, calibration, profiles, predictive) if plot else []
    out_dir.mkdir(exist_ok=True)
    from kenomill import io

    written = [calibration.save(out_dir / "calibration.json")]
    written.append(io.write_table(fit.table(), out_dir / "fit.csv"))
    written.append(io.write_table(fit.parameters(), out_dir / "parameters.csv"))
    if predictive is not None:
        written.append(io.write_table(predictive.table, out_dir / "comparison.csv"))
        written.append(io.write_table(predictive.rows, out_dir / "comparison_quarters.csv"))
    if comparison is not None:
        written.append(io.write_table(comparison, out_dir / "comparison_fit.csv"))
    if figs:
        from kenomill import plots

        written += [plots.save_figure(f, out_dir / n) for n, f in figs]
    click.echo("wrote " + ", ".join(str(p) for p in written))


def _print_models(console: Console) -> None:
    """--list-models: the recovery models, their free parameters and references."""
    from kenomill import recovery

    t = Table(title="Recovery models (kenomill.recovery.MODELS)")
    for c in ("model", "free parameters", "description", "reference"):
        t.add_column(c)
    for m in recovery.MODELS.values():
        t.add_row(m.name, ", ".join(m.free), escape(m.doc), m.reference)
    console.print(t)


@click.command()
@click.argument("feed", type=click.Path(dir_okay=False))
@click.option("--out", "out", type=click.Path(dir_okay=False), required=True, help="PRED.csv (or .nc).")
@click.option(
    "--calibration",
    "calibration",
    type=click.Path(dir_okay=False),
    default=None,
    help="calibration.json from `kenomill calibrate` (default: the packaged calibration).",
)
@click.option(
    "--draws", type=click.IntRange(min=2), default=4000, show_default=True, help="Monte Carlo draws."
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the draws.")
@click.option(
    "--extrapolate",
    is_flag=True,
    help="Predict feeds more than 3x outside the calibration's range (refused: a unit mistake?).",
)
@guarded
def predict(feed, out, calibration, draws, seed, extrapolate):
    """Predict recoveries, concentrates and contained metal for the feeds in FEED.csv.

    FEED.csv: period, ore_processed_t, head_ag_gpt, head_pb_pct, head_zn_pct, tpd
    (calendar t/d), optionally days and availability_pct. PRED.csv: one row per period with
    the deterministic prediction and its 5 % (_p05) and 95 % (_p95) prediction bounds.
    """
    from kenomill import calibrate as cal_mod
    from kenomill import io
    from kenomill.calibration_file import Calibration, default_calibration

    io.check_output_path(out)
    from kenomill.feed import check_domain, read_feed

    ds = read_feed(feed)
    cal = Calibration.load(calibration) if calibration else default_calibration()
    flags, domain_warnings = check_domain(ds, cal, extrapolate=extrapolate, where=str(feed))
    for w in [*ds.attrs.get("warnings", []), *domain_warnings]:
        click.echo(f"kenomill predict: warning: {w}", err=True)
    from kenomill import budget, terms

    budget.predict_check(draws, ds.sizes["period"])
    # NSR per draw (typical 2012 terms, 2012 prices) from the same draws, so its bounds are of NSR itself
    nsr_cols = cal_mod.NSR_OUTPUTS
    prices = terms.prices_for(terms.read_prices(), "2012")
    pred = cal_mod.predict(cal, ds, n_draws=draws, seed=seed, nsr=(prices, terms.packaged_terms()))
    console = Console(width=160)
    t = Table(
        title=f"Prediction, model {cal.model} ({cal.data} calibration), with 5 % and 95 % bounds",
        caption=pred.attrs["bounds"] + "; " + pred.attrs["availability_prior"] + ".",
    )
    for col, just in (
        ("period", "left"),
        ("quantity", "left"),
        ("units", "left"),
        ("value", "right"),
        ("5 %", "right"),
        ("95 %", "right"),
    ):
        t.add_column(col, justify=just)
    for i, p in enumerate(pred.period.values):
        for c in (*cal_mod.OUTPUTS, *nsr_cols):
            t.add_row(
                str(p),
                c,
                escape(pred[c].attrs["units"]),
                _num(float(pred[c][i])),
                _num(float(pred[c + "_p05"][i])),
                _num(float(pred[c + "_p95"][i])),
                end_section=c == nsr_cols[-1],
            )
    console.print(t)
    # one flag per figure: True where the feed lies outside the calibration's range
    for f, flag in flags.items():
        pred[f"{f}_extrapolated"] = ("period", flag, {"long_name": f"{f} outside the calibration's range"})
    if out.lower().endswith((".csv", ".xlsx")):
        frame = cal_mod.prediction_frame(pred)
        for f, flag in flags.items():
            frame[f"{f}_extrapolated"] = flag
        for c in nsr_cols:
            for tag in ("", "_p05", "_p95"):
                frame[c + tag] = pred[c + tag].values
        io.write_table(frame, out)
    else:
        io.write_table(pred, out)
    click.echo(f"wrote {out}")
