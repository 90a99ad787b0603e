"""``kenomill report``: the page opens in headless Chromium without errors, is not blank, is
self-contained, and shows the numbers of the analyses it reports.

The page is rendered once with small sizes (module fixture). Chromium is Debian's
``/usr/bin/chromium``, started by the test; without it the test fails and says how to
install it (``apt-get install chromium``), because a report nobody checked in a browser
is not done.
"""

from __future__ import annotations

import base64
import html
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import kenomill
from kenomill import report
from kenomill.cli import main
from kenomill.errors import ValidationError

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
SMALL = {
    "draws": 40,
    "seed": 3,
    "models": ["constant", "cells_pb_tail_zn"],
    "whatif_tpd": [200.0, 250.0, 400.0],
    "whatif_availability": [0.88, 0.92],
    "whatif_draws": 20,
    "curve_draws": 100,
}
#: two scenarios keep the test quick: the what-if ore and the one with Onek and Lucky Queen
SCENARIOS = ("bellekeno_only.toml", "onek_lucky_queen_2012q4.toml")


# ------------------------------------------------------------------ chromium helpers
def _chromium(args: list[str], tmp: Path) -> subprocess.CompletedProcess:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} not found: the report test opens the page in Debian's Chromium; "
            "install it with `apt-get install chromium` (the CI script .ci/run installs it)"
        )
    profile = tmp / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def browser_errors(stderr: str) -> list[str]:
    """Lines of Chromium's log that report a page error: console messages, failed loads."""
    marks = (":CONSOLE", "Uncaught", "net::ERR_", "Failed to load resource", "Not allowed to load")
    return [ln for ln in stderr.splitlines() if any(m in ln for m in marks)]


def open_page(path: Path, tmp: Path) -> tuple[str, list[str]]:
    """The DOM after load (with the page's own image check) and the page errors Chromium logged."""
    res = _chromium(["--enable-logging=stderr", "--v=0", "--dump-dom", path.resolve().as_uri()], tmp)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout, browser_errors(res.stderr)


def screenshot(path: Path, tmp: Path, name: str = "shot.png") -> np.ndarray:
    from PIL import Image

    png = tmp / name
    res = _chromium([f"--screenshot={png}", "--window-size=1280,2000", path.resolve().as_uri()], tmp)
    assert res.returncode == 0 and png.exists(), res.stderr[-2000:]
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB"))


def not_blank(pixels: np.ndarray) -> tuple[float, int]:
    """Share of non-white pixels and number of distinct colours."""
    nonwhite = float((pixels < 245).any(axis=-1).mean())
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    return nonwhite, colours


class _Refs(HTMLParser):
    """Every src/href and tag of the page."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href", "srcset", "data", "action", "poster") and v is not None:
                self.refs.append((tag, k, v))


# ------------------------------------------------------------------ the page
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    paths = [p for p in report.default_scenario_paths() if p.name in SCENARIOS]
    assert len(paths) == len(SCENARIOS)
    results = report.collect(**SMALL, scenario_paths=paths)
    path = report.save_html(results, d / "report.html", command="kenomill report --draws 40")
    return results, path, path.read_text(encoding="utf-8")


def test_background_comparison_gives_the_same_page(built, tmp_path, monkeypatch):
    """collect(background=True), as the command line runs it: the comparison comes from
    another process when the page asks for it; the table and the page are the same."""
    results, _, html = built
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # start the other process on any machine
    paths = [p for p in report.default_scenario_paths() if p.name in SCENARIOS]
    bg = report.collect(**SMALL, scenario_paths=paths, background=True)
    assert bg.comparison is None
    path = report.save_html(bg, tmp_path / "report.html", command="kenomill report --draws 40")
    pd.testing.assert_frame_equal(bg.comparison, results.comparison, check_exact=True)
    strip = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")
    assert strip.sub("", path.read_text(encoding="utf-8")) == strip.sub("", html)


def test_helper_process_gives_the_same_page(built, tmp_path, monkeypatch):
    """The command line's helper process (kenomill.cli.report.start_helper, started before the
    imports) runs the comparison and then draws some of the figures: the same page, figures
    included, byte for byte."""
    from kenomill.cli.report import start_helper

    results, _, html = built
    monkeypatch.setattr("os.cpu_count", lambda: 2)  # start the helper on any machine
    paths = [p for p in report.default_scenario_paths() if p.name in SCENARIOS]
    helper = start_helper()
    try:
        r = report.collect(**SMALL, scenario_paths=paths, background=True, helper=helper)
        path = report.save_html(r, tmp_path / "report.html", command="kenomill report --draws 40")
        assert helper.apply(int, ()) == 0  # the page left the pool running, to its owner
    finally:
        helper.terminate()
    pd.testing.assert_frame_equal(r.comparison, results.comparison, check_exact=True)
    strip = re.compile(r"generated \d{4}-\d\d-\d\d \d\d:\d\d UTC")
    assert strip.sub("", path.read_text(encoding="utf-8")) == strip.sub("", html)


def test_a_figure_laid_out_once_gives_the_png_of_savefig(built):
    """fig_to_data_uri runs the constrained layout once and draws once: the bytes savefig gives
    (which draws twice), colour bars included."""
    import io

    from kenomill import plots
    from kenomill.report.drawing import fig_to_data_uri

    r = built[0]
    for make in (lambda: plots.whatif_surface(r.whatif), lambda: plots.reported_vs_fitted(r.fit)):
        buf = io.BytesIO()
        make().savefig(buf, format="png", dpi=80)
        expected = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        assert fig_to_data_uri(make()) == expected


def test_page_opens_in_chromium_without_errors(built, tmp_path):
    _r, path, _text = built
    dom, errors = open_page(path, tmp_path)
    assert errors == []
    n_img = int(re.search(r'data-images="(\d+)"', dom).group(1))
    assert 'data-broken-images="0"' in dom
    assert n_img >= 10  # every figure of the page decoded
    for section in ("Key answers", "1. The reported figures", "3. Reconciliation", "6. Scenarios"):
        assert section in dom


def test_screenshot_is_not_blank(built, tmp_path):
    _r, path, _text = built
    nonwhite, colours = not_blank(screenshot(path, tmp_path))
    assert nonwhite > 0.05
    assert colours > 50


def test_the_checks_catch_a_broken_page(tmp_path):
    # the same checks on a page with a missing image and a script error, and on a blank page
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><body><h1>x</h1><img src='missing.png'>"
        "<script>undefined_function();</script>"
        f"<script>{report.IMAGE_CHECK_JS}</script></body></html>"
    )
    dom, errors = open_page(bad, tmp_path)
    assert 'data-broken-images="1"' in dom
    assert any("undefined_function" in e for e in errors)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    nonwhite, colours = not_blank(screenshot(blank, tmp_path, "blank.png"))
    assert nonwhite < 0.05 and colours <= 2


def test_page_is_self_contained(built):
    _r, _path, text = built
    p = _Refs()
    p.feed(text)
    assert "link" not in p.tags  # no external style sheet, icon or font
    imgs = [v for tag, k, v in p.refs if tag == "img"]
    assert len(imgs) >= 10
    for v in imgs:
        assert v.startswith("data:image/png;base64,")
        assert base64.b64decode(v.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    others = [v for tag, k, v in p.refs if tag != "img"]
    assert others and all(v.startswith("#") for v in others)  # in-page anchors only
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert not re.search(r"(https?:)?//[A-Za-z0-9]", without_images.replace("<!--", ""))


def test_page_shows_the_published_figures(built):
    _r, _path, text = built
    # figures as printed in the releases (Alexco, 23 Jan 2012 and 16 Jul 2012)
    for printed in ("608,093", "16,454,395", "2,473,561", "22,209", "43.9"):
        assert printed in text


def test_key_answers_name_the_period_that_does_not_close_and_why(built):
    _r, _path, text = built
    key = text[text.index("Key answers") : text.index('id="data"')]
    # issue 3's finding: only 2011Q4 fails the global test, and its contained-metal figures
    # are the ones that disagree with the concentrates (reported 608,093 oz Ag against
    # 3,223 t x 5,123 g/t + 2,305 t x 683 g/t = 581,470 oz: +4.6 %)
    assert "only 2011Q4 holds a gross error" in key
    assert "contained-metal figures (Ag oz, Pb lb, Zn lb) are the figures to distrust" in key
    ag_con = (3223 * 5123 + 2305 * 683) / 31.1034768
    assert f"silver {100 * (608093 / ag_con - 1):+.1f} %" in key


def test_scenario_numbers_match_the_draws(built):
    r, _path, text = built
    key = text[text.index("Key answers") : text.index('id="data"')]
    run = next(x for x in r.scenarios if x.scenario.name == "onek_lucky_queen_2012q4")
    # independent of simulate.annual/summarize: sum the 2012 quarters of every draw by hand
    q2012 = [i for i, q in enumerate(run.ds.quarter.values) if str(q).startswith("2012")]
    ag = run.ds.ag_oz.values[:, q2012].sum(axis=1)
    if run.scenario.horizon.reported_before == ["2012Q1", "2012Q2"]:
        # the scenario starts after the reported first half: 581,808 oz (2012Q1, release
        # 16 Apr 2012) + 458,472 oz (2012Q2, release 16 Jul 2012) count in 2012
        ag = ag + 581_808 + 458_472
    p10, p50, p90 = np.percentile(ag, [10, 50, 90]) / 1e6
    assert f"{p50:.2f} ({p10:.2f}-{p90:.2f})" in key
    inside = float(np.mean((ag >= 2.2e6) & (ag <= 2.5e6)))
    assert f"2012 guidance: 2.2-2.5 Moz Ag: <b>{100 * inside:.0f} %</b>" in key


def test_every_figure_names_its_source_and_every_section_says_how_to_read_it(built):
    _r, _path, text = built
    n_fig = text.count("<figure>")
    assert n_fig >= 10
    assert text.count('<span class="src">Source: ') == n_fig
    for sec in ("data", "balance", "reconcile", "calibration", "whatif", "scenarios"):
        body = text[text.index(f'id="{sec}"') :]
        body = body[: body.find("<h2", 10)]
        assert "How to read" in body or "how to read" in body.lower()


def test_sources_are_release_titles_and_only_what_the_package_carries(built):
    _r, _path, text = built
    # the releases by title and date (text as in tests/releases/), file names only in a footnote
    for title, date in (
        (
            "Alexco Silver Production Increases 21% to More Than 600,000 Ounces In Fourth Quarter 2011",
            "23 Jan 2012",
        ),
        ("Alexco Reports Silver Production Results for First Quarter 2012", "16 Apr 2012"),
        ("Alexco Reports Silver Production for Second Quarter 2012", "16 Jul 2012"),
    ):
        assert f"{title}\u201d ({date})" in html.unescape(text), title
    assert "001_2d7d3e0911ae9488.txt = release of 16 Apr 2012" in text
    # nothing the package does not carry: no reference notes, no paths outside it
    assert "deposits.md" not in text and "shared/" not in text
    assert "Alexco news release, 27 Jul 2011" in text  # the resource estimates of deposits.csv


def test_metal_chart_has_one_unit_per_axis():
    from kenomill import plots
    from kenomill.data import reported_periods

    fig = plots.reported_quarters(reported_periods())
    metal = [a for a in fig.axes if a.get_ylabel().endswith(("[koz]", "[Mlb]")) and a.get_position().x0 > 0.5]
    assert sorted(a.get_ylabel() for a in metal) == [
        "lead in lead con, zinc in zinc con [Mlb]",
        "silver in both concentrates [koz]",
    ]
    # each axis's bars are in its own unit: 2012Q1 silver 581.8 koz, lead 4.93 Mlb (16 Apr 2012)
    heights = {a.get_ylabel(): sorted(round(b.get_height(), 3) for b in a.patches) for a in metal}
    assert 581.808 in heights["silver in both concentrates [koz]"]
    assert 4.929 in heights["lead in lead con, zinc in zinc con [Mlb]"]


def test_save_html_leaves_nothing_when_rendering_fails(built, tmp_path, monkeypatch):
    r, _path, _text = built

    def boom(*a, **k):
        raise RuntimeError("render failed")

    monkeypatch.setattr(report, "render_html", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        report.save_html(r, tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_bad_output_path_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValidationError, match=r"--out: found '.*r\.txt'; allowed extensions: \.html"):
        report.write_report(tmp_path / "r.txt")
    with pytest.raises(ValidationError, match=r"--out: directory '.*nowhere' does not exist"):
        report.write_report(tmp_path / "nowhere" / "r.html")
    with pytest.raises(ValidationError, match=r"--draws: found 1; allowed: at least 2"):
        report.collect(draws=1)
    with pytest.raises(ValidationError, match=r"model: found 'nope'; allowed: constant"):
        report.collect(draws=10, models=["nope"])


def test_no_scenario_files_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(report.results, "SOURCE_TREE", tmp_path / "pkg")
    with pytest.raises(ValidationError, match=r"scenarios: found no \*\.toml in 'scenarios'"):
        report.default_scenario_paths()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "{tmp}/r.csv"], r"--out: found '.*r\.csv'; allowed extensions: \.html \(HTML page\)"),
        (["--out", "{tmp}/r.html", "--models", "constant,nope"], r"model: found 'nope'; allowed:"),
        (["--out", "{tmp}/r.html", "--scenario", "{tmp}/none.toml"], r"file not found: .*none\.toml"),
        (["--out", "{tmp}/r.html", "--scenario", "{tmp}/broken.toml"], r"broken\.toml: "),
        (["--out", "{tmp}/r.html", "--draws", "1"], r"Invalid value for '--draws'"),
    ],
)
def test_cli_errors_are_one_line_and_write_nothing(tmp_path, args, message):
    (tmp_path / "broken.toml").write_text('name = "x"\n')
    res = CliRunner().invoke(main, ["report", *[a.format(tmp=tmp_path) for a in args]])
    assert res.exit_code == 2
    assert re.search(message, res.output)
    if "Invalid value" not in message:  # click's own usage errors have their own form
        lines = [ln for ln in res.output.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("kenomill report: error: ")
    assert not (tmp_path / "r.html").exists()


def test_cli_lists_report():
    res = CliRunner().invoke(main, ["--help"])
    assert "report" in res.output
    res = CliRunner().invoke(main, ["report", "--help"])
    assert "--draws" in res.output and "--out" in res.output


def test_nsr_against_throughput_with_bands_and_extrapolation_in_words(built):
    """The what-if section shows NSR against throughput and names the extrapolated rates.

    The packaged calibration was fitted on 201-245 t/d (its meta feed_range, the six quarters
    of the 2011-2012 releases): of the test grid 200, 250, 400 t/d every rate lies outside.
    """
    import json

    r, _path, text = built
    cal = json.loads(
        (Path(kenomill.__file__).parent / "data" / "default_calibration.json").read_text(encoding="utf-8")
    )
    lo, hi = cal["meta"]["feed_range"]["tpd"]
    outside = [t for t in SMALL["whatif_tpd"] if t < lo or t > hi]
    body = text[text.index('id="whatif"') :]
    body = body[: body.find("<h2", 10)]
    assert "Net smelter return against throughput" in body and 'alt="NSR against throughput"' in body
    words = html.unescape(re.sub(r"<[^>]+>", "", body))
    assert (
        f"the calibration saw {lo:g}-{hi:g} t/d only; {', '.join(f'{t:g}' for t in outside)} t/d lie" in words
    )
    assert "ktau_pb" in words  # the prior that decides beyond the calibrated range, as the calibration says
    lo400 = [x["rec_pb_p05_400"] for x in cal["meta"]["prior_sensitivity"]]
    assert f"400 t/d {min(lo400):.1f}-{max(lo400):.1f} %" in words  # the prior-sensitivity band
    assert words.count("extrapolation") >= len(outside)
    # the move of the grid (250 -> 400 here) and its probability of gain, a share of the draws
    m = re.search(r"the move 250 -> 400 t/d gains NSR per day in (\d+) % of 20 common draws", words)
    assert m and 0 <= int(m.group(1)) <= 100
    assert r.whatif.extrapolated.values.tolist() == [t in outside for t in SMALL["whatif_tpd"]]


def test_the_model_is_shown_chosen_by_prediction_next_to_the_naive_baselines(built):
    r, _path, text = built
    rec = r.calibration.meta["comparison_by_prediction"]
    sec = text[text.index('id="calibration"') :]
    sec = sec[: sec.index("<h2", 10)]
    assert "Which model predicts quarters it has not seen" in sec
    for name in ("naive_mean", "naive_last", rec["chosen"]):
        assert name in sec
    # the key answer quotes the recorded scores of the chosen model and of the better baseline
    t = {row["candidate"]: row for row in rec["table"]}
    key = text[text.index("Key answers") : text.index('id="data"')]
    assert f"{t[rec['chosen']]['lpd_loqo']:.2f} leaving one quarter out" in key
    assert f"{max(t['naive_mean']['lpd_loqo'], t['naive_last']['lpd_loqo']):.2f}" in key


def test_the_report_says_how_much_of_a_400_tpd_answer_is_the_prior(built):
    r, _path, text = built
    rows = r.calibration.meta["prior_sensitivity"]
    sec = text[text.index("How much of a high-throughput answer is assumption") :]
    lo = [x["rec_pb_p05_400"] for x in rows]
    assert f"from {min(lo):.1f} % to {max(lo):.1f} %" in sec[:2000]
    for x in rows:
        assert f"{x['rec_pb_p05_250']:.1f}-{x['rec_pb_p95_250']:.1f}" in sec
