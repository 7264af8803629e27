"""The study report: every figure a visual Turing test paper reports.

:func:`build_report` (:mod:`.compute`) turns a study's final answers into a
:class:`Report` (:mod:`.results`, frozen dataclasses stored as JSON);
:func:`report_markdown` (:mod:`.markdown`) renders it; :mod:`.csv` gives the
rows of the CSV exports and the iMRMC files; :mod:`.formatting` writes every
number they show.
"""

from turingtest.stats.report.compute import (
    REPORT_VERSION,
    RETEST_KAPPA_MIN,
    ROW_KEYS,
    AnswerColumns,
    build_report,
    experience_band,
    split_readers,
    split_repeats,
)
from turingtest.stats.report.csv import (
    IMAGE_COLUMNS,
    READER_COLUMNS,
    RETEST_COLUMNS,
    image_summary_rows,
    imrmc_rows,
    imrmc_text,
    reader_summary_rows,
    retest_rows,
)
from turingtest.stats.report.markdown import (
    QUESTION_LABELS,
    MachineComparison,
    humans_label,
    machine_comparison,
    machine_name,
    report_markdown,
)
from turingtest.stats.report.results import Figure, Report

__all__ = [
    "IMAGE_COLUMNS",
    "QUESTION_LABELS",
    "READER_COLUMNS",
    "REPORT_VERSION",
    "RETEST_COLUMNS",
    "RETEST_KAPPA_MIN",
    "ROW_KEYS",
    "AnswerColumns",
    "Figure",
    "MachineComparison",
    "Report",
    "build_report",
    "experience_band",
    "humans_label",
    "image_summary_rows",
    "imrmc_rows",
    "imrmc_text",
    "machine_comparison",
    "machine_name",
    "reader_summary_rows",
    "report_markdown",
    "retest_rows",
    "split_readers",
    "split_repeats",
]
