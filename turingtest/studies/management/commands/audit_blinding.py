"""Check that nothing but image content tells a study's real and synthetic apart."""

from django.core.management.base import BaseCommand, CommandError

from turingtest.imaging.audit import audit_study
from turingtest.studies.models import Study


class Command(BaseCommand):
    help = (
        "Blinding audit of a study's main cases: AUC (95% CI) of file-level cues "
        "and of image statistics for telling real from synthetic. Exits non-zero "
        "when the file-level cues are not at chance."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--seed", type=int, help="Cross-validation seed.")

    def handle(self, *args, **opts):
        try:
            study = Study.objects.get(slug=opts["slug"])
        except Study.DoesNotExist:
            raise CommandError(f"no study {opts['slug']!r}") from None
        result = audit_study(study, seed=opts["seed"])
        self.stdout.write(result.report())
        file_level = result.file_level
        if not file_level.enough_data:
            raise CommandError(
                "cannot audit: the study needs at least two real and two synthetic "
                "main cases"
            )
        if not result.passed:
            raise CommandError(
                f"file-level cues separate real from synthetic (AUC "
                f"{file_level.auc:.3f}, 95% CI {file_level.ci_low:.3f}–"
                f"{file_level.ci_high:.3f}): re-import the images in canonical form"
            )
