from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.studies.models import Study
from turingtest.studies.services import study_close, study_open


class Command(BaseCommand):
    help = "Open a study for reading (or close it with --close)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--close",
            action="store_true",
            help="Close it: readers can no longer answer.",
        )
        parser.add_argument(
            "--allow-revealing-words",
            action="store_true",
            help="Open a study that grades blind first even though a text its "
            "readers see names the design (synthetic, GAN, AI...). Recorded on "
            "the study.",
        )

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        try:
            study = (
                study_close(study=study)
                if opts["close"]
                else study_open(
                    study=study, allow_revealing_words=opts["allow_revealing_words"]
                )
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        self.stdout.write(f"{study.slug} is {study.status}.")
