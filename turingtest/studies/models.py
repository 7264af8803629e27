"""The data of a visual Turing test.

Invariants live in the database (constraints), not in ``save()``. Writes go
through ``services.py``; reads through ``selectors.py``.
"""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from turingtest.domain.protocols import PhaseKind, Question
from turingtest.domain.questions import (
    QuestionError,
    QuestionType,
    key_problem,
    keys_check,
)
from turingtest.domain.scales import (
    DETECTION,
    KL,
    Scale,
    ScaleError,
    detection_codes,
    scale_named,
)
from turingtest.imaging.models import (  # new_token, default_image_size: also named by migrations
    Image,
    default_image_size,
    new_token,
)


def new_seed() -> int:
    return secrets.randbits(31)


def new_reader_code() -> str:
    return "R" + secrets.token_hex(4).upper()


class Study(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    class EditPolicy(models.TextChoices):
        NONE = "none", "No changes once answered"
        UNTIL_PHASE_END = "until_phase_end", "Changes allowed until the phase ends"

    name = models.CharField(
        max_length=200, help_text="For the study team only; readers never see it."
    )
    reader_title = models.CharField(
        max_length=200,
        help_text="The title readers see: on invitations, instructions and the "
        "reading page. Keep it neutral about the design.",
    )
    slug = models.SlugField(max_length=80, unique=True)
    status = models.CharField(max_length=10, choices=Status, default=Status.DRAFT)
    instructions = models.TextField(
        blank=True, help_text="Markdown, shown to readers before consent."
    )
    consent_text = models.TextField(
        blank=True,
        default="I agree to take part in this reader study. My answers will be stored "
        "under a pseudonym and analysed together with other readers' answers.",
    )
    seed = models.BigIntegerField(default=new_seed)
    edit_policy = models.CharField(
        max_length=20, choices=EditPolicy, default=EditPolicy.NONE
    )
    show_score = models.BooleanField(
        default=False, help_text="Show readers their own score at the end."
    )
    practice_count = models.PositiveSmallIntegerField(default=4)
    # Intra-reader repeats: this many main cases are shown a second time in
    # every phase, the second showing at least ``repeat_min_gap`` positions
    # after the first, for each reader's test-retest agreement.
    repeat_cases = models.PositiveSmallIntegerField(
        default=0,
        help_text="Main cases each reader sees a second time in every phase "
        "(test-retest agreement). 0: none.",
    )
    repeat_min_gap = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="How many positions after its first showing a case is shown again, "
        "at least. The repeats plus this gap may not exceed the main cases.",
    )
    # Every case is a square image of this side: the pool's images of other
    # sizes are not drawn, so one pool can serve knee studies at 224 px and
    # chest or mammography studies at 1024 or 2048 px.
    image_size = models.PositiveIntegerField(
        default=default_image_size,
        validators=[MinValueValidator(8)],
        help_text="Side length of the study's images, px: its cases are drawn from "
        "the pool's images of this size (import them with import_images --size).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Opening a blinded study whose reader-visible texts name the design takes
    # an explicit override; who gave it, when, and for which words is kept.
    revealing_words_allowed = models.TextField(
        blank=True,
        editable=False,
        help_text="Words readers see that were allowed when the study was opened.",
    )
    revealing_words_allowed_at = models.DateTimeField(
        null=True, blank=True, editable=False
    )
    revealing_words_allowed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "studies"
        constraints = [
            models.CheckConstraint(
                condition=Q(revealing_words_allowed="")
                | Q(revealing_words_allowed_at__isnull=False),
                name="study_override_recorded",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Phase(models.Model):
    """One pass over the study's cases; phases run in order of ``index``."""

    class Kind(models.TextChoices):
        GRADING = PhaseKind.GRADING, f"Grading ({KL.short_label} only)"
        DETECTION = PhaseKind.DETECTION, "Detection (real or synthetic)"
        COMBINED = (
            PhaseKind.COMBINED,
            f"Combined (real or synthetic, and {KL.short_label})",
        )

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="phases")
    index = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=10, choices=Kind)
    asks_grade_in_detection = models.BooleanField(
        default=False,
        help_text=f"In a detection phase, also ask for the {KL.short_label}.",
    )
    # Off where the phase's own questions (PhaseQuestion) take the grade's
    # place, e.g. a BI-RADS category for mammograms.
    asks_kl_grade = models.BooleanField(
        f"asks the {KL.abbreviation} grade",
        default=True,
        help_text=f"Ask the built-in {KL.short_label} where the phase grades. Off: "
        "the phase's own questions (e.g. BI-RADS) grade instead.",
    )

    class Meta:
        ordering = ["study", "index"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "index"], name="phase_unique_index"
            ),
            models.UniqueConstraint(fields=["study", "kind"], name="phase_unique_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug} phase {self.index + 1}: {self.kind}"

    @property
    def asks_realism(self) -> bool:
        return self.kind != self.Kind.GRADING

    @property
    def asks_grade(self) -> bool:
        return self.asks_kl_grade and (
            self.kind != self.Kind.DETECTION or self.asks_grade_in_detection
        )


class PhaseQuestion(models.Model):
    """A question a phase asks beside its built-in ones (set while a draft).

    Its answers are stored in ``Judgment.answers`` under ``key``. A choice
    question reads its values from a registered scale (``scale``, e.g.
    "birads") or from ``levels`` of its own; free text has neither and is
    asked only in a phase that asks about realism (it would tell a blinded
    grader what the study is about).
    """

    class Type(models.TextChoices):
        ORDINAL = QuestionType.ORDINAL, "Ordinal scale"
        NOMINAL = QuestionType.NOMINAL, "Nominal choice"
        FREE_TEXT = QuestionType.FREE_TEXT, "Free text"

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="questions")
    order = models.PositiveSmallIntegerField(default=0)
    key = models.CharField(
        max_length=40,
        help_text="The answer's name in exports: lowercase letters, digits, "
        "underscores (e.g. birads, realism, why).",
    )
    type = models.CharField(max_length=10, choices=Type)
    scale = models.CharField(
        max_length=40,
        blank=True,
        help_text="A built-in scale (e.g. birads, realism-5), or empty with levels.",
    )
    levels = models.JSONField(
        null=True,
        blank=True,
        help_text='A scale of its own: [[code, "label"], ...] in order.',
    )
    prompt = models.CharField(
        max_length=300,
        blank=True,
        help_text="What the reader reads; the scale's title where empty.",
    )
    required = models.BooleanField(default=True)
    keys = models.JSONField(
        null=True,
        blank=True,
        help_text='Keyboard map {"key": code}; digits or first letters where empty.',
    )

    class Meta:
        ordering = ["phase", "order", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["phase", "key"], name="phase_question_unique_key"
            ),
            models.CheckConstraint(
                condition=(Q(type="free_text") & Q(scale="") & Q(levels__isnull=True))
                | (~Q(type="free_text") & ~Q(scale="") & Q(levels__isnull=True))
                | (~Q(type="free_text") & Q(scale="") & Q(levels__isnull=False)),
                name="phase_question_scale_or_levels",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.type})"

    def scale_obj(self) -> Scale | None:
        """The scale the question answers on; raises ValidationError where bad."""
        if self.type == self.Type.FREE_TEXT:
            if self.scale or self.levels is not None:
                raise ValidationError(
                    {"scale": "A free-text question has no scale or levels."}
                )
            return None
        if self.scale and self.levels is not None:
            raise ValidationError(
                {"levels": "Give a built-in scale or levels of its own, not both."}
            )
        if self.scale:
            try:
                scale = scale_named(self.scale)
            except LookupError as exc:
                raise ValidationError({"scale": str(exc)}) from None

        elif self.levels is not None:
            try:
                scale = Scale.custom(
                    name=(self.key or "custom").replace("_", "-")[:40],
                    title=self.prompt or self.key or "Custom scale",
                    kind=self.type,
                    levels=self.levels
                    if isinstance(self.levels, list)
                    else [self.levels],
                )
            except ScaleError as exc:
                raise ValidationError({"levels": str(exc)}) from None
        else:
            raise ValidationError(
                {"scale": "Name a built-in scale or give levels of its own."}
            )
        if scale.kind.value != self.type:
            raise ValidationError(
                {
                    "type": f"The scale {scale.name!r} is {scale.kind.value}, "
                    f"not {self.type}."
                }
            )
        return scale

    def clean(self) -> None:
        problem = key_problem(self.key)
        if problem:
            raise ValidationError({"key": problem})
        scale = self.scale_obj()
        if scale is not None and scale.name == DETECTION.name:
            # One real/synthetic question per answer, in the detection
            # statistics: asked as an extra it would be reported apart.
            raise ValidationError(
                {
                    "scale": "Real or synthetic with confidence is the own "
                    "question of a detection or combined phase: choose that "
                    "phase kind instead of adding it as a question."
                }
            )
        if self.keys is not None:
            if scale is None:
                raise ValidationError({"keys": "Free text takes no keyboard map."})
            try:
                keys_check(self.keys, scale)
            except QuestionError as exc:
                raise ValidationError({"keys": str(exc)}) from None
        phase = getattr(self, "phase", None) if self.phase_id else None
        if (
            self.type == self.Type.FREE_TEXT
            and phase is not None
            and not phase.asks_realism
        ):
            raise ValidationError(
                {
                    "type": "Free text is asked only in a phase that asks about "
                    "realism (detection or combined)."
                }
            )

    def as_question(self) -> Question:
        """The question as the domain, the reader's API and the checks read it."""
        scale = self.scale_obj()
        keys = ()
        if self.keys and scale is not None:
            keys = tuple(keys_check(self.keys, scale).items())
        return Question(
            field=self.key,
            scale=scale,
            prompt=self.prompt,
            required=self.required,
            extra=True,
            type=QuestionType(self.type),
            keys=keys,
        )


class Case(models.Model):
    class Role(models.TextChoices):
        MAIN = "main", "Main"
        PRACTICE = "practice", "Practice"
        ATTENTION = "attention", "Attention check"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="cases")
    image = models.ForeignKey(Image, on_delete=models.PROTECT, related_name="cases")
    role = models.CharField(max_length=10, choices=Role, default=Role.MAIN)
    number = models.PositiveIntegerField(
        help_text="Stable case label within the study."
    )
    # The image's name in this study's URLs: one image in two studies has two
    # unrelated tokens, so a reader in both cannot match them up.
    token = models.CharField(
        max_length=32, unique=True, default=new_token, editable=False
    )

    class Meta:
        ordering = ["study", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["study", "image"], name="case_unique_image"
            ),
            models.UniqueConstraint(
                fields=["study", "number"], name="case_unique_number"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.study.slug} case {self.number}"


class Reader(models.Model):
    class Kind(models.TextChoices):
        HUMAN = "human", "Human"
        # Drawn by turingtest.studies.simulation for demos and tests; they
        # stand in for people and count as human readers in the statistics.
        SIMULATED = "simulated", "Simulated"
        # A classifier answering through the same services (add_machine_reader);
        # reported beside the human readers, never among them.
        MACHINE = "machine", "Machine"

    class Profession(models.TextChoices):
        RADIOLOGIST = "radiologist", "Radiologist"
        RADIOLOGY_RESIDENT = "radiology_resident", "Radiology resident"
        ORTHOPAEDIC_SURGEON = "orthopaedic_surgeon", "Orthopaedic surgeon"
        ORTHOPAEDIC_RESIDENT = "orthopaedic_resident", "Orthopaedic resident"
        RADIOGRAPHER = "radiographer", "Radiographer"
        OTHER_CLINICIAN = "other_clinician", "Other clinician"
        RESEARCHER = "researcher", "Researcher"
        OTHER = "other", "Other"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reader"
    )
    code = models.CharField(
        max_length=16, unique=True, default=new_reader_code, editable=False
    )
    name = models.CharField(max_length=200)
    profession = models.CharField(max_length=30, choices=Profession)
    experience_years = models.PositiveSmallIntegerField()
    subspecialty = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=10, choices=Kind, default=Kind.HUMAN)
    machine_model = models.CharField(
        max_length=20,
        blank=True,
        help_text="For a machine reader: the classifier that answers (c2st or kl).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(experience_years__lte=70),
                name="reader_experience_plausible",
            ),
            models.CheckConstraint(
                condition=Q(kind="machine", machine_model__gt="")
                | (~Q(kind="machine") & Q(machine_model="")),
                name="reader_model_iff_machine",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.name})"

    @property
    def simulated(self) -> bool:
        return self.kind == self.Kind.SIMULATED

    @property
    def is_machine(self) -> bool:
        return self.kind == self.Kind.MACHINE


class Invitation(models.Model):
    """A single-use, expiring link. Only the token's hash is stored."""

    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="invitations"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    email = models.EmailField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        Reader, null=True, blank=True, on_delete=models.SET_NULL
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(used_at__isnull=True) | Q(used_by__isnull=False),
                name="invitation_used_by_someone",
            ),
        ]

    def __str__(self) -> str:
        return f"invitation to {self.study.slug} ({self.email or 'anyone'})"


class Enrollment(models.Model):
    reader = models.ForeignKey(
        Reader, on_delete=models.CASCADE, related_name="enrollments"
    )
    study = models.ForeignKey(
        Study, on_delete=models.CASCADE, related_name="enrollments"
    )
    enrolled_at = models.DateTimeField(auto_now_add=True)
    consented_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["study", "enrolled_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["reader", "study"], name="enrollment_unique"
            ),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True) | Q(consented_at__isnull=False),
                name="enrollment_completed_after_consent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reader.code} in {self.study.slug}"


class ReadingSession(models.Model):
    """One reader's pass over one phase (``phase`` null: the practice round).

    ``order`` is the stored permutation of case ids this reader sees, drawn
    from ``seed``, so any reader's exact sequence can be reproduced.
    """

    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="sessions"
    )
    phase = models.ForeignKey(
        Phase, null=True, blank=True, on_delete=models.CASCADE, related_name="sessions"
    )
    seed = models.BigIntegerField()
    order = models.JSONField()
    started_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    served_position = models.IntegerField(null=True, blank=True)
    served_at = models.DateTimeField(null=True, blank=True)
    # How many cases of ``order`` are answered: the reader's position. Moved
    # in the same UPDATE that stores each answer (under the row's lock), so no
    # request counts the judgments to know where the reader stands.
    answered = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["enrollment", "started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "phase"], name="session_unique_phase"
            ),
            models.UniqueConstraint(
                fields=["enrollment"],
                condition=Q(phase__isnull=True),
                name="session_unique_practice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.enrollment} {'practice' if self.phase_id is None else self.phase.kind}"

    @property
    def is_practice(self) -> bool:
        return self.phase_id is None


class Answer(models.TextChoices):
    REAL = "real", "Real"
    SYNTHETIC = "synthetic", "Synthetic"


# The 6-point detection scale (turingtest.domain.scales.DETECTION): one click
# gives the decision and its confidence.
DETECTION_SCALE = DETECTION.choices()
_REAL, _SYNTHETIC = detection_codes("real"), detection_codes("synthetic")

_ANSWER_FIELDS_VALID = (
    (Q(answer__isnull=True) & Q(confidence__isnull=True))
    | (Q(answer="real") & Q(confidence__gte=_REAL[0]) & Q(confidence__lte=_REAL[-1]))
    | (
        Q(answer="synthetic")
        & Q(confidence__gte=_SYNTHETIC[0])
        & Q(confidence__lte=_SYNTHETIC[-1])
    )
) & (Q(kl_grade__isnull=True) | Q(kl_grade__lte=KL.max))


class Judgment(models.Model):
    """A reader's first answer to a case in a session. Never overwritten."""

    session = models.ForeignKey(
        ReadingSession, on_delete=models.CASCADE, related_name="judgments"
    )
    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="judgments")
    position = models.PositiveIntegerField()
    # The second showing of a case in the session (Study.repeat_cases): kept
    # out of the accuracy figures, compared with the first for test-retest.
    repeat = models.BooleanField(default=False)
    # NULL, not "", means the phase did not ask: the check constraint ties it to confidence.
    answer = models.CharField(max_length=10, choices=Answer, null=True, blank=True)  # noqa: DJ001
    confidence = models.PositiveSmallIntegerField(
        choices=DETECTION_SCALE, null=True, blank=True
    )
    kl_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    served_at = models.DateTimeField()
    answered_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField()
    # Answers to the phase's extra questions (PhaseQuestion), by key: a code
    # of the question's scale, or text. Only answered questions appear.
    answers = models.JSONField(default=dict, blank=True)
    # What the reader did with the image before answering, as the viewer
    # logged it: zooms, pans, window/level changes and viewport rectangles
    # over time (see turingtest.studies.interactions). NULL where the answer
    # came without a log (an API client, a simulated reader).
    interaction = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["session", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["session", "case", "repeat"], name="judgment_unique_case"
            ),
            models.UniqueConstraint(
                fields=["session", "position"], name="judgment_unique_position"
            ),
            models.CheckConstraint(
                condition=_ANSWER_FIELDS_VALID, name="judgment_answer_valid"
            ),
            # A phase without the built-in questions answers its own.
            models.CheckConstraint(
                condition=Q(answer__isnull=False)
                | Q(kl_grade__isnull=False)
                | ~Q(answers={}),
                name="judgment_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session} #{self.position}"


class MachineScore(models.Model):
    """A machine reader's probability that a judgment's image is synthetic.

    The evidence behind its 6-point rating, kept at full precision: simulated
    readers draw their answers around it (:mod:`turingtest.studies.simulation`).
    """

    judgment = models.OneToOneField(
        Judgment, on_delete=models.CASCADE, related_name="machine_score"
    )
    p_synthetic = models.FloatField()

    class Meta:
        ordering = ["judgment"]
        constraints = [
            models.CheckConstraint(
                condition=Q(p_synthetic__gte=0.0) & Q(p_synthetic__lte=1.0),
                name="machine_score_probability",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.judgment}: p(synthetic) {self.p_synthetic:.3f}"


class JudgmentRevision(models.Model):
    """A later change to a judgment, where the study allows edits."""

    judgment = models.ForeignKey(
        Judgment, on_delete=models.CASCADE, related_name="revisions"
    )
    revision = models.PositiveSmallIntegerField()
    # NULL, not "", means the phase did not ask: the check constraint ties it to confidence.
    answer = models.CharField(max_length=10, choices=Answer, null=True, blank=True)  # noqa: DJ001
    confidence = models.PositiveSmallIntegerField(
        choices=DETECTION_SCALE, null=True, blank=True
    )
    kl_grade = models.PositiveSmallIntegerField(null=True, blank=True)
    answers = models.JSONField(default=dict, blank=True)
    answered_at = models.DateTimeField()

    class Meta:
        ordering = ["judgment", "revision"]
        constraints = [
            models.UniqueConstraint(
                fields=["judgment", "revision"], name="revision_unique"
            ),
            models.CheckConstraint(
                condition=Q(revision__gte=1), name="revision_after_first"
            ),
            models.CheckConstraint(
                condition=_ANSWER_FIELDS_VALID, name="revision_answer_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.judgment} rev {self.revision}"
