"""Writes: every change to a study, its readers and their answers.

Functions are named ``<noun>_<verb>``, keyword-only, and atomic. Views,
commands and tasks call these; nothing else writes to the models.
"""

import hashlib
import random
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core import mail, signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from turingtest.conf import project_settings
from turingtest.domain.questions import QuestionError
from turingtest.domain.references import on_scale
from turingtest.domain.scales import DETECTION, KL, Code, Scale, detection_answer
from turingtest.domain.wording import REVEALING_WORDS
from turingtest.imaging.models import Image, Source
from turingtest.imaging.selectors import ImageFilter, image_filter
from turingtest.studies import prepared, selectors
from turingtest.studies.interactions import interaction_clean
from turingtest.studies.models import (
    Case,
    Enrollment,
    Invitation,
    Judgment,
    JudgmentRevision,
    Phase,
    PhaseQuestion,
    Reader,
    ReadingSession,
    Study,
)
from turingtest.studies.prepared import PreparedQuery

PROTOCOLS = {
    ("grading", "detection"),
    ("detection",),
    ("combined",),
    ("grading",),
    ("grading", "combined"),
}

# What readers see where a study is created without a title of its own: the
# reference protocol grades knees on the KL scale; a study of its own
# questions may show any kind of image.
DEFAULT_READER_TITLE = "Knee radiograph reading study"
DEFAULT_READER_TITLE_OWN_QUESTIONS = "Image reading study"


# --- studies -----------------------------------------------------------------


@dataclass(frozen=True)
class QuestionSpec:
    """An extra question to put on a phase (see ``PhaseQuestion``).

    ``phase``: the phase's number, from 1, in the order the reader meets them.
    ``scale``: a registered scale's name, or empty with ``levels``
    (``[[code, label], ...]``); free text has neither.
    """

    phase: int
    key: str
    type: str
    scale: str = ""
    levels: list | None = None
    required: bool = True
    prompt: str = ""
    keys: dict | None = None


@transaction.atomic
def study_create(
    *,
    slug: str,
    name: str,
    reader_title: str = "",
    phases: Sequence[str] = ("grading", "detection"),
    instructions: str = "",
    edit_policy: str = Study.EditPolicy.NONE,
    show_score: bool = False,
    practice_count: int = 4,
    seed: int | None = None,
    asks_grade_in_detection: bool = False,
    asks_kl_grade: bool = True,
    repeat_cases: int = 0,
    repeat_min_gap: int = 10,
    image_size: int | None = None,
    questions: Sequence[QuestionSpec] = (),
) -> Study:
    phases = tuple(phases)
    if phases not in PROTOCOLS:
        allowed = "; ".join(",".join(p) for p in sorted(PROTOCOLS))
        raise ValidationError(
            f"Unsupported protocol {','.join(phases)!r}. Choose one of: {allowed}."
        )
    if repeat_cases < 0:
        raise ValidationError(f"Repeated cases must be 0 or more, not {repeat_cases}.")
    if repeat_min_gap < 1:
        raise ValidationError(
            f"The gap between a case's two showings must be at least 1 position, "
            f"not {repeat_min_gap}."
        )
    study = Study(
        slug=slug,
        name=name,
        reader_title=reader_title
        or (
            DEFAULT_READER_TITLE
            if asks_kl_grade
            else DEFAULT_READER_TITLE_OWN_QUESTIONS
        ),
        instructions=instructions,
        edit_policy=edit_policy,
        show_score=show_score,
        practice_count=practice_count,
        repeat_cases=repeat_cases,
        repeat_min_gap=repeat_min_gap,
    )
    if seed is not None:
        study.seed = seed
    if image_size is not None:
        study.image_size = image_size
    study.full_clean()
    study.save()
    for index, kind in enumerate(phases):
        phase = Phase(
            study=study,
            index=index,
            kind=kind,
            asks_grade_in_detection=asks_grade_in_detection
            and kind == Phase.Kind.DETECTION,
            asks_kl_grade=asks_kl_grade,
        )
        phase.full_clean()
        phase.save()
    for spec in questions:
        phase_question_add(study=study, spec=spec)
    phases_answerable_check(study=study)
    return study


def phases_answerable_check(*, study: Study) -> None:
    """Refuse a phase that asks nothing: one without the built-in questions
    (no KL grade, no real or synthetic) needs a required question of its own."""
    required = set(
        PhaseQuestion.objects.filter(phase__study=study, required=True)
        .exclude(type=PhaseQuestion.Type.FREE_TEXT)
        .values_list("phase_id", flat=True)
    )
    for phase in study.phases.order_by("index"):
        if not (phase.asks_grade or phase.asks_realism or phase.id in required):
            raise ValidationError(
                f"Phase {phase.index + 1} ({phase.kind}) asks no {KL.short_label}: "
                "give it a required question of its own to grade with (e.g. "
                "--question 1:birads:ordinal:birads)."
            )


@transaction.atomic
def phase_question_add(*, study: Study, spec: QuestionSpec) -> PhaseQuestion:
    """Add an extra question to a phase of a draft study, after its others."""
    _require_draft(study, "questions")
    phases = list(study.phases.order_by("index"))
    if not 1 <= spec.phase <= len(phases):
        raise ValidationError(
            f"Question {spec.key!r}: the study has phases 1 to {len(phases)}, "
            f"not {spec.phase}."
        )
    phase = phases[spec.phase - 1]
    last = phase.questions.order_by("-order").values_list("order", flat=True).first()
    question = PhaseQuestion(
        phase=phase,
        order=0 if last is None else last + 1,
        key=spec.key,
        type=spec.type,
        scale=spec.scale,
        levels=spec.levels,
        required=spec.required,
        prompt=spec.prompt,
        keys=spec.keys,
    )
    try:
        question.full_clean()
    except ValidationError as exc:
        message = (
            "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            if hasattr(exc, "error_dict")
            else " ".join(exc.messages)
        )
        raise ValidationError(f"Question {spec.key!r}: {message}") from None
    question.save()
    return question


def repeats_check(*, study: Study, main_cases: int) -> None:
    """Refuse repeat settings that no order of ``main_cases`` cases can meet.

    Each repeated case is drawn among those first shown at least
    ``repeat_min_gap`` positions before the end of the phase's main cases,
    so the repeats plus the gap may not exceed the main cases.
    """
    n, gap = study.repeat_cases, study.repeat_min_gap
    if n and n + gap > main_cases:
        raise ValidationError(
            f"{n} repeated case{'s' if n > 1 else ''} at least {gap} positions apart "
            f"need at least {n + gap} main cases; the study has {main_cases}. "
            "Lower the repeats or the gap, or build more cases."
        )


def reading_order(
    case_ids: Sequence[int],
    seed: int,
    *,
    repeatable: Collection[int] = (),
    repeats: int = 0,
    min_gap: int = 1,
) -> list[int]:
    """The order a reader sees ``case_ids`` in, drawn from ``seed``.

    A shuffle; with ``repeats``, that many of the ``repeatable`` cases are
    shown a second time, each at least ``min_gap`` positions after its first
    showing, at a random later position. Repeated cases are drawn among
    those first shown early enough for the gap to fit in the phase; later
    insertions only widen the gaps already placed.
    """
    rng = random.Random(seed)
    order = list(case_ids)
    rng.shuffle(order)
    if not repeats:
        return order
    allowed = set(repeatable)
    candidates = [
        c for i, c in enumerate(order) if c in allowed and i + min_gap <= len(order)
    ]
    if repeats > len(candidates):
        raise ValidationError(
            f"{repeats} repeats at least {min_gap} positions apart do not fit "
            f"in {len(order)} cases."
        )
    for case in rng.sample(candidates, repeats):
        first = order.index(case)
        order.insert(rng.randint(first + min_gap, len(order)), case)
    return order


def _study_lock(study: Study) -> Study:
    return Study.objects.select_for_update().get(pk=study.pk)


@transaction.atomic
def study_open(
    *,
    study: Study,
    allow_revealing_words: bool = False,
    by: AbstractBaseUser | None = None,
) -> Study:
    """Open a study for reading.

    Refused while a main case uses a reserved image (one shown with its truth
    elsewhere), and, for a study that first grades blind, while a text its
    readers see names the design; ``allow_revealing_words`` overrides the
    latter, and the override is recorded on the study with ``by`` (a user).
    """
    study = _study_lock(study)
    if study.status == Study.Status.OPEN:
        return study
    if not study.cases.filter(role=Case.Role.MAIN).exists():
        raise ValidationError(
            "A study needs cases before it opens: run build_cases first."
        )
    cases = list(study.cases.all())
    repeats_check(study=study, main_cases=sum(c.role == Case.Role.MAIN for c in cases))
    phases_answerable_check(study=study)
    # Checked again: a phase's kind may have changed since its questions were set.
    for question in PhaseQuestion.objects.filter(phase__study=study).select_related(
        "phase"
    ):
        try:
            question.full_clean()
        except ValidationError as exc:
            raise ValidationError(
                f"Phase {question.phase.index + 1}, question {question.key!r}: "
                + " ".join(exc.messages)
            ) from None
    list(  # locked like cases_build locks them, so neither races the other
        Image.objects.select_for_update()
        .filter(pk__in=[c.image_id for c in cases])
        .order_by("sha256")  # the order cases_build locks in: no deadlock
        .values_list("id", flat=True)
    )
    size = study.image_size
    off_size = sorted(
        study.cases.exclude(image__width=size, image__height=size).values_list(
            "number", flat=True
        )
    )
    if off_size:
        raise ValidationError(
            f"Case{'s' if len(off_size) > 1 else ''} {', '.join(map(str, off_size))} "
            f"{'are' if len(off_size) > 1 else 'is'} not {size}×{size} px, the "
            "study's image size: a reader would tell the sources apart by size. Run "
            "build_cases again."
        )
    reserved, main_elsewhere = _pool_parts(study)
    clashes = sorted(
        c.number
        for c in cases
        if (c.role == Case.Role.MAIN and c.image_id in reserved)
        or (c.role != Case.Role.MAIN and c.image_id in main_elsewhere)
    )
    if clashes:
        raise ValidationError(
            f"Case{'s' if len(clashes) > 1 else ''} {', '.join(map(str, clashes))} "
            "use images that other studies show for practice or attention checks "
            "or as main cases: an image is one or the other in every study, since "
            "practice tells readers its truth. Run build_cases again."
        )
    found = selectors.study_revealing_texts(study=study)
    if found and not allow_revealing_words:
        where = "; ".join(
            f"{field}: {', '.join(words)}" for field, words in found.items()
        )
        raise ValidationError(
            "The first phase grades without saying that some images are not real, "
            f"but readers would see words that say so ({where}). Reword them (the "
            f"words checked: {', '.join(REVEALING_WORDS)}), or open the study with "
            "the override, which is recorded on the study."
        )
    if found:
        study.revealing_words_allowed = "; ".join(
            f"{field}: {', '.join(words)}" for field, words in found.items()
        )
        study.revealing_words_allowed_at = timezone.now()
        study.revealing_words_allowed_by = by
    # Readers will see these with their truth (or the team knows them as
    # checks): they stay out of every study's main cases from now on.
    Image.objects.filter(
        pk__in=[c.image_id for c in cases if c.role != Case.Role.MAIN]
    ).update(reserved=True)
    study.status = Study.Status.OPEN
    study.opened_at = study.opened_at or timezone.now()
    # Its cases and phases are fixed from now on: cached for the readers.
    transaction.on_commit(lambda: selectors.study_definition(study=study))
    study.closed_at = None
    study.save(
        update_fields=[
            "status",
            "opened_at",
            "closed_at",
            "revealing_words_allowed",
            "revealing_words_allowed_at",
            "revealing_words_allowed_by",
        ]
    )
    return study


@transaction.atomic
def study_close(*, study: Study) -> Study:
    study = _study_lock(study)
    study.status = Study.Status.CLOSED
    study.closed_at = timezone.now()
    study.save(update_fields=["status", "closed_at"])
    return study


def _require_draft(study: Study, what: str) -> None:
    if study.status != Study.Status.DRAFT:
        raise ValidationError(
            f"Study {study.slug!r} is {study.status}: {what} can only change while it is a draft, "
            "so no reader sees a study change under them."
        )


@dataclass(frozen=True)
class CaseCounts:
    main: int
    practice: int
    attention: int
    # Where the cases came from, per source: {"real": {"batch knee-2024": 30}}.
    origins: dict[str, dict[str, int]] = field(default_factory=dict)
    # One line per grade x source cell (or the practice draw) that was filled
    # from outside the admin's choice, saying how many came from where.
    fallbacks: tuple[str, ...] = ()


def _pool_parts(study: Study) -> tuple[set[int], set[int]]:
    """Ids of the images ``study`` may not use as main cases (reserved: shown
    for practice or attention checks in a study that opened, or chosen for
    them by another study), and of those it may not use for practice or
    attention checks (main cases of another study)."""
    others = Case.objects.exclude(study=study)
    reserved = set(Image.objects.filter(reserved=True).values_list("id", flat=True))
    reserved |= set(
        others.exclude(role=Case.Role.MAIN).values_list("image_id", flat=True)
    )
    main = set(others.filter(role=Case.Role.MAIN).values_list("image_id", flat=True))
    return reserved, main


def _origin_labels(images: Sequence[Image]) -> dict[int, str]:
    """Per image id, where it came from: its generator, else its import batch."""
    ids = [i.pk for i in images]
    return {
        pk: f"generator {generator}"
        if generator
        else f"batch {batch}"
        if batch
        else "no import batch"
        for pk, generator, batch in Image.objects.filter(pk__in=ids).values_list(
            "pk", "generator__name", "batch__name"
        )
    }


def _origin_counts(images: Sequence[Image]) -> str:
    labels = _origin_labels(images)
    counts: dict[str, int] = {}
    for image in images:
        counts[labels[image.pk]] = counts.get(labels[image.pk], 0) + 1
    return ", ".join(f"{n} from {label}" for label, n in sorted(counts.items()))


def _graded(images: QuerySet[Image], scale: Scale, grades: Sequence[Code]):
    """The images with a reference value on ``scale`` (among ``grades`` for
    KL, whose column the database filters; other scales' values are JSON,
    which the caller checks per image)."""
    if scale.name == KL.name:
        return images.filter(kl_grade__in=grades)
    return images.filter(references__has_key=scale.name)


def _grade_label(scale: Scale, grade: Code) -> str:
    """A cell's grade in messages: "KL0", "BI-RADS 4"."""
    if scale.name == KL.name:
        return f"{KL.abbreviation}{grade}"
    return scale.value_text(grade) if scale.abbreviation else f"{scale.name} {grade}"


@transaction.atomic
def cases_build(
    *,
    study: Study,
    per_grade: int,
    seed: int,
    grades: Sequence[Code] | None = None,
    scale: Scale = KL,
    practice: int | None = None,
    attention: int = 0,
    real: ImageFilter | None = None,
    synthetic: ImageFilter | None = None,
    exclude_used: bool = False,
    fill_from_pool: bool = False,
) -> CaseCounts:
    """Draw ``per_grade`` real and ``per_grade`` synthetic images per grade.

    The grades are the pool's reference values on ``scale`` (KL by default,
    BI-RADS for a mammography pool; all of the scale's values unless
    ``grades`` names some). Balanced by grade × source so that neither grade
    nor source predicts the other. Practice cases are real images outside the main set (a grading
    phase must not reveal that synthetic images exist); attention checks are
    extra real images, shown inside the phases and excluded from statistics.

    ``real`` and ``synthetic`` choose the images each source is drawn from
    (an import batch or tag, a generator; see
    :class:`turingtest.imaging.selectors.ImageFilter`), practice and
    attention images included; ``exclude_used`` leaves out every image that
    another study uses. A cell the choice cannot fill is refused, naming it,
    unless ``fill_from_pool``: then it is filled from the rest of the pool's
    images of that grade and source, and ``CaseCounts.fallbacks`` says how
    many came from where.

    Practice feedback tells readers an image's truth, so practice and
    attention images form a reserved part of the pool that no study draws
    main cases from; images already reserved are reused for them first, and
    an image that is a main case of another study is never taken for them.
    A study's own images are reserved for good when it opens.
    """
    study = _study_lock(study)
    _require_draft(study, "cases")
    if per_grade < 1:
        raise ValidationError("--per-grade must be at least 1.")
    grades = list(scale.codes if grades is None else grades)
    outside = [g for g in grades if g not in scale]
    if outside or not grades:
        raise ValidationError(
            f"Grades to balance on are values of the {scale.short_label}: "
            f"{', '.join(str(c) for c in scale.codes)}"
            + (f" (not {', '.join(map(str, outside))})." if outside else ".")
        )
    practice = study.practice_count if practice is None else practice
    choice = {
        Source.REAL: real or ImageFilter(),
        Source.SYNTHETIC: synthetic or ImageFilter(),
    }
    rng = random.Random(seed)
    # The image rows are locked, so two studies built or opened at once
    # cannot put one image on both sides.
    size = study.image_size
    images = [
        image
        for image in _graded(Image.objects.select_for_update(), scale, grades)
        .filter(width=size, height=size)
        .order_by("sha256")
        if on_scale(scale, image.reference(scale.name)) in grades
    ]
    chosen_ids = {
        source: set(image_filter(filt).values_list("id", flat=True)) if filt else None
        for source, filt in choice.items()
    }
    reserved, main_elsewhere = _pool_parts(study)
    used_elsewhere = (
        set(Case.objects.exclude(study=study).values_list("image_id", flat=True))
        if exclude_used
        else set()
    )
    left_out = reserved | used_elsewhere
    chosen: list[tuple[Image, str]] = []
    shortages = []
    any_reserved = False
    fallbacks = []
    spare_real: list[Image] = []
    spare_other: list[Image] = []
    for grade in grades:
        for source in (Source.REAL, Source.SYNTHETIC):
            cell = [
                i
                for i in images
                if i.source == source
                and on_scale(scale, i.reference(scale.name)) == grade
            ]
            # Shuffled whole, then thinned: the draw from one pool and seed
            # stays the same whatever other studies reserve later.
            rng.shuffle(cell)
            ids = chosen_ids[source]
            pool = cell if ids is None else [i for i in cell if i.pk in ids]
            others = [] if ids is None else [i for i in cell if i.pk not in ids]
            usable = [i for i in pool if i.pk not in left_out]
            extra = [i for i in others if i.pk not in left_out]
            label = f"{_grade_label(scale, grade)} {source}"
            if ids is not None:
                label += f" ({choice[source].describe()})"
            take = usable[:per_grade]
            if len(take) < per_grade and fill_from_pool and extra:
                filled = extra[: per_grade - len(take)]
                if len(take) + len(filled) == per_grade:
                    fallbacks.append(
                        f"{label}: {len(take)} of {per_grade} from the choice, "
                        f"{len(filled)} from elsewhere in the pool "
                        f"({_origin_counts(filled)})"
                    )
                    take += filled
            if len(take) < per_grade:
                held = len([i for i in pool if i.pk in reserved])
                used = len([i for i in pool if i.pk in used_elsewhere - reserved])
                notes = []
                if held:
                    notes.append(f"{held} more reserved")
                    any_reserved = True
                if used:
                    notes.append(f"{used} more used by other studies")
                if ids is not None:
                    notes.append(f"{len(extra)} more elsewhere in the pool")
                shortages.append(
                    f"{label}: {len(usable)} of {per_grade}"
                    + (f" ({'; '.join(notes)})" if notes else "")
                )
                continue
            chosen += [(image, Case.Role.MAIN) for image in take]
            if source == Source.REAL:
                taken = {i.pk for i in take}
                spare_real += [
                    i
                    for i in pool
                    if i.pk not in taken
                    and i.pk not in main_elsewhere
                    and i.pk not in used_elsewhere
                ]
                spare_other += [
                    i
                    for i in others
                    if i.pk not in taken
                    and i.pk not in main_elsewhere
                    and i.pk not in used_elsewhere
                ]
    if shortages:
        chose = any(ids is not None for ids in chosen_ids.values())
        advice = []
        if any_reserved or not chose:
            advice.append(
                "Images used for practice or attention checks in any study are "
                "reserved and never main cases, since readers may know their "
                "truth: add images to the pool."
            )
        if chose:
            advice.append(
                "Choose more import batches, tags or generators, or fill the short "
                "cells from the rest of the pool (--fill-from-pool), which says how "
                "many came from where."
            )
        other_sizes = (
            _graded(Image.objects.all(), scale, grades)
            .exclude(width=size, height=size)
            .count()
        )
        if other_sizes:
            advice.append(
                f"The study's images are {size}×{size} px; {other_sizes} images of "
                "other sizes in the pool were not considered (import images at this "
                "size with import_images --size, or set the study's image size)."
            )
        raise ValidationError(
            "The image pool has too few images for this design: "
            + "; ".join(shortages)
            + ". "
            + " ".join(advice)
        )
    rng.shuffle(spare_real)
    # Reserved images first: they can serve no other purpose.
    spare_real.sort(key=lambda i: i.pk not in reserved)
    needed = practice + attention
    if needed > len(spare_real) and fill_from_pool and spare_other:
        rng.shuffle(spare_other)
        spare_other.sort(key=lambda i: i.pk not in reserved)
        filled = spare_other[: needed - len(spare_real)]
        fallbacks.append(
            f"practice and attention checks ({choice[Source.REAL].describe()}): "
            f"{len(spare_real)} of {needed} from the choice, {len(filled)} from "
            f"elsewhere in the pool ({_origin_counts(filled)})"
        )
        spare_real += filled
    if needed > len(spare_real):
        where = "the pool has"
        if chosen_ids[Source.REAL] is not None:
            where = f"{choice[Source.REAL].describe()} has"
        raise ValidationError(
            f"Practice ({practice}) and attention-check ({attention}) cases need "
            f"{needed} real images that are no study's main cases; "
            f"{where} {len(spare_real)}."
        )
    chosen += [(image, Case.Role.PRACTICE) for image in spare_real[:practice]]
    chosen += [
        (image, Case.Role.ATTENTION)
        for image in spare_real[practice : practice + attention]
    ]
    study.cases.all().delete()
    # Case numbers are drawn at random so a case label says nothing of its source.
    numbers = list(range(1, len(chosen) + 1))
    rng.shuffle(numbers)
    Case.objects.bulk_create(
        Case(study=study, image=image, role=role, number=number)
        for (image, role), number in zip(chosen, numbers, strict=True)
    )
    labels = _origin_labels([image for image, _ in chosen])
    origins: dict[str, dict[str, int]] = {}
    for image, role in chosen:
        if role == Case.Role.MAIN:
            by = origins.setdefault(image.source, {})
            by[labels[image.pk]] = by.get(labels[image.pk], 0) + 1
    return CaseCounts(
        main=per_grade * len(grades) * 2,
        practice=practice,
        attention=attention,
        origins=origins,
        fallbacks=tuple(fallbacks),
    )


# --- invitations and readers -------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def invitations_create(
    *, study: Study, count: int = 1, emails: Sequence[str] = (), days: int | None = None
) -> list[tuple[Invitation, str]]:
    """Create single-use invitations; returns each with its raw token.

    Only a hash of the token is stored, so the link cannot be read back from
    the database: print or mail it now.
    """
    days = project_settings().invitation_days if days is None else days
    expires = timezone.now() + timedelta(days=days)
    targets = list(emails) or [""] * count
    created = []
    for email in targets:
        token = secrets.token_urlsafe(24)
        invitation = Invitation(
            study=study, token_hash=_token_hash(token), email=email, expires_at=expires
        )
        invitation.full_clean()
        invitation.save()
        created.append((invitation, token))
    return created


def invitation_emails_send(
    *, invitations: Sequence[tuple[Invitation, str]], link_for: Callable[[str], str]
) -> list[str]:
    """Mail each personal invitation its link; returns the addresses that failed.

    Through Django's email framework (``EMAIL_URL``; the console by default).
    The mail names no study: an internal study name can give its design away
    before the reader has seen anything. Call after the invitations are
    committed, so no mail carries a link that a rollback took back.
    """
    failed = []
    with mail.get_connection() as connection:
        for invitation, token in invitations:
            if not invitation.email:
                continue
            context = {"link": link_for(token), "expires_at": invitation.expires_at}
            message = mail.EmailMessage(
                subject=render_to_string(
                    "studies/email/invitation_subject.txt", context
                ).strip(),
                body=render_to_string("studies/email/invitation_body.txt", context),
                to=[invitation.email],
                connection=connection,
            )
            try:
                message.send()
            except Exception:  # noqa: BLE001 - any transport error: report the address
                failed.append(invitation.email)
    return failed


def invitation_find(*, token: str) -> Invitation | None:
    """The usable invitation for ``token``, or None: unknown, used and expired look the same."""
    invitation = (
        Invitation.objects.select_related("study")
        .filter(token_hash=_token_hash(token))
        .first()
    )
    return invitation if _invitation_usable(invitation) else None


def invitation_exists(*, token: str) -> bool:
    """Whether ``token`` belongs to any invitation, usable or not (a used or
    expired link is a mistake, not a guess)."""
    return Invitation.objects.filter(token_hash=_token_hash(token)).exists()


def _invitation_usable(invitation: Invitation | None) -> bool:
    return (
        invitation is not None
        and invitation.used_at is None
        and invitation.expires_at > timezone.now()
        and invitation.study.status != Study.Status.CLOSED
    )


class InvitationInvalid(ValidationError):
    pass


class InvitationForAnotherEmail(ValidationError):
    """A personal invitation used by an account of another address."""


def _same_email(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def _invitation_claim(token: str, reader: Reader) -> Enrollment:
    return _invitation_claim_hash(_token_hash(token), reader)


def _invitation_claim_hash(token_hash: str, reader: Reader) -> Enrollment:
    invitation = (
        Invitation.objects.select_for_update()
        .select_related("study")
        .filter(token_hash=token_hash)
        .first()
    )
    if not _invitation_usable(invitation):
        raise InvitationInvalid(
            "This invitation link is not valid: it may have been used already or expired."
        )
    if invitation.email and not _same_email(invitation.email, reader.user.email):
        # A personal invitation is for the address it was made for.
        raise InvitationForAnotherEmail(
            {
                "email": "This invitation was made for another email address: "
                "use the address it was sent to."
            }
        )
    invitation.used_at = timezone.now()
    invitation.used_by = reader
    invitation.save(update_fields=["used_at", "used_by"])
    enrollment, _ = Enrollment.objects.get_or_create(
        reader=reader, study=invitation.study
    )
    return enrollment


@transaction.atomic
def reader_signup(
    *,
    token: str,
    email: str,
    password: str,
    name: str,
    profession: str,
    experience_years: int,
    subspecialty: str = "",
    kind: str = Reader.Kind.HUMAN,
) -> Enrollment:
    """Create an account and reader profile from an invitation and enroll it.

    For personal invitations and internal callers: an address that has an
    account is refused with a message, which is only safe where the address
    is fixed by the invitation. Anonymous links go through
    :func:`signup_request`.
    """
    user_model = get_user_model()
    email = user_model.objects.normalize_email(email).lower()
    bound = (
        Invitation.objects.filter(token_hash=_token_hash(token))
        .values_list("email", flat=True)
        .first()
    )
    if bound and not _same_email(bound, email):
        # Checked first, so that no other address is looked up.
        raise InvitationForAnotherEmail(
            {
                "email": "This invitation was made for another email address: "
                "use the address it was sent to."
            }
        )
    if user_model.objects.filter(username=email).exists():
        raise ValidationError(
            {
                "email": "An account with this email exists: sign in to accept the invitation."
            }
        )
    user = user_model(username=email, email=email, first_name=name[:150])
    validate_password(password, user)
    user.set_password(password)
    user.full_clean()
    user.save()
    reader = Reader(
        user=user,
        name=name,
        profession=profession,
        experience_years=experience_years,
        subspecialty=subspecialty,
        kind=kind,
    )
    reader.full_clean()
    reader.save()
    return _invitation_claim(token, reader)


# Sign-up through an anonymous link, confirmed by mail: the link holder sees
# the same thing whether or not the address already has an account.
SIGNUP_SALT = "turingtest.studies.signup-confirm"


def _mail(to: str, template: str, context: dict) -> None:
    mail.EmailMessage(
        subject=render_to_string(f"{template}_subject.txt", context).strip(),
        body=render_to_string(f"{template}_body.txt", context),
        to=[to],
    ).send()


@transaction.atomic
def signup_request(
    *,
    token: str,
    email: str,
    password: str,
    name: str,
    profession: str,
    experience_years: int,
    subspecialty: str = "",
    absolute_url: Callable[[str], str],
) -> None:
    """Start a sign-up from an anonymous invitation; the address confirms it.

    A new address gets an inactive account and a mail with a confirmation
    link (:func:`signup_confirm` activates it and takes the invitation). An
    address that has an account gets a mail saying so, and nothing changes.
    Either way the caller learns nothing about the address: both return
    ``None`` after the same checks. ``absolute_url`` makes a path absolute.
    """
    invitation = invitation_find(token=token)
    if invitation is None:
        raise InvitationInvalid(
            "This invitation link is not valid: it may have been used already or expired."
        )
    user_model = get_user_model()
    email = user_model.objects.normalize_email(email).lower()
    # Password rules first, against the details given, not the stored account.
    validate_password(
        password, user_model(username=email, email=email, first_name=name[:150])
    )
    user = user_model.objects.select_for_update().filter(username=email).first()
    if user is not None and (user.is_active or user.last_login is not None):
        context = {
            "invitation_link": absolute_url(reverse("invitation", args=[token])),
            "login_link": absolute_url(reverse("login")),
            "reset_link": absolute_url(reverse("password_reset")),
        }
        transaction.on_commit(
            lambda: _mail(email, "studies/email/signup_exists", context)
        )
        return
    # New, or signed up before and never confirmed: (re)write the details.
    user = user or user_model(username=email, email=email)
    user.first_name = name[:150]
    user.is_active = False
    user.set_password(password)
    user.full_clean()
    user.save()
    reader = Reader.objects.filter(user=user).first() or Reader(user=user)
    reader.name = name
    reader.profession = profession
    reader.experience_years = experience_years
    reader.subspecialty = subspecialty
    reader.full_clean()
    reader.save()
    signed = signing.dumps(
        {"user": user.pk, "invitation": invitation.token_hash}, salt=SIGNUP_SALT
    )
    context = {
        "confirm_link": absolute_url(reverse("signup-confirm", args=[signed])),
        "expires_at": invitation.expires_at,
    }
    transaction.on_commit(lambda: _mail(email, "studies/email/signup_confirm", context))


def _signup_pending(signed: str) -> tuple[Reader, str]:
    days = project_settings().invitation_days
    invalid = ValidationError(
        "This confirmation link is not valid: it may have been used already or expired."
    )
    try:
        data = signing.loads(signed, salt=SIGNUP_SALT, max_age=timedelta(days=days))
    except signing.BadSignature:
        raise invalid from None
    reader = (
        Reader.objects.select_related("user")
        .filter(
            user__pk=data.get("user"),
            user__is_active=False,
            user__last_login__isnull=True,
        )
        .first()
    )
    if reader is None:
        raise invalid
    return reader, str(data.get("invitation", ""))


def signup_pending(*, signed: str) -> Reader:
    """The reader a confirmation link would activate; ValidationError if none."""
    return _signup_pending(signed)[0]


@transaction.atomic
def signup_confirm(*, signed: str, password: str) -> Enrollment:
    """Activate the account of a confirmation link and take its invitation.

    The password chosen at sign-up is asked again: a second sign-up with the
    same address (which rewrites a pending account) sends its link to that
    address too, and the owner confirming it must not open an account whose
    password someone else chose.
    """
    reader, token_hash = _signup_pending(signed)
    user = type(reader.user).objects.select_for_update().get(pk=reader.user.pk)
    if not user.check_password(password or ""):
        raise ValidationError(
            "That is not the password chosen when signing up with this link. "
            "If you did not sign up twice, someone else may have used your "
            "address: sign up again from your invitation link."
        )
    user.is_active = True
    user.save(update_fields=["is_active"])
    return _invitation_claim_hash(token_hash, reader)


@transaction.atomic
def invitation_accept(*, token: str, reader: Reader) -> Enrollment:
    return _invitation_claim(token, reader)


@transaction.atomic
def enrollment_consent(*, enrollment: Enrollment) -> Enrollment:
    enrollment = Enrollment.objects.select_for_update().get(pk=enrollment.pk)
    if enrollment.consented_at is None:
        enrollment.consented_at = timezone.now()
        enrollment.save(update_fields=["consented_at"])
    return enrollment


# --- reading -----------------------------------------------------------------


def session_seed(*, study: Study, reader: Reader, phase: Phase | None) -> int:
    """A per-(reader, phase) seed derived from the study's, reproducible from the export."""
    label = f"{study.seed}:{reader.code}:{'practice' if phase is None else phase.index}"
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big") >> 1


def _session_new(
    enrollment: Enrollment, phase: Phase | None, serve_first: datetime | None
) -> ReadingSession:
    study = enrollment.study
    definition = selectors.study_definition(study=study)
    seed = session_seed(study=study, reader=enrollment.reader, phase=phase)
    if phase is None:
        case_ids = reading_order(definition.practice_ids, seed)
    else:
        case_ids = reading_order(
            definition.main_ids,
            seed,
            repeatable=definition.repeatable_ids,
            repeats=study.repeat_cases,
            min_gap=study.repeat_min_gap,
        )
    shown = serve_first if case_ids else None
    session = ReadingSession(
        enrollment=enrollment,
        phase=phase,
        seed=seed,
        order=case_ids,
        served_position=0 if shown else None,
        served_at=shown,
    )
    # Uniqueness is left to the database: checked here, a tab that started the
    # session a moment earlier would turn into a 400 for this one. Nor the
    # foreign keys: both rows are the caller's, just read.
    session.full_clean(
        exclude=["enrollment", "phase"],
        validate_unique=False,
        validate_constraints=False,
    )
    return session


def reading_session_start(
    *,
    enrollment: Enrollment,
    phase: Phase | None,
    known_absent: bool = False,
    serve_first: datetime | None = None,
) -> ReadingSession:
    """The reader's session for ``phase`` (None: practice), created with a fresh order once.

    ``known_absent``: the caller has just seen that the session does not
    exist, so it is inserted without looking first. ``serve_first``: a new
    session records its first case as shown at that time.
    """
    if not known_absent:
        existing = ReadingSession.objects.filter(
            enrollment=enrollment, phase=phase
        ).first()
        if existing is not None:
            return existing
    session = _session_new(enrollment, phase, serve_first)
    try:
        if transaction.get_connection().in_atomic_block:
            with transaction.atomic():  # a savepoint: the caller's survives
                session.save()
        else:
            session.save()  # one statement, atomic on its own
    except IntegrityError:
        # Two tabs started the same session at once: both get the one stored.
        return ReadingSession.objects.get(enrollment=enrollment, phase=phase)
    return session


@dataclass(frozen=True)
class SessionRef:
    """A reader's session as a request names it: the reader's user, the
    study's slug, and practice (``phase_index`` None) or a phase's 0-based
    index. Resolved by the same query that locks the session."""

    user_id: int
    study_slug: str
    phase_index: int | None


def _session_lock(session: ReadingSession | SessionRef) -> ReadingSession:
    """The session row, locked until the transaction ends: one writer per reader
    and phase. Only its own row: PostgreSQL refuses FOR UPDATE across the
    nullable phase join."""
    if isinstance(session, ReadingSession):
        return _sessions(lock=True).get(pk=session.pk)
    return _session_find(session, _LOCKED)


def _session_find(
    ref: SessionRef, queries: tuple[PreparedQuery, PreparedQuery]
) -> ReadingSession:
    practice, phase = queries
    if ref.phase_index is None:
        found = practice(user_id=ref.user_id, slug=ref.study_slug)
    else:
        found = phase(user_id=ref.user_id, slug=ref.study_slug, index=ref.phase_index)
    if not found:
        raise ValidationError({"stage": "That stage has not started for you."})
    return found[0]


def _sessions(*, lock: bool, **where) -> QuerySet:
    sessions = ReadingSession.objects.select_related(
        "enrollment__study", "enrollment__reader", "phase"
    )
    if lock:
        sessions = sessions.select_for_update(of=("self",))
    return sessions.filter(**where)


def _session_queries(*, lock: bool) -> tuple[PreparedQuery, PreparedQuery]:
    """A session by its reader, study and stage, with what a submit needs:
    compiled to SQL once (see prepared.py), one shape for practice (no
    phase) and one for the phases."""
    practice = PreparedQuery(
        lambda user_id, slug: _sessions(
            lock=lock,
            enrollment__reader__user_id=user_id,
            enrollment__study__slug=slug,
            phase__isnull=True,
        ).order_by("pk")[:1],
        user_id=int,
        slug=str,
    )
    phase = PreparedQuery(
        lambda user_id, slug, index: _sessions(
            lock=lock,
            enrollment__reader__user_id=user_id,
            enrollment__study__slug=slug,
            phase__index=index,
        ).order_by("pk")[:1],
        user_id=int,
        slug=str,
        index=int,
    )
    return practice, phase


_LOCKED = _session_queries(lock=True)
_READ = _session_queries(lock=False)
# A repeated submit (a double click, a retry) finds the answer it repeats.
_ANSWER_AT = PreparedQuery(
    lambda session_id, position: Judgment.objects.filter(
        session_id=session_id, position=position
    ).order_by("pk")[:1],
    session_id=int,
    position=int,
)


def reading_session_serve(
    *, session: ReadingSession, position: int, now: datetime | None = None
) -> None:
    """Record when the case at ``position`` was first shown (reloads keep the first time)."""
    if session.served_position == position and session.served_at is not None:
        return  # as loaded: a reload, nothing to write
    now = now or timezone.now()
    updated = (
        ReadingSession.objects.filter(pk=session.pk)
        .exclude(served_position=position)
        .update(served_position=position, served_at=now)
    )
    if updated:
        session.served_position, session.served_at = position, now


class AnswerInvalid(ValidationError):
    """An answer the phase cannot take: the reader gets the message, nothing is stored."""


def _in_words(n: int) -> str:
    words = "zero one two three four five six seven eight nine ten eleven twelve"
    return words.split()[n] if n <= 12 else str(n)


_CHOOSE_RATING = (
    f"Choose one of the {_in_words(DETECTION.count)} ratings ({DETECTION.min} "
    f"{DETECTION.label(DETECTION.min).lower()} … {DETECTION.max} "
    f"{DETECTION.label(DETECTION.max).lower()})."
)


def _extra_answers(questions, answers, *, machine: bool = False) -> tuple[dict, dict]:
    """The answers to a phase's extra questions as stored, and the errors by key.

    ``machine``: a classifier answers (add_machine_reader); it answers real or
    synthetic only, so the extra questions are optional to it.
    """
    if answers is None:
        answers = {}
    if not isinstance(answers, dict):
        return {}, {"answers": "'answers' must be an object of question -> answer."}
    errors, stored = {}, {}
    asked = {q.field for q in questions}
    for key in answers:
        if key not in asked:
            errors[str(key)[:40]] = f"This phase does not ask for '{str(key)[:40]}'."
    for question in questions:
        if machine and question.required:
            question = replace(question, required=False)
        try:
            value = question.clean(answers.get(question.field))
        except QuestionError as exc:
            errors[question.field] = str(exc)
            continue
        if value is not None:
            stored[question.field] = value
    return stored, errors


def _answer_fields(
    session: ReadingSession, confidence, kl_grade, answers=None
) -> tuple[str | None, int | None, int | None, dict]:
    # Practice asks what the first phase asks.
    definition = selectors.study_definition(study=session.enrollment.study)
    phase = session.phase or definition.phases[0]
    stored, errors = _extra_answers(
        definition.extras(phase),
        answers,
        machine=session.enrollment.reader.kind == Reader.Kind.MACHINE,
    )
    answer = None
    if phase.asks_realism:
        if confidence is None:
            errors["confidence"] = _CHOOSE_RATING
        elif not isinstance(confidence, int) or confidence not in DETECTION:
            errors["confidence"] = (
                f"The rating must be a whole number from {DETECTION.range_text()}."
            )
        else:
            answer = detection_answer(confidence)
    elif confidence is not None:
        # Worded as for any field a phase does not take: a grading phase's
        # messages must not name a question it does not ask.
        errors["confidence"] = "This phase does not ask for 'confidence'."
    if phase.asks_grade:
        if kl_grade is None:
            errors["kl_grade"] = f"Choose a {KL.short_label} from {KL.range_text()}."
        elif not isinstance(kl_grade, int) or kl_grade not in KL:
            errors["kl_grade"] = (
                f"The {KL.short_label} must be a whole number from {KL.range_text()}."
            )
    elif kl_grade is not None:
        errors["kl_grade"] = f"This phase does not ask for a {KL.short_label}."
    if errors:
        raise AnswerInvalid(errors)
    return answer, confidence, kl_grade, stored


@dataclass(frozen=True)
class Recorded:
    judgment: Judgment
    created: bool
    # The session as this answer left it (read, or locked, then moved by it).
    session: ReadingSession | None = None
    # Whether this answer ended the session.
    completed: bool = False
    # The session of the stage this answer led to, started by it (serve_next).
    following: ReadingSession | None = None


def _enrollment_complete_if_last(session: ReadingSession, now: datetime) -> None:
    """Phases end in order, so the reader is done when the last one ends."""
    if session.phase is None:
        return
    enrollment = session.enrollment
    phases = selectors.study_definition(study=enrollment.study).phases
    if session.phase.index == phases[-1].index and enrollment.completed_at is None:
        enrollment.completed_at = now
        enrollment.save(update_fields=["completed_at"])


def judgment_record(
    *,
    session: ReadingSession | SessionRef,
    position: int,
    confidence: int | None = None,
    kl_grade: int | None = None,
    answers: dict | None = None,
    now: datetime | None = None,
    interaction: dict | None = None,
    serve_next: bool = False,
) -> Recorded:
    """Store the reader's answer to the case at ``position`` (0-based) of ``session``.

    ``interaction`` is the viewer's log of what the reader did with the image
    (see :mod:`turingtest.studies.interactions`); stored cleaned, never
    refusing the answer. ``serve_next``: the reply shows the next case, so
    it is recorded as shown now, in the same UPDATE; where this answer ends
    a stage, the next stage's session is started with its first case shown.

    A repeated submit of an answered position returns the stored judgment
    unchanged (double clicks, retries after a dropped connection). Only the
    next unanswered position can be answered.

    On PostgreSQL an answer to a session a request names takes two
    statements: the session read, then one that moves the session's
    position only where it still stands at this case and inserts the answer
    with it (in a transaction with the next stage's start where it ends a
    stage). Anything else (another request moved the session first, an
    answer to refuse) takes the locked transaction, which answers exactly.
    """
    now = now or timezone.now()
    answer = _AnswerGiven(position, confidence, kl_grade, answers, interaction)
    if isinstance(session, SessionRef) and prepared.writes_combine(
        Judgment, ReadingSession
    ):
        recorded = _judgment_record_at_once(
            _session_find(session, _READ), answer, now, serve_next
        )
        if recorded is not None:
            return recorded
    return _judgment_record_locked(session, answer, now, serve_next)


@dataclass(frozen=True)
class _AnswerGiven:
    position: int
    confidence: int | None
    kl_grade: int | None
    answers: dict | None
    interaction: dict | None


def _judgment_record_at_once(
    session: ReadingSession, given: _AnswerGiven, now: datetime, serve_next: bool
) -> Recorded | None:
    """The answer stored without a lock, or None where the locked path must
    decide (see judgment_record)."""
    position = given.position
    if session.enrollment.study.status != Study.Status.OPEN:
        return None
    if 0 <= position < session.answered:  # a stored judgment never changes
        existing = _ANSWER_AT(session_id=session.pk, position=position)
        if not existing:
            return None
        existing[0].session = session
        return Recorded(existing[0], created=False, session=session)
    if session.completed_at is not None or position != session.answered:
        return None
    judgment = _judgment_new(session, given, now)
    expect = {"answered": session.answered, "completed_at": None}
    fields, completed = _session_move(session, now, serve_next)
    if not completed:
        if not prepared.insert_if_moved(judgment, session, fields, expect=expect):
            return None
        return Recorded(judgment, created=True, session=session)
    with transaction.atomic():
        # The UPDATE holds the session's row until this ends: no other
        # request starts the next stage meanwhile.
        if not prepared.insert_if_moved(judgment, session, fields, expect=expect):
            return None
        following = _stage_after(session, now, serve_next)
    return Recorded(
        judgment, created=True, session=session, completed=True, following=following
    )


@transaction.atomic
def _judgment_record_locked(
    session: ReadingSession | SessionRef,
    given: _AnswerGiven,
    now: datetime,
    serve_next: bool,
) -> Recorded:
    position = given.position
    session = _session_lock(session)
    if session.enrollment.study.status != Study.Status.OPEN:
        raise AnswerInvalid("This study is not open for reading.")
    if 0 <= position < session.answered:
        existing = _ANSWER_AT(session_id=session.pk, position=position)
        if existing:
            existing[0].session = session
            return Recorded(existing[0], created=False, session=session)
    if session.completed_at is not None:
        raise AnswerInvalid("This phase is finished.")
    if position != session.answered:
        raise AnswerInvalid(
            f"Position {position} is not the current case; "
            f"the current case is {session.answered}."
        )
    judgment = _judgment_new(session, given, now)
    prepared.insert(judgment)
    fields, completed = _session_move(session, now, serve_next)
    prepared.update(session, fields)
    # The next stage starts here, under this session's lock: no other
    # request starts it before this one ends, since none sees this session
    # ended until then.
    following = _stage_after(session, now, serve_next) if completed else None
    return Recorded(
        judgment,
        created=True,
        session=session,
        completed=completed,
        following=following,
    )


def _judgment_new(
    session: ReadingSession, given: _AnswerGiven, now: datetime
) -> Judgment:
    """The answer to the session's current case, checked field by field."""
    position = given.position
    answer, confidence, kl_grade, answers = _answer_fields(
        session, given.confidence, given.kl_grade, given.answers
    )
    served_at = (
        session.served_at
        if session.served_position == position and session.served_at
        else now
    )
    case_id = session.order[position]
    judgment = Judgment(
        session=session,
        case_id=case_id,
        position=position,
        repeat=session.order.index(case_id) < position,
        answer=answer,
        confidence=confidence,
        kl_grade=kl_grade,
        answers=answers,
        served_at=served_at,
        answered_at=now,
        duration_ms=max(0, int((now - served_at).total_seconds() * 1000)),
        interaction=interaction_clean(given.interaction),
    )
    # Fields only: the database enforces the constraints, and the session
    # cannot take a second judgment for this position (its row lock, or its
    # position moved in the same statement). Checking them here would cost
    # five queries on every answer.
    judgment.full_clean(
        exclude=["session", "case"], validate_unique=False, validate_constraints=False
    )
    return judgment


def _session_move(
    session: ReadingSession, now: datetime, serve_next: bool
) -> tuple[list[str], bool]:
    """The session one answer on: the fields that changed, and whether the
    answer ended it."""
    session.answered += 1
    fields = ["answered"]
    # A phase whose answers may still be revised ends when the reader says so.
    completed = session.answered == len(session.order) and (
        session.phase is None
        or session.enrollment.study.edit_policy != Study.EditPolicy.UNTIL_PHASE_END
    )
    if completed:
        session.completed_at = now
        fields.append("completed_at")
    elif serve_next and session.answered < len(session.order):
        session.served_position, session.served_at = session.answered, now
        fields += ["served_position", "served_at"]
    return fields, completed


def _stage_after(
    session: ReadingSession, now: datetime, serve_next: bool
) -> ReadingSession | None:
    """After the answer that ended ``session``: the reader done where it was
    the last phase, else (``serve_next``) the next stage's session started."""
    _enrollment_complete_if_last(session, now)
    if not serve_next or session.enrollment.completed_at is not None:
        return None
    phases = selectors.study_definition(study=session.enrollment.study).phases
    after = -1 if session.phase is None else session.phase.index
    phase = next(p for p in phases if p.index > after)
    following = _session_new(session.enrollment, phase, now)
    following.save()
    return following


@transaction.atomic
def judgment_revise(
    *,
    session: ReadingSession,
    position: int,
    confidence: int | None = None,
    kl_grade: int | None = None,
    answers: dict | None = None,
    now: datetime | None = None,
) -> JudgmentRevision:
    """Change an answer where the study allows it; the first answer stays as it was."""
    now = now or timezone.now()
    session = _session_lock(session)
    study = session.enrollment.study
    if study.edit_policy != Study.EditPolicy.UNTIL_PHASE_END or session.phase is None:
        raise AnswerInvalid("Answers in this study cannot be changed once given.")
    if session.completed_at is not None or study.status != Study.Status.OPEN:
        raise AnswerInvalid("This phase is finished; its answers can no longer change.")
    judgment = session.judgments.filter(position=position).first()
    if judgment is None:
        raise AnswerInvalid(f"Position {position} has no answer to change.")
    answer, confidence, kl_grade, answers = _answer_fields(
        session, confidence, kl_grade, answers
    )
    last = judgment.revisions.order_by("-revision").first()
    revision = JudgmentRevision(
        judgment=judgment,
        revision=(last.revision if last else 0) + 1,
        answer=answer,
        confidence=confidence,
        kl_grade=kl_grade,
        answers=answers,
        answered_at=now,
    )
    revision.full_clean(exclude=["judgment"])
    revision.save()
    return revision


@transaction.atomic
def reading_session_finish(
    *, session: ReadingSession, now: datetime | None = None
) -> ReadingSession:
    """End a phase in which answers could still be revised."""
    now = now or timezone.now()
    session = _session_lock(session)
    if session.completed_at is not None:
        return session
    if session.answered < len(session.order):
        raise AnswerInvalid("Answer every case before finishing the phase.")
    session.completed_at = now
    session.save(update_fields=["completed_at"])
    _enrollment_complete_if_last(session, now)
    return session
