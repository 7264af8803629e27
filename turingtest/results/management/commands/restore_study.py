from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from turingtest.results.backup import study_restore


class Command(BaseCommand):
    help = (
        "Restore a study from an archive written by backup_study (or kept when a "
        "study was deleted). Refuses if a study with its slug exists."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path)

    def handle(self, *args, archive: Path, **opts):
        try:
            result = study_restore(path=archive)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        created = ", ".join(f"{n} {k}" for k, n in result.created.items() if n)
        reused = ", ".join(f"{n} {k}" for k, n in result.reused.items() if n)
        self.stdout.write(f"Restored study {result.study.slug!r}: created {created}")
        if reused:
            self.stdout.write(f"Matched rows already here: {reused}")
        self.stdout.write(f"Files written: {result.files_written}")
