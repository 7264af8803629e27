from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.domain.protocols import REFERENCE
from turingtest.domain.questions import QuestionType
from turingtest.domain.scales import KL, scale_names
from turingtest.studies.models import Study
from turingtest.studies.services import QuestionSpec, study_create

QUESTION_SYNTAX = "PHASE:KEY:TYPE:SCALE[:optional[:PROMPT]]"


def question_parse(text: str, phase_kinds: list[str]) -> QuestionSpec:
    """One ``--question`` value as a QuestionSpec; CommandError naming the bad part.

    PHASE is a phase number from 1 or a phase kind of the study; TYPE is
    ordinal, nominal or free_text; SCALE a registered scale's name, levels
    of its own as ``code=label,code=label`` (codes in order), or empty for
    free text; then ``optional`` or ``required`` (the default), and last
    the prompt, which may hold colons.
    """
    parts = text.split(":", 5)
    if len(parts) < 4:
        raise CommandError(
            f"--question {text!r}: expected {QUESTION_SYNTAX}, got {len(parts)} "
            "part(s)."
        )
    phase_text, key, type_text, scale_text = (p.strip() for p in parts[:4])
    flag = parts[4].strip() if len(parts) > 4 else ""
    prompt = parts[5].strip() if len(parts) > 5 else ""
    if phase_text.isdigit():
        phase = int(phase_text)
    elif phase_text in phase_kinds:
        phase = phase_kinds.index(phase_text) + 1
    else:
        raise CommandError(
            f"--question {text!r}: PHASE {phase_text!r} is neither a phase number "
            f"(1 to {len(phase_kinds)}) nor one of the phases "
            f"({', '.join(phase_kinds)})."
        )
    if not 1 <= phase <= len(phase_kinds):
        raise CommandError(
            f"--question {text!r}: PHASE {phase} is not one of 1 to {len(phase_kinds)}."
        )
    types = [t.value for t in QuestionType]
    if type_text not in types:
        raise CommandError(
            f"--question {text!r}: TYPE {type_text!r} is not one of {', '.join(types)}."
        )
    if flag not in ("", "optional", "required"):
        raise CommandError(
            f"--question {text!r}: {flag!r} after SCALE must be 'optional' or "
            "'required'."
        )
    scale, levels = scale_text, None
    if "=" in scale_text:
        scale, levels = "", []
        for item in scale_text.split(","):
            code, sep, label = item.partition("=")
            if not sep or not code.strip() or not label.strip():
                raise CommandError(
                    f"--question {text!r}: SCALE level {item!r} is not code=label."
                )
            code = code.strip()
            levels.append([int(code) if code.lstrip("-").isdigit() else code, label])
    return QuestionSpec(
        phase=phase,
        key=key,
        type=type_text,
        scale=scale,
        levels=levels,
        required=flag != "optional",
        prompt=prompt,
    )


class Command(BaseCommand):
    help = (
        "Create a study in draft with its protocol phases and any extra questions "
        "(--question)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--name", required=True, help="The study team's name for it."
        )
        parser.add_argument(
            "--reader-title",
            default=None,
            help="The title readers see (default: a neutral one). Keep it "
            "neutral about the design: readers may grade blind first.",
        )
        parser.add_argument(
            "--phases",
            default=",".join(p.kind for p in REFERENCE.phases),
            help="Phases in order: grading,detection (default), detection, combined, grading, grading,combined.",
        )
        parser.add_argument(
            "--instructions",
            default="",
            help="Markdown shown to readers before consent.",
        )
        parser.add_argument(
            "--edits",
            choices=[c.value for c in Study.EditPolicy],
            default=Study.EditPolicy.NONE,
        )
        parser.add_argument(
            "--show-score",
            action="store_true",
            help="Show readers their own score at the end.",
        )
        parser.add_argument(
            "--practice", type=int, default=4, help="Practice cases (default 4)."
        )
        parser.add_argument(
            "--grade-in-detection",
            action="store_true",
            help=f"Also ask the {KL.abbreviation} grade when detecting.",
        )
        parser.add_argument(
            "--no-kl-grade",
            action="store_true",
            help=f"Ask no {KL.abbreviation} grade: the phases' own questions grade instead "
            "(e.g. --question 1:birads:ordinal:birads); a grading phase then "
            "needs a required one.",
        )
        parser.add_argument(
            "--repeats",
            type=int,
            default=0,
            help="Main cases each reader sees twice per phase, for test-retest "
            "agreement (default 0).",
        )
        parser.add_argument(
            "--repeat-gap",
            type=int,
            default=10,
            help="Positions between a case's two showings, at least (default 10).",
        )
        parser.add_argument(
            "--image-size",
            type=int,
            default=None,
            help="Side length of the study's images, px (default "
            "TURINGTEST_IMAGE_SIZE): its cases are drawn from the pool's images of "
            "this size.",
        )
        parser.add_argument(
            "--question",
            action="append",
            default=[],
            metavar=QUESTION_SYNTAX,
            help="An extra question, repeatable; asked after the phase's own. "
            "PHASE: phase number from 1 or its kind (grading, detection); "
            "KEY: the answer's column name (lowercase, digits, _); "
            "TYPE: ordinal, nominal or free_text; SCALE: a built-in scale "
            f"({', '.join(scale_names())}), levels of its own as "
            "code=label,code=label, or empty for free_text (only in a phase "
            "that asks real or synthetic); then optional (default required) and "
            "the prompt. E.g. 1:birads:ordinal:birads, "
            "'2:why:free_text::optional:What gave it away?'.",
        )
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **opts):
        phases = [p.strip() for p in opts["phases"].split(",") if p.strip()]
        questions = [question_parse(q, phases) for q in opts["question"]]
        try:
            study = study_create(
                slug=opts["slug"],
                name=opts["name"],
                **(
                    {"reader_title": opts["reader_title"]}
                    if opts["reader_title"]
                    else {}
                ),
                phases=phases,
                instructions=opts["instructions"],
                edit_policy=opts["edits"],
                show_score=opts["show_score"],
                practice_count=opts["practice"],
                seed=opts["seed"],
                asks_grade_in_detection=opts["grade_in_detection"],
                asks_kl_grade=not opts["no_kl_grade"],
                repeat_cases=opts["repeats"],
                repeat_min_gap=opts["repeat_gap"],
                image_size=opts["image_size"],
                questions=questions,
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        phases = " → ".join(
            study.phases.order_by("index").values_list("kind", flat=True)
        )
        asked = "".join(f", asks {q.key} in phase {q.phase}" for q in questions)
        self.stdout.write(
            f"Created study {study.slug!r} ({phases}, {study.image_size} px images"
            f"{asked}), status draft."
        )
