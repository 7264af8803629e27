from django.core.management.base import BaseCommand, CommandError

from turingtest.studies import signed_images
from turingtest.studies.models import Case, Study


class Command(BaseCommand):
    help = (
        "With TURINGTEST_IMAGE_SERVING=nginx-signed: make the per-case links nginx "
        "serves signed image URLs from for every open study, and remove every other "
        "(run once after switching to nginx-signed; studies keep them in step as "
        "they open, close and are deleted)."
    )

    def handle(self, *args, **opts):
        if not signed_images.signing_enabled():
            raise CommandError(
                "TURINGTEST_IMAGE_SERVING is not nginx-signed: no links are used."
            )
        made = 0
        for study in Study.objects.filter(status=Study.Status.OPEN):
            made += signed_images.case_links_create(study)
        folder = signed_images.cases_dir()
        open_tokens = set(
            Case.objects.filter(study__status=Study.Status.OPEN).values_list(
                "token", flat=True
            )
        )
        stray = [
            p.name
            for p in (folder.iterdir() if folder.exists() else [])
            if p.name not in open_tokens
        ]
        removed = signed_images.case_links_remove(stray)
        self.stdout.write(
            f"{made} links made, {removed} removed; {len(open_tokens)} cases of open "
            "studies are served."
        )
