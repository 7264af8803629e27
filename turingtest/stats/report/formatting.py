"""How the report's numbers are written: the one place for every format.

Two styles. The Markdown report (and the HTML file made from it) is plain
ASCII: intervals read "0.512 (0.401 to 0.623)" and small p-values "<0.001".
The staff pages print intervals with an en dash, "51.2% (40.1–62.3)", and
"< 0.001". A missing figure is "n/a" in both. The CSV exports hold numbers
unformatted (full precision, for R and Python) and flags as ``true`` and
``false``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from turingtest.stats.report.results import Figure

__all__ = [
    "MISSING",
    "ci_page",
    "ci_text",
    "csv_flag",
    "fixed",
    "fixed_text",
    "interval_page",
    "interval_text",
    "number",
    "p_page",
    "p_text",
    "percent",
    "percent_ci_page",
    "percent_ci_text",
]

MISSING = "n/a"


def number(x: Any, digits: int = 3) -> str:
    """A value as the report shows it: floats to ``digits`` decimals, ints as
    they are, booleans "yes"/"no", None "n/a"."""
    if x is None:
        return MISSING
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def fixed(x: float | None, digits: int = 2) -> str:
    """A number to ``digits`` decimals, "n/a" when missing."""
    return MISSING if x is None else f"{x:.{digits}f}"


def fixed_text(x: float | None, digits: int = 2) -> str:
    """A number to ``digits`` decimals in the Markdown report, "n/a" when
    missing or NaN."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return MISSING
    return f"{x:.{digits}f}"


def percent(x: float, digits: int = 1, *, unit: str = "%") -> str:
    """A proportion as a percentage: 0.5123 is "51.2%" (``unit`` after it)."""
    return f"{100 * x:.{digits}f}{unit}"


def p_text(p: float | None) -> str:
    """A p-value in the Markdown report: three decimals, "<0.001" below."""
    if p is None:
        return MISSING
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_page(p: float | None) -> str:
    """A p-value on the staff pages: three decimals, "< 0.001" below."""
    if p is None:
        return MISSING
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def ci_text(d: Figure | None, digits: int = 3) -> str:
    """An estimate and its interval in the Markdown report."""
    if not d or d.estimate is None:
        return MISSING
    ci = d.ci
    if not ci or ci[0] is None:
        return number(d.estimate, digits)
    return (
        f"{number(d.estimate, digits)} ({number(ci[0], digits)} to "
        f"{number(ci[1], digits)})"
    )


def percent_ci_text(d: Figure | None) -> str:
    """A proportion and its interval as percentages in the Markdown report."""
    if not d or d.estimate is None:
        return MISSING
    ci = d.ci or [None, None]
    if ci[0] is None or ci[1] is None:
        return percent(d.estimate)
    return f"{percent(d.estimate)} ({100 * ci[0]:.1f} to {100 * ci[1]:.1f})"


def interval_text(ci: Sequence[float | None] | None) -> str:
    """An interval on its own in the Markdown report: "0.401 to 0.623"."""
    if not ci or ci[0] is None or ci[1] is None:
        return MISSING
    return f"{number(ci[0])} to {number(ci[1])}"


def percent_ci_page(d: Figure | None) -> str:
    """A proportion and its interval as percentages on the staff pages."""
    if not d or d.estimate is None:
        return MISSING
    ci = d.ci or [None, None]
    if ci[0] is None or ci[1] is None:
        return percent(d.estimate)
    return f"{percent(d.estimate)} ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})"


def ci_page(d: Figure | None, digits: int = 3) -> str:
    """An estimate and its interval on the staff pages."""
    if not d or d.estimate is None:
        return MISSING
    ci = d.ci or [None, None]
    if ci[0] is None or ci[1] is None:
        return fixed(d.estimate, digits)
    return f"{fixed(d.estimate, digits)} ({ci[0]:.{digits}f}–{ci[1]:.{digits}f})"


def interval_page(ci: Sequence[float | None] | None, digits: int = 2) -> str:
    """An interval on its own on the staff pages: "0.40 to 0.62"."""
    if not ci or ci[0] is None:
        return MISSING
    return f"{fixed(ci[0], digits)} to {fixed(ci[1], digits)}"


def csv_flag(value: bool) -> str:
    """A yes/no cell of a CSV export."""
    return str(value).lower()
