"""Options shared by the NSR commands (``kenomill nsr``, ``kenomill whatif``): terms, prices, costs."""

from __future__ import annotations

import click


def terms_prices_options(func):
    """``--terms FILE`` and ``--prices FILE`` (validated when read, one line and exit 2 if bad)."""
    func = click.option(
        "--prices",
        "prices_file",
        type=str,
        default=None,
        metavar="FILE",
        help="Price deck CSV (columns period,item,value,unit,source). Default: the packaged prices.",
    )(func)
    return click.option(
        "--terms",
        "terms_file",
        type=str,
        default=None,
        metavar="FILE",
        help="Smelter terms (TOML). Default: the packaged typical 2012 terms.",
    )(func)


def costs_option(func):
    """``--costs FILE``: operating costs (TOML) for the margin."""
    return click.option(
        "--costs",
        "costs_file",
        type=str,
        default=None,
        metavar="FILE",
        help="Operating costs (TOML: variable_cad_per_t, fixed_cad_per_day). Default: the packaged PEA 2008 "
        "C$206/t ore, all of it variable (the split is an assumption).",
    )(func)


def load_terms_prices(terms_file, prices_file, period: str):
    """(terms, price deck, the price row of ``period``), each validated (one-line errors)."""
    from kenomill import terms

    t = terms.load_terms(terms_file)
    deck = terms.read_prices(prices_file)
    return t, deck, terms.prices_for(deck, period, where=prices_file or "packaged prices")
