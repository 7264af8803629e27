from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.domain.scales import KL, ScaleError
from turingtest.imaging.models import Source
from turingtest.imaging.selectors import case_choice, generators_check, origins_check
from turingtest.studies.models import Study
from turingtest.studies.selectors import balance_scales, default_balance_scale
from turingtest.studies.services import cases_build


def _names(values: list[str]) -> tuple[str, ...]:
    """Repeatable, comma-separated names, in order, once each."""
    items = (v.strip() for value in values for v in value.split(","))
    return tuple(dict.fromkeys(v for v in items if v))


class Command(BaseCommand):
    help = (
        "Draw a study's cases: N real and N synthetic images per grade of the "
        f"scale they are balanced on ({KL.abbreviation} by default), with a seed, "
        "from the import batches, tags and generators chosen."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--per-grade", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument(
            "--scale",
            default=None,
            help="The scale of the pool's reference values to balance on: kl, "
            "birads, or a scale of the study's own questions (default: the "
            f"{KL.abbreviation} grade where the study asks it, else its first "
            "ordinal question's scale).",
        )
        parser.add_argument(
            "--grades",
            default=None,
            help="Comma-separated values of that scale (default: all of them).",
        )
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
            help="Where the choice cannot fill a grade x source cell, fill it "
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
            scales = balance_scales(study)
            name = opts["scale"] or default_balance_scale(study)
            if name not in scales:
                raise CommandError(
                    f"No scale {name!r} to balance on (known: {', '.join(scales)})."
                )
            scale = scales[name]
            grades = None
            if opts["grades"] is not None:
                try:
                    grades = scale.codes_from_text(opts["grades"])
                except ScaleError as exc:
                    raise CommandError(f"--grades {exc}") from None
            counts = cases_build(
                study=study,
                per_grade=opts["per_grade"],
                seed=opts["seed"],
                grades=grades,
                scale=scale,
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
