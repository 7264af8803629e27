"""Answer rows loaded straight into the database, for benchmarks and tests.

:func:`turingtest.stats.simulate.simulate_rows` makes the answers of a study
of any size in a second; :func:`study_load_rows` writes them as a study with
images, cases, readers, sessions and judgments in bulk. The services would
take hours for the 800,000 answers of a large study; the rows written here
are the same kind the services write, so the report's selector reads them as
it reads a real study. The image rows point at no file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from datetime import timedelta
from itertools import islice
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from turingtest.generation.models import Generator
from turingtest.imaging.models import Image
from turingtest.studies.models import (
    Case,
    Enrollment,
    Judgment,
    Phase,
    Reader,
    ReadingSession,
    Study,
)

BATCH = 5000


def _batches(items: Iterable[Any], size: int = BATCH) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


@transaction.atomic
def study_load_rows(
    *, slug: str, rows: list[Mapping[str, Any]], reader_prefix: str = ""
) -> Study:
    """Write ``rows`` (the shape of ``simulate_rows``) as an open study ``slug``.

    Case labels end in their number ("C00012" is case 12). Practice rows go
    into each reader's practice session, as the reading page records them.
    """
    now = timezone.now()
    phases = list(dict.fromkeys(r["phase"] for r in rows))
    cases: dict[str, Mapping[str, Any]] = {}
    readers: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        cases.setdefault(r["case"], r)
        readers.setdefault(r["reader"], r)

    study = Study.objects.create(
        slug=slug,
        name=f"Simulated {slug}",
        status=Study.Status.OPEN,
        opened_at=now,
        practice_count=sum(1 for r in cases.values() if r["role"] == "practice"),
    )
    phase_rows = {
        kind: Phase.objects.create(study=study, index=i, kind=kind)
        for i, kind in enumerate(phases)
    }
    generators = {}
    for name in {r["generator"] for r in cases.values() if r["generator"]}:
        generators[name], _ = Generator.objects.get_or_create(
            name=name, defaults={"checkpoint": f"simulated/{name}.pt", "sha256": ""}
        )
    images = Image.objects.bulk_create(
        Image(
            source=r["truth"],
            kl_grade=r["reference_kl"],
            token=f"{slug}-{label}",
            file=f"pool/{slug}-{label}.png",
            sha256=hashlib.sha256(f"{slug}/{label}".encode()).hexdigest(),
            width=224,
            height=224,
            origin="simulated",
            generator=generators.get(r["generator"])
            if r["truth"] == "synthetic"
            else None,
            seed=i if r["truth"] == "synthetic" else None,
        )
        for i, (label, r) in enumerate(cases.items())
    )
    case_rows = Case.objects.bulk_create(
        Case(
            study=study,
            image=image,
            role=r["role"],
            number=int("".join(ch for ch in label if ch.isdigit())),
        )
        for image, (label, r) in zip(images, cases.items(), strict=True)
    )
    case_ids = {label: c.pk for label, c in zip(cases, case_rows, strict=True)}

    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"sim-{slug}-{code}", password="!")
        for code in readers
    )
    reader_rows = Reader.objects.bulk_create(
        Reader(
            user=user,
            code=f"{reader_prefix}{code}",
            name=f"Simulated {code}",
            profession=r["reader_profession"],
            experience_years=r["reader_experience_years"],
            kind=Reader.Kind.SIMULATED,
        )
        for user, (code, r) in zip(users, readers.items(), strict=True)
    )
    enrollments = {
        code: e
        for code, e in zip(
            readers,
            Enrollment.objects.bulk_create(
                Enrollment(
                    reader=reader, study=study, consented_at=now, completed_at=now
                )
                for reader in reader_rows
            ),
            strict=True,
        )
    }
    # enrolled_at is stamped on insert; the answers below start a day ago.
    Enrollment.objects.filter(pk__in=[e.pk for e in enrollments.values()]).update(
        enrolled_at=now - timedelta(days=1), consented_at=now - timedelta(days=1)
    )

    # Each (reader, phase) in the order the reader saw it; practice apart.
    seen: dict[tuple[str, str | None], list[Mapping[str, Any]]] = {}
    for r in sorted(rows, key=lambda r: (r["reader"], r["phase"], r["position"])):
        if r["role"] == "practice" and r["phase"] != phases[0]:
            continue  # practice is one round, before the first phase
        phase = None if r["role"] == "practice" else r["phase"]
        seen.setdefault((r["reader"], phase), []).append(r)
    sessions = ReadingSession.objects.bulk_create(
        ReadingSession(
            enrollment=enrollments[code],
            phase=None if phase is None else phase_rows[phase],
            seed=0,
            order=[case_ids[r["case"]] for r in answered],
            answered=len(answered),
            completed_at=now,
        )
        for (code, phase), answered in seen.items()
    )

    def judgments() -> Iterator[Judgment]:
        clock = now - timedelta(days=1)
        for session, answered in zip(sessions, seen.values(), strict=True):
            for position, r in enumerate(answered):
                served = clock
                clock += timedelta(milliseconds=r["duration_ms"])
                yield Judgment(
                    session=session,
                    case_id=case_ids[r["case"]],
                    position=position,
                    answer=r["answer"],
                    confidence=r["confidence"],
                    kl_grade=r["kl_grade"],
                    served_at=served,
                    answered_at=clock,
                    duration_ms=r["duration_ms"],
                )

    for batch in _batches(judgments()):
        Judgment.objects.bulk_create(batch)
    return study
