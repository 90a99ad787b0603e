"""One self-contained HTML page of kenomill's answers, for readers who do not use Python.

* :func:`collect` (:mod:`kenomill.report.results`) runs the analyses through the cached steps
  of a :class:`kenomill.study.Study` and keeps them in a :class:`ReportResults`: the reported
  figures and their closure, their reconciliation and gross-error tests, the calibration,
  model comparison and leave-one-quarter-out, the throughput x availability what-if with its
  NSR, and the Monte Carlo scenarios;
* :func:`kenomill.report.context.page_context` turns the results into plain values, one
  entry per section, and draws the figures (:mod:`kenomill.plots`);
* :func:`render_html` fills the Jinja2 template ``kenomill/templates/report.html.j2``
  (autoescaped; one template per section in ``templates/sections/``, shared macros in
  ``macros.html.j2`` and ``sentences.html.j2``, the style sheet and script inlined).

Figures are embedded as base64 PNG, nothing is loaded from elsewhere (the page must read the
same offline and in ten years). Every section has a sentence on how to read it and the
assumptions behind it; every figure names its source. :func:`write_report` writes the page
atomically (:func:`kenomill.io.atomic_path`).
"""

from __future__ import annotations

import datetime as _dt
import os
from importlib import resources
from pathlib import Path

from kenomill.plots._common import LABELS, METALS, RECOVERIES
from kenomill.plots.whatif import BASELINE_AVAILABILITY
from kenomill.report.results import (
    BASELINE_TPD,
    DEFAULT_DRAWS,
    DEFAULT_WHATIF_AVAILABILITY,
    DEFAULT_WHATIF_TPD,
    FIGURE_GROUPS,
    OFFSET_WORDS,
    RELEASES,
    SOURCES_FILES,
    SOURCES_RELEASES,
    WHATIF_SCENARIO,
    ReportResults,
    ScenarioRun,
    collect,
    default_scenario_paths,
    explain_gross_errors,
    n_steps,
    plain_driver,
    whatif_move,
)

__all__ = [
    "BASELINE_AVAILABILITY",
    "BASELINE_TPD",
    "CSS",
    "DEFAULT_DRAWS",
    "DEFAULT_WHATIF_AVAILABILITY",
    "DEFAULT_WHATIF_TPD",
    "FIGURE_GROUPS",
    "IMAGE_CHECK_JS",
    "LABELS",
    "METALS",
    "OFFSET_WORDS",
    "RECOVERIES",
    "RELEASES",
    "SOURCES_FILES",
    "SOURCES_RELEASES",
    "WHATIF_SCENARIO",
    "ReportResults",
    "ScenarioRun",
    "check_output_path",
    "collect",
    "default_scenario_paths",
    "explain_gross_errors",
    "make_readable",
    "n_steps",
    "plain_driver",
    "render_html",
    "save_html",
    "whatif_move",
    "write_report",
]


def _template_text(name: str) -> str:
    return resources.files("kenomill").joinpath("templates", name).read_text(encoding="utf-8")


#: the page's style sheet (kenomill/templates/report.css)
CSS = _template_text("report.css")
#: the page's own check: every image decoded (kenomill/templates/report.js; read back by the
#: report test through Chromium's --dump-dom). Inline, so the page stays self-contained.
IMAGE_CHECK_JS = _template_text("report.js")


def environment():
    """The Jinja2 environment of the page: package templates, autoescape, the number filters."""
    import jinja2

    from kenomill.report import format as fm

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("kenomill", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(fm.FILTERS)
    env.tests["text"] = fm.is_text
    return env


def render_html(r: ReportResults, command: str = "kenomill report") -> str:
    """The whole page as one HTML string (figures embedded, no external reference)."""
    import kenomill
    from kenomill.report.context import page_context

    context = {
        "version": kenomill.__version__,
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        **page_context(r),
    }
    return environment().get_template("report.html.j2").render(**context)


def check_output_path(path) -> Path:
    """Refuse an output path that is not an .html file in an existing directory (before any work)."""
    from kenomill import io

    return io.check_output_path(path, allowed={".html": "HTML page", ".htm": "HTML page"})


def save_html(results: ReportResults, path, *, command: str = "kenomill report") -> Path:
    """Render ``results`` (:func:`render_html`) and write the page to ``path``: whole or not at all."""
    from kenomill.io import atomic_path

    p = check_output_path(path)
    text = render_html(results, command=command)
    with atomic_path(p) as tmp:
        tmp.write_text(text, encoding="utf-8")
        make_readable(tmp)
    return p


def write_report(path="report.html", *, command: str = "kenomill report", **kwargs) -> Path:
    """Run :func:`collect` with ``kwargs`` and write the page to ``path`` (:func:`save_html`)."""
    check_output_path(path)  # refuse a bad path before a minute of work
    return save_html(collect(**kwargs), path, command=command)


def make_readable(path) -> None:
    """Give ``path`` the permissions of a new file (mkstemp makes it private, 0600; a report is to share)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)
