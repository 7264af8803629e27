from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.domain.scales import KL
from turingtest.imaging.models import Source
from turingtest.imaging.selectors import case_choice, generators_check, origins_check
from turingtest.studies.models import Study
from turingtest.studies.services import cases_build


def _names(values: list[str]) -> tuple[str, ...]:
    """Repeatable, comma-separated names, in order, once each."""
    items = (v.strip() for value in values for v in value.split(","))
    return tuple(dict.fromkeys(v for v in items if v))


class Command(BaseCommand):
    help = (
        f"Draw a study's cases: N real and N synthetic images per {KL.abbreviation} grade, with a "
        "seed, from the import batches, tags and generators chosen."
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
        parser.add_argument(
            "--real-from",
            action="append",
            default=[],
            metavar="BATCH|TAG",
            help="Draw real images (practice included) only from these import "
            "batches or tags (repeatable, or comma-separated).",
        )
        parser.add_argument(
            "--generator",
            action="append",
            default=[],
            metavar="NAME",
            help="Draw synthetic images only from these generators (repeatable, "
            "or comma-separated).",
        )
        parser.add_argument(
            "--exclude-used",
            action="store_true",
            help="Leave out every image that another study uses, in any role.",
        )
        parser.add_argument(
            "--fill-from-pool",
            action="store_true",
            help=f"Where the choice cannot fill a {KL.abbreviation} grade x source cell, fill it "
            "from the rest of the pool (and say how many came from where) "
            "instead of refusing.",
        )

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        real_from = _names(opts["real_from"])
        generators = _names(opts["generator"])
        try:
            origins_check(real_from)
            generators_check(generators)
            grades = [int(g) for g in opts["grades"].split(",")]
            counts = cases_build(
                study=study,
                per_grade=opts["per_grade"],
                seed=opts["seed"],
                grades=grades,
                practice=opts["practice"],
                attention=opts["attention"],
                **case_choice(real_from, generators),
                exclude_used=opts["exclude_used"],
                fill_from_pool=opts["fill_from_pool"],
            )
        except (ValidationError, ValueError) as exc:
            raise CommandError(" ".join(getattr(exc, "messages", [str(exc)]))) from exc
        for line in counts.fallbacks:
            self.stderr.write(f"warning: filled from outside the choice: {line}")
        self.stdout.write(
            f"{study.slug}: {counts.main} main cases, {counts.practice} practice, {counts.attention} attention checks."
        )
        for source in Source.values:
            origins = counts.origins.get(source, {})
            if origins:
                parts = ", ".join(
                    f"{n} from {label}" for label, n in sorted(origins.items())
                )
                self.stdout.write(f"  {source}: {parts}")
