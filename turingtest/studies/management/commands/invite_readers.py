from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from turingtest.studies.models import Study
from turingtest.studies.services import invitations_create


class Command(BaseCommand):
    help = "Create single-use invitation links and print them (only their hashes are stored)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument(
            "--email",
            action="append",
            default=[],
            help="Personal invitation; repeatable.",
        )
        parser.add_argument(
            "--days", type=int, default=None, help="Days until the links expire."
        )
        parser.add_argument("--base-url", default=settings.BASE_URL)

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        if opts["count"] < 1 and not opts["email"]:
            raise CommandError("--count must be at least 1.")
        created = invitations_create(
            study=study, count=opts["count"], emails=opts["email"], days=opts["days"]
        )
        base = opts["base_url"].rstrip("/")
        for invitation, token in created:
            prefix = f"{invitation.email}\t" if invitation.email else ""
            self.stdout.write(f"{prefix}{base}{reverse('invitation', args=[token])}")
