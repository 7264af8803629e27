from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.domain.protocols import REFERENCE
from turingtest.studies.models import Study
from turingtest.studies.services import study_create


class Command(BaseCommand):
    help = "Create a study in draft with its protocol phases."

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
            help="Also ask the KL grade when detecting.",
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
        parser.add_argument("--seed", type=int, default=None)

    def handle(self, *args, **opts):
        try:
            study = study_create(
                slug=opts["slug"],
                name=opts["name"],
                **(
                    {"reader_title": opts["reader_title"]}
                    if opts["reader_title"]
                    else {}
                ),
                phases=[p.strip() for p in opts["phases"].split(",") if p.strip()],
                instructions=opts["instructions"],
                edit_policy=opts["edits"],
                show_score=opts["show_score"],
                practice_count=opts["practice"],
                seed=opts["seed"],
                asks_grade_in_detection=opts["grade_in_detection"],
                repeat_cases=opts["repeats"],
                repeat_min_gap=opts["repeat_gap"],
                image_size=opts["image_size"],
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        phases = " → ".join(
            study.phases.order_by("index").values_list("kind", flat=True)
        )
        self.stdout.write(
            f"Created study {study.slug!r} ({phases}, {study.image_size} px images), "
            "status draft."
        )
