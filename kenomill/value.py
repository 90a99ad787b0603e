"""What the concentrates are worth: a smelter settlement and the net smelter return (NSR).

Pure, vectorised NumPy: every argument broadcasts, so one call settles a period, a table
of periods, or periods x Monte Carlo draws. The terms come from a validated terms file
(:mod:`kenomill.terms`), the prices from a price deck (:func:`kenomill.terms.read_prices`).

Settlement of one concentrate lot of ``dmt`` dry tonnes (per concentrate, per period):

- shipped wet tonnes ``wmt = dmt / (1 - moisture)``; transport losses remove a share
  ``loss`` of the concentrate, so the smelter receives ``dmt * (1 - loss)`` dry tonnes;
- payable content of a metal per dry tonne, ``c`` its assay (% for Pb, Zn; oz/dmt for Ag):
  ``max(0, min(p * (c - d), c - m))`` with ``p`` the payable fraction, ``d`` a flat
  deduction taken before paying ``p`` (InfoMine's "deduct 0.5 to 2.0 oz, pay 95 % of the
  rest") and ``m`` the minimum deduction ("pay 95 % with minimum deductions of 1.5 to 3.0
  units");
- payable value at the market price;
- treatment charge per dry tonne received: ``base + sum_i r_i * (clip(P, lo_i, hi_i) -
  clip(B, lo_i, hi_i))`` over price bands ``[lo_i, hi_i]`` with rate ``r_i`` [US$/dmt per
  US$/t]; ``P`` the price of the paying metal and ``B`` the basis price. Above the basis
  the bands are escalators, below it de-escalators;
- refining charge per payable oz of silver;
- penalties: ``rate * max(0, assay - threshold)`` per dry tonne for each element;
- freight per wet tonne shipped;
- insurance: a share of the invoice (payable value less TC, RC and penalties);
- the silver stream: a share of the payable silver is delivered at the stream price
  instead of the market price (the lesser of the two), so the stream costs
  ``share * payable_oz * (P_ag - min(stream_price, P_ag))``.

NSR = payable value - TC - RC - penalties - insurance - freight - stream deduction [US$];
in C$ at the exchange rate (C$ per US$); per tonne of ore by dividing by the ore milled.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kenomill import units, variables
from kenomill.errors import ValidationError

#: grams per troy ounce
G_PER_OZ = units.GRAMS_PER_TROY_OZ
#: pounds per tonne
LB_PER_T = units.LB_PER_TONNE

#: the settlement lines of one concentrate, their units and long names, in report order
LINES: dict[str, tuple[str, str]] = {
    "dmt": ("t", "dry tonnes produced"),
    "wmt": ("t", "wet tonnes shipped"),
    "dmt_received": ("t", "dry tonnes received by the smelter (after transport losses)"),
    "ag_payable_oz": ("troy_oz", "payable silver"),
    "pb_payable_lb": ("lb", "payable lead"),
    "zn_payable_lb": ("lb", "payable zinc"),
    "ag_value_usd": ("USD", "value of payable silver at the market price"),
    "pb_value_usd": ("USD", "value of payable lead at the market price"),
    "zn_value_usd": ("USD", "value of payable zinc at the market price"),
    "payable_value_usd": ("USD", "value of payable metal"),
    "tc_usd_per_dmt": ("USD/t", "treatment charge per dry tonne (after escalators)"),
    "tc_usd": ("USD", "treatment charge"),
    "rc_usd": ("USD", "silver refining charge"),
    "penalty_usd": ("USD", "penalties"),
    "insurance_usd": ("USD", "insurance"),
    "freight_usd": ("USD", "freight and handling"),
    "stream_usd": ("USD", "silver stream deduction (streamed oz at the stream price, not market)"),
    "nsr_usd": ("USD", "net smelter return"),
}

METALS = variables.METALS


def payable_content(content, payable, deduct=0.0, min_deduction=0.0):
    """Payable content per dry tonne [same unit as ``content``].

    ``max(0, min(payable * (content - deduct), content - min_deduction))``.

    Parameters
    ----------
    content : array_like
        Assay per dry tonne (% = units of metal per 100 dmt for Pb, Zn; oz/dmt for Ag).
    payable : float or array_like
        Payable fraction [0-1] of the content left after ``deduct``.
    deduct : float
        Deducted first, then ``payable`` is paid on the rest [unit of ``content``].
    min_deduction : float
        The smelter keeps at least this much [unit of ``content``].
    """
    c = np.asarray(content, dtype=float)
    return np.maximum(0.0, np.minimum(payable * (c - deduct), c - min_deduction))


def treatment_charge(price, base, basis, bands=()):
    """Treatment charge per dry tonne after escalators and de-escalators [US$/dmt].

    Parameters
    ----------
    price : array_like
        Price of the paying metal [US$/t].
    base : float
        TC at the basis price [US$/dmt].
    basis : float
        Basis price [US$/t].
    bands : sequence of (lo, hi, rate)
        Price bands [US$/t] and their rate [US$/dmt of TC per US$/t of price]. The TC
        moves by ``rate`` for each US$1 the price moves inside the band, up above the basis
        (escalator) and down below it (de-escalator).
    """
    p = np.asarray(price, dtype=float)
    tc = np.full(np.shape(p), float(base))
    for lo, hi, rate in bands:
        tc = tc + rate * (np.clip(p, lo, hi) - np.clip(basis, lo, hi))
    return tc


def penalty(assay, threshold, rate):
    """Penalty per dry tonne [US$/dmt]: ``rate`` per unit (1 %) of ``assay`` [%] above ``threshold`` [%]."""
    return rate * np.maximum(0.0, np.asarray(assay, dtype=float) - threshold)


def settle(dmt, assays: Mapping[str, object], prices: Mapping[str, object], terms, stream) -> dict:
    """Settle one concentrate: every line of :data:`LINES` as arrays (broadcast shapes).

    Parameters
    ----------
    dmt : array_like
        Concentrate produced [dry t].
    assays : mapping
        Mass fractions of ``"ag"``, ``"pb"``, ``"zn"`` in the concentrate [-].
    prices : mapping
        ``"ag"`` [US$/oz], ``"pb"`` and ``"zn"`` [US$/lb].
    terms : kenomill.terms.ConcentrateTerms
        The concentrate's terms.
    stream : kenomill.terms.StreamTerms
        The silver stream (its share applies to the payable silver).

    Returns
    -------
    dict of str -> numpy.ndarray
        Keys of :data:`LINES`, in the units given there.
    """
    dmt = np.asarray(dmt, dtype=float)
    moisture = terms.moisture_pct.value / 100.0
    loss = terms.losses_pct.value / 100.0
    out: dict[str, np.ndarray] = {"dmt": dmt, "wmt": dmt / (1.0 - moisture)}
    rec = dmt * (1.0 - loss)
    out["dmt_received"] = rec
    # assays in the smelter's units: Ag oz/dmt, Pb and Zn % (units per dmt)
    grade = {
        "ag": np.asarray(assays["ag"], dtype=float) * 1e6 / G_PER_OZ,
        "pb": np.asarray(assays["pb"], dtype=float) * 100.0,
        "zn": np.asarray(assays["zn"], dtype=float) * 100.0,
    }
    price_t = {m: np.asarray(prices[m], dtype=float) * (LB_PER_T if m != "ag" else 1.0) for m in METALS}
    value = 0.0
    for m in METALS:
        mt = getattr(terms.metals, m)
        per_dmt = payable_content(
            grade[m], mt.payable_pct.value / 100.0, mt.deduct.value, mt.min_deduction.value
        )
        if m == "ag":
            qty = rec * per_dmt  # oz
            out["ag_payable_oz"] = qty
            out["ag_value_usd"] = qty * np.asarray(prices["ag"], dtype=float)
        else:
            qty = rec * per_dmt / 100.0 * LB_PER_T  # lb
            out[f"{m}_payable_lb"] = qty
            out[f"{m}_value_usd"] = qty * np.asarray(prices[m], dtype=float)
        value = value + out[f"{m}_value_usd"]
    out["payable_value_usd"] = np.asarray(value, dtype=float)
    tc = terms.tc
    bands = [(b.lo, b.hi, b.rate) for b in tc.bands]
    out["tc_usd_per_dmt"] = treatment_charge(
        price_t[tc.metal], tc.base_usd_per_dmt.value, tc.basis_usd_per_t.value, bands
    )
    out["tc_usd"] = out["tc_usd_per_dmt"] * rec
    out["rc_usd"] = out["ag_payable_oz"] * terms.metals.ag.refining_usd_per_oz.value
    pen = 0.0
    for pt in terms.penalties:
        pen = pen + penalty(grade[pt.element], pt.threshold_pct.value, pt.rate_usd_per_dmt_per_pct.value)
    out["penalty_usd"] = np.asarray(pen, dtype=float) * rec
    invoice = out["payable_value_usd"] - out["tc_usd"] - out["rc_usd"] - out["penalty_usd"]
    out["insurance_usd"] = np.maximum(invoice, 0.0) * terms.insurance_pct.value / 100.0
    out["freight_usd"] = out["wmt"] * terms.freight_usd_per_wmt.value
    p_ag = np.asarray(prices["ag"], dtype=float)
    share = stream.share_pct.value / 100.0
    out["stream_usd"] = (
        share * out["ag_payable_oz"] * (p_ag - np.minimum(stream.price_usd_per_oz.value, p_ag))
    )
    out["nsr_usd"] = invoice - out["insurance_usd"] - out["freight_usd"] - out["stream_usd"]
    shape = np.broadcast_shapes(*(np.shape(v) for v in out.values()))
    return {k: np.broadcast_to(out[k], shape).astype(float) for k in LINES}


def nsr(
    lead: Mapping[str, object],
    zinc: Mapping[str, object],
    prices: Mapping[str, object],
    terms,
    ore_t=None,
    dims: tuple[str, ...] = ("period",),
    coords: Mapping | None = None,
):
    """NSR of the lead and the zinc concentrate of each period (and draw), as an xarray Dataset.

    Parameters
    ----------
    lead, zinc : mapping
        ``"dmt"`` [dry t] and mass fractions ``"ag"``, ``"pb"``, ``"zn"`` [-] of the lead
        and the zinc concentrate; arrays broadcasting to the shape of ``dims``.
    prices : mapping
        ``"ag"`` [US$/oz], ``"pb"``, ``"zn"`` [US$/lb], ``"usd_cad"`` [C$ per US$], and
        optionally ``"source"`` (words, kept in the attributes).
    terms : kenomill.terms.Terms
        Validated terms (:func:`kenomill.terms.load_terms`).
    ore_t : array_like, optional
        Ore milled [t], for NSR per tonne of ore.
    dims, coords
        Dimension names and coordinates of the result.

    Returns
    -------
    xarray.Dataset
        ``pbcon_<line>`` and ``zncon_<line>`` for every line of :data:`LINES`, then
        ``nsr_usd``, ``nsr_cad`` and (with ``ore_t``) ``nsr_usd_per_t_ore`` and
        ``nsr_cad_per_t_ore``; every variable with ``units`` and ``long_name``.
    """
    import xarray as xr

    parts = {
        "pbcon": settle(lead["dmt"], lead, prices, terms.lead_concentrate, terms.stream),
        "zncon": settle(zinc["dmt"], zinc, prices, terms.zinc_concentrate, terms.stream),
    }
    names = {"pbcon": "lead concentrate", "zncon": "zinc concentrate"}
    v = {}
    for tag, lines in parts.items():
        for k, (u, ln) in LINES.items():
            v[f"{tag}_{k}"] = (dims, lines[k], {"units": u, "long_name": f"{names[tag]}: {ln}"})
    total = parts["pbcon"]["nsr_usd"] + parts["zncon"]["nsr_usd"]
    fx = np.asarray(prices["usd_cad"], dtype=float)
    v["nsr_usd"] = (dims, total, {"units": "USD", "long_name": "net smelter return, both concentrates"})
    v["nsr_cad"] = (
        dims,
        np.broadcast_to(total * fx, total.shape).copy(),
        {"units": "CAD", "long_name": "net smelter return, both concentrates, in C$"},
    )
    if ore_t is not None:
        ore = np.asarray(ore_t, dtype=float)
        v["nsr_usd_per_t_ore"] = (
            dims,
            np.broadcast_to(total / ore, total.shape).copy(),
            {"units": "USD/t", "long_name": "NSR per tonne of ore milled"},
        )
        v["nsr_cad_per_t_ore"] = (
            dims,
            np.broadcast_to(total * fx / ore, total.shape).copy(),
            {"units": "CAD/t", "long_name": "NSR per tonne of ore milled, in C$"},
        )
    ds = xr.Dataset(v, coords=dict(coords or {}))
    ds.attrs["terms"] = terms.name
    if "source" in prices:
        ds.attrs["prices"] = str(prices["source"])
    return ds


def model_minor_assays(periods, calibration=None, *, n_draws: int = 1000, seed: int = 0) -> dict:
    """Zinc in the lead concentrate and lead in the zinc concentrate from the calibrated model.

    The releases do not report these assays; they drive the penalties. For each period the
    calibrated mill response (:func:`kenomill.recovery.respond_many`) is evaluated at the
    period's head grades and operating throughput (calendar t/d over availability; the
    calibration's availability prior where availability is not reported), at the central
    parameters, and for ``n_draws`` posterior draws (parameters and a new quarter's offsets,
    contract 2 of :meth:`kenomill.calibration_file.Calibration.posterior_draws`).

    Parameters
    ----------
    periods : xarray.Dataset
        Periods (dim ``period``) with ``head_ag_gpt``, ``head_pb_pct``, ``head_zn_pct``,
        ``tpd`` and ``availability_pct``.
    calibration : Calibration, optional
        Default: the packaged calibration.
    n_draws : int
        Posterior predictive draws behind the band.
    seed : int
        Seed of the draws.

    Returns
    -------
    dict
        ``"zn_in_pbcon"``, ``"pb_in_zncon"``: central mass fractions [-], shape (period,);
        ``"zn_in_pbcon_draws"``, ``"pb_in_zncon_draws"``: (draw, period); ``"model"``: the
        model's name.
    """
    from kenomill import recovery
    from kenomill.calibrate import AVAILABILITY_PRIOR, AVAILABILITY_RANGE, operating_q_ratio
    from kenomill.calibration_file import default_calibration

    cal = default_calibration() if calibration is None else calibration
    spec = cal.spec
    head = np.stack(
        [
            periods["head_ag_gpt"].values / 1e6,
            periods["head_pb_pct"].values / 100.0,
            periods["head_zn_pct"].values / 100.0,
        ],
        axis=1,
    ).astype(float)
    n = head.shape[0]
    tpd = periods["tpd"].values.astype(float)
    a_given = periods["availability_pct"].values.astype(float) / 100.0
    a_mu, a_sd = cal.meta.get("availability_prior", AVAILABILITY_PRIOR)
    a_det = np.where(np.isnan(a_given), a_mu, a_given)

    def assays(split, pull, h):
        zn_pb = h[:, 2] * split[:, 2, 0] / pull[:, 0]
        pb_zn = h[:, 1] * split[:, 1, 1] / pull[:, 1]
        return zn_pb, pb_zn

    split, pull = recovery.respond_many(spec, cal.full(), head, operating_q_ratio(tpd, a_det))
    zn_c, pb_c = assays(split, pull, head)

    post = cal.posterior_draws()
    rng = np.random.default_rng(seed)
    s = rng.integers(0, post["theta"].shape[0], size=n_draws)
    p = np.tile(np.asarray(cal.base, dtype=float), (n_draws, 1))
    p[:, spec.free_index] = post["theta"][s]
    z = rng.standard_normal((n_draws, n, recovery.N_OFFSETS))
    # a new quarter's offsets for posterior draw s: offset_mean[s] + scatter_sd[s] * (chol[s] @ z)
    off = post["offset_mean"][s][:, None, :] + post["scatter_sd"][s][:, None, :] * np.einsum(
        "sij,snj->sni", post["scatter_chol"][s], z
    )
    a = np.tile(a_det, (n_draws, 1))
    unknown = np.isnan(a_given)
    if unknown.any():
        a[:, unknown] = np.clip(
            a_mu + a_sd * rng.standard_normal((n_draws, int(unknown.sum()))), *AVAILABILITY_RANGE
        )
    rows_head = np.tile(head, (n_draws, 1))
    split, pull = recovery.respond_many(
        spec,
        np.repeat(p, n, axis=0),
        rows_head,
        operating_q_ratio(np.tile(tpd, n_draws), a.reshape(-1)),
        off.reshape(-1, recovery.N_OFFSETS),
    )
    zn_d, pb_d = assays(split, pull, rows_head)
    return {
        "zn_in_pbcon": zn_c,
        "pb_in_zncon": pb_c,
        "zn_in_pbcon_draws": zn_d.reshape(n_draws, n),
        "pb_in_zncon_draws": pb_d.reshape(n_draws, n),
        "model": cal.model,
    }


#: the figures of a period that the settlement needs
#: (ore, the concentrates' tonnes and paying grades, the head grades, the rate)
PERIOD_FIGURES = (
    "ore_processed_t",
    *(f for f in variables.FIT_FIGURES if f not in variables.RECOVERIES),
    *variables.HEADS,
    "tpd",
)


def nsr_of_periods(
    periods=None, terms=None, prices=None, *, n_draws: int = 1000, seed: int = 0, calibration=None
):
    """NSR of every base period (one not the sum of others), each settlement line, with a band.

    Parameters
    ----------
    periods : xarray.Dataset, optional
        From :func:`kenomill.read_periods`; None: the packaged periods.
    terms : kenomill.terms.Terms, optional
        None: the packaged typical 2012 terms.
    prices : dict
        From :func:`kenomill.terms.prices_for`; None: the packaged 2012 annual prices.
    n_draws, seed
        Posterior predictive draws of the unreported assays (zinc in the lead concentrate,
        lead in the zinc concentrate) behind the P10-P90 band; see :func:`model_minor_assays`.
    calibration : Calibration, optional
        Default: the packaged calibration.

    Returns
    -------
    xarray.Dataset
        Dim ``period``: the lines of :func:`nsr` at the model's central assays, the assays
        used (``pbcon_zn_pct``, ``zncon_pb_pct`` with ``_p10``/``_p90``) and ``_p10``/``_p90``
        of the penalties and of NSR over the draws. Attributes name the terms, prices and
        where the unreported assays come from.
    """
    from kenomill import data
    from kenomill import terms as _terms
    from kenomill.errors import ValidationError

    if periods is None:
        periods = data.reported_periods()
    t = _terms.packaged_terms() if terms is None else terms
    pr = _terms.prices_for(_terms.read_prices(), "2012") if prices is None else prices
    base = list(data.base_periods(periods))
    ds = periods.sel(period=base)
    for f in PERIOD_FIGURES:
        if f not in ds:
            raise ValidationError(f"periods: {f}: missing; NSR needs {', '.join(PERIOD_FIGURES)}")
        bad = np.isnan(ds[f].values.astype(float))
        if bad.any():
            p = str(ds.period.values[np.argmax(bad)])
            raise ValidationError(
                f"periods: period {p}: {f}: not reported; NSR needs {', '.join(PERIOD_FIGURES)}"
            )
    minor = model_minor_assays(ds, calibration, n_draws=n_draws, seed=seed)

    def run(zn_pb, pb_zn, dims):
        lead = {
            "dmt": ds.pbcon_t.values,
            "ag": ds.pbcon_ag_gpt.values / 1e6,
            "pb": ds.pbcon_pb_pct.values / 100.0,
            "zn": zn_pb,
        }
        zinc = {
            "dmt": ds.zncon_t.values,
            "ag": ds.zncon_ag_gpt.values / 1e6,
            "pb": pb_zn,
            "zn": ds.zncon_zn_pct.values / 100.0,
        }
        return nsr(lead, zinc, pr, t, ore_t=ds.ore_processed_t.values, dims=dims)

    if "price_period" in pr:  # realized prices per period: the deck period and sources of each
        pr = {**pr, **{m: np.asarray(pr[m], dtype=float) for m in (*METALS, "usd_cad")}}
    out = run(minor["zn_in_pbcon"], minor["pb_in_zncon"], ("period",))
    _add_price_rows(out, pr, ds.sizes["period"])
    draws = run(minor["zn_in_pbcon_draws"], minor["pb_in_zncon_draws"], ("draw", "period"))
    band = f"P10-P90 over {n_draws} posterior predictive draws of the calibrated model"
    for name, arr, tag in (
        ("pbcon_zn_pct", minor["zn_in_pbcon"], minor["zn_in_pbcon_draws"]),
        ("zncon_pb_pct", minor["pb_in_zncon"], minor["pb_in_zncon_draws"]),
    ):
        what = "zinc in the lead concentrate" if name.startswith("pbcon") else "lead in the zinc concentrate"
        out[name] = (
            "period",
            100.0 * arr,
            {"units": "%", "long_name": f"{what} (model, central value; not reported)"},
        )
        q = np.quantile(100.0 * tag, [0.1, 0.9], axis=0)
        out[name + "_p10"] = ("period", q[0], {"units": "%", "long_name": f"{what}, P10 ({band})"})
        out[name + "_p90"] = ("period", q[1], {"units": "%", "long_name": f"{what}, P90 ({band})"})
    for v in ("pbcon_penalty_usd", "zncon_penalty_usd", "nsr_usd", "nsr_cad", "nsr_usd_per_t_ore"):
        q = np.quantile(draws[v].values, [0.1, 0.9], axis=0)
        u, ln = draws[v].attrs["units"], draws[v].attrs["long_name"]
        out[v + "_p10"] = ("period", q[0], {"units": u, "long_name": f"{ln}, P10 ({band})"})
        out[v + "_p90"] = ("period", q[1], {"units": u, "long_name": f"{ln}, P90 ({band})"})
    out = out.assign_coords(period=ds.period.values)
    note = (
        f"calibrated model {minor['model']}: central value at the period's head grades and throughput; "
        f"P10-P90 over {n_draws} posterior predictive draws"
    )
    out["unreported_assays_from"] = (
        "period",
        np.array([note] * ds.sizes["period"], dtype=object).astype(str),
        {"long_name": "where zinc in the lead concentrate and lead in the zinc concentrate come from"},
    )
    out.attrs.update(
        {
            "terms": t.name,
            "prices": str(pr.get("source", "")),
            "unreported_assays": f"zinc in the lead concentrate and lead in the zinc concentrate are not "
            f"reported: calibrated model {minor['model']} at each period's head grades and throughput "
            f"(central value); bands: {band}",
            "periods_source": "; ".join(dict.fromkeys(str(s) for s in ds.source.values)),
        }
    )
    return out


def _add_price_rows(out, pr, n: int) -> None:
    """The prices that settled each period (and which deck period and source) as variables."""
    for m, unit in (("ag", "USD/troy_oz"), ("pb", "USD/lb"), ("zn", "USD/lb"), ("usd_cad", "CAD/USD")):
        out[f"price_{m}"] = (
            "period",
            np.broadcast_to(np.asarray(pr[m], dtype=float), (n,)).copy(),
            {"units": unit, "long_name": f"price used: {m}"},
        )
    period = pr.get("price_period", [str(pr.get("period", ""))] * n)
    src = pr.get("sources", [str(pr.get("source", ""))] * n)
    out["price_period"] = ("period", np.array(period, dtype=str), {"long_name": "price deck period used"})
    out["price_source"] = ("period", np.array(src, dtype=str), {"long_name": "source of the prices used"})


#: inputs :func:`sensitivity` moves: name -> (what, where in the prices or the terms)
SENSITIVITY_INPUTS: dict[str, tuple[str, tuple]] = {
    "silver price": ("prices", ("ag",)),
    "lead price": ("prices", ("pb",)),
    "zinc price": ("prices", ("zn",)),
    "stream share": ("terms", ("stream", "share_pct")),
    "lead con TC": ("terms", ("lead_concentrate", "tc", "base_usd_per_dmt")),
    "zinc con TC": ("terms", ("zinc_concentrate", "tc", "base_usd_per_dmt")),
    "silver RC": ("terms", ("lead_concentrate", "metals", "ag", "refining_usd_per_oz")),
    "lead con Ag deduction": ("terms", ("lead_concentrate", "metals", "ag", "deduct")),
    "zinc con Zn min deduction": ("terms", ("zinc_concentrate", "metals", "zn", "min_deduction")),
    "freight (both)": (
        "terms",
        (("lead_concentrate", "freight_usd_per_wmt"), ("zinc_concentrate", "freight_usd_per_wmt")),
    ),
    "moisture (both)": (
        "terms",
        (("lead_concentrate", "moisture_pct"), ("zinc_concentrate", "moisture_pct")),
    ),
    "zinc con Pb penalty rate": ("terms", ("zinc_concentrate", "penalties", 0, "rate_usd_per_dmt_per_pct")),
}


def sensitivity(periods=None, terms=None, prices=None, *, rel: float = 0.10, calibration=None):
    """One at a time, each input of :data:`SENSITIVITY_INPUTS` up by ``rel``: change of total NSR.

    Totals are over the base periods at the model's central unreported assays.

    Returns
    -------
    pandas.DataFrame
        Columns ``input``, ``base`` (the input's value), ``nsr_usd`` (total NSR with the
        input moved) and ``change_usd``, ``change_pct`` (relative to the base total), sorted
        by the size of the change.
    """
    import pandas as pd

    from kenomill import terms as _terms

    t = _terms.packaged_terms() if terms is None else terms
    pr = _terms.prices_for(_terms.read_prices(), "2012") if prices is None else prices
    base_total = float(nsr_of_periods(periods, t, pr, n_draws=10, calibration=calibration).nsr_usd.sum())
    rows = []
    for name, (kind, where) in SENSITIVITY_INPUTS.items():
        if kind == "prices":
            p2 = dict(pr)
            p2[where[0]] = pr[where[0]] * (1.0 + rel)
            t2, base_value = t, pr[where[0]]
        else:
            d = t.model_dump()
            paths = where if isinstance(where[0], tuple) else (where,)
            base_value = None
            for path in paths:
                node = d
                for key in path:
                    node = node[key]
                base_value = node["value"] if base_value is None else base_value
                node["value"] = node["value"] * (1.0 + rel)
            t2, p2 = _terms.terms_from_dict(d, where="sensitivity"), pr
        total = float(nsr_of_periods(periods, t2, p2, n_draws=10, calibration=calibration).nsr_usd.sum())
        rows.append(
            {
                "input": name,
                "base": base_value,
                "nsr_usd": total,
                "change_usd": total - base_total,
                "change_pct": 100.0 * (total - base_total) / base_total,
            }
        )
    df = pd.DataFrame(rows)
    df = df.reindex(df.change_usd.abs().sort_values(ascending=False).index).reset_index(drop=True)
    df.attrs["base_nsr_usd"] = base_total
    df.attrs["rel"] = rel
    return df


def prior_sensitivity_words(cal) -> str:
    """The prior-sensitivity band the calibration records (``meta["prior_sensitivity"]``, from
    ``kenomill calibrate --sensitivity``) in words: the range of the lower 90 % bound of lead
    recovery across the ktau_pb priors at each recorded throughput; "" when not recorded."""
    rows = (getattr(cal, "meta", None) or {}).get("prior_sensitivity") or []
    if not rows:
        return ""
    tpds = sorted({float(k.rsplit("_", 1)[1]) for k in rows[0] if k.startswith("rec_pb_p05_")})
    parts = []
    for t in tpds:
        lo = [float(x[f"rec_pb_p05_{t:g}"]) for x in rows]
        parts.append(f"{t:g} t/d {min(lo):.1f}-{max(lo):.1f} %")
    return (
        f"under the {len(rows)} ktau_pb priors the calibration records (kenomill calibrate --sensitivity), "
        "the lower end of the 90 % band of lead recovery (10 % Pb, 92 % availability) spans "
        + ", ".join(parts)
    )


#: the kernel record fields a what-if keeps per draw and quarter (:func:`_year_nsr` reads them):
#: lead con t, its Ag, Pb, Zn t; zinc con t, its Ag, Pb, Zn t; calendar hours; ore milled t
def _record_fields() -> list[int]:
    from kenomill import _mc_kernels as K

    return [
        K.F_STREAM_T,
        *(K.F_STREAM_M + k for k in range(3)),
        K.F_STREAM_T + 1,
        *(K.F_STREAM_M + 3 + k for k in range(3)),
        K.F_CAL_H,
        K.F_FEED_T,
    ]


def _year_nsr(rec, terms, prices):
    """NSR of the year [US$], calendar days and ore milled [t] from compact records.

    ``rec`` (..., quarter, 10) as :func:`_record_fields`; each quarter is settled on its own
    (its own assays) and the quarters are summed. ``prices`` items broadcast against
    (..., quarter) (per-draw prices as (draw, 1)).
    """

    def con(s):
        dmt = rec[..., 4 * s]
        safe = np.where(dmt > 0, dmt, 1.0)
        return {"dmt": dmt, **{e: rec[..., 4 * s + 1 + k] / safe for k, e in enumerate(METALS)}}

    lead, zinc = con(0), con(1)
    total = settle(lead["dmt"], lead, prices, terms.lead_concentrate, terms.stream)["nsr_usd"]
    total = total + settle(zinc["dmt"], zinc, prices, terms.zinc_concentrate, terms.stream)["nsr_usd"]
    return total.sum(axis=-1), rec[..., 8].sum(axis=-1) / 24.0, rec[..., 9].sum(axis=-1)


def whatif_prices(scenario, prices, price_model, seed: int, draws: int) -> dict:
    """The prices of a what-if's draws: the fixed row ``prices``, or per-draw draws of ``price_model``.

    ``price_model`` (a scenario's :class:`kenomill.scenario.Prices`) gives lognormal,
    correlated prices per draw from the counter-based stream keyed by (seed, draw)
    (:func:`kenomill.draw_inputs.price_draws`, as ``kenomill simulate``): draw ``d`` has the
    same prices whatever the chunks, and every grid point sees the same prices in draw ``d``
    (common random numbers).
    """
    if price_model is None:
        return dict(prices)
    from kenomill import draw_inputs

    sc = scenario.model_copy(update={"prices": price_model})
    return draw_inputs.price_draws(sc, seed, np.arange(draws))


def _price_slice(pr: dict, d0: int, n: int) -> dict:
    out = {}
    for k, v in pr.items():
        a = np.asarray(v) if k != "source" else v
        out[k] = a[d0 : d0 + n, None] if k != "source" and a.ndim == 1 else v
    return out


def _stats(x):
    return np.stack([x.mean(axis=-1), *np.percentile(x, [10, 50, 90], axis=-1)], axis=-1)


def _add_best(ds, per_draw, allowed, tpd, *, what: str, prefix: str) -> None:
    """best rate by the mean of ``per_draw`` (tpd, availability, draw) over the allowed rates.

    Adds ``{prefix}tpd``, ``{prefix}{what}_usd_per_day`` (availability, stat) and
    ``{prefix}share`` (share of draws whose own best allowed rate is the best of the means).
    """
    mean = np.where(allowed, per_draw.mean(axis=-1), -np.inf)
    best = np.argmax(mean, axis=0)  # per availability
    has = allowed.any(axis=0)
    words = "NSR" if what == "nsr" else "margin (NSR - operating cost)"
    ds[f"{prefix}tpd"] = (
        "availability",
        np.where(has, tpd[best], np.nan),
        {"units": "t/d", "long_name": f"rate of the largest mean {words} per day within the capacity limits"},
    )
    cols = np.arange(allowed.shape[1])
    ds[f"{prefix}{what}_usd_per_day"] = (
        ("availability", "stat"),
        np.where(has[:, None], _stats(per_draw)[best, cols], np.nan),
        {"units": "USD/d", "long_name": f"{words} per calendar day at {prefix}tpd"},
    )
    own = np.argmax(np.where(allowed[..., None], per_draw, -np.inf), axis=0)  # (availability, draw)
    ds[f"{prefix}share"] = (
        "availability",
        np.where(has, (own == best[:, None]).mean(axis=1), np.nan),
        {"long_name": f"share of draws whose own best allowed rate (by {words}) is {prefix}tpd"},
    )


def _add_move(ds, move, tpd, per_day, margin, ore_day, usd_cad) -> None:
    """P(gain) of the move by NSR and by margin, and the variable cost at which it stops paying."""
    if move is None or move[0] not in tpd or move[1] not in tpd:
        return
    a, b = (int(np.flatnonzero(tpd == m)[0]) for m in move)
    label = f"{move[0]:g} -> {move[1]:g} t/d"
    gain = (per_day[b] > per_day[a]).mean(axis=-1)
    ds["p_gain"] = ("availability", gain, {"long_name": f"P(NSR per day gains, {label})"})
    ds.attrs.update({"p_gain": float(gain[0]), "move": label})
    if margin is None:
        return
    gm = (margin[b] > margin[a]).mean(axis=-1)
    ds["p_gain_margin"] = ("availability", gm, {"long_name": f"P(margin per day gains, {label})"})
    ds.attrs["p_gain_margin"] = float(gm[0])
    # NSR of each extra tonne of the move, in C$/t: the variable cost at which it stops paying
    extra = (per_day[b] - per_day[a]) / (ore_day[b] - ore_day[a]) * np.asarray(usd_cad, dtype=float)
    ds["move_breakeven_cad_per_t"] = (
        ("availability", "stat"),
        _stats(extra),
        {
            "units": "CAD/t",
            "long_name": f"NSR per extra tonne of the move {label} [C$/t]: the move gains margin while "
            "the variable operating cost per tonne is below it (fixed costs per day do not matter)",
        },
    )


def _add_margin(ds, per_day, ore_day, costs, usd_cad):
    cost = costs_per_day(costs, ore_day, usd_cad)
    margin = per_day - cost
    dims = ("tpd", "availability", "stat")
    ds["cost_usd_per_day"] = (
        dims,
        _stats(cost),
        {"units": "USD/d", "long_name": f"operating cost per calendar day ({costs.name})"},
    )
    ds["margin_usd_per_day"] = (
        dims,
        _stats(margin),
        {"units": "USD/d", "long_name": "margin per calendar day: NSR - operating cost"},
    )
    ds.attrs.update(
        {
            "costs": costs.name,
            "costs_note": costs.note,
            "variable_cad_per_t": costs.variable_cad_per_t.value,
            "fixed_cad_per_day": costs.fixed_cad_per_day.value,
        }
    )
    return margin


def costs_per_day(costs, ore_per_day, usd_cad):
    """Operating cost per calendar day [US$/d] (:func:`kenomill.terms.cost_usd_per_day`)."""
    from kenomill import terms as _terms

    return _terms.cost_usd_per_day(costs, ore_per_day, usd_cad)


def _whatif_result(ds, per_day, per_t, tpd, avs, cal, *, limits, terms, pdraws, price_model) -> None:
    """NSR statistics, extrapolation flags, capacity limits and the best rate by NSR, into ``ds``."""
    from kenomill.calibrate import calibrated_feed_range

    t = terms
    lo, hi = calibrated_feed_range(cal)["tpd"]
    dims = ("tpd", "availability", "stat")
    ds["nsr_usd_per_day"] = (dims, _stats(per_day), {"units": "USD/d", "long_name": "NSR per calendar day"})
    ds["nsr_usd_per_t_ore"] = (dims, _stats(per_t), {"units": "USD/t", "long_name": "NSR per tonne of ore"})
    ds["extrapolated"] = (
        "tpd",
        (tpd < lo) | (tpd > hi),
        {"long_name": f"calendar rate outside the calibration's {lo:g}-{hi:g} t/d (extrapolation)"},
    )
    allowed = (tpd[:, None] <= limits[0]) & (tpd[:, None] / avs[None, :] <= limits[1])
    ds["allowed"] = (("tpd", "availability"), allowed, {"long_name": "within the stated capacity limits"})
    _add_best(ds, per_day, allowed, tpd, what="nsr", prefix="best_")
    ds.attrs.update(
        {
            "terms": t.name,
            "prices": str(pdraws.get("source", "")),
            "price_uncertainty": int(price_model is not None),
            "capacity_tpd": float(limits[0]),
            "max_operating_tpd": float(limits[1]),
            "calibrated_tpd": [float(lo), float(hi)],
            "prior_sensitivity": prior_sensitivity_words(cal),
            "best_tpd": float(ds.best_tpd.values[0]),
            "note": "feed unlimited, capacity cap lifted (as kenomill whatif); NSR before mining and milling "
            f"costs; rates outside the calibration's {lo:g}-{hi:g} t/d are "
            "extrapolation of the calibrated curves (the prior decides there)",
        }
    )


def whatif_nsr(
    scenario,
    tpd,
    availability=0.92,
    *,
    draws: int = 200,
    seed: int = 0,
    year: int | None = None,
    terms=None,
    prices=None,
    costs=None,
    price_model=None,
    base_dir=None,
    move: tuple[float, float] | None = (250.0, 300.0),
    capacity_tpd: float = np.inf,
    max_operating_tpd: float = np.inf,
    calibration=None,
    progress=None,
    chunk_size: int | None = None,
    keep_draws: bool = False,
    keep_records: bool = False,
):
    """NSR and margin per calendar day and NSR per tonne across throughput (and availability), per draw.

    Runs the what-if grid of :func:`kenomill.simulate.whatif` (feed unlimited, capacity
    cap lifted, the same draws at every point) and settles each quarter's concentrates of
    each draw (:func:`settle`; Zn in the lead concentrate and Pb in the zinc concentrate
    from the simulated streams), then sums the year's quarters: NSR per calendar day =
    the year's NSR / its calendar days; per tonne = the year's NSR / its ore milled;
    margin per day = NSR per day - operating cost per day (``costs``: C$ per tonne milled
    and per calendar day, converted at the price row's usd_cad).

    Parameters
    ----------
    availability : float or sequence of float
        Mill availabilities [-]. A single number gives dims (tpd, stat) as before.
    costs : kenomill.terms.Costs, optional
        Operating costs; default the packaged PEA 2008 costs (C$206/t, all variable).
    price_model : kenomill.scenario.Prices, optional
        Uncertain prices (a scenario's ``[prices]``): each draw its own prices
        (:func:`whatif_prices`); ``prices`` is then not used.
    capacity_tpd, max_operating_tpd : float
        Stated capacity limits: the best throughput is chosen among the grid's calendar
        rates at or below ``capacity_tpd`` [t/d] whose operating rate (calendar rate /
        availability) is at or below ``max_operating_tpd`` [t/d].
    move : (float, float) or None
        Two calendar rates of the grid: ``p_gain`` = P(NSR per day at move[1] > at
        move[0]) and ``p_gain_margin`` the same by margin, counts over the common draws.
    keep_draws : bool
        Also return the per-draw NSR and margin (dims tpd, availability, draw).
    keep_records : bool
        Also return ``records`` (tpd, availability, draw, quarter_of_year, field), the
        compact per-draw quarter records, to settle again under other terms (:func:`whatif_tornado`).

    Returns
    -------
    xarray.Dataset
        The production surface of :func:`kenomill.simulate.whatif` plus dims (tpd,
        availability, stat): ``nsr_usd_per_day`` [US$/d], ``nsr_usd_per_t_ore`` [US$/t],
        ``cost_usd_per_day``, ``margin_usd_per_day`` [US$/d] with stats mean, p10, p50,
        p90; ``extrapolated`` (tpd); ``allowed`` (tpd, availability); by NSR ``best_tpd``,
        ``best_nsr_usd_per_day``, ``best_share``, ``p_gain``; by margin
        ``best_margin_tpd``, ``best_margin_margin_usd_per_day``, ``best_margin_share``,
        ``p_gain_margin`` and ``move_breakeven_cad_per_t``.
    """
    from kenomill import simulate as sim
    from kenomill import terms as _terms

    t = _terms.packaged_terms() if terms is None else terms
    pr = _terms.prices_for(_terms.read_prices(), "2012") if prices is None else prices
    cst = _terms.packaged_costs() if costs is None else costs
    pdraws = whatif_prices(scenario, pr, price_model, seed, draws)
    tpd = np.asarray(tpd, dtype=float)
    scalar = np.ndim(availability) == 0
    avs = np.atleast_1d(np.asarray(availability, dtype=float))
    per_day, per_t, ore_day = (np.empty((tpd.size, avs.size, draws)) for _ in range(3))
    fields = _record_fields()
    kept: dict = {}

    def on_chunk(i, j, d0, o):  # o: (draw, quarter, field) of the year's quarters
        n = o.shape[0]
        rec = o[..., fields]
        total, days, ore = _year_nsr(rec, t, _price_slice(pdraws, d0, n))
        per_day[i, j, d0 : d0 + n] = total / days
        per_t[i, j, d0 : d0 + n] = total / ore
        ore_day[i, j, d0 : d0 + n] = ore / days
        if keep_records:
            kept.setdefault("r", np.empty((tpd.size, avs.size, draws, *rec.shape[1:])))
            kept["r"][i, j, d0 : d0 + n] = rec

    ds = sim.whatif(
        scenario, tpd, avs, draws=draws, seed=seed, year=year, calibration=calibration,
        base_dir=base_dir, progress=progress, on_chunk=on_chunk, chunk_size=chunk_size,
    )  # fmt: skip
    cal = (
        calibration
        if calibration is not None
        else sim.compile_plan(scenario, None, base_dir=base_dir).calibration
    )
    _whatif_result(
        ds, per_day, per_t, tpd, avs, cal,
        limits=(capacity_tpd, max_operating_tpd), terms=t, pdraws=pdraws, price_model=price_model,
    )  # fmt: skip
    margin = _add_margin(ds, per_day, ore_day, cst, pdraws["usd_cad"])
    _add_best(ds, margin, ds["allowed"].values, tpd, what="margin", prefix="best_margin_")
    _add_move(ds, move, tpd, per_day, margin, ore_day, pdraws["usd_cad"])
    ds.attrs["best_margin_tpd"] = float(ds.best_margin_tpd.values[0])
    ds.attrs["note"] += f"; margin after operating costs ({cst.name})"
    if keep_draws:
        keep = (
            ("nsr_usd_per_day", per_day, "USD/d"),
            ("nsr_usd_per_t_ore", per_t, "USD/t"),
            ("margin_usd_per_day", margin, "USD/d"),
            ("ore_t_per_day", ore_day, "t/d"),
        )
        for name, x, u in keep:
            ds[f"{name}_draws"] = (("tpd", "availability", "draw"), x, {"units": u})
    if keep_records:
        ds["records"] = (("tpd", "availability", "draw", "quarter_of_year", "field"), kept["r"])
    return ds.isel(availability=0) if scalar else ds


# ------------------------------------------------------------------ Monte Carlo results
def price_draws(
    prices: Mapping[str, object], n: int, *, sd_log=None, corr=None, seed: int = 0, normals=None
) -> dict:
    """Prices as uncertain inputs: lognormal draws around a price row, correlated across metals.

    Parameters
    ----------
    prices : mapping
        Central prices ``"ag"`` [US$/oz], ``"pb"``, ``"zn"`` [US$/lb], ``"usd_cad"`` [C$/US$]
        (e.g. :func:`kenomill.terms.prices_for`); they are the medians of the draws.
    n : int
        Draws.
    sd_log : mapping, optional
        Standard deviation of the log price per metal (``"ag"``, ``"pb"``, ``"zn"``) [-];
        missing metals stay fixed. ASSUMPTION for a default: none (fixed prices).
    corr : array_like (3, 3), optional
        Correlation of the log prices in the order Ag, Pb, Zn (identity if not given).
    seed : int
        Seed of the draws.
    normals : array_like (n, 3), optional
        Independent standard normals to use instead of drawing them from ``seed`` (a
        scenario's prices come from a stream keyed by its seed and each draw's index,
        :func:`kenomill.draw_inputs.price_draws`).

    Returns
    -------
    dict
        ``"ag"``, ``"pb"``, ``"zn"`` arrays (n,), ``"usd_cad"`` unchanged.
    """
    sd = np.array([float((sd_log or {}).get(m, 0.0)) for m in METALS])
    c = np.eye(3) if corr is None else np.asarray(corr, dtype=float)
    zi = np.random.default_rng(seed).standard_normal((n, 3)) if normals is None else np.asarray(normals)
    z = zi @ np.linalg.cholesky(c).T
    out = {m: float(prices[m]) * np.exp(sd[i] * z[:, i]) for i, m in enumerate(METALS)}
    out["usd_cad"] = prices["usd_cad"]
    return out


def simulation_nsr(ds, terms=None, prices=None, *, target_usd: float | None = None):
    """NSR of a Monte Carlo result per draw and quarter, per year, and its P10/P50/P90.

    Post-processes :func:`kenomill.simulate.simulate`'s Dataset (``stream_t`` and
    ``metal_t`` per draw, quarter, stream and element); the kernel is not involved. Every
    quarter's concentrates are settled on their own; a year's NSR is the sum of its
    quarters' (a settlement is linear in tonnes at fixed assays, not across quarters whose
    assays differ, so the quarters are the unit).

    Parameters
    ----------
    ds : xarray.Dataset
        A simulation result.
    terms : kenomill.terms.Terms, optional
        Default: the packaged typical 2012 terms.
    prices : mapping, optional
        A price row (:func:`kenomill.terms.prices_for`, default 2012) or price draws
        (:func:`price_draws`, arrays over ``draw``).
    target_usd : float, optional
        Annual revenue target [US$]: adds ``p_target`` per year, P(NSR of the year >= target).

    Returns
    -------
    xarray.Dataset
        ``nsr_usd``, ``nsr_cad`` and every settlement line (draw, quarter); ``nsr_year_usd``,
        ``nsr_year_cad`` (draw, year); ``nsr_usd_per_t_ore`` (draw, quarter); quantiles
        ``nsr_usd_q`` (quantile, quarter) and ``nsr_year_usd_q`` (quantile, year) at 0.1, 0.5,
        0.9 [US$]; ``p_target`` (year) when a target is given.
    """
    import xarray as xr

    from kenomill import terms as _terms

    t = _terms.packaged_terms() if terms is None else terms
    pr = _terms.prices_for(_terms.read_prices(), "2012") if prices is None else dict(prices)
    st = ds["stream_t"].transpose("draw", "quarter", "stream")
    mt = ds["metal_t"].transpose("draw", "quarter", "stream", "element")
    nd, nq = st.sizes["draw"], st.sizes["quarter"]
    pr_b = {}
    for m in METALS:
        a = np.asarray(pr[m], dtype=float)
        pr_b[m] = a[:, None] if a.ndim == 1 else a  # per draw -> (draw, 1)
    pr_b["usd_cad"] = pr["usd_cad"]

    def con(s):
        dmt = st.sel(stream=s).values
        with np.errstate(invalid="ignore", divide="ignore"):
            assay = {
                m: np.where(dmt > 0, mt.sel(stream=s, element=m.capitalize()).values / dmt, 0.0)
                for m in METALS
            }
        return {"dmt": dmt, **assay}

    ore = st.sel(stream="feed").values
    res = nsr(
        con("pbcon"),
        con("zncon"),
        pr_b,
        t,
        ore_t=np.where(ore > 0, ore, np.nan),
        dims=("draw", "quarter"),
        coords={"draw": ds.draw.values, "quarter": ds.quarter.values},
    )
    years = np.array([str(q)[:4] for q in ds.quarter.values])
    by_year = xr.DataArray(years, dims="quarter", name="year")
    for k in ("nsr_usd", "nsr_cad"):
        y = res[k].groupby(by_year).sum()
        res[k.replace("nsr_", "nsr_year_")] = y.assign_attrs(
            units=res[k].attrs["units"], long_name=f"{res[k].attrs['long_name']}, sum of the year's quarters"
        )
    qs = [0.1, 0.5, 0.9]
    res["nsr_usd_q"] = (
        res["nsr_usd"].quantile(qs, dim="draw").assign_attrs(units="USD", long_name="NSR P10/P50/P90")
    )
    res["nsr_year_usd_q"] = (
        res["nsr_year_usd"]
        .quantile(qs, dim="draw")
        .assign_attrs(units="USD", long_name="annual NSR P10/P50/P90")
    )
    if target_usd is not None:
        res["p_target"] = (
            (res["nsr_year_usd"] >= float(target_usd))
            .mean("draw")
            .assign_attrs(
                units="1", long_name=f"probability that the year's NSR reaches US${target_usd:,.0f}"
            )
        )
    res.attrs.update({"scenario": ds.attrs.get("scenario", ""), "draws": nd, "quarters": nq})
    return res


# ------------------------------------------------------------------ blend decisions
def _blend_scenario(path, fractions: Mapping[str, float], year: int):
    """The scenario at ``path`` as one year of constant blend fractions (every source open)."""
    import tomllib

    from kenomill import scenario as _sc

    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    old = _sc.from_dict(data, where=str(path)).horizon.labels
    if f"{year}Q1" not in old or f"{year}Q4" not in old:
        raise ValidationError(f"{path}: horizon: year {year} is not wholly inside {old[0]}..{old[-1]}")
    i0 = old.index(f"{year}Q1")

    def cut(node):
        # per-quarter lists of the old horizon -> the year's four quarters
        if isinstance(node, dict):
            return {k: cut(v) for k, v in node.items()}
        if isinstance(node, list) and len(node) == len(old) and all(isinstance(v, int | float) for v in node):
            return node[i0 : i0 + 4]
        return node

    data = cut(data)
    # a scenario that starts after the reported quarters: this year is simulated alone
    data["horizon"] = {**data["horizon"], "start": f"{year}Q1", "quarters": 4, "start_after_reported": False}
    data["feed"] = {**data.get("feed", {}), "mode": "blend"}
    data.pop("targets", None)
    # one year at the stated mill rate: the plan's per-draw factor on it is not this question
    data.get("mill", {}).pop("target_uncertainty", None)
    for name, src in data["sources"].items():
        for k in ("rate_tpd", "rate_cv", "rate_uncertainty", "start", "start_delay_days"):
            src.pop(k, None)
        src["blend"] = float(fractions.get(name, 0.0))
    return _sc.from_dict(data, where=str(path))


def blend_nsr(
    path,
    fractions: Mapping[str, float],
    *,
    year: int = 2013,
    draws: int = 64,
    seed: int = 0,
    terms=None,
    prices=None,
):
    """NSR of one year at constant blend fractions: per calendar day and by source.

    The scenario's sources feed the mill in the shares ``fractions`` (summing to 1) for the
    four quarters of ``year``, with every source open (start dates and rates dropped); the
    same seed gives common random numbers across blends, so differences between blends are
    not Monte Carlo noise of independent runs.

    Returns
    -------
    dict
        ``nsr_usd_per_day`` (draws,) [US$/d], ``pbcon_zn_pct`` (draws,) [%, tonnage-weighted
        zinc grade of the year's lead concentrate], ``zncon_pb_pct`` (draws,) [%], and
        ``by_source_usd_per_t`` {source: mean NSR per tonne of ore [US$/t]} from the feed
        shares (each source's tonnes times the blend's NSR per tonne is not an attribution;
        the per-source figure is its own single-source run).
    """
    from kenomill import simulate as sim

    sc = _blend_scenario(path, fractions, year)
    ds = sim.simulate(sc, draws=draws, seed=seed)
    r = simulation_nsr(ds, terms, prices)
    days = ds["days"].sum("quarter").values
    st = ds["stream_t"].sum("quarter")
    mt = ds["metal_t"].sum("quarter")
    return {
        "nsr_usd_per_day": r["nsr_usd"].sum("quarter").values / days,
        "nsr_usd_per_t_ore": r["nsr_usd"].sum("quarter").values / st.sel(stream="feed").values,
        "pbcon_zn_pct": 100.0 * (mt.sel(stream="pbcon", element="Zn") / st.sel(stream="pbcon")).values,
        "zncon_pb_pct": 100.0 * (mt.sel(stream="zncon", element="Pb") / st.sel(stream="zncon")).values,
    }


def optimal_blend(
    path,
    max_fraction: Mapping[str, float] | None = None,
    *,
    year: int = 2013,
    draws: int = 64,
    seed: int = 0,
    zn_in_pbcon_max_pct: float = 7.0,
    terms=None,
    prices=None,
):
    """The blend maximising expected NSR per calendar day subject to a concentrate-quality limit.

    ``max_fraction`` {source: largest share [0-1]} states supply limits (a mine's rate over
    the mill's rate); without it only the quality limit binds.

    Maximises the mean over draws of :func:`blend_nsr`'s NSR per day over the blend
    fractions (on the simplex), subject to the mean zinc grade of the lead concentrate
    staying at or below ``zn_in_pbcon_max_pct`` [%] (the upper end of the Pulacayo
    Feasibility Study's typical penalty threshold, 5-7 %), with ``scipy.optimize.minimize``
    (SLSQP) on softmax-free fractions bounded to [0, 1] with an equality constraint.

    Returns
    -------
    dict
        ``fractions`` {source: share}, ``nsr_usd_per_day`` mean and P10/P90 at the optimum,
        ``pbcon_zn_pct`` mean at the optimum, ``by_source`` {source: mean NSR per day and per t
        of each source alone}, ``p_better_than_bellekeno`` = P(NSR/day of the optimum > of
        Bellekeno alone) over common draws, ``evaluations``.
    """
    from kenomill import scenario as _sc

    names = list(_sc.load(path).sources)
    ev = _blend_evaluator(path, names, year=year, draws=draws, seed=seed, terms=terms, prices=prices)
    hi = np.array([float((max_fraction or {}).get(n, 1.0)) for n in names])
    if hi.sum() < 1.0:
        raise ValidationError(
            f"max_fraction: found shares summing to {hi.sum():g}; allowed: at least 1 (the mill's feed)"
        )
    res = _slsqp_blend(
        lambda x: ev(x)["nsr_usd_per_day"].mean() / 1e5,
        lambda x: ev(x)["pbcon_zn_pct"].mean(),
        hi / hi.sum(),
        hi,
        zn_in_pbcon_max_pct,
        eps=0.02,
        maxiter=30,
        ftol=1e-4,
    )
    x = np.clip(res.x, 0.0, 1.0)
    x = x / x.sum()
    best = ev(x)
    alone = {}
    for n in names:
        e = blend_nsr(path, {n: 1.0}, year=year, draws=draws, seed=seed, terms=terms, prices=prices)
        alone[n] = {
            "nsr_usd_per_day": float(e["nsr_usd_per_day"].mean()),
            "nsr_usd_per_t_ore": float(e["nsr_usd_per_t_ore"].mean()),
            "pbcon_zn_pct": float(e["pbcon_zn_pct"].mean()),
        }
    base = (
        blend_nsr(path, {"bellekeno": 1.0}, year=year, draws=draws, seed=seed, terms=terms, prices=prices)
        if "bellekeno" in names
        else None
    )
    return {
        "fractions": dict(zip(names, map(float, x), strict=True)),
        "nsr_usd_per_day": float(best["nsr_usd_per_day"].mean()),
        "nsr_usd_per_day_p10": float(np.quantile(best["nsr_usd_per_day"], 0.1)),
        "nsr_usd_per_day_p90": float(np.quantile(best["nsr_usd_per_day"], 0.9)),
        "pbcon_zn_pct": float(best["pbcon_zn_pct"].mean()),
        "by_source": alone,
        "p_better_than_bellekeno": None
        if base is None
        else float((best["nsr_usd_per_day"] > base["nsr_usd_per_day"]).mean()),
        "evaluations": len(ev.cache),
        "converged": bool(res.success),
    }


def simplex_grid(names, step: float, max_fraction: Mapping[str, float] | None = None) -> np.ndarray:
    """Blend fractions on a grid of the simplex within the supply limits ``max_fraction``.

    Each source takes the multiples of ``step`` up to its limit and the limit itself (a
    binding supply limit is then on the grid); the source of the largest limit takes the
    remainder, which must lie within its own limit. Rows = blends, columns = ``names``.
    """
    import itertools

    n = int(round(1.0 / step))
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise ValidationError(f"--grid-step: found {step:g}; allowed: 1/k for a whole k (0.1, 0.05, 0.25)")
    hi = np.array([float((max_fraction or {}).get(m, 1.0)) for m in names])
    last = int(np.argmax(hi))
    others = [i for i in range(len(names)) if i != last]
    cands = [sorted({*(k / n for k in range(n + 1) if k / n <= hi[i] + 1e-12), float(hi[i])}) for i in others]
    rows = []
    for c in itertools.product(*cands):
        rest = 1.0 - sum(c)
        if -1e-12 <= rest <= hi[last] + 1e-12:
            row = np.empty(len(names))
            row[others] = c
            row[last] = max(rest, 0.0)
            rows.append(np.round(row, 9))
    grid = np.unique(np.array(rows), axis=0) if rows else np.empty((0, len(names)))
    if grid.size == 0:
        raise ValidationError(
            f"--max-fraction: no blend on a {step:g} grid respects "
            f"{dict(zip(names, hi.tolist(), strict=True))}"
        )
    return grid


def blend_uncertainty(
    path,
    max_fraction: Mapping[str, float] | None = None,
    *,
    year: int = 2013,
    draws: int = 32,
    seed: int = 0,
    step: float = 0.1,
    zn_in_pbcon_max_pct: float = 7.0,
    terms=None,
    prices=None,
    progress=None,
):
    """How sure is the best blend? The optimum of each posterior draw on a simplex grid.

    Every blend of :func:`simplex_grid` is run with the same draws (:func:`blend_nsr`,
    common random numbers). For each draw, the feasible blend (its own zinc grade of the
    lead concentrate at or below the limit) of largest NSR per day is that draw's optimum;
    the spread of those optima over the draws is the uncertainty of the optimal fractions
    (the calibration's posterior, the ores' offsets and the day-to-day grades vary by draw).

    Returns
    -------
    dict
        ``names``; ``grid`` (blends, sources); ``nsr_usd_per_day`` and ``pbcon_zn_pct``
        (blends, draws); ``best_mean`` (the feasible-in-the-mean blend of largest mean NSR
        per day); ``per_draw`` (draws, sources): each draw's optimum; ``p10``, ``p50``,
        ``p90`` of each source's optimal share; ``share_at_best_mean``: the share of draws
        whose optimum is ``best_mean``.
    """
    from kenomill import scenario as _sc

    names = list(_sc.load(path).sources)
    grid = simplex_grid(names, step, max_fraction)
    nsr = np.empty((grid.shape[0], draws))
    zn = np.empty((grid.shape[0], draws))
    for i, row in enumerate(grid):
        r = blend_nsr(
            path,
            dict(zip(names, map(float, row), strict=True)),
            year=year,
            draws=draws,
            seed=seed,
            terms=terms,
            prices=prices,
        )
        nsr[i], zn[i] = r["nsr_usd_per_day"], r["pbcon_zn_pct"]
        if progress is not None:
            progress(1)
    ok_mean = zn.mean(axis=1) <= zn_in_pbcon_max_pct
    if not ok_mean.any():
        raise ValidationError(
            f"--zn-in-pbcon-max: no blend of the grid keeps zinc in the lead concentrate at or below "
            f"{zn_in_pbcon_max_pct:g} % (lowest mean {zn.mean(axis=1).min():.2f} %)"
        )
    best_mean = int(np.argmax(np.where(ok_mean, nsr.mean(axis=1), -np.inf)))
    feasible = zn <= zn_in_pbcon_max_pct
    own = np.argmax(np.where(feasible, nsr, -np.inf), axis=0)
    has = feasible.any(axis=0)
    per_draw = np.where(has[:, None], grid[own], np.nan)
    q = np.nanpercentile(per_draw, [10, 50, 90], axis=0)
    return {
        "names": names,
        "grid": grid,
        "nsr_usd_per_day": nsr,
        "pbcon_zn_pct": zn,
        "best_mean": dict(zip(names, map(float, grid[best_mean]), strict=True)),
        "best_mean_nsr_usd_per_day": float(nsr[best_mean].mean()),
        "per_draw": per_draw,
        "p10": dict(zip(names, map(float, q[0]), strict=True)),
        "p50": dict(zip(names, map(float, q[1]), strict=True)),
        "p90": dict(zip(names, map(float, q[2]), strict=True)),
        "share_at_best_mean": float(np.mean(has & (own == best_mean))),
        "draws_without_feasible_blend": int((~has).sum()),
    }


def _blend_evaluator(path, names, *, year, draws, seed, terms, prices):
    """A cached evaluator of :func:`blend_nsr` on blend fractions (all draws at once).

    Fractions are clipped to [0, 1], normalised and rounded to 6 decimals (the scenario checks
    that the shares sum to 1); ``ev.calls`` counts the distinct blends run.
    """
    cache: dict = {}

    def ev(x):
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        x = x / x.sum() if x.sum() > 0 else np.full(len(x), 1.0 / len(x))
        r = np.round(x, 6)
        r[-1] = 1.0 - r[:-1].sum()
        key = tuple(float(v) for v in r)
        if key not in cache:
            frac = dict(zip(names, key, strict=True))
            cache[key] = blend_nsr(path, frac, year=year, draws=draws, seed=seed, terms=terms, prices=prices)
        return cache[key]

    ev.cache = cache  # type: ignore[attr-defined]
    return ev


def _slsqp_blend(objective, zn, x0, hi, zn_max, *, eps=0.01, maxiter=40, ftol=1e-7):
    """SLSQP over blend fractions: max ``objective`` subject to ``zn(x) <= zn_max``, sum 1, 0 <= x <= hi."""
    from scipy.optimize import minimize

    return minimize(
        lambda x: -objective(x),
        np.asarray(x0, dtype=float),
        method="SLSQP",
        bounds=[(0.0, float(h)) for h in hi],
        constraints=[
            {"type": "eq", "fun": lambda x: x.sum() - 1.0},
            {"type": "ineq", "fun": lambda x: zn_max - zn(x)},
        ],
        options={"eps": eps, "maxiter": maxiter, "ftol": ftol},
    )


def per_draw_optimum(
    path,
    max_fraction: Mapping[str, float] | None = None,
    *,
    year: int = 2013,
    draws: int = 32,
    seed: int = 0,
    zn_in_pbcon_max_pct: float = 7.0,
    terms=None,
    prices=None,
    start=None,
    progress=None,
):
    """Each draw's own optimal blend, by SLSQP on that draw's NSR per day and zinc grade.

    For draw ``d``: maximise NSR per calendar day of draw ``d`` (:func:`blend_nsr`, the same
    seed for every blend: common random numbers) over the blend fractions, subject to draw
    ``d``'s zinc grade of the lead concentrate at or below ``zn_in_pbcon_max_pct`` [%], the
    shares summing to 1 and the supply limits ``max_fraction``; SLSQP with finite
    differences (step 0.01 in the shares), started at ``start[d]`` (e.g. the draw's grid
    optimum, :func:`blend_uncertainty`) or the supply-limit blend. Every blend evaluated
    runs all draws, cached across the draws' searches.

    Returns
    -------
    dict
        ``names``; ``fractions`` (draws, sources); ``nsr_usd_per_day``, ``pbcon_zn_pct``
        (draws,) at each draw's optimum; ``feasible`` (draws,) (the draw's zinc grade at its
        optimum within the limit + 1e-6); ``converged`` (draws,); ``evaluations``: distinct
        blends run.
    """
    from kenomill import scenario as _sc

    names = list(_sc.load(path).sources)
    hi = np.array([float((max_fraction or {}).get(n, 1.0)) for n in names])
    ev = _blend_evaluator(path, names, year=year, draws=draws, seed=seed, terms=terms, prices=prices)
    frac = np.empty((draws, len(names)))
    conv = np.zeros(draws, dtype=bool)
    for d in range(draws):
        x0 = hi / hi.sum() if start is None or not np.isfinite(start[d]).all() else np.asarray(start[d])
        res = _slsqp_blend(
            lambda x, d=d: ev(x)["nsr_usd_per_day"][d] / 1e5,
            lambda x, d=d: ev(x)["pbcon_zn_pct"][d],
            x0,
            hi,
            zn_in_pbcon_max_pct,
        )
        x = np.clip(res.x, 0.0, hi)
        frac[d] = x / x.sum()
        conv[d] = bool(res.success)
        if progress is not None:
            progress(1)
    at = [ev(x) for x in frac]
    nsr = np.array([a["nsr_usd_per_day"][d] for d, a in enumerate(at)])
    zn = np.array([a["pbcon_zn_pct"][d] for d, a in enumerate(at)])
    return {
        "names": names,
        "fractions": frac,
        "nsr_usd_per_day": nsr,
        "pbcon_zn_pct": zn,
        "feasible": zn <= zn_in_pbcon_max_pct + 1e-3,
        "binding": np.abs(zn - zn_in_pbcon_max_pct) <= 1e-3,
        "converged": conv,
        "evaluations": len(ev.cache),
    }


# ------------------------------------------------------------------ predictions
def predict_nsr(
    feed,
    calibration=None,
    terms=None,
    prices=None,
    *,
    n_draws: int = 1000,
    seed: int = 0,
    quantiles=(0.05, 0.95),
):
    """NSR of predicted periods with prediction bounds (the companion of :func:`kenomill.calibrate.predict`).

    For each posterior predictive draw (parameters and a new quarter's offsets, contract 2 of
    :meth:`~kenomill.calibration_file.Calibration.posterior_draws`; availability from its prior
    where not given) the calibrated response gives both concentrates' tonnes and all three
    assays, including the zinc in the lead concentrate and lead in the zinc concentrate that
    drive penalties; each draw is settled, so the bounds are quantiles of NSR itself, not
    NSR of quantiles.

    Parameters
    ----------
    feed : xarray.Dataset, pandas.DataFrame or mapping
        As :func:`kenomill.calibrate.predict` (``period``, ``ore_processed_t`` [t], head grades
        [g/t, %, %], ``tpd`` [t/d], optional ``availability_pct`` [%]).

    Returns
    -------
    xarray.Dataset
        Dim ``period``: ``nsr_usd``, ``nsr_usd_per_t_ore`` and ``pbcon_zn_pct`` (means over
        draws) with ``_pNN`` bounds [US$, US$/t, %].
    """
    import xarray as xr

    from kenomill import recovery
    from kenomill import terms as _terms
    from kenomill.calibrate import AVAILABILITY_PRIOR, AVAILABILITY_RANGE, operating_q_ratio
    from kenomill.calibration_file import default_calibration
    from kenomill.feed import check_feed

    ds = check_feed(feed)
    cal = default_calibration() if calibration is None else calibration
    t = _terms.packaged_terms() if terms is None else terms
    pr = _terms.prices_for(_terms.read_prices(), "2012") if prices is None else prices
    spec = cal.spec
    head = np.stack(
        [ds["head_ag_gpt"].values / 1e6, ds["head_pb_pct"].values / 100.0, ds["head_zn_pct"].values / 100.0],
        axis=1,
    ).astype(float)
    n = head.shape[0]
    ore = ds["ore_processed_t"].values.astype(float)
    tpd = ds["tpd"].values.astype(float)
    a_given = ds["availability_pct"].values.astype(float) / 100.0
    a_mu, a_sd = cal.meta.get("availability_prior", AVAILABILITY_PRIOR)
    post = cal.posterior_draws()
    rng = np.random.default_rng(seed)
    s = rng.integers(0, post["theta"].shape[0], size=n_draws)
    p = np.tile(np.asarray(cal.base, dtype=float), (n_draws, 1))
    p[:, spec.free_index] = post["theta"][s]
    z = rng.standard_normal((n_draws, n, recovery.N_OFFSETS))
    off = post["offset_mean"][s][:, None, :] + post["scatter_sd"][s][:, None, :] * np.einsum(
        "sij,snj->sni", post["scatter_chol"][s], z
    )
    a = np.where(
        np.isnan(a_given),
        np.clip(a_mu + a_sd * rng.standard_normal((n_draws, n)), *AVAILABILITY_RANGE),
        a_given,
    )
    rows_head = np.tile(head, (n_draws, 1))
    split, pull = recovery.respond_many(
        spec,
        np.repeat(p, n, axis=0),
        rows_head,
        operating_q_ratio(np.tile(tpd, n_draws), a.reshape(-1)),
        off.reshape(-1, recovery.N_OFFSETS),
    )
    rows_ore = np.tile(ore, n_draws)

    def con(j):
        dmt = rows_ore * pull[:, j]
        assay = {m: rows_head[:, i] * split[:, i, j] / pull[:, j] for i, m in enumerate(METALS)}
        return {"dmt": dmt.reshape(n_draws, n), **{m: v.reshape(n_draws, n) for m, v in assay.items()}}

    lead, zinc = con(0), con(1)
    r = nsr(lead, zinc, pr, t, ore_t=ore, dims=("draw", "period"))
    lo, hi = quantiles
    tags = (f"_p{round(100 * lo):02d}", f"_p{round(100 * hi):02d}")
    v = {}
    for name, arr, u in (
        ("nsr_usd", r["nsr_usd"].values, "USD"),
        ("nsr_usd_per_t_ore", r["nsr_usd_per_t_ore"].values, "USD/t"),
        ("pbcon_zn_pct", 100.0 * lead["zn"], "%"),
    ):
        v[name] = ("period", arr.mean(axis=0), {"units": u, "long_name": f"{name}: mean over draws"})
        q = np.quantile(arr, [lo, hi], axis=0)
        for tag, row in zip(tags, q, strict=True):
            v[name + tag] = ("period", row, {"units": u, "long_name": f"{name}: {tag[2:]} % bound"})
    out = xr.Dataset(v, coords={"period": ds.period.values})
    out.attrs.update({"terms": t.name, "draws": n_draws, "seed": seed, "model": cal.model})
    return out


# ------------------------------------------------------------------ which inputs move NSR most
def tornado(evaluate, inputs, base):
    """One at a time, each input at its low and its high value, the others at their base.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(name, value)`` -> tuple of figures (e.g. NSR and margin per day) with input
        ``name`` at ``value`` and every other input at its base; ``evaluate(None, None)`` gives
        the base figures.
    inputs : sequence of (name, low, high, source)
        ``low``/``high``: the P10 and P90 of an uncertain input, or a sourced (or assumed) range.
    base : sequence of str
        Names of the figures ``evaluate`` returns.

    Returns
    -------
    pandas.DataFrame
        One row per input: ``input``, ``low``, ``high``, ``source``, and per figure ``f``:
        ``f_at_low``, ``f_at_high``, ``f_swing`` (at high - at low); sorted by the size of the
        swing of the first figure, then of the others. ``attrs["base"]``: the base figures.
    """
    import pandas as pd

    at_base = tuple(float(x) for x in evaluate(None, None))
    rows = []
    for name, lo, hi, source in inputs:
        a = [float(x) for x in evaluate(name, lo)]
        b = [float(x) for x in evaluate(name, hi)]
        row = {"input": name, "low": lo, "high": hi, "source": source}
        for k, f in enumerate(base):
            row[f"{f}_at_low"], row[f"{f}_at_high"], row[f"{f}_swing"] = a[k], b[k], b[k] - a[k]
        rows.append(row)
    df = pd.DataFrame(rows)
    keys = [df[f"{f}_swing"].abs() for f in base]
    order = sorted(range(len(df)), key=lambda i: tuple(-float(k.iloc[i]) for k in keys))
    df = df.iloc[order].reset_index(drop=True)
    df.attrs["base"] = dict(zip(base, at_base, strict=True))
    return df


Z90 = 1.2815515655446004  # the standard normal's 90 % point: P10/P90 = median x exp(-/+ Z90 sd)

#: the terms a tornado moves: (label, path in the terms file, low, high, source of the range)
TERMS_RANGES = (
    ("lead con TC [US$/dmt]", ("lead_concentrate", "tc", "base_usd_per_dmt"), 210.0, 300.0,
     "InfoMine 'Model Smelter Schedule - Lead Concentrates': long-term high-silver contracts US$210-300/t"),
    ("silver RC [US$/oz]", ("lead_concentrate", "metals", "ag", "refining_usd_per_oz"), 0.60, 1.50,
     "InfoMine: high-silver contracts Ag RC US$0.60-1.50/oz"),
    ("lead con Ag deduction [oz/dmt]", ("lead_concentrate", "metals", "ag", "deduct"), 0.5, 2.0,
     "InfoMine: deduct 0.5 to 2.0 oz per dry tonne"),
    ("lead con Ag payable [%]", ("lead_concentrate", "metals", "ag", "payable_pct"), 90.0, 97.0,
     "assumption: InfoMine gives 95 %; 90-97 % is an assumed range"),
    ("lead con Pb min deduction [units]", ("lead_concentrate", "metals", "pb", "min_deduction"), 1.5, 3.0,
     "InfoMine: minimum deductions of 1.5 to 3.0 units"),
    ("zinc con TC [US$/dmt]", ("zinc_concentrate", "tc", "base_usd_per_dmt"), 191.0, 229.0,
     "Reuters benchmarks: US$191/dmt (2012), 229 (2011), 210.50 (2013)"),
    ("zinc con Zn payable [%]", ("zinc_concentrate", "metals", "zn", "payable_pct"), 80.0, 85.0,
     "assumption: 85 % (Korea Zinc 2017); 80 % is an assumed low end"),
    ("Zn penalty threshold in lead con [%]", ("lead_concentrate", "penalties", 0, "threshold_pct"), 5.0, 7.0,
     "Pulacayo Feasibility Study (TWP, 17 Jan 2013), p.238: 5-7 %"),
    ("freight [US$/wmt, both]", (("lead_concentrate", "freight_usd_per_wmt"),
                                 ("zinc_concentrate", "freight_usd_per_wmt")), 100.0, 200.0,
     "assumption: freight rates were not found; 100-200 around the assumed 150"),
    ("moisture [%, both]", (("lead_concentrate", "moisture_pct"), ("zinc_concentrate", "moisture_pct")),
     6.0, 10.0, "assumption: moisture not public; 6-10 % around the assumed 8-9 %"),
    ("silver stream share [%]", ("stream", "share_pct"), 0.0, 25.0,
     "contract: 25 % (Northern Miner 2008); the swing from none to 25 % is what the stream costs"),
)  # fmt: skip


def terms_with(terms, where, value):
    """A copy of ``terms`` with the value at ``where`` (a path, or a tuple of paths) set to ``value``."""
    from kenomill import terms as _terms

    d = terms.model_dump()
    for path in where if isinstance(where[0], tuple) else (where,):
        node = d
        for key in path:
            node = node[key]
        node["value"] = float(value)
    return _terms.terms_from_dict(d, where="tornado")


def _price_ranges(prices, price_model, deck):
    """P10/P90 of each metal price: the price model's log-SD around the row in use, else the
    range of the deck's 2011-2013 annual averages; and the 2011-2013 range of USD/CAD."""
    from kenomill import terms as _terms

    years = [_terms.prices_for(deck, y) for y in ("2011", "2012", "2013")]
    out = []
    for m, unit in (("ag", "US$/oz"), ("pb", "US$/lb"), ("zn", "US$/lb")):
        if price_model is not None:
            sd = float(getattr(price_model, m).sd_log)
            lo, hi = prices[m] * np.exp(-Z90 * sd), prices[m] * np.exp(Z90 * sd)
            src = f"P10-P90 of a lognormal with log-SD {sd:g} ({price_model.source or 'scenario [prices]'})"
        else:
            lo, hi = min(y[m] for y in years), max(y[m] for y in years)
            src = "range of the 2011-2013 annual averages of the price deck"
        out.append((f"{m.capitalize()} price [{unit}]", ("price", m), float(lo), float(hi), src))
    fx = [y["usd_cad"] for y in years]
    out.append(
        (
            "USD/CAD [C$ per US$]",
            ("price", "usd_cad"),
            min(fx),
            max(fx),
            "range of the 2011-2013 annual rows of the price deck (Bank of Canada figures unverified)",
        )
    )
    return out


def whatif_tornado(
    scenario,
    rate: float,
    availability: float | None = None,
    *,
    draws: int = 200,
    seed: int = 0,
    year: int | None = None,
    terms=None,
    prices=None,
    costs=None,
    price_model=None,
    deck=None,
    base_dir=None,
    calibration=None,
    chunk_size: int | None = None,
):
    """Which inputs move NSR most: a tornado of expected NSR and margin per day at one rate.

    One what-if run at calendar rate ``rate`` [t/d] and availability ``availability``
    (default the scenario's) keeps each draw's concentrates (:func:`whatif_nsr`); every
    input is then moved on its own to its low and its high value and the year is settled
    again (:func:`_year_nsr`), the mean over the draws being the expected NSR (margin) per
    calendar day. Inputs and their ranges:

    - metal prices: P10/P90 of the lognormal of ``price_model`` (else the scenario's
      ``[prices]``) around the price row in use; without either, the 2011-2013 annual range;
      USD/CAD: the 2011-2013 annual range (it moves the margin, costs being in C$, not NSR in US$);
    - smelter terms and the stream: the sourced ranges of :data:`TERMS_RANGES` (assumed
      ranges say so);
    - availability: the scenario's ``availability`` +- Z90 x ``availability_uncertainty``
      (its P10/P90), run as two more what-if points with the same draws;
    - the simulation's per-draw uncertainty, together and each part alone
      (:func:`_uncertainty_components`): P10 and P90 over the draws at the base inputs.

    Returns
    -------
    pandas.DataFrame
        :func:`tornado` of ``nsr_usd_per_day`` and ``margin_usd_per_day``; ``attrs``: rate, availability etc.
    """
    from kenomill import terms as _terms

    t = _terms.packaged_terms() if terms is None else terms
    cst = _terms.packaged_costs() if costs is None else costs
    deck = _terms.read_prices() if deck is None else deck
    pr = (
        dict(price_model.central())
        if price_model is not None
        else dict(_terms.prices_for(deck, "2012") if prices is None else prices)
    )
    a50 = float(scenario.mill.availability if availability is None else availability)
    sd = float(scenario.mill.availability_uncertainty)
    avs = [a50] + ([max(a50 - Z90 * sd, 0.01), min(a50 + Z90 * sd, 1.0)] if sd > 0 else [])
    wi = whatif_nsr(
        scenario, [float(rate)], avs, draws=draws, seed=seed, year=year, terms=t, prices=pr, costs=cst,
        base_dir=base_dir, move=None, calibration=calibration, chunk_size=chunk_size, keep_records=True,
    )  # fmt: skip
    rec = wi["records"].values[0]  # (availability, draw, quarter, field)

    def figures(tt, pp, k=0):
        total, days, ore = _year_nsr(rec[k], tt, pp)
        per_day = total / days
        return per_day, per_day - costs_per_day(cst, ore / days, pp["usd_cad"])

    inputs = _price_ranges(pr, price_model if price_model is not None else scenario.prices, deck)
    inputs += [(name, ("terms", where), lo, hi, src) for name, where, lo, hi, src in TERMS_RANGES]
    if sd > 0:
        inputs.append(
            (
                "availability [-]",
                ("availability", None),
                avs[1],
                avs[2],
                f"scenario: {a50:g} +- {Z90:.3f} x availability_uncertainty {sd:g} (P10/P90)",
            )
        )
    runs = {"all the simulation's uncertainty together": figures(t, pr)}
    runs.update(
        _uncertainty_components(
            scenario,
            lambda s: whatif_nsr(
                s, [float(rate)], a50, draws=draws, seed=seed, year=year, terms=t, prices=pr, costs=cst,
                base_dir=base_dir, move=None, calibration=calibration, chunk_size=chunk_size, keep_draws=True,
            ),
        )
    )  # fmt: skip
    for label in runs:
        inputs.append((f"{label} (P10/P90 of draws)", ("draws", label), 0.1, 0.9,
                       f"P10 and P90 over the {draws} draws at the base prices and terms"))  # fmt: skip
    kinds = {name: where for name, where, *_ in inputs}

    def evaluate(name, v):
        if name is None:
            return tuple(x.mean() for x in figures(t, pr))
        kind, where = kinds[name]
        if kind == "price":
            return tuple(x.mean() for x in figures(t, {**pr, where: v}))
        if kind == "terms":
            return tuple(x.mean() for x in figures(terms_with(t, where, v), pr))
        if kind == "availability":
            return tuple(x.mean() for x in figures(t, pr, avs.index(v)))
        return tuple(np.quantile(x, v) for x in runs[where])

    if _terms_path_missing(t, ("lead_concentrate", "penalties", 0)):
        inputs = [i for i in inputs if "penalty threshold" not in i[0]]
    df = tornado(
        evaluate, [(n, lo, hi, s) for n, _, lo, hi, s in inputs], ("nsr_usd_per_day", "margin_usd_per_day")
    )
    df.attrs.update(
        {
            "rate_tpd": float(rate),
            "availability": a50,
            "draws": draws,
            "terms": t.name,
            "costs": cst.name,
            "year": wi.attrs["year"],
            "prices": str(pr.get("source", "")),
        }
    )
    return df


def _uncertainty_components(sc, run) -> dict:
    """Each per-draw uncertainty of a what-if on its own, the others switched off.

    ``run(scenario)`` -> :func:`whatif_nsr` with ``keep_draws`` at one rate and availability.
    Components: the calibration's posterior parameters (``uncertainty.parameters``), a new
    quarter's scatter of the recovery offsets (``uncertainty.scatter``), and the ore grades'
    per-draw mean uncertainty (``sources.*.{ag_gpt,pb_pct,zn_pct}.mean_uncertainty``); the
    mill's per-draw availability and target factors are off in all three, the day-to-day
    variation of grades stays (it averages out over a year).

    Returns
    -------
    dict
        label -> (NSR per day, margin per day) per draw [US$/d], for the components the
        scenario has.
    """

    def only(parameters=False, scatter=False, grades=False):
        unc = sc.uncertainty.model_copy(update={"parameters": parameters, "scatter": scatter})
        src = {
            n: s.model_copy(
                update={
                    g: getattr(s, g).model_copy(
                        update={"mean_uncertainty": getattr(s, g).mean_uncertainty if grades else 0.0}
                    )
                    for g in ("ag_gpt", "pb_pct", "zn_pct")
                }
            )
            for n, s in sc.sources.items()
        }
        mill = sc.mill.model_copy(update={"availability_uncertainty": 0.0, "target_uncertainty": None})
        return sc.model_copy(update={"uncertainty": unc, "sources": src, "mill": mill})

    has_grades = any(
        getattr(s, g).mean_uncertainty > 0
        for s in sc.sources.values()
        for g in ("ag_gpt", "pb_pct", "zn_pct")
    )
    out = {}
    for label, kw, on in (
        ("recovery model: posterior parameters alone", {"parameters": True}, sc.uncertainty.parameters),
        ("recovery model: new-quarter scatter alone", {"scatter": True}, sc.uncertainty.scatter),
        ("ore grades: per-draw mean uncertainty alone", {"grades": True}, has_grades),
    ):
        if on:
            w = run(only(**kw))
            out[label] = (w.nsr_usd_per_day_draws.values[0], w.margin_usd_per_day_draws.values[0])
    return out


def _terms_path_missing(terms, path) -> bool:
    node = terms.model_dump()
    try:
        for key in path:
            node = node[key]
    except (KeyError, IndexError):
        return True
    return False
