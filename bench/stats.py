"""Time the study report at the reference study's size and at a large size.

Run from the repository root::

    .venv/bin/python bench/stats.py [--repeat 3] [--skip-large]

Rows are simulated (``turingtest.stats.simulate``) with both a grading and a
detection phase, as in the reference study (Prezja et al. 2022: 15 readers,
60 images). The large study is 200 readers x 2,000 images x 2 phases, i.e.
800,000 answers. Generating rows is timed apart from building the report,
which is what a results page or ``study_report`` pays.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from turingtest.stats import plots  # noqa: E402
from turingtest.stats.report import build_report, report_markdown  # noqa: E402
from turingtest.stats.simulate import simulate_rows  # noqa: E402

SIZES = [("reference (15 x 60)", 15, 60), ("large (200 x 2,000)", 200, 2000)]
PHASES = ("grading", "detection")


def _time(fn, repeat: int) -> tuple[float, object, float]:
    """Median wall time, the result, and median CPU time of this process.

    CPU time is shown beside wall time because the machine may be shared:
    wall time then includes waiting for a core.
    """
    times, cpu, result = [], [], None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(times), result, statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per size (median)")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()

    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"phases {' + '.join(PHASES)}, median of {args.repeat} runs"
    )
    print()
    header = (
        f"{'study':<22}{'answers':>10}{'simulate s':>12}{'report s':>10}{'cpu s':>8}"
        f"{'answers/s':>12}{'json MB':>9}{'markdown s':>12}{'4 plots s':>11}"
    )
    print(header)
    print("-" * len(header))
    measured = []
    for label, n_readers, n_cases in SIZES:
        if args.skip_large and n_readers > 15:
            continue
        start = time.perf_counter()
        rows = simulate_rows(n_readers, n_cases, phases=PHASES, n_practice=0)
        simulate_s = time.perf_counter() - start
        n_main = sum(1 for r in rows if r["role"] == "main")
        report_s, report, report_cpu = _time(
            lambda rows=rows: build_report(rows), args.repeat
        )
        size_mb = len(json.dumps(report.to_json(), allow_nan=False)) / 1e6
        md_s, _, _ = _time(lambda report=report: report_markdown(report), 1)
        plot_s, _, _ = _time(
            lambda report=report: [
                plots.forest_plot(report),
                plots.roc_plot(report),
                plots.kl_confusion_plot(report),
                plots.realism_histogram(report),
            ],
            1,
        )
        measured.append((label, n_main, report_s))
        print(
            f"{label:<22}{n_main:>10,}{simulate_s:>12.2f}{report_s:>10.2f}{report_cpu:>8.2f}"
            f"{n_main / report_s:>12,.0f}{size_mb:>9.2f}{md_s:>12.2f}{plot_s:>11.2f}"
        )
    if len(measured) == 2:
        (_, n_small, t_small), (_, n_large, t_large) = measured
        print()
        print(
            f"growth: {n_large / n_small:,.0f}x the answers took "
            f"{t_large / t_small:,.1f}x the time "
            f"(per answer: {1e6 * t_small / n_small:.1f} us small, "
            f"{1e6 * t_large / n_large:.1f} us large)"
        )


if __name__ == "__main__":
    main()
