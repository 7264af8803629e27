"""Simulated readers, answering through the same services as the web.

For demos, load tests and statistics tests. Each reader follows an
equal-variance signal-detection model: a latent "looks synthetic" score with
mean ±d′/2 by truth plus a per-image effect (some fakes are more convincing
than others) and a per-reader criterion, cut into the 6-point scale. Grades
are the reference grade plus rounded Gaussian noise, noisier on synthetic
images.

Where a machine reader of the study (``add_machine_reader --model c2st``)
scored an image, the per-image effect comes from its probability of
"synthetic" (:func:`turingtest.stats.simulate.evidence_effects`) instead of
chance: the fakes the classifier finds obvious are called synthetic by most
simulated readers, and the ones it takes for real fool many of them.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.core.exceptions import ValidationError
from django.utils import timezone
from scipy.stats import norm

from turingtest.domain.references import on_scale
from turingtest.domain.scales import DETECTION, KL
from turingtest.stats.simulate import evidence_effects
from turingtest.studies import selectors, services
from turingtest.studies.machine import machine_evidence
from turingtest.studies.models import Case, Enrollment, Reader, Study

PROFESSIONS = [
    Reader.Profession.RADIOLOGIST,
    Reader.Profession.RADIOLOGIST,
    Reader.Profession.RADIOLOGY_RESIDENT,
    Reader.Profession.ORTHOPAEDIC_SURGEON,
    Reader.Profession.ORTHOPAEDIC_RESIDENT,
]
# Cut points on the latent scale between the detection ratings, from
# "definitely real" up (one fewer than the ratings).
CUTS = np.array([-1.4, -0.6, 0.0, 0.6, 1.4])
assert len(CUTS) == DETECTION.count - 1


@dataclass(frozen=True)
class SimulatedReader:
    code: str
    accuracy: float
    answers: int


def _latent_dprime(accuracy: float) -> float:
    # With an unbiased criterion, accuracy = Φ(d′/2).
    return 2.0 * float(norm.ppf(np.clip(accuracy, 0.01, 0.99)))


def _extra_answers(questions, image, effect: float, rng: np.random.Generator) -> dict:
    """Answers to a phase's extra questions: near the image's reference value
    on the question's scale where the pool holds one (as readers grading
    BI-RADS land near the reference category), else near a value each image
    has for every reader (its effect), so readers agree more than by chance."""
    answers = {}
    for q in questions:
        if q.scale is None:
            if q.required:
                answers[q.field] = "simulated answer"
            continue
        codes = q.scale.codes
        k = len(codes)
        reference = on_scale(q.scale, image.reference(q.scale.name))
        if reference is None:
            at = (k - 1) / 2 + effect * k / 2 + rng.normal(0, 0.6)
        elif q.scale.ordinal:
            at = q.scale.rank(reference) + rng.normal(0, 0.7)
        else:
            at = q.scale.rank(reference) if rng.random() < 0.7 else rng.integers(k)
        answers[q.field] = codes[int(np.clip(round(at), 0, k - 1))]
    return answers


def readers_simulate(
    *,
    study: Study,
    readers: int,
    accuracy: float,
    seed: int = 0,
    start: datetime | None = None,
    progress=None,
    evidence: Mapping[int, float] | None = None,
) -> list[SimulatedReader]:
    """Enroll ``readers`` simulated readers and answer every case of every stage.

    ``evidence`` maps case ids to a machine's probability that the image is
    synthetic; None takes it from the study's machine readers, ``{}`` draws
    every image's effect by chance.
    """
    if study.status != Study.Status.OPEN:
        raise ValidationError(
            f"Study {study.slug!r} is {study.status}; open it before simulating readers."
        )
    if not 0.0 <= accuracy <= 1.0:
        raise ValidationError("--accuracy must lie between 0 and 1.")
    rng = np.random.default_rng(seed)
    clock = start or timezone.now() - timedelta(days=1)
    cases = {c.id: c for c in Case.objects.filter(study=study).select_related("image")}
    image_effect = {cid: rng.normal(0.0, 0.5) for cid in cases}
    # How synthetic each image looks to every reader, beyond its truth.
    looks = {
        cid: (1.0 if c.image.source == "synthetic" else -1.0) * image_effect[cid]
        for cid, c in cases.items()
    }
    if evidence is None:
        evidence = machine_evidence(study=study)
    scored = [cid for cid in cases if cid in evidence]
    if scored:
        effects = evidence_effects(
            np.array([evidence[cid] for cid in scored]),
            np.array([cases[cid].image.source == "synthetic" for cid in scored]),
        )
        looks.update(zip(scored, effects.tolist(), strict=True))
    definition = selectors.study_definition(study=study)
    first = study.enrollments.count()
    tokens = services.invitations_create(study=study, count=readers)
    simulated = []
    for i, (_, token) in enumerate(tokens):
        reader_accuracy = float(np.clip(rng.normal(accuracy, 0.05), 0.0, 1.0))
        dprime = _latent_dprime(reader_accuracy)
        criterion = rng.normal(
            0.25, 0.3
        )  # fakes taken for real more often than the reverse
        enrollment = services.reader_signup(
            token=token,
            email=f"simulated-{study.slug}-{first + i + 1}@readers.invalid",
            password=f"sim-{rng.integers(1 << 62):x}-pass",
            name=f"Simulated reader {first + i + 1}",
            profession=PROFESSIONS[int(rng.integers(len(PROFESSIONS)))],
            experience_years=int(rng.integers(1, 31)),
            kind=Reader.Kind.SIMULATED,
        )
        enrollment = services.enrollment_consent(enrollment=enrollment)
        # The simulated clock runs in the past: enrol the reader on it too, so
        # no reader finishes before enrolling.
        Enrollment.objects.filter(pk=enrollment.pk).update(
            enrolled_at=clock, consented_at=clock
        )
        enrollment.refresh_from_db()
        answers = 0
        while True:
            stage = selectors.reader_stage(enrollment=enrollment)
            if stage.name not in ("practice", "phase"):
                break
            phase = None if stage.name == "practice" else stage.phase
            session = services.reading_session_start(enrollment=enrollment, phase=phase)
            asks = stage.phase  # practice asks what the first phase asks
            for position in range(
                selectors.session_answered(session=session), len(session.order)
            ):
                case = cases[session.order[position]]
                image = case.image
                confidence = kl_grade = None
                if asks.asks_realism:
                    sign = 1.0 if image.source == "synthetic" else -1.0
                    latent = (
                        sign * dprime / 2 + looks[case.id] - criterion + rng.normal()
                    )
                    confidence = DETECTION.codes[int(np.searchsorted(CUTS, latent))]
                if asks.asks_grade:
                    sd = 0.6 if image.source == "real" else 0.9
                    # An image without a reference KL grade gets one by chance.
                    centre = image.kl_grade
                    if centre is None:
                        centre = int(rng.integers(KL.min, KL.max + 1))
                    kl_grade = int(
                        np.clip(round(centre + rng.normal(0, sd)), KL.min, KL.max)
                    )
                extra = _extra_answers(
                    definition.extras(asks), image, image_effect[case.id], rng
                )
                clock += timedelta(seconds=float(rng.uniform(1, 4)))
                services.reading_session_serve(
                    session=session, position=position, now=clock
                )
                clock += timedelta(milliseconds=float(rng.lognormal(np.log(6000), 0.5)))
                services.judgment_record(
                    session=session,
                    position=position,
                    confidence=confidence,
                    kl_grade=kl_grade,
                    answers=extra,
                    now=clock,
                )
                answers += 1
            if (
                session.phase is not None
                and study.edit_policy == Study.EditPolicy.UNTIL_PHASE_END
            ):
                services.reading_session_finish(session=session, now=clock)
            enrollment.refresh_from_db()
        simulated.append(
            SimulatedReader(enrollment.reader.code, reader_accuracy, answers)
        )
        if progress is not None:
            progress(1)
    return simulated
