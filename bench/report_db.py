"""Time the study report read from the database, as the page and the task pay it.

Run from the repository root (SQLite by default; set DATABASE_URL for
PostgreSQL)::

    .venv/bin/python bench/report_db.py [--large 200x2000] [--skip-large] [--repeat 2]

Each size is a simulated study (grading + detection phases, 2 practice and 2
attention-check cases) written in bulk into a throwaway test database. For
each it prints: reading the answer fingerprint (what every page view pays),
reading the rows as dicts and building the report from them (``rows``,
``report``: how the report was read before), reading the same answers as
arrays and building the same report from them (``arrays``, ``report``: how
it is read now), drawing the four plots, the whole
rebuild as the Celery task runs it (with plots), the page's own rebuild
(without plots) and a page view of a current stored report. The sizes are the reference study
(15 readers x 60 images), the page's synchronous limit (about 5,000
answers) and a large study.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "turingtest.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402

from turingtest.results import report  # noqa: E402
from turingtest.stats.report import build_report  # noqa: E402
from turingtest.stats.simulate import simulate_rows  # noqa: E402
from turingtest.studies.simulated_rows import study_load_rows  # noqa: E402


def _clock(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _size(text: str) -> tuple[int, int]:
    readers, cases = text.lower().split("x")
    return int(readers), int(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=_size, default=(200, 2000), metavar="RxC")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    sizes = [("reference", 15, 60), ("sync limit", 24, 100)]
    if not args.skip_large:
        sizes.append(("large", *args.large))

    old = setup_databases(verbosity=0, interactive=False)
    try:
        print(
            f"python {platform.python_version()}, {connection.vendor}, "
            f"{os.cpu_count()} CPUs; seconds; rows/report and arrays/report the best "
            f"of {args.repeat} runs in turn, the rest one run each"
        )
        header = (
            f"{'study':<11}{'size':>11}{'answers':>9}{'load':>7}{'finger':>8}"
            f"{'rows':>7}{'report':>8}{'arrays':>8}{'report':>8}{'plots':>7}"
            f"{'task':>7}{'sync':>7}{'page':>7}"
        )
        print(header)
        for i, (label, n_readers, n_cases) in enumerate(sizes):
            rows = simulate_rows(n_readers, n_cases, seed=i)
            load, study = _clock(
                lambda rows=rows, i=i: study_load_rows(
                    slug=f"bench{i}", rows=rows, reader_prefix=f"B{i}"
                )
            )
            del rows
            finger, fp = _clock(lambda study=study: report.answers_fingerprint(study))
            # The report from the answers read as dict rows (before) and as
            # arrays (what the task and the page now do), in turn, the best
            # of --repeat runs each: the machine is shared and noisy.
            timings = {"read": [], "build": [], "read_arrays": [], "build_arrays": []}
            for _ in range(args.repeat):
                read, db_rows = _clock(
                    lambda study=study: list(report.report_rows(study))
                )
                build, data = _clock(lambda db_rows=db_rows: build_report(db_rows))
                del db_rows
                read_arrays, columns = _clock(
                    lambda study=study: report.report_columns(study)
                )
                build_arrays, same = _clock(
                    lambda columns=columns: build_report(columns)
                )
                assert same == data
                del columns, same
                for key, value in (
                    ("read", read),
                    ("build", build),
                    ("read_arrays", read_arrays),
                    ("build_arrays", build_arrays),
                ):
                    timings[key].append(value)
            read, build, read_arrays, build_arrays = (
                min(timings[k])
                for k in ("read", "build", "read_arrays", "build_arrays")
            )
            draw, _ = _clock(
                lambda data=data: [f(data) for _, f in report.PLOTS.values()]
            )
            task, _ = _clock(
                lambda study=study: report.study_report_refresh(study_id=study.pk)
            )
            # What the page pays to build a report itself (no plots), and to
            # show a stored current one.
            sync, _ = _clock(
                lambda study=study: report.study_report_save(
                    study=study, with_plots=False
                )
            )
            page, _ = _clock(lambda study=study: report.report_page(study=study))
            print(
                f"{label:<11}{f'{n_readers}x{n_cases}':>11}{fp.answers_count:>9,}"
                f"{load:>7.1f}{finger:>8.3f}{read:>7.2f}{build:>8.2f}"
                f"{read_arrays:>8.2f}{build_arrays:>8.2f}{draw:>7.2f}"
                f"{task:>7.2f}{sync:>7.2f}{page:>7.2f}"
            )
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
