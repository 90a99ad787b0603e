"""What each section of the page shows, as plain values: :func:`page_context` turns the
:class:`~kenomill.report.results.ReportResults` into the context of the template
``kenomill/templates/report.html.j2`` (one entry per section; the template escapes every
value it prints, the prose is in the templates).

A section names its figures (:class:`kenomill.report.drawing.LazyFigure`: a function of
:mod:`kenomill.plots` and its arguments); :func:`page_context` draws them all at once
(:func:`kenomill.report.drawing.draw_all`, shared with the helper process when there is
one) and embeds them as ``data:`` URIs.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from markupsafe import Markup

from kenomill import plots
from kenomill.plots._common import LABELS, METALS, RECOVERIES, nearest
from kenomill.plots.scenarios import METAL_VARIABLES
from kenomill.plots.whatif import BASELINE_AVAILABILITY
from kenomill.report import format as fm
from kenomill.report.drawing import LazyFigure, draw_all, fig_to_data_uri, lazy_figures, resolve
from kenomill.report.results import (
    BASELINE_TPD,
    SOURCES_FILES,
    SOURCES_RELEASES,
    ReportResults,
    _deposit_sources,
    plain_driver,
    whatif_move,
)
from kenomill.study import summary_year

#: the year of the operator's guidance the key answers compare with (23 Jan 2012 release)
GUIDANCE_YEAR = 2012


def _label(name: str, default_units: str = "") -> tuple[str, str]:
    return LABELS.get(name, (name, default_units))


def _bad(text: str) -> Markup:
    return Markup('<span class="bad">{}</span>').format(text)


def _error_range() -> str:
    """The default relative errors of the reconciliation, as a range ("1-2 %")."""
    from kenomill.errormodel import ErrorModel

    v = [float(x) for x in ErrorModel().relative_pct.values() if float(x) > 0]
    if not v:
        return "no"
    lo, hi = min(v), max(v)
    return f"{lo:g} %" if lo == hi else f"{lo:g}-{hi:g} %"


def _calibrated_tpd(r: ReportResults) -> tuple[float, float]:
    """Range of calendar throughput [t/d] of the quarters the calibration saw."""
    tpd = np.asarray(r.fit.data.tpd, dtype=float)
    return float(np.nanmin(tpd)), float(np.nanmax(tpd))


# ------------------------------------------------------------------ sentences
def balance_facts(r: ReportResults) -> dict:
    """How many figures close, where the others are and which periods hold a gross error."""
    closes = r.balance.closes.values
    bad = [str(p) for i, p in enumerate(r.balance.period.values) if not closes[i].all()]
    gross = [str(p) for p, g in zip(r.rec.period.values, r.rec.gross_error.values, strict=True) if g]
    return {
        "n_ok": int(closes.sum()),
        "n": int(closes.size),
        "bad_periods": bad,
        "gross": gross,
        "quiet": [p for p in bad if p not in gross],
        "error_range": _error_range(),
    }


def why(r: ReportResults, p: str) -> dict:
    """Why period ``p`` fails the global test: its most suspect figure, the group whose
    removal restores agreement, and the published contained metal against the concentrates."""
    i = [str(x) for x in r.rec.period.values].index(p)
    top = r.suspects[r.suspects.period == p].iloc[0]
    lab, unit = LABELS.get(top.figure, (top.figure, top.units))
    ex = r.explanations.get(p)
    alpha = float(r.rec.attrs.get("alpha", 0.05))
    out = {
        "period": p,
        "chi2": float(r.rec.chi2.values[i]),
        "dof": int(r.rec.dof.values[i]),
        "p_value": float(r.rec.p_value.values[i]),
        "label": lab,
        "units": unit,
        "reported": top.reported,
        "reconciled": top.reconciled,
        "adjustment_pct": float(top.adjustment_pct),
        "groups": None,
    }
    if ex is not None and len(ex):
        ok = ex[ex.p_value > alpha]
        out["groups"] = {
            "best": ex.iloc[0].group,
            "best_p": ex.iloc[0].p_value,
            "next_p": ex.iloc[1].p_value if len(ex) > 1 else float("nan"),
            "ok": list(zip(ok.group, ok.p_value, strict=True)),
        }
    b = r.balance.sel(period=p)
    out["metal"] = [
        # diff is recomputed / published - 1; the reader wants published / recomputed - 1
        (name, 100 * (1 / (1 + float(b.diff_concentrate_pct.sel(quantity=v)) / 100) - 1))
        for v, name, *_ in METALS
        if not bool(b.closes.sel(quantity=v))
    ]
    return out


def throughput(r: ReportResults) -> dict:
    """What raising the calendar rate from the baseline to the grid's top does (medians)."""
    w = r.whatif
    a = nearest(w.availability.values, BASELINE_AVAILABILITY)
    t0 = nearest(w.tpd.values, BASELINE_TPD)
    t1 = float(w.tpd.values.max())
    if t1 == t0:
        return {"single": True}
    s0 = w.sel(availability=a, tpd=t0, stat="p50")
    s1 = w.sel(availability=a, tpd=t1, stat="p50")
    gains = [
        (name, float(s0[v]) * s, float(s1[v]) * s, u, 100 * (float(s1[v]) / float(s0[v]) - 1))
        for v, name, u, s in METALS
    ]
    recs = [(el, float(s0[c]), float(s1[c])) for c, el in RECOVERIES]
    lo, hi = _calibrated_tpd(r)
    return {
        "single": False,
        "availability_pct": 100 * a,
        "t0": t0,
        "t1": t1,
        "ore_pct": 100 * (float(s1.ore_processed_t) / float(s0.ore_processed_t) - 1),
        "gains": gains,
        "recs": recs,
        "ag_lo": float(w.ag_oz.sel(availability=a, tpd=t1, stat="p10")) * 1e-6,
        "ag_hi": float(w.ag_oz.sel(availability=a, tpd=t1, stat="p90")) * 1e-6,
        "scenario": r.whatif_scenario,
        "lo": lo,
        "hi": hi,
    }


def _recorded_comparison(r: ReportResults) -> dict | None:
    """The comparison by prediction that chose the calibration's model, as its file records it."""
    rec = getattr(r.calibration, "meta", {}).get("comparison_by_prediction")
    return rec if isinstance(rec, dict) and rec.get("table") else None


def predictive(r: ReportResults) -> dict | None:
    """Does the chosen model predict held-out quarters (against the naive baselines)?"""
    rec = _recorded_comparison(r)
    if rec is None:
        return None
    t = pd.DataFrame(rec["table"]).set_index("candidate")
    chosen = rec["chosen"]
    if chosen not in t.index:
        return None
    base = t.loc[[b for b in ("naive_mean", "naive_last") if b in t.index]]
    return {
        "chosen": chosen,
        "n": len(t) - len(base),
        "c": t.loc[chosen],
        "base_lpd_loqo": base.lpd_loqo.max(),
        "base_lpd_rolling": base.lpd_rolling.max(),
        "base_mape": base.mape_metal_loqo.min(),
        "ties": rec.get("ties_within_monte_carlo_error") or [],
    }


def _model_answer(r: ReportResults) -> dict:
    cmp_ = r.comparison.sort_values("aicc").reset_index(drop=True)
    chosen = r.fit.spec.name
    return {
        "chosen": chosen,
        "doc": r.fit.spec.doc,
        "rank": int(np.flatnonzero(cmp_.model.values == chosen)[0]) + 1,
        "n": len(cmp_),
        "row": cmp_[cmp_.model == chosen].iloc[0],
        "near": cmp_[(cmp_.d_aicc < 2) & (cmp_.model != chosen)].model.tolist(),
    }


def _scenario_answer_rows(r: ReportResults) -> list[list]:
    rows = []
    for run in r.scenarios:
        # the year of the 2012 guidance; a horizon without it: the study's one rule
        y = summary_year(run.annual, GUIDANCE_YEAR)
        row = [Markup("<i>{}</i>").format(run.scenario.name), str(y)]
        row += [fm.band(run.summary[v].sel(year=y), s) for v, _name, _u, s in METALS]
        tp = run.targets
        probs = [] if tp is None or tp.empty else [t for t in tp.itertuples() if int(t.year) == y]
        row.append(
            Markup("<br>").join(
                Markup("{}: <b>{}</b>").format(t.target, fm.pct(t.probability)) for t in probs
            )
            or fm.DASH
        )
        rows.append(row)
    return rows


def key_answers(r: ReportResults) -> dict:
    """The box of key answers at the top of the page."""
    facts = balance_facts(r)
    return {
        **facts,
        "why": [why(r, p) for p in facts["gross"]],
        "predictive": predictive(r),
        "model": _model_answer(r),
        "scenario_rows": _scenario_answer_rows(r),
        "throughput": throughput(r),
    }


# ------------------------------------------------------------------ sections
def data_section(r: ReportResults) -> dict:
    """Section 1: the reported figures as printed."""
    from kenomill.reconcile import MILL_FIGURES

    rep = r.reported
    # the balances' figures (feed, recoveries, concentrates, metal) with days and throughput
    cols = ["days", MILL_FIGURES[0], "tpd", "availability_pct", *MILL_FIGURES[1:]]
    rows = []
    for c in cols:
        lab, u = _label(c, rep[c].attrs.get("units", ""))
        if c == "days":
            lab, u = "calendar days", "d"
        res = rep[c + "_resolution"].values if c + "_resolution" in rep else np.ones(rep.sizes["period"])
        rows.append([f"{lab} [{u}]"] + [fm.printed(v, d) for v, d in zip(rep[c].values, res, strict=True)])
    return {
        "header": ["figure [unit]"] + [str(p) for p in rep.period.values],
        "rows": rows,
        "merge_rule": rep.attrs.get("merge_rule", ""),
        "figure": LazyFigure(plots.reported_quarters, rep),
        "source": SOURCES_RELEASES + "; kenomill.reported_periods().",
    }


def balance_section(r: ReportResults) -> dict:
    """Section 2: the figures that do not close within printed rounding."""
    from kenomill import units

    b = r.balance
    rows = []
    for p in b.period.values:
        for q in b.quantity.values:
            x = b.sel(period=p, quantity=q)
            if bool(x.closes):
                continue
            lab, u = LABELS[str(q)]
            rows.append(
                [
                    str(p),
                    f"{lab} [{u}]",
                    fm.figure_value(str(q), x.reported),
                    fm.figure_value(str(q), x.via_feed),
                    f"{float(x.diff_feed_pct):+.2f}",
                    f"{float(x.tolerance_feed_pct):.2f}",
                    fm.figure_value(str(q), x.via_concentrate),
                    f"{float(x.diff_concentrate_pct):+.2f}",
                    f"{float(x.tolerance_concentrate_pct):.2f}",
                ]
            )
    return {
        **balance_facts(r),
        "rows": rows,
        "oz": f"{units.GRAMS_PER_TROY_OZ:.9g}",
        "lb": f"{units.LB_PER_TONNE:,.5f}",
        "figure": LazyFigure(plots.balance_discrepancies, b),
    }


def _top_cells(top) -> list:
    if top is None:
        return [fm.DASH] * 5
    return [
        f"{_label(top.figure)[0]} [{top.units}]",
        fm.num(top.reported),
        fm.num(top.reconciled),
        f"{top.adjustment_pct:+.2f}",
        f"{top.z:.2f}",
    ]


def _period_rows(r: ReportResults) -> list[list]:
    """Section 3's table: the global test of each period and its most suspect figure."""
    rec = r.rec
    rows = []
    for i, p in enumerate(rec.period.values):
        s = r.suspects[r.suspects.period == str(p)]
        ge = bool(rec.gross_error.values[i])
        rows.append(
            [
                str(p),
                f"{float(rec.chi2.values[i]):.2f}",
                str(int(rec.dof.values[i])),
                fm.pval(rec.p_value.values[i]),
                _bad("YES") if ge else Markup('<span class="ok">no</span>'),
                *_top_cells(s.iloc[0] if len(s) else None),
            ]
        )
    return rows


def _explanation_tables(r: ReportResults, alpha: float) -> list[dict]:
    out = []
    for p, ex in r.explanations.items():
        rows = [
            [
                g.group,
                g.figures,
                fm.DASH if not np.isfinite(g.chi2) else f"{g.chi2:.2f}",
                str(int(g.dof)) if np.isfinite(g.chi2) else fm.DASH,
                "not estimable from the others" if not np.isfinite(g.p_value) else fm.pval(g.p_value),
            ]
            for g in ex.itertuples()
        ]
        out.append({"period": p, "rows": rows, "highlight": list((ex.p_value > alpha).fillna(False))})
    return out


def _reconciled_rows(r: ReportResults) -> list[list]:
    from kenomill.reconcile import MILL_FIGURES

    rec, rep = r.rec, r.reported
    rows = []
    for c in (*MILL_FIGURES, "tpd"):
        if c not in rec:
            continue
        lab, u = _label(c, rec[c].attrs.get("units", ""))
        cells: list = [f"{lab} [{u}]"]
        for i in range(rec.sizes["period"]):
            y, x, sd = float(rep[c].values[i]), float(rec[c].values[i]), float(rec[c + "_sd"].values[i])
            if not math.isfinite(y):
                cells.append(fm.DASH)
                continue
            sd_txt = f"{sd:,.0f}" if abs(sd) >= 10 else f"{sd:.2g}"  # never scientific notation
            cell = Markup("{}<br><small>\u00b1 {}</small>").format(fm.num(x, 4), sd_txt)
            cells.append(_bad(cell) if bool(rec[c + "_flagged"].values[i]) else cell)
        rows.append(cells)
    return rows


def reconcile_section(r: ReportResults) -> dict:
    """Section 3: the reconciliation's tests per period and over all periods."""
    from kenomill.reconcile import suspects

    rec, ra = r.rec, r.rec_across
    alpha = float(rec.attrs.get("alpha", 0.05))
    rows_a = [
        [
            s.period,
            f"{_label(s.figure)[0]} [{s.units}]",
            fm.num(s.reported),
            fm.num(s.reconciled),
            f"{s.adjustment_pct:+.2f}",
            f"{s.z:.2f}",
            _bad("YES") if s.flagged else "no",
        ]
        for s in suspects(ra, r.reported, top=5).itertuples()
    ]
    return {
        "alpha": alpha,
        "error_model": rec.attrs.get("error_model", ""),
        "period_rows": _period_rows(r),
        "highlight": list(rec.gross_error.values),
        "reconciled_rows": _reconciled_rows(r),
        "periods": [str(p) for p in rec.period.values],
        "why": [why(r, p) for p in r.explanations],
        "figure": LazyFigure(plots.reconciliation_tests, rec, r.reported),
        "explanations": _explanation_tables(r, alpha),
        "chi2_total": float(ra.attrs["chi2_total"]),
        "dof_total": int(ra.attrs["dof_total"]),
        "p_total": float(ra.attrs["p_value_total"]),
        "across_rows": rows_a,
    }


def _predictive_table(r: ReportResults, figure: LazyFigure | None = None) -> dict | None:
    """Section 4's comparison by prediction: the recorded table and its figure."""
    rec = _recorded_comparison(r)
    if rec is None:
        return None
    t = pd.DataFrame(rec["table"])
    rows = []
    for c in t.itertuples():
        k, w = c.pareto_k_max, c.stacking_weight
        rows.append(
            [c.candidate]
            + [
                f"{getattr(c, f'{s}_{sch}'):.{d}f}"
                for sch in ("loqo", "rolling")
                for s, d in (("lpd", 2), ("crps", 2), ("mape_metal", 1), ("cover50", 0), ("cover90", 0))
            ]
            + ["" if w != w else f"{w:.2f}", "" if k != k else f"{k:.2f}"]
        )
    return {
        "rows": rows,
        "highlight": [m == rec["chosen"] for m in t.candidate],
        "figure": figure or LazyFigure(plots.predictive_comparison, t, rec["chosen"]),
    }


def _sensitivity(r: ReportResults) -> dict | None:
    """How much of a 250-400 t/d answer is the prior: the table the calibration file records."""
    rows = getattr(r.calibration, "meta", {}).get("prior_sensitivity")
    if not rows:
        return None
    tpds = sorted({float(k.rsplit("_", 1)[1]) for k in rows[0] if k.startswith("rec_pb_p05_")})
    body = [
        [
            x["prior"],
            f"{x['ktau_pb_p05']:.1f} / {x['ktau_pb_p50']:.1f} / {x['ktau_pb_p95']:.1f}",
            *(f"{x[f'rec_pb_p05_{t:g}']:.1f}-{x[f'rec_pb_p95_{t:g}']:.1f}" for t in tpds),
        ]
        for x in rows
    ]
    lo = [x[f"rec_pb_p05_{tpds[-1]:g}"] for x in rows]
    return {"tpds": tpds, "rows": body, "lo_min": min(lo), "lo_max": max(lo)}


def _comparison_rows(cmp_: pd.DataFrame) -> list[list]:
    cols = ("loo_ag_oz_pct", "loo_pb_lb_pct", "loo_zn_lb_pct")
    return [
        [c.model, str(c.k), f"{c.aicc:.1f}", f"{c.d_aicc:.1f}", f"{c.d_bic:.1f}"]
        + [f"{getattr(c, n):.2f}" for n in ("loo_rec_ag_pts", "loo_rec_pb_pts", "loo_rec_zn_pts")]
        + [f"{getattr(c, n, float('nan')):.2f}" for n in cols]
        for c in cmp_.itertuples()
    ]


def _parameter_rows(fit) -> list[list]:
    from kenomill import recovery

    return [
        [
            x.parameter,
            f"{x.value:.4g}",
            "at bound" if x.at_bound else (f"{x.se:.2g}" if np.isfinite(x.se) else "not identified"),
            f"{x.lo:g} to {x.hi:g}",
            x.units,
            # the docs name the constant; the reader wants its value
            x.meaning.replace("REFERENCE_TPD", f"{recovery.REFERENCE_TPD:g} t/d (operating)"),
        ]
        for x in fit.parameters().itertuples()
    ]


def _loo_rows(loo) -> list[list]:
    rows = []
    for i, p in enumerate(loo.period.values):
        row = [str(p)]
        for v, *_ in METALS:
            rep = float(loo[v + "_reported"].values[i])
            pr = float(loo[v].values[i])
            row += [fm.num(rep), fm.num(pr), f"{100 * (pr / rep - 1):+.1f}"]
        rows.append(row)
    return rows


def _given_or_drawn(r: ReportResults, name: str, func, *args, **kwargs):
    # a figure collect() was given (ReportResults.figures), else the one to draw
    if name in r.figures:
        return fig_to_data_uri(r.figures[name])
    return LazyFigure(func, *args, **kwargs)


def calibration_figures(r: ReportResults) -> dict:
    """Section 4's figures that do not need the model comparison (drawn while it may still
    run in another process): reported vs fitted, the recovery curves (their bands draw
    predictions), leave-one-out and the recorded comparison by prediction."""
    rec = _recorded_comparison(r)
    return {
        "fitted": _given_or_drawn(r, "reported_vs_fitted", plots.reported_vs_fitted, r.fit),
        "curves": _given_or_drawn(
            r,
            "recovery_curves",
            plots.recovery_curves,
            r.fit,
            r.calibration,
            n_draws=int(r.settings.get("curve_draws", 1000)),
            seed=int(r.settings.get("seed", 0)),
        ),
        "loo": LazyFigure(plots.leave_one_out, r.loo),
        "predictive": None
        if rec is None
        else LazyFigure(plots.predictive_comparison, pd.DataFrame(rec["table"]), rec["chosen"]),
    }


def calibration_section(r: ReportResults, figures: dict | None = None) -> dict:
    """Section 4: the recovery model, its comparison, parameters and held-out predictions
    (``figures``: those of :func:`calibration_figures`, when already made)."""
    figures = figures or calibration_figures(r)
    fit = r.fit
    chosen = fit.spec.name
    cmp_ = r.comparison.sort_values("aicc").reset_index(drop=True)
    lo, hi = _calibrated_tpd(r)
    return {
        "chosen": chosen,
        "predictive": _predictive_table(r, figures["predictive"]),
        "comparison_rows": _comparison_rows(cmp_),
        "comparison_highlight": [m == chosen for m in cmp_.model],
        "sensitivity": _sensitivity(r),
        "parameter_rows": _parameter_rows(fit),
        "availability": [
            (p, 100 * a, f)
            for p, a, f in zip(fit.data.periods, fit.availability, fit.availability_fitted, strict=True)
        ],
        "scale": fit.scale,
        "warnings": list(fit.warnings),
        "availability_prior": (100 * fit.availability_prior[0], 100 * fit.availability_prior[1]),
        "lo": lo,
        "hi": hi,
        "curve_draws": r.settings.get("curve_draws", ""),
        "loo_rows": _loo_rows(r.loo),
        "figures": {
            "comparison": LazyFigure(plots.model_comparison, cmp_, chosen),
            "fitted": figures["fitted"],
            "curves": figures["curves"],
            "loo": figures["loo"],
        },
    }


def _ktau_prior(r: ReportResults) -> str:
    """The prior of the lead flotation rate x residence time, as the calibration records it."""
    post = (getattr(r.calibration, "meta", None) or {}).get("posterior") or {}
    for name, text in post.get("priors", []):
        if str(name).startswith("ktau_pb"):
            return f"{name}: {text}"
    return ""


def nsr(r: ReportResults) -> dict | None:
    """NSR against throughput: the move's gain and its probability, the best rate, which rates
    are extrapolation (with the prior that decides there), the table and the figure."""
    w = r.whatif
    if "nsr_usd_per_day" not in w:
        return None
    a = nearest(w.availability.values, BASELINE_AVAILABILITY)
    s = w.sel(availability=a)
    move = whatif_move(w.tpd.values)
    ex = [bool(e) for e in w.extrapolated.values]
    lo, hi = w.attrs.get("calibrated_tpd", _calibrated_tpd(r))
    best = float(s.best_tpd)
    return {
        "availability_pct": 100 * a,
        "move": move,
        "x": None if move is None else [s.sel(tpd=t) for t in move],
        "p_gain": float(s.p_gain) if "p_gain" in s else None,
        "draws": int(w.attrs.get("draws", 0)),
        "best": best if np.isfinite(best) else None,
        "best_is_top": best == float(np.max(w.tpd.values)),
        "lo": lo,
        "hi": hi,
        "extrapolated": [float(t) for t, e in zip(w.tpd.values, ex, strict=True) if e],
        "prior": _ktau_prior(r),
        "prior_sensitivity": w.attrs.get("prior_sensitivity", ""),
        "rows": [
            [
                f"{tp:.0f}" + (" *" if ex[k] else ""),
                fm.band(s.sel(tpd=tp).nsr_usd_per_day, 1e-3, 1),
                fm.band(s.sel(tpd=tp).nsr_usd_per_t_ore, 1.0, 0),
                "extrapolation" if ex[k] else "calibrated range",
            ]
            for k, tp in enumerate(s.tpd.values)
        ],
        "terms": w.attrs.get("terms", ""),
        "prices": w.attrs.get("prices", ""),
        "figure": LazyFigure(plots.whatif_nsr, w, a),
        "margin": margin(w),
        "tornado": tornado(r),
    }


def margin(w) -> dict | None:
    """Margin = NSR - operating cost against throughput at several availabilities, the best rate by
    margin per availability, the move's P(gain) by margin and the NSR of its extra tonne (helper value)."""
    if "margin_usd_per_day" not in w:
        return None
    rows = []
    for a in sorted({float(w.availability.values[i]) for i in (0, w.availability.size // 2, -1)}):
        s = w.sel(availability=a)
        best = float(s.best_margin_tpd)
        rows.append(
            [
                f"{100 * a:.0f}",
                "-"
                if not np.isfinite(best)
                else f"{best:g}" + (" *" if bool(s.extrapolated.sel(tpd=best)) else ""),
                fm.band(s.best_margin_margin_usd_per_day, 1e-3, 1) if np.isfinite(best) else "-",
                fm.pct(s.p_gain_margin) if "p_gain_margin" in s else "-",
                fm.band(s.move_breakeven_cad_per_t, 1.0, 0) if "move_breakeven_cad_per_t" in s else "-",
            ]
        )
    return {
        "costs": w.attrs.get("costs", ""),
        "costs_note": str(w.attrs.get("costs_note", "")).rstrip("."),
        "limits": _limits_words(w),
        "variable": float(w.attrs.get("variable_cad_per_t", float("nan"))),
        "fixed": float(w.attrs.get("fixed_cad_per_day", float("nan"))),
        "move": w.attrs.get("move", ""),
        "rows": rows,
        "figure": LazyFigure(plots.whatif_margin, w),
    }


def _limits_words(w) -> str:
    """The capacity limits the best rate was chosen within, in words."""
    parts = []
    for key, what in (("capacity_tpd", "calendar rate"), ("max_operating_tpd", "operating rate")):
        v = float(w.attrs.get(key, np.inf))
        if np.isfinite(v):
            parts.append(f"{what} <= {v:g} t/d")
    if not parts:
        return (
            "no capacity limit is stated here, so the grid's top stands for it (kenomill whatif --capacity)"
        )
    return "within " + " and ".join(parts)


def tornado(r) -> dict | None:
    """Which inputs move NSR most (the tornado of :func:`kenomill.value.whatif_tornado`)."""
    df = getattr(r, "tornado", None)
    if df is None:
        return None
    rows = [
        [x.input, f"{x.low:.4g} - {x.high:.4g}", fm.fixed(x.nsr_usd_per_day_at_low / 1e3, 1),
         fm.fixed(x.nsr_usd_per_day_at_high / 1e3, 1), f"{x.nsr_usd_per_day_swing / 1e3:+,.1f}",
         f"{x.margin_usd_per_day_swing / 1e3:+,.1f}", x.source]
        for x in df.itertuples()
    ]  # fmt: skip
    return {
        "rate": float(df.attrs["rate_tpd"]),
        "availability_pct": 100 * float(df.attrs["availability"]),
        "base_nsr": float(df.attrs["base"]["nsr_usd_per_day"]) / 1e3,
        "base_margin": float(df.attrs["base"]["margin_usd_per_day"]) / 1e3,
        "top": [str(x) for x in df["input"].head(3)],
        "draws": int(df.attrs["draws"]),
        "rows": rows,
        "figure": LazyFigure(plots.tornado, df),
    }


def whatif_section(r: ReportResults) -> dict:
    """Section 5: the throughput x availability what-if."""
    w = r.whatif
    a = nearest(w.availability.values, BASELINE_AVAILABILITY)
    s = w.sel(availability=a)
    rows = []
    for t in s.tpd.values:
        x = s.sel(tpd=t)
        row = [
            f"{t:.0f}",
            fm.fixed(x.operating_tpd.sel(stat="p50"), 0),
            fm.fixed(x.ore_processed_t.sel(stat="p50") / 1e3, 1),
        ]
        row += [fm.fixed(x[c].sel(stat="p50"), 1) for c, _ in RECOVERIES]
        row += [fm.band(x[v], sc) for v, _n, _u, sc in METALS]
        rows.append(row)
    return {
        "throughput": throughput(r),
        "availability_pct": 100 * a,
        "note": w.attrs.get("note", ""),
        "scenario": r.whatif_scenario,
        "draws": int(w.attrs.get("draws", 0)),
        "year": w.attrs.get("year", ""),
        "rows": rows,
        "nsr": nsr(r),
        "surface": LazyFigure(plots.whatif_surface, w),
        "tradeoff": LazyFigure(plots.whatif_tradeoff, w, a, _calibrated_tpd(r)),
    }


def _summary_rows(r: ReportResults) -> list[list]:
    rows = []
    for run in r.scenarios:
        for y in run.annual.year.values:
            nq = int(run.annual.quarters.sel(year=y))
            q = run.summary.sel(year=y)
            row = [run.scenario.name, f"{int(y)}" + ("" if nq == 4 else f" ({nq} quarters)")]
            row.append(fm.fixed(q.ore_processed_t.sel(stat="p50") / 1e3, 1))
            for v, _n, _u, sc in METALS:
                row += [fm.fixed(q[v].sel(stat=st) * sc, 2) for st in ("p10", "p50", "p90")]
            rows.append(row)
    return rows


def _driver_rows(r: ReportResults) -> list[list]:
    rows = []
    for run in r.scenarios:
        for v, name, *_ in METALS:
            d = run.drivers[v]
            # inputs only: realised availability and head grades are consequences (share 0)
            d = d[d.share > 0].head(4) if "share" in d else d
            if d.empty:
                continue
            rows.append(
                [
                    run.scenario.name,
                    f"{name} {int(d.year.iloc[0])}",
                    "; ".join(f"{plain_driver(x.driver)} ({x.rho:+.2f})" for x in d.itertuples()),
                ]
            )
    return rows


def scenarios_section(r: ReportResults) -> dict:
    """Section 6: the Monte Carlo scenarios, their targets and drivers."""
    target_rows = [
        [run.scenario.name, t.target, str(t.year), fm.pct(t.probability), fm.pct(t.p_at_least_min), t.source]
        for run in r.scenarios
        for t in (run.targets.itertuples() if not run.targets.empty else [])
    ]
    guidance = [t for run in r.scenarios for t in run.scenario.targets if t.year == 2012]
    return {
        "draws": r.settings.get("draws", ""),
        "runs": r.scenarios,
        "summary_rows": _summary_rows(r),
        "target_rows": target_rows,
        "driver_rows": _driver_rows(r),
        # the metals only: what the figures read, and what goes to the helper process
        "fan": LazyFigure(plots.fan_chart, [run.ds[list(METAL_VARIABLES)] for run in r.scenarios]),
        "histograms": LazyFigure(
            plots.histograms,
            [run.annual[[*METAL_VARIABLES, "quarters"]] for run in r.scenarios],
            guidance,
            [2012],
        ),
    }


def limits_section(r: ReportResults) -> dict:
    """Section 7: the calibrated range, the availability prior and the sources."""
    lo, hi = _calibrated_tpd(r)
    a_mu, a_sd = r.fit.availability_prior
    return {
        "lo": lo,
        "hi": hi,
        "a_mu": 100 * a_mu,
        "a_sd": 100 * a_sd,
        "releases": SOURCES_RELEASES + ". " + SOURCES_FILES + ".",
        "deposits": _deposit_sources(),
    }


def page_context(r: ReportResults) -> dict:
    """The template's context: one entry per section, every figure drawn (a ``data:`` URI).

    The sections that do not need the model comparison come first and their figures are drawn
    (:func:`kenomill.report.drawing.draw_all`, heaviest first) while the comparison may still
    run in another process (``collect(background=True)``): :meth:`ReportResults.complete`
    waits for it only once they are drawn. With a helper process (``collect(helper=...)``) the
    comparison runs there and the helper then draws some of the figures: the key answers and
    section 4 are made as soon as it is free, and their figure joins the others. The page's
    order is the template's.
    """
    ctx = {
        "settings": r.settings,
        "data": data_section(r),
        "balance": balance_section(r),
        "reconcile": reconcile_section(r),
        "whatif": whatif_section(r),
        "scenarios": scenarios_section(r),
        "limits": limits_section(r),
    }
    cal_figures = calibration_figures(r)

    def with_comparison() -> list:
        r.complete()
        ctx["key"] = key_answers(r)
        ctx["calibration"] = calibration_section(r, cal_figures)
        return lazy_figures(ctx["calibration"])

    draw_all(lazy_figures([ctx, cal_figures]), pool=r._helper, then=with_comparison)
    return resolve(ctx)
