"""The study report: train the scenario catalog's studies and report what the run shows.

``netprops study`` (see :func:`add_study_parser`) or, from Python::

    from netprops.data import load_dataset
    from netprops.study import QUICK, run_study, write_report

    result = run_study(load_dataset("fashion-mnist"), config=QUICK)
    write_report(result, "netprops-report")

Each study states the source coursework's claims and decides each one from the
run's numbers (:mod:`netprops.study.claims`): *supported*, *not supported by
this run* or *inconclusive*. Figures need matplotlib (``netprops[report]``).
"""

from __future__ import annotations

from .claims import Comparison, combine, compare_runs, every_sample
from .command import DEFAULT_OUT, add_study_parser, study_command
from .config import FULL, NORM_BATCH_SIZES, QUICK, STUDIES, StudyConfig
from .figures import FIGURES, MissingReportDependency, check_report_dependencies, render_figures
from .report import REPORT_FILES, render_html, render_markdown, write_report
from .results import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    VERDICTS,
    Claim,
    FigureRef,
    Section,
    StudyResult,
    Table,
)
from .runner import run_study
from .runs import Run, inference_ms_per_1000, train_run

__all__ = [
    "DEFAULT_OUT",
    "FIGURES",
    "FULL",
    "INCONCLUSIVE",
    "NORM_BATCH_SIZES",
    "NOT_SUPPORTED",
    "QUICK",
    "REPORT_FILES",
    "STUDIES",
    "SUPPORTED",
    "VERDICTS",
    "Claim",
    "Comparison",
    "FigureRef",
    "MissingReportDependency",
    "Run",
    "Section",
    "StudyConfig",
    "StudyResult",
    "Table",
    "add_study_parser",
    "check_report_dependencies",
    "combine",
    "compare_runs",
    "every_sample",
    "inference_ms_per_1000",
    "render_figures",
    "render_html",
    "render_markdown",
    "run_study",
    "study_command",
    "train_run",
    "write_report",
]
