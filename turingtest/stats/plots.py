"""Figures of the study report, drawn server-side as PNG bytes.

Each function takes the :class:`~turingtest.stats.report.Report` of
:func:`turingtest.stats.report.build_report` and returns a PNG. Figures are
drawn on a bare ``Figure`` with the Agg canvas (never ``pyplot``), so they
hold no global state and are safe in a web process. When the report has no data for a figure the PNG says so in words
instead of raising.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from turingtest.domain.scales import KL
from turingtest.stats.report.formatting import ci_text
from turingtest.stats.report.results import Detection, Grading, Report

__all__ = ["forest_plot", "roc_plot", "kl_confusion_plot", "realism_histogram"]

_INK = "#222222"
_MUTED = "#8a8a8a"
_ACCENT = "#1f5fa8"
_DPI = 150


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _style(ax: Any) -> None:
    # Font sizes are set per artist, not through rcParams, which are global
    # and would leak between requests served by threads.
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(_MUTED)
    ax.tick_params(colors=_INK, length=3, labelsize=7)


def _labels(ax: Any, xlabel: str, ylabel: str | None, title: str) -> None:
    ax.set_xlabel(xlabel, fontsize=8)
    if ylabel:
        ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, loc="left", fontsize=9)


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _message(text: str) -> bytes:
    fig = _figure(4.0, 1.2)
    fig.text(0.5, 0.5, text, ha="center", va="center", color=_MUTED, fontsize=9)
    return _png(fig)


S = TypeVar("S", Detection, Grading)


def _section(
    sections: Mapping[str, S], phase: str | None, prefer: tuple[str, ...]
) -> S | None:
    if phase is not None:
        return sections.get(phase)
    for name in prefer:
        if name in sections:
            return sections[name]
    return None


def forest_plot(report: Report, phase: str | None = None) -> bytes:
    """Per-reader accuracy with Wilson intervals, and the pooled estimates.

    Parameters
    ----------
    report : Report
        From :func:`~turingtest.stats.report.build_report`.
    phase : str, optional
        Which phase's detection section; by default "detection", else
        "combined".

    Returns
    -------
    bytes
        A PNG image.
    """
    d = _section(report.detection, phase, ("detection", "combined"))
    if not d or not d.readers:
        return _message("No real/synthetic answers to plot.")
    readers = [r for r in d.readers if r.accuracy.estimate is not None]
    if not readers:
        return _message("No reader has answered yet.")
    n = len(readers)
    fig = _figure(5.2, min(0.16 * n + 1.6, 26.0))
    ax = fig.add_subplot()
    _style(ax)
    # Readers from the top down; the two pooled estimates below them.
    y = np.arange(n)[::-1] + 2.0
    est = np.array([r.accuracy.estimate for r in readers])
    bounds = np.array([r.accuracy.ci or [None, None] for r in readers], float)
    low, high = bounds[:, 0], bounds[:, 1]
    ax.hlines(y, low, high, color=_MUTED, linewidth=1)
    ax.plot(est, y, "s", color=_INK, markersize=3.5)
    pooled = [
        ("Pooled (GEE)", d.pooled_accuracy, 1.0),
        ("MRMC", d.mrmc_percent_correct, 0.0),
    ]
    for _, p, yy in pooled:
        ci = p.ci
        if p.estimate is None or not ci or ci[0] is None or ci[1] is None:
            continue
        e = p.estimate
        ax.fill([ci[0], e, ci[1], e], [yy, yy + 0.3, yy, yy - 0.3], color=_ACCENT, lw=0)
    ax.axvline(0.5, color=_MUTED, linestyle="--", linewidth=0.8)
    step = max(1, n // 60)
    ticks = list(y[::step]) + [yy for _, _, yy in pooled]
    names = [str(r.reader) for r in readers][::step] + [lab for lab, _, _ in pooled]
    ax.set_yticks(ticks, names)
    ax.set_ylim(-0.6, n + 2.5)
    ax.set_xlim(0, 1)
    _labels(
        ax,
        "Accuracy (share of images classified correctly)",
        None,
        f"Readers' accuracy, {d.phase} phase; pooled {ci_text(d.pooled_accuracy)}",
    )
    return _png(fig)


def roc_plot(report: Report, phase: str | None = None) -> bytes:
    """Empirical ROC curve of every reader and of the pooled ratings.

    Synthetic is the positive class and the 6-point confidence the score.
    The title gives the reader-averaged (MRMC) AUC.
    """
    d = _section(report.detection, phase, ("detection", "combined"))
    if not d or not d.roc.pooled:
        return _message("No confidence ratings: no ROC curves.")
    roc, pooled_roc = d.roc, d.roc.pooled
    fig = _figure(4.2, 4.2)
    ax = fig.add_subplot()
    _style(ax)
    ax.plot([0, 1], [0, 1], color=_MUTED, linestyle="--", linewidth=0.8)
    alpha = 0.6 if len(roc.readers) <= 20 else 0.25
    for r in roc.readers:
        if len(r.fpr):
            ax.plot(r.fpr, r.tpr, color=_MUTED, linewidth=0.7, alpha=alpha)
    ax.plot(
        pooled_roc.fpr,
        pooled_roc.tpr,
        color=_ACCENT,
        linewidth=1.8,
        marker="o",
        markersize=2.5,
        label="All readers pooled",
    )
    ax.plot([], [], color=_MUTED, linewidth=0.7, label="One reader")
    ax.set_aspect("equal")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    _labels(
        ax,
        "Real images called synthetic (false positive rate)",
        "Synthetic images called synthetic (true positive rate)",
        f"ROC; MRMC AUC {ci_text(d.mrmc_auc)}",
    )
    ax.legend(frameon=False, loc="lower right", fontsize=7)
    return _png(fig)


def kl_confusion_plot(report: Report, phase: str | None = None) -> bytes:
    """KL confusion matrices for real and synthetic images side by side.

    Rows are the reference grade, columns the readers' grade, summed over
    readers; shading is the share of each row, numbers are counts.
    """
    g = _section(report.grading, phase, ("grading", "combined", "detection"))
    if not g:
        return _message(f"No {KL.abbreviation} grades to plot.")
    grades = g.confusion["grades"]
    fig = _figure(7.0, 3.4)
    axes = fig.subplots(1, 2)
    for ax, source in zip(axes, ("real", "synthetic"), strict=True):
        table = np.asarray(g.confusion[source], dtype=float)
        rows = table.sum(axis=1, keepdims=True)
        share = np.divide(table, rows, out=np.zeros_like(table), where=rows > 0)
        ax.imshow(share, cmap="Greys", vmin=0, vmax=1)
        for i in range(table.shape[0]):
            for j in range(table.shape[1]):
                colour = "white" if share[i, j] > 0.6 else _INK
                ax.text(
                    j,
                    i,
                    f"{int(table[i, j])}",
                    ha="center",
                    va="center",
                    color=colour,
                    fontsize=7,
                )
        ax.set_xticks(range(len(grades)), grades)
        ax.set_yticks(range(len(grades)), grades)
        kappa = getattr(g.summary, source).mean_kappa_quadratic
        _labels(
            ax,
            "Reader's grade",
            "Reference grade",
            f"{source.capitalize()} images\nmean weighted kappa {ci_text(kappa)}",
        )
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.tick_params(length=0, labelsize=7)
    return _png(fig)


def realism_histogram(report: Report, phase: str | None = None) -> bytes:
    """How often each image was called real, for real and synthetic images.

    A synthetic image at the right end fooled most readers; if the two
    distributions overlap, readers cannot tell the groups apart.
    """
    d = _section(report.detection, phase, ("detection", "combined"))
    if not d or not d.images:
        return _message("No real/synthetic answers to plot.")
    bins = np.linspace(0, 1, 11)
    fig = _figure(5.2, 3.0)
    ax = fig.add_subplot()
    _style(ax)
    for source, colour, fill in (("real", _MUTED, True), ("synthetic", _ACCENT, False)):
        values = [
            i.fraction_real
            for i in d.images
            if i.truth == source and i.fraction_real is not None
        ]
        if not values:
            continue
        ax.hist(
            values,
            # matplotlib's stub types bins as a Sequence; it takes any array.
            bins=bins,  # type: ignore[arg-type]
            histtype="stepfilled" if fill else "step",
            color=colour,
            alpha=0.45 if fill else 1.0,
            linewidth=1.6,
            label=f"{source.capitalize()} images (n = {len(values)})",
        )
    ax.axvline(0.5, color=_INK, linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 1)
    _labels(
        ax,
        "Share of readers who called the image real",
        "Images",
        f"Realism of each image, {d.phase} phase",
    )
    ax.legend(frameon=False, fontsize=7)
    return _png(fig)
