from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.studies.models import Study
from turingtest.studies.services import cases_build


class Command(BaseCommand):
    help = (
        "Draw a study's cases: N real and N synthetic images per KL grade, with a seed."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--per-grade", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--grades", default="0,1,2,3,4")
        parser.add_argument(
            "--practice",
            type=int,
            default=None,
            help="Practice cases (default: the study's setting).",
        )
        parser.add_argument(
            "--attention", type=int, default=0, help="Attention-check cases."
        )

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        try:
            grades = [int(g) for g in opts["grades"].split(",")]
            counts = cases_build(
                study=study,
                per_grade=opts["per_grade"],
                seed=opts["seed"],
                grades=grades,
                practice=opts["practice"],
                attention=opts["attention"],
            )
        except (ValidationError, ValueError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from exc
        self.stdout.write(
            f"{study.slug}: {counts.main} main cases, {counts.practice} practice, {counts.attention} attention checks."
        )
