"""CPU of a reader's image access check, by study size, beside the design it replaced.

Run from the repository root with the cache the app runs with::

    REDIS_URL=redis://127.0.0.1:6379/9 DATABASE_URL=postgres://... \\
        .venv/bin/python bench/image_access.py [--cases 60,2000] [--repeat 2000]

For each size it seeds a study of that many cases (tiny phantoms, in a
throwaway test database) with one consented reader, warms the caches, then
times ``selectors.image_file_for_user`` for random tokens of the study (the
check every image request makes once the reader's access is cached): one
cache round trip for a few bytes (the reader's studies), then a lookup in
the study's token map kept in the process.

Beside it, taking turns call by call, the former design: the reader's whole
token -> file map in the cache, read and unpickled on every image request
(a ``get_many`` of the generation and that map, then the lookup). It prints
the median CPU per call of each in microseconds, their ratio, and the size
of the cached entry each reads.
"""

from __future__ import annotations

import argparse
import os
import pickle
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "turingtest.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.test.utils import (  # noqa: E402
    setup_databases,
    setup_test_environment,
    teardown_databases,
)

from bench.reader_queries import consented_reader  # noqa: E402


def seed_study(cases: int, n: int):
    """A study of ``cases`` main cases (balanced by grade and source), one reader."""
    from turingtest.imaging.phantom import knee_phantom
    from turingtest.imaging.services import image_create
    from turingtest.studies import services

    per_grade = max(1, cases // 10)
    for grade in range(5):
        for k, source in enumerate(("real", "synthetic")):
            for i in range(per_grade + (2 if source == "real" else 0)):
                patient = n * 100_000 + k * 50_000 + grade * 10_000 + i
                image_create(
                    pixels=knee_phantom(grade, patient, size=16),
                    source=source,
                    kl_grade=grade,
                    origin=f"bench {n} {grade} {source} {i}",
                )
    study = services.study_create(slug=f"access-{n}", name=f"Access {n}")
    services.cases_build(
        study=study, per_grade=per_grade, seed=n, practice=2, exclude_used=True
    )
    study = services.study_open(study=study)
    return study, consented_reader(study, f"access{n}@example.org").reader.user


def measure(study, user, repeat: int) -> None:
    from turingtest.studies import selectors

    tokens = list(study.cases.values_list("token", flat=True))
    whole_map = dict(study.cases.values_list("token", "image__file"))
    former_key = f"tt:bench:image-access-former:{user.pk}"
    generation = cache.get(selectors.ACCESS_GENERATION_KEY, 0)
    cache.set(former_key, (generation, whole_map), timeout=600)

    def now() -> str | None:
        return selectors.image_file_for_user(user=user, token=random.choice(tokens))

    def former() -> str | None:
        found = cache.get_many([selectors.ACCESS_GENERATION_KEY, former_key])
        return found[former_key][1].get(random.choice(tokens))

    assert now() is not None and former() is not None  # warm, and both find files
    times: dict[str, list[float]] = {"now": [], "former": []}
    for i in range(repeat):
        pair = (("now", now), ("former", former))
        for name, call in pair if i % 2 else reversed(pair):
            started = time.process_time()
            call()
            times[name].append((time.process_time() - started) * 1e6)
    entry = cache.get(selectors._access_key(user.pk))
    now_us, former_us = (statistics.median(times[k]) for k in ("now", "former"))
    print(
        f"  {len(tokens):>6} {now_us:>8.0f} {former_us:>10.0f} {former_us / now_us:>7.1f}"
        f" {len(pickle.dumps(entry)):>10,} {len(pickle.dumps((0, whole_map))):>12,}"
    )
    cache.delete(former_key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", default="60,2000")
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    setup_test_environment()
    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="turingtest-access-"))
    old = setup_databases(verbosity=0, interactive=False)
    try:
        print(
            f"image access check, CPU per call, median of {args.repeat} "
            f"({settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]})"
        )
        print(
            f"  {'cases':>6} {'now us':>8} {'former us':>10} {'ratio':>7}"
            f" {'entry B':>10} {'former B':>12}"
        )
        for n, size in enumerate(int(c) for c in args.cases.split(",")):
            study, user = seed_study(size, n + 1)
            measure(study, user, args.repeat)
    finally:
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
