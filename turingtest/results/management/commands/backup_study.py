from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from turingtest.results.backup import study_backup
from turingtest.studies.models import Study


class Command(BaseCommand):
    help = (
        "Write one study (its rows, its images' files and its result CSVs) into a "
        "ZIP archive that restore_study reads back. See docs/backup.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--out", required=True, type=Path, help="archive to write")

    def handle(self, *args, slug: str, out: Path, **opts):
        study = Study.objects.filter(slug=slug).first()
        if study is None:
            raise CommandError(f"No study {slug!r}.")
        path = study_backup(study=study, out=out)
        self.stdout.write(f"Backed up study {slug!r} to {path}")
