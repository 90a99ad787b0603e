"""A fuzzer for the command line: broken inputs end in a whole output or one line and exit 2.

Hypothesis builds broken feeds, periods files, scenario files, error models, calibration
files and option values (wrong encodings, truncated files, wrong types, out-of-range
numbers, missing and misspelt keys) from valid ones, runs the command in-process
(click's CliRunner: a subprocess costs ~1 s of imports per example) and asserts:
exit 0 with the output file whole, or exit 2 with exactly one line on stderr and no
output file; never a traceback, never exit 1.

The CI budget is small (a few examples per target, tens of seconds in all; the cheap
targets, balance and nsr on broken files, run several times as many);
``KENOMILL_FUZZ_EXAMPLES=200 pytest tests/test_cli_fuzz.py`` runs more. Legal edge values
(a zero head grade, a zero concentrate) are a mutation of their own ("zero"), because
random nasty values rarely land on the one field where 0 is legal and still breaks
arithmetic (a zero head grade made balance divide by zero: found at ~40 examples before).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kenomill.cli import main

EXAMPLES = int(os.environ.get("KENOMILL_FUZZ_EXAMPLES", "8"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=os.environ.get("KENOMILL_FUZZ_EXAMPLES") is None,
)
#: cheap targets (tens of ms an example) run this many times the budget
CHEAP = settings(FUZZ, max_examples=6 * EXAMPLES)
ROOT = Path(__file__).resolve().parents[1]

# 2011Q4 and 2012Q2 as printed in the releases of 23 Jan 2012 and 16 Jul 2012
FEED = (
    "period,ore_processed_t,head_ag_gpt,head_pb_pct,head_zn_pct,tpd,days\n"
    "2011Q4,22554,889,11.1,6.7,245,92\n"
    "2012Q2,22209,704,8.8,4.9,244,91\n"
)
ERROR_MODEL = "rounding = true\n[relative_pct]\nassays = 2.0\ntonnes = 1.5\n[columns_pct]\nzn_lb = 0.5\n"
SCENARIO = (ROOT / "scenarios" / "bellekeno_only.toml").read_text(encoding="utf-8")

# ---------------------------------------------------------------- mutations of a text
NASTY = st.sampled_from(
    ["", "nan", "inf", "-1", "0", "1e308", "-1e308", "0.0001", "1e9", "abc", '"x"', "[]", "{}", "true", "ä"]
)


@st.composite
def mutated(draw, text: str) -> bytes:
    """Bytes of ``text`` broken in one or two ways."""
    data = text
    for _ in range(draw(st.integers(1, 2))):
        how = draw(
            st.sampled_from(
                [
                    "truncate",
                    "value",
                    "zero",
                    "key",
                    "delete_line",
                    "duplicate_line",
                    "insert",
                    "encoding",
                    "garbage",
                ]
            )
        )
        lines = data.splitlines(keepends=True) or [""]
        if how == "truncate":
            data = data[: draw(st.integers(0, max(len(data) - 1, 0)))]
        elif how == "value":
            # replace one number or quoted string by a nasty value
            spans = [m.span() for m in re.finditer(r'-?\d+(\.\d+)?(e-?\d+)?|"[^"\n]*"', data)]
            if spans:
                a, b = draw(st.sampled_from(spans))
                data = data[:a] + draw(NASTY) + data[b:]
        elif how == "zero":
            # a legal edge value: one number (a head grade, a concentrate, a price) set to 0
            spans = [m.span() for m in re.finditer(r"(?<![\w.])\d+(\.\d+)?(?![\w.])", data)]
            if spans:
                a, b = draw(st.sampled_from(spans))
                data = data[:a] + draw(st.sampled_from(["0", "0.0"])) + data[b:]
        elif how == "key":
            # misspell one identifier (a key or a column name)
            spans = [m.span() for m in re.finditer(r"[a-z][a-z_]{3,}", data)]
            if spans:
                a, b = draw(st.sampled_from(spans))
                word = data[a:b]
                i = draw(st.integers(0, len(word) - 1))
                data = data[:a] + word[:i] + word[i + 1 :] + data[b:]
        elif how == "delete_line":
            i = draw(st.integers(0, len(lines) - 1))
            data = "".join(lines[:i] + lines[i + 1 :])
        elif how == "duplicate_line":
            i = draw(st.integers(0, len(lines) - 1))
            data = "".join(lines[: i + 1] + lines[i:])
        elif how == "insert":
            i = draw(st.integers(0, len(data)))
            data = (
                data[:i] + draw(st.sampled_from([",", "=", "[", "]", '"', "\n", ",,", "\t", "#"])) + data[i:]
            )
        elif how == "encoding":
            enc = draw(st.sampled_from(["latin-1", "utf-16", "utf-8-sig", "cp1252"]))
            return (data + "\u00e9").encode(enc, errors="replace")
        else:
            i = draw(st.integers(0, len(data)))
            junk = draw(st.binary(min_size=1, max_size=8))
            return data[:i].encode() + junk + data[i:].encode()
    return data.encode("utf-8")


# ---------------------------------------------------------------- the one assertion
def _run(args: list[str], out: Path | None, *, many: bool = False):
    res = CliRunner().invoke(main, args, catch_exceptions=True)
    where = f"args {args}\nstdout:\n{res.stdout[-2000:]}\nstderr:\n{res.stderr[-2000:]}"
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        import traceback

        tb = "".join(traceback.format_exception(res.exception))
        pytest.fail(f"uncaught {type(res.exception).__name__} (exit 1):\n{tb}\n{where}")
    assert res.exit_code in (0, 2), where
    assert "Traceback" not in res.stdout + res.stderr, where
    if res.exit_code == 2:
        lines = [ln for ln in res.stderr.splitlines() if ln.strip() and " warning: " not in ln]
        # a periods file lists every problem it has, one whole line each (helper "periods")
        assert len(lines) == 1 or (many and len(lines) > 1), where
        assert all(re.match(r"kenomill [a-z ]+: error: ", ln) for ln in lines), where
        if out is not None:
            assert not out.exists(), where
    elif out is not None:
        assert out.is_file() and out.stat().st_size > 0, where
    if out is not None:
        assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], where
    return res


def _fresh(tmp_path_factory, name: str) -> Path:
    return tmp_path_factory.mktemp(name)


# ---------------------------------------------------------------- targets
@FUZZ
@given(data=mutated(FEED), draws=st.sampled_from(["20", "2"]), extra=st.sampled_from([[], ["--extrapolate"]]))
def test_predict_with_broken_feeds(tmp_path_factory, data, draws, extra):
    d = _fresh(tmp_path_factory, "feed")
    f = d / "feed.csv"
    f.write_bytes(data)
    out = d / "pred.csv"
    _run(["predict", str(f), "--out", str(out), "--draws", draws, *extra], out)


@FUZZ
@given(data=mutated(ERROR_MODEL))
def test_reconcile_with_broken_error_models(tmp_path_factory, data):
    d = _fresh(tmp_path_factory, "em")
    f = d / "em.toml"
    f.write_bytes(data)
    out = d / "rec.csv"
    _run(["reconcile", "--error-model", str(f), "--out", str(out)], out)


@FUZZ
@given(data=mutated(SCENARIO))
def test_simulate_with_broken_scenarios(tmp_path_factory, data):
    d = _fresh(tmp_path_factory, "sc")
    f = d / "s.toml"
    f.write_bytes(data)
    out = d / "sim.nc"
    _run(["simulate", str(f), "--draws", "2", "--out", str(out)], out)


@pytest.fixture(scope="module")
def calibration_text():
    from kenomill.calibration_file import Calibration

    return __import__("json").dumps(Calibration.from_defaults().to_dict(), indent=1)


@FUZZ
@given(data=st.data())
def test_predict_with_broken_calibration_files(tmp_path_factory, calibration_text, data):
    d = _fresh(tmp_path_factory, "cal")
    c = d / "c.json"
    c.write_bytes(data.draw(mutated(calibration_text)))
    f = d / "feed.csv"
    f.write_text(FEED)
    out = d / "pred.csv"
    _run(["predict", str(f), "--out", str(out), "--calibration", str(c), "--draws", "20"], out)


@pytest.fixture(scope="module")
def periods_text(tmp_path_factory):
    p = tmp_path_factory.mktemp("tpl") / "periods.csv"
    res = CliRunner().invoke(main, ["periods", "template", "--out", str(p)])
    assert res.exit_code == 0, res.output
    return p.read_text(encoding="utf-8")


@CHEAP
@given(data=st.data())
def test_balance_with_broken_periods_files(tmp_path_factory, periods_text, data):
    d = _fresh(tmp_path_factory, "per")
    f = d / "periods.csv"
    f.write_bytes(data.draw(mutated(periods_text)))
    out = d / "bal.csv"
    _run(["balance", "--periods", str(f), "--out", str(out)], out, many=True)


OPTION_VALUE = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["0", "-1", "1", "nan", "inf", "1e3", "x", "", "2.5", "1000000000"]),
)


@FUZZ
@given(
    command=st.sampled_from(
        [
            ["whatif", "--tpd", "230", "--availability", "0.9"],
            ["simulate", str(ROOT / "scenarios" / "bellekeno_only.toml")],
            ["predict", "FEED"],
        ]
    ),
    option=st.sampled_from(
        [
            "--draws",
            "--seed",
            "--chunk-size",
            "--tpd",
            "--availability",
            "--year",
            "--capacity",
            "--max-operating-tpd",
            "--move",
            "--price-year",
        ]
    ),
    value=OPTION_VALUE,
)
def test_option_values(tmp_path_factory, command, option, value):
    d = _fresh(tmp_path_factory, "opt")
    f = d / "feed.csv"
    f.write_text(FEED)
    args = [str(f) if a == "FEED" else a for a in command]
    out = d / ("o.nc" if command[0] == "simulate" else "o.csv")
    whatif_only = (
        "--tpd",
        "--availability",
        "--year",
        "--capacity",
        "--max-operating-tpd",
        "--move",
        "--price-year",
    )
    if option in ("--chunk-size",) and command[0] == "predict":
        option = "--draws"
    if option in whatif_only and command[0] != "whatif":
        option = "--seed"
    if option == "--move" and command[0] == "whatif":
        # a move needs two rates of the grid: one of them fuzzed
        args = [a if a != "230" else "230,250" for a in args]
        value = f"230:{value}"
    extra = [] if option == "--draws" else ["--draws", "2"]
    if option == "--draws" and value.lstrip("-").isdigit() and int(value) > 50:
        # a large valid count is the size check's business: keep it within what refuses quickly
        value = str(max(int(value), 10**12))
    _run([*args, option, value, *extra, "--out", str(out)], out)


# ---------------------------------------------------------------- nsr: terms and price decks
TERMS = (ROOT / "kenomill" / "data" / "terms_typical_2012.toml").read_text(encoding="utf-8")
PRICES = (ROOT / "kenomill" / "data" / "prices.csv").read_text(encoding="utf-8")


@CHEAP
@given(data=mutated(TERMS))
def test_nsr_with_broken_terms(tmp_path_factory, data):
    d = _fresh(tmp_path_factory, "terms")
    f = d / "terms.toml"
    f.write_bytes(data)
    out = d / "nsr.csv"
    _run(["nsr", "--terms", str(f), "--draws", "10", "--out", str(out)], out)


@CHEAP
@given(data=mutated(PRICES), year=st.sampled_from(["2012", "2011Q1", "2013"]))
def test_nsr_with_broken_price_decks(tmp_path_factory, data, year):
    d = _fresh(tmp_path_factory, "prices")
    f = d / "prices.csv"
    f.write_bytes(data)
    out = d / "nsr.csv"
    _run(["nsr", "--prices", str(f), "--year", year, "--draws", "10", "--out", str(out)], out)


@FUZZ
@given(
    option=st.sampled_from(["--draws", "--seed", "--year", "--sensitivity", "--throughput", "--capacity"]),
    value=OPTION_VALUE,
)
def test_nsr_option_values(tmp_path_factory, option, value):
    d = _fresh(tmp_path_factory, "nsropt")
    out = d / "nsr.csv"
    if option == "--sensitivity":
        args = ["--sensitivity", "--year", value]
    elif option == "--capacity":
        # the throughput grid kept small: two rates, few draws
        args = ["--throughput", "250,300", "--capacity", value]
    elif option == "--throughput":
        args = ["--throughput", value]
    else:
        args = [option, value]
    if option != "--draws":
        args += ["--draws", "10"]
    elif value.lstrip("-").isdigit() and int(value) > 50:
        value = str(max(int(value), 10**12))
        args = [option, value]
    _run(["nsr", *args, "--out", str(out)], out)


@FUZZ
@given(which=st.sampled_from(["--terms", "--prices"]), data=st.data())
def test_whatif_with_broken_terms_and_prices(tmp_path_factory, which, data):
    d = _fresh(tmp_path_factory, "witerms")
    f = d / ("terms.toml" if which == "--terms" else "prices.csv")
    f.write_bytes(data.draw(mutated(TERMS if which == "--terms" else PRICES)))
    out = d / "w.csv"
    args = ["whatif", "--tpd", "230", "--availability", "0.9", "--draws", "2", which, str(f)]
    _run([*args, "--out", str(out)], out)


@FUZZ
@given(
    option=st.sampled_from(
        ["--draws", "--seed", "--year", "--zn-in-pbcon-max", "--max-fraction", "--grid-step"]
    ),
    value=OPTION_VALUE,
)
def test_blend_option_values(tmp_path_factory, option, value):
    d = _fresh(tmp_path_factory, "blend")
    out = d / "b.csv"
    if option == "--max-fraction":
        value = f"onek={value}"
    args = [option, value]
    if option != "--draws":
        args += ["--draws", "2"]
    if option != "--grid-step":
        args += ["--grid-step", "0.5"]
    _run(["blend", str(ROOT / "scenarios" / "onek_lucky_queen_2012q4.toml"), *args, "--out", str(out)], out)


# ---------------------------------------------------------------- helper value (issue 15): costs, uncertain
# prices, realized price basis, tornado rate. A block of its own at the end of the file (the file is guard's).
COSTS_TOML = (ROOT / "kenomill" / "data" / "costs_pea_2008.toml").read_text(encoding="utf-8")


@FUZZ
@given(which=st.sampled_from(["--costs", "--prices-from"]), data=st.data())
def test_whatif_with_broken_costs_and_price_scenarios(tmp_path_factory, which, data):
    d = _fresh(tmp_path_factory, "wicosts")
    f = d / ("costs.toml" if which == "--costs" else "prices_scenario.toml")
    f.write_bytes(data.draw(mutated(COSTS_TOML if which == "--costs" else SCENARIO)))
    out = d / "w.csv"
    args = ["whatif", "--tpd", "230", "--availability", "0.9", "--draws", "2", which, str(f)]
    _run([*args, "--out", str(out)], out)


@FUZZ
@given(
    option=st.sampled_from(["--price-basis", "--sensitivity-at", "--year-realized"]),
    value=st.one_of(OPTION_VALUE, st.sampled_from(["annual", "realized", "230"])),
)
def test_value_option_values(tmp_path_factory, option, value):
    d = _fresh(tmp_path_factory, "valopt")
    out = d / "o.csv"
    if option == "--sensitivity-at":
        args = ["whatif", "--tpd", "230", "--availability", "0.9", "--draws", "2", option, value]
    elif option == "--price-basis":
        args = ["nsr", "--draws", "10", option, value]
    else:  # realized basis with a fuzzed --year (the year is the annual basis's; realized ignores it)
        args = ["nsr", "--draws", "10", "--price-basis", "realized", "--year", value]
    _run([*args, "--out", str(out)], out)
