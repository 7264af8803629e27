from django.core.management.base import BaseCommand, CommandError

from turingtest.results.exports import results_write
from turingtest.studies.models import Study


class Command(BaseCommand):
    help = "Write a study's results (the CSVs of the admin's ZIP) into a folder."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--out", required=True)

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        for path in results_write(study, opts["out"]):
            self.stdout.write(path)
