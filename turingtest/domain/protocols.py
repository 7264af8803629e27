"""Protocols: the phases of a study, each an ordered list of questions on scales.

The reference study's protocol (Prezja et al. 2022) is :data:`REFERENCE`:
a grading phase that asks only the Kellgren–Lawrence grade, then a detection
phase that asks real or synthetic on the 6-point confidence scale. What
``create_study --phases grading,detection`` makes is this preset.

Pure Python, no Django.

References
----------
Prezja F, Paloneva J, Pölönen I, Niinimäki E, Äyrämö S. DeepFake knee
osteoarthritis X-rays from generative adversarial neural networks deceive
medical experts and offer augmentation potential to automatic classification.
Sci Rep 2022;12:18573. doi:10.1038/s41598-022-23081-4
"""

from __future__ import annotations

from dataclasses import dataclass

from turingtest.domain.questions import QuestionType, answer_clean, default_keys
from turingtest.domain.scales import DETECTION, KL, Code, Scale


@dataclass(frozen=True)
class Question:
    """One question of a phase.

    ``field`` names the answer field it fills; ``prompt`` is what the reader
    reads (the scale's title where empty). ``compact``: the buttons show the
    codes alone, with the labels as tooltips and the short forms as a hint
    line (the KL grades), rather than a labelled list (the detection scale).

    ``extra``: a question the study admin added (a ``PhaseQuestion``), whose
    answer is stored under ``field`` in the judgment's ``answers``; its
    ``type`` may be free text, which has no scale. ``keys`` maps keyboard
    keys to codes, the scale's default map where empty.
    """

    field: str
    scale: Scale | None
    prompt: str = ""
    required: bool = True
    compact: bool = False
    extra: bool = False
    type: QuestionType | None = None
    keys: tuple[tuple[str, Code], ...] = ()

    @property
    def title(self) -> str:
        if self.prompt or self.scale is None:
            return self.prompt or self.field
        return self.scale.title

    @property
    def kind(self) -> QuestionType:
        if self.type is not None:
            return self.type
        assert self.scale is not None
        return QuestionType(self.scale.kind.value)

    def keymap(self) -> dict[str, Code]:
        if self.keys:
            return dict(self.keys)
        return {} if self.scale is None else default_keys(self.scale)

    def clean(self, value: object) -> Code | str | None:
        """The answer as stored; raises ``QuestionError`` saying what is wrong."""
        return answer_clean(
            value, type=self.kind, scale=self.scale, required=self.required
        )


GRADE = Question("kl_grade", KL, compact=True)
REALNESS = Question("confidence", DETECTION)


class PhaseKind:
    GRADING = "grading"
    DETECTION = "detection"
    COMBINED = "combined"


@dataclass(frozen=True)
class PhasePreset:
    kind: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class Protocol:
    name: str
    phases: tuple[PhasePreset, ...]


def phase_questions(
    kind: str, *, grade_in_detection: bool = False, kl_grade: bool = True
) -> tuple[Question, ...]:
    """The built-in questions a phase of ``kind`` asks, in the order the reader
    sees them.

    Grading asks the grade only; detection asks real or synthetic, and the
    grade too where ``grade_in_detection``; combined asks both. Without
    ``kl_grade`` no phase asks the grade: the phase's own questions grade.
    """
    if kind == PhaseKind.GRADING:
        asked: tuple[Question, ...] = (GRADE,)
    elif kind == PhaseKind.DETECTION:
        asked = (REALNESS, GRADE) if grade_in_detection else (REALNESS,)
    elif kind == PhaseKind.COMBINED:
        asked = (REALNESS, GRADE)
    else:
        raise ValueError(f"No phase kind {kind!r}.")
    return asked if kl_grade else tuple(q for q in asked if q is not GRADE)


REFERENCE = Protocol(
    "reference",
    (
        PhasePreset(PhaseKind.GRADING, phase_questions(PhaseKind.GRADING)),
        PhasePreset(PhaseKind.DETECTION, phase_questions(PhaseKind.DETECTION)),
    ),
)

PROTOCOLS: dict[str, Protocol] = {REFERENCE.name: REFERENCE}


def protocol_named(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise LookupError(
            f"No protocol is named {name!r} (known: {', '.join(sorted(PROTOCOLS))})."
        ) from None
