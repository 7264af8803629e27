"""Machine readers: classifiers that answer a study as readers do.

Two models, both from the machine Turing test (:mod:`generator.machine`):

- ``c2st``: a CNN trained on real against synthetic pool images that are not
  cases of the study answers every phase that asks real or synthetic, its
  probability cut into the 6-point scale (:func:`rating_from_probability`),
  with the KL classifier's grade where the phase also asks for one.
- ``kl``: the real-trained KL classifier grades every case of the phases
  that ask only for a grade.

A machine reader answers through the reading services (sessions in the
case order the study draws for it, judgments, phases finished), so its
answers land in the same tables and exports as people's; its reader row
says ``kind="machine"`` and the model, and the report keeps it apart from the
human readers (:func:`turingtest.stats.report.split_readers`). The torch work
happens in the management command; this module only reads and writes rows.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from turingtest.domain.scales import DETECTION, KL
from turingtest.imaging.models import Image, Source
from turingtest.studies import services
from turingtest.studies.models import (
    Case,
    Enrollment,
    MachineScore,
    Phase,
    Reader,
    Study,
)

MODELS = {
    "c2st": "CNN real vs synthetic (c2st)",
    "kl": f"CNN {KL.abbreviation} grader (kl)",
}
# Upper bounds of ratings 1-5 on the probability of "synthetic"; above the
# last, 6. Symmetric about 0.5, so the rating says "synthetic" exactly when
# the classifier leans that way.
RATING_CUTS = (0.1, 0.25, 0.5, 0.75, 0.9)
assert len(RATING_CUTS) == DETECTION.count - 1  # one cut between each two ratings


def rating_from_probability(p_synthetic: float) -> int:
    """The 6-point rating (1 definitely real ... 6 definitely synthetic) of a probability."""
    return DETECTION.codes[int(np.searchsorted(RATING_CUTS, p_synthetic, side="right"))]


def machine_label(model: str) -> str:
    return MODELS.get(model, model)


def machine_phases(*, study: Study, model: str) -> list[Phase]:
    """The phases a machine reader of ``model`` answers, in order."""
    phases = list(study.phases.order_by("index"))
    if model == "c2st":
        return [p for p in phases if p.asks_realism]
    return [p for p in phases if p.asks_grade and not p.asks_realism]


def machine_reader_check(*, study: Study, model: str) -> list[Phase]:
    """The phases ``model`` would answer; ValidationError if it cannot answer now."""
    if model not in MODELS:
        raise ValidationError(
            f"Unknown model {model!r}: choose one of {', '.join(MODELS)}."
        )
    if study.status != Study.Status.OPEN:
        raise ValidationError(
            f"Study {study.slug!r} is {study.status}; open it before adding a machine reader."
        )
    phases = machine_phases(study=study, model=model)
    if not phases:
        asks = (
            "real or synthetic"
            if model == "c2st"
            else f"only a {KL.abbreviation} grade"
        )
        raise ValidationError(
            f"Study {study.slug!r} has no phase that asks {asks}: "
            f"a {model} reader would have nothing to answer."
        )
    if Enrollment.objects.filter(
        study=study, reader__kind=Reader.Kind.MACHINE, reader__machine_model=model
    ).exists():
        raise ValidationError(
            f"Study {study.slug!r} already has a {model} machine reader."
        )
    return phases


def answered_cases(*, study: Study) -> list[Case]:
    """The cases a machine reader answers: every case outside practice."""
    return list(
        study.cases.exclude(role=Case.Role.PRACTICE)
        .select_related("image")
        .order_by("number")
    )


@dataclass(frozen=True)
class TrainingImages:
    real: list[Image]
    synthetic: list[Image]


def machine_training_images(*, study: Study) -> TrainingImages:
    """Pool images the machine may learn from: none of them a case of the study.

    Synthetic ones come from the generators of the study's synthetic cases
    (images recorded without one count as one generator), so the classifier
    learns those generators' tell-tale signs.
    """
    in_study = Case.objects.filter(study=study).values("image")
    fakes = Case.objects.filter(study=study, image__source=Source.SYNTHETIC)
    same_generator = Q(
        generator__in=fakes.exclude(image__generator__isnull=True).values(
            "image__generator"
        )
    )
    if fakes.filter(image__generator__isnull=True).exists():
        # Imported without a generator: such images are one group of their own.
        same_generator |= Q(generator__isnull=True)
    real = Image.objects.filter(source=Source.REAL).exclude(pk__in=in_study)
    synthetic = (
        Image.objects.filter(source=Source.SYNTHETIC)
        .filter(same_generator)
        .exclude(pk__in=in_study)
    )
    return TrainingImages(list(real.order_by("id")), list(synthetic.order_by("id")))


@dataclass(frozen=True)
class MachineAnswers:
    """What the classifiers said about each case, by case id."""

    p_synthetic: Mapping[int, float] = field(default_factory=dict)
    kl_probabilities: Mapping[int, Sequence[float]] = field(default_factory=dict)


@transaction.atomic
def machine_reader_add(
    *, study: Study, model: str, answers: MachineAnswers, trained_on: str = ""
) -> Enrollment:
    """Enroll a machine reader of ``model`` and record its answers to its phases.

    Everything or nothing: a case without the answer a phase asks for
    leaves no reader, session or judgment behind.
    """
    phases = machine_reader_check(study=study, model=model)
    now = timezone.now()
    user_model = get_user_model()
    code = "M" + secrets.token_hex(4).upper()
    user = user_model(username=f"machine-{model}-{study.slug}-{code}".lower())
    user.set_unusable_password()
    user.full_clean()
    user.save()
    name = machine_label(model) + (f", trained on {trained_on}" if trained_on else "")
    reader = Reader(
        user=user,
        code=code,
        name=name[:200],
        profession=Reader.Profession.OTHER,
        experience_years=0,
        kind=Reader.Kind.MACHINE,
        machine_model=model,
    )
    reader.full_clean()
    reader.save()
    enrollment = Enrollment.objects.create(reader=reader, study=study, consented_at=now)
    for phase in phases:
        session = services.reading_session_start(enrollment=enrollment, phase=phase)
        for position, case_id in enumerate(session.order):
            p = answers.p_synthetic.get(case_id)
            grades = answers.kl_probabilities.get(case_id)
            if phase.asks_realism and p is None:
                raise ValidationError(f"No real/synthetic score for case id {case_id}.")
            if phase.asks_grade and grades is None:
                raise ValidationError(
                    f"No {KL.abbreviation} grade for case id {case_id}."
                )
            services.reading_session_serve(session=session, position=position, now=now)
            recorded = services.judgment_record(
                session=session,
                position=position,
                confidence=rating_from_probability(p) if phase.asks_realism else None,
                kl_grade=int(np.argmax(grades)) if phase.asks_grade else None,
                now=now,
            )
            if phase.asks_realism:
                MachineScore.objects.create(
                    judgment=recorded.judgment, p_synthetic=float(p)
                )
        services.reading_session_finish(session=session, now=now)
    # It answers only the phases its model can; it has finished the study.
    Enrollment.objects.filter(pk=enrollment.pk).update(completed_at=now)
    enrollment.refresh_from_db()
    return enrollment


def machine_evidence(*, study: Study) -> dict[int, float]:
    """Each case's probability of being synthetic by the study's machine readers.

    The mean over machine readers (and phases) that scored it; cases no
    machine scored are absent.
    """
    sums: dict[int, list[float]] = {}
    for case_id, p in MachineScore.objects.filter(
        judgment__session__enrollment__study=study
    ).values_list("judgment__case_id", "p_synthetic"):
        sums.setdefault(case_id, []).append(p)
    return {case_id: float(np.mean(ps)) for case_id, ps in sums.items()}
