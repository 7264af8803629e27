"""Reads: what a reader sees next, what staff see of progress."""

import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from turingtest.domain import protocols, scoring
from turingtest.domain.scales import DETECTION, KL, Scale, scale_named, scale_names
from turingtest.domain.wording import revealing_words
from turingtest.imaging.models import Image
from turingtest.studies.models import (
    Case,
    Enrollment,
    Invitation,
    Judgment,
    Phase,
    PhaseQuestion,
    Reader,
    ReadingSession,
    Study,
)
from turingtest.studies.prepared import PreparedQuery

# Every reader request reads these: compiled to SQL once (see prepared.py).
_ENROLLMENT = PreparedQuery(
    lambda user_id, slug: (
        Enrollment.objects.select_related("study", "reader")
        .filter(reader__user_id=user_id, study__slug=slug)
        .order_by("pk")[:1]
    ),
    user_id=int,
    slug=str,
)
_SESSIONS = PreparedQuery(
    lambda enrollment_id: ReadingSession.objects.filter(enrollment_id=enrollment_id),
    enrollment_id=int,
)


def enrollment_for(*, user, study_slug: str) -> Enrollment | None:
    """The user's enrollment in the study, or None (also for staff and anonymous users)."""
    if not user.is_authenticated:
        return None
    found = _ENROLLMENT(user_id=user.pk, slug=study_slug)
    return found[0] if found else None


def balance_scales(study: Study) -> dict[str, Scale]:
    """The scales a study's cases can be balanced on, by name: KL, the
    registered grading scales, and the scales of the study's own questions
    (levels of their own included). The pool's images hold reference values
    on some of them (``Image.references``)."""
    scales = {name: scale_named(name) for name in scale_names()}
    scales.pop(DETECTION.name, None)  # the source itself, not a grade
    for question in PhaseQuestion.objects.filter(phase__study=study).exclude(
        type=PhaseQuestion.Type.FREE_TEXT
    ):
        scale = question.scale_obj()
        if scale is not None:
            scales.setdefault(scale.name, scale)
    return scales


def default_balance_scale(study: Study) -> str:
    """KL where the study asks a KL grade, else the first of its ordinal
    questions' scales (the ones its readers grade on) that the pool holds
    reference values on, else KL."""
    if any(phase.asks_grade for phase in study.phases.all()):
        return KL.name
    questions = PhaseQuestion.objects.filter(
        phase__study=study, type=PhaseQuestion.Type.ORDINAL
    ).order_by("phase__index", "order", "id")
    for question in questions:
        scale = question.scale_obj()
        if (
            scale is not None
            and Image.objects.filter(references__has_key=scale.name).exists()
        ):
            return scale.name
    return KL.name


def reader_enrollments(*, user) -> list[Enrollment]:
    if not user.is_authenticated:
        return []
    return list(
        Enrollment.objects.select_related("study")
        .filter(reader__user=user)
        .exclude(study__status=Study.Status.DRAFT)
        .order_by("-enrolled_at")
    )


@dataclass(frozen=True)
class StudyDefinition:
    """What a reader's requests need of an open study, none of which changes
    once it opens: phases, the cases each session orders, their tokens, and
    the truth of the practice cases (for feedback).

    Cached (Django's cache, and a few per process) under a key that holds the
    study's opening time: cases and phases change only while a study is a
    draft, and a study never returns to draft.
    """

    phases: tuple[Phase, ...]
    practice_ids: tuple[int, ...]  # by case number
    main_ids: tuple[int, ...]  # main and attention-check cases, by case number
    tokens: dict[int, str]  # case id -> token
    # case id -> (source, KL grade, reference values on other scales)
    practice_truth: dict[int, tuple[str, int | None, dict]]
    # Main cases only (not attention checks), by case number: those a phase
    # may show a second time (Study.repeat_cases).
    repeatable_ids: tuple[int, ...] = ()
    # Each phase's extra questions (PhaseQuestion), in order: (phase id, questions).
    extra_questions: tuple[tuple[int, tuple[protocols.Question, ...]], ...] = ()

    @property
    def has_practice(self) -> bool:
        return bool(self.practice_ids)

    def extras(self, phase: Phase) -> tuple[protocols.Question, ...]:
        """The extra questions ``phase`` asks, in the order the reader sees them."""
        for phase_id, questions in self.extra_questions:
            if phase_id == phase.id:
                return questions
        return ()

    def questions(self, phase: Phase) -> tuple[protocols.Question, ...]:
        """Everything ``phase`` asks: its built-in questions, then its extras."""
        return protocols.phase_questions(
            phase.kind,
            grade_in_detection=phase.asks_grade_in_detection,
            kl_grade=phase.asks_kl_grade,
        ) + self.extras(phase)


_DEFINITIONS: dict[str, StudyDefinition] = {}  # this process's, by cache key
_DEFINITIONS_KEPT = 32


def _definition_key(study: Study) -> str | None:
    if study.opened_at is None:
        return None  # a draft changes: never cached
    # v2: practice_truth holds the practice images' other reference values.
    return f"tt:study:v2:{study.pk}:{study.seed}:{study.opened_at.timestamp():.6f}"


def _definition_build(study: Study) -> StudyDefinition:
    phases = tuple(Phase.objects.filter(study=study).order_by("index"))
    practice, main, repeatable, tokens, truth = [], [], [], {}, {}
    for pk, role, token, source, grade, references in (
        Case.objects.filter(study=study)
        .order_by("number")
        .values_list(
            "id",
            "role",
            "token",
            "image__source",
            "image__kl_grade",
            "image__references",
        )
    ):
        tokens[pk] = token
        if role == Case.Role.PRACTICE:
            practice.append(pk)
            truth[pk] = (source, grade, references or {})
        else:
            main.append(pk)
            if role == Case.Role.MAIN:
                repeatable.append(pk)
    extras: dict[int, list[protocols.Question]] = {}
    for question in PhaseQuestion.objects.filter(phase__study=study).order_by(
        "phase__index", "order", "id"
    ):
        extras.setdefault(question.phase_id, []).append(question.as_question())
    return StudyDefinition(
        phases,
        tuple(practice),
        tuple(main),
        tokens,
        truth,
        tuple(repeatable),
        tuple((pk, tuple(qs)) for pk, qs in extras.items()),
    )


def study_definition(*, study: Study) -> StudyDefinition:
    """The study's phases and cases as a reader's requests use them (see
    :class:`StudyDefinition`); no query once cached."""
    key = _definition_key(study)
    if key is None:
        return _definition_build(study)
    found = _DEFINITIONS.get(key)
    if found is None:
        found = cache.get(key)
        if found is None:
            found = _definition_build(study)
            cache.set(key, found, timeout=None)
        if len(_DEFINITIONS) >= _DEFINITIONS_KEPT:
            _DEFINITIONS.pop(next(iter(_DEFINITIONS)))
        _DEFINITIONS[key] = found
    return found


@dataclass(frozen=True)
class Stage:
    """Where a reader stands in a study."""

    name: str  # "consent" | "practice" | "phase" | "done" | "closed"
    phase: Phase | None = None
    phase_number: int = 0
    phase_count: int = 0
    # The reader's session of this stage, where it has started.
    session: ReadingSession | None = None


def reader_stage(*, enrollment: Enrollment) -> Stage:
    """Where the reader stands, with the stage's session where it has started;
    one query at most (the reader's sessions)."""
    study = enrollment.study
    definition = study_definition(study=study)
    phases = definition.phases
    if enrollment.completed_at is not None:
        return Stage("done", phase_count=len(phases))
    if study.status != Study.Status.OPEN:
        return Stage("closed", phase_count=len(phases))
    if enrollment.consented_at is None:
        return Stage("consent", phase_count=len(phases))
    sessions = {s.phase_id: s for s in _SESSIONS(enrollment_id=enrollment.pk)}
    practice = sessions.get(None)
    if definition.has_practice and (practice is None or practice.completed_at is None):
        return Stage("practice", phases[0], 0, len(phases), practice)
    for number, phase in enumerate(phases, start=1):
        session = sessions.get(phase.id)
        if session is None or session.completed_at is None:
            return Stage("phase", phase, number, len(phases), session)
    return Stage("done", phase_count=len(phases))


def session_answered(*, session: ReadingSession) -> int:
    return session.answered


# --- image access ----------------------------------------------------------------

# Revoking access (a study closed or deleted, an enrollment removed) moves this
# number, which every reader's cached studies and every kept token map are
# checked against.
ACCESS_GENERATION_KEY = "tt:access-generation"
# Where a revocation is missed (rows changed by a bulk update), cached
# studies and kept maps still go stale after this long.
ACCESS_CACHE_SECONDS = 300


def _access_key(user_id: int) -> str:
    return f"tt:image-access:v2:{user_id}"


def image_access_revoke() -> None:
    """Make every reader's cached studies and every kept token map stale."""
    try:
        cache.incr(ACCESS_GENERATION_KEY)
    except ValueError:
        _access_generation_start()
    else:
        # Redis keeps a counter's lack of expiry through INCR; Django's other
        # caches store the new value with their default timeout.
        cache.touch(ACCESS_GENERATION_KEY, None)


def _access_generation_start() -> int | None:
    """The generation where the cache has none (never set, flushed, culled):
    a value never used before (the clock in nanoseconds), so no entry cached
    under an earlier generation can match it again."""
    cache.add(ACCESS_GENERATION_KEY, time.time_ns(), timeout=None)
    return cache.get(ACCESS_GENERATION_KEY)  # another process's, if it came first


# A study's token -> file name map, kept in this process. A study's cases
# stay as they are while it is open, so every reader of it shares one map,
# and a reader's cache entry names only the studies (some 100 bytes, where a
# copy of every token is 200 kB to read and unpickle per image in a study of
# 2,000 cases: bench/image_access.py). A map is keyed by its study, the study's
# opening time and the access generation (so any study saved or deleted
# since makes it stale) and is rebuilt after ACCESS_CACHE_SECONDS at most.
_STUDY_FILES: dict[tuple, tuple[float, dict[str, str]]] = {}
_STUDY_FILES_KEPT = 64


def _study_files_keep(study_key: tuple, generation: int, files: dict[str, str]) -> None:
    if len(_STUDY_FILES) >= _STUDY_FILES_KEPT:
        # Maps of earlier generations are never read again; else the oldest
        # go. A copy of the keys: other threads of the process add maps too.
        keys = list(_STUDY_FILES)
        stale = [k for k in keys if k[-1] != generation]
        for old in stale or keys[: len(keys) - _STUDY_FILES_KEPT + 1]:
            _STUDY_FILES.pop(old, None)
    key = (*study_key, generation)
    _STUDY_FILES.pop(key, None)  # a rebuilt map counts as the newest
    _STUDY_FILES[key] = (time.monotonic(), files)


def _reader_studies_load(user, generation: int) -> tuple[tuple, list[dict[str, str]]]:
    """The open studies this reader has consented to read, as (id, opened at)
    keys, and their token maps, which are kept in this process: one query."""
    files: dict[tuple, dict[str, str]] = {}
    for study_id, opened_at, token, name in Case.objects.filter(
        study__status=Study.Status.OPEN,
        study__enrollments__reader__user=user,
        study__enrollments__consented_at__isnull=False,
    ).values_list("study_id", "study__opened_at", "token", "image__file"):
        files.setdefault((study_id, opened_at), {})[token] = name
    for study_key, study_files in files.items():
        _study_files_keep(study_key, generation, study_files)
    return tuple(files), list(files.values())


def _study_files_held(
    studies: tuple[tuple, ...], generation: int
) -> list[dict[str, str]] | None:
    """The token maps of these studies if this process holds them all, fresh."""
    fresh_after = time.monotonic() - ACCESS_CACHE_SECONDS
    maps = []
    for study_key in studies:
        kept = _STUDY_FILES.get((*study_key, generation))
        if kept is None or kept[0] <= fresh_after:
            return None
        maps.append(kept[1])
    return maps


def image_file_for_user(*, user, token: str) -> str | None:
    """The stored file name of the image behind ``token`` if this user may see it.

    Readers know an image only by its case token, which differs from study to
    study. A reader sees it only while enrolled and consented in the open
    study of that case. The studies a reader may see are cached, and each
    study's tokens with the files they name are kept in the process, so a
    reader's images cost no query once cached, and at most one otherwise.
    Staff see every case, and pool images by their own token (the admin's
    previews).
    """
    if not user.is_authenticated:
        return None
    if user.is_staff:
        case = Case.objects.select_related("image").filter(token=token).first()
        image = case.image if case else Image.objects.filter(token=token).first()
        return image.file.name if image is not None else None
    key = _access_key(user.pk)
    found = cache.get_many([ACCESS_GENERATION_KEY, key])
    generation = found.get(ACCESS_GENERATION_KEY)
    if generation is None:
        generation = _access_generation_start()
    cached = found.get(key)
    maps = None
    if cached is not None and cached[0] == generation:
        maps = _study_files_held(cached[1], generation)
    if maps is None:
        # Not cached, stale, or a process that does not hold every map: the
        # reader's studies and their maps again, in one query.
        studies, maps = _reader_studies_load(user, generation)
        cache.set(key, (generation, studies), timeout=ACCESS_CACHE_SECONDS)
        return next((m[token] for m in maps if token in m), None)
    for files in maps:
        name = files.get(token)
        if name is not None:
            return name
    # Consent to another study since: the one token is checked, and the
    # cached studies are read again on the next request.
    name = (
        Case.objects.filter(
            token=token,
            study__status=Study.Status.OPEN,
            study__enrollments__reader__user=user,
            study__enrollments__consented_at__isnull=False,
        )
        .values_list("image__file", flat=True)
        .first()
    )
    if name is not None:
        cache.delete(key)
    return name


def final_answers(judgments) -> list[tuple[Judgment, scoring.Given]]:
    """Each judgment with the answer that counts: its latest revision, else itself."""
    return [
        (
            j,
            scoring.final(
                scoring.Given(j.answer, j.confidence, j.kl_grade),
                (
                    (r.revision, scoring.Given(r.answer, r.confidence, r.kl_grade))
                    for r in j.revisions.all()
                ),
            ),
        )
        for j in judgments.prefetch_related("revisions")
    ]


def reader_score(*, enrollment: Enrollment) -> scoring.Score:
    """A reader's own results on their final answers, for the completion page."""
    judgments = Judgment.objects.filter(
        session__enrollment=enrollment,
        session__phase__isnull=False,
        case__role=Case.Role.MAIN,
        repeat=False,  # scored like the report: on first showings
    ).select_related("case__image")
    return scoring.score(
        (given, j.case.image.source, j.case.image.kl_grade)
        for j, given in final_answers(judgments)
    )


@dataclass(frozen=True)
class ReaderProgress:
    reader: Reader
    enrollment: Enrollment
    per_phase: list[tuple[str, int, int]]  # (phase label, answered, total)
    time_spent: timedelta


def study_progress(*, study: Study) -> list[ReaderProgress]:
    phases = list(study.phases.order_by("index"))
    # Each phase also shows the repeated cases a second time.
    main_total = (
        study.cases.exclude(role=Case.Role.PRACTICE).count() + study.repeat_cases
    )
    practice_total = study.cases.filter(role=Case.Role.PRACTICE).count()
    counts = {
        (row["session__enrollment"], row["session__phase"]): row
        for row in Judgment.objects.filter(session__enrollment__study=study)
        .values("session__enrollment", "session__phase")
        .annotate(n=Count("id"), ms=Sum("duration_ms"))
    }
    progress = []
    enrollments = study.enrollments.select_related("reader").order_by("enrolled_at")
    for enrollment in enrollments:
        rows = []
        spent = 0
        if practice_total:
            c = counts.get((enrollment.id, None), {"n": 0, "ms": 0})
            rows.append(("practice", c["n"], practice_total))
            spent += c["ms"] or 0
        for phase in phases:
            c = counts.get((enrollment.id, phase.id), {"n": 0, "ms": 0})
            rows.append((phase.kind, c["n"], main_total))
            spent += c["ms"] or 0
        progress.append(
            ReaderProgress(
                enrollment.reader, enrollment, rows, timedelta(milliseconds=spent)
            )
        )
    return progress


def study_overview(*, study: Study) -> dict:
    cases = study.cases.aggregate(
        main=Count("id", filter=Q(role=Case.Role.MAIN)),
        practice=Count("id", filter=Q(role=Case.Role.PRACTICE)),
        attention=Count("id", filter=Q(role=Case.Role.ATTENTION)),
    )
    # Machine readers answer in seconds and are reported apart: the progress
    # of a study is its (human or simulated) readers'.
    enrollments = study.enrollments.exclude(reader__kind=Reader.Kind.MACHINE).aggregate(
        enrolled=Count("id"),
        consented=Count("id", filter=Q(consented_at__isnull=False)),
        completed=Count("id", filter=Q(completed_at__isnull=False)),
    )
    answers = (
        Judgment.objects.filter(
            session__enrollment__study=study, session__phase__isnull=False
        )
        .exclude(session__enrollment__reader__kind=Reader.Kind.MACHINE)
        .aggregate(n=Count("id"), first=Min("answered_at"), last=Max("answered_at"))
    )
    # What a complete study holds: every consented reader on every main case
    # in every phase. The page shows its counts as "n of N" against these.
    answers["expected"] = (
        enrollments["consented"] * cases["main"] * study.phases.count()
    )
    return {"cases": cases, "readers": enrollments, "answers": answers}


def study_revealing_texts(*, study: Study) -> dict[str, list[str]]:
    """Revealing words in what readers see before the first phase, by field.

    Empty where the first phase asks about realism (readers are told then),
    or where no text of the study names the design.
    """
    first = study.phases.order_by("index").first()
    if first is None or first.asks_realism:
        return {}
    texts = {
        "reader title": study.reader_title,
        "instructions": study.instructions,
        "consent text": study.consent_text,
    }
    # The first phase's own questions are read while grading blind too.
    for question in first.questions.all():
        levels = question.levels if isinstance(question.levels, list) else []
        shown = [question.prompt] + [
            str(level[1]) for level in levels if isinstance(level, list | tuple)
        ]
        texts[f"question {question.key}"] = " ".join(shown)
    found = {where: revealing_words(text) for where, text in texts.items()}
    return {where: words for where, words in found.items() if words}


@dataclass(frozen=True)
class InvitationRow:
    invitation: Invitation
    status: str  # "used", "expired" or "open"
    used_by: str  # the reader's code, never their name or address


def study_invitations(*, study: Study, now=None) -> list[InvitationRow]:
    """Every invitation of a study, newest first, with what became of it."""
    now = now or timezone.now()
    rows = []
    for inv in study.invitations.select_related("used_by").order_by("-created_at"):
        if inv.used_at is not None:
            status = "used"
        elif inv.expires_at <= now:
            status = "expired"
        else:
            status = "open"
        rows.append(InvitationRow(inv, status, inv.used_by.code if inv.used_by else ""))
    return rows
