"""Print a study's report, built from the answers as they are now."""

import json

from django.core.management.base import BaseCommand, CommandError

from turingtest.results.report import report_html_export, study_report
from turingtest.stats.report import report_markdown
from turingtest.studies.models import Study


class Command(BaseCommand):
    help = "Print a study's statistics report as JSON, Markdown or HTML."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--format",
            choices=["json", "md", "html"],
            default="md",
            help="html: one file with the plots and a zoom heatmap per image.",
        )

    def handle(self, *args, **opts):
        study = Study.objects.filter(slug=opts["slug"]).first()
        if study is None:
            raise CommandError(f"No study {opts['slug']!r}.")
        if opts["format"] == "html":
            self.stdout.write("".join(report_html_export(study)), ending="")
            return
        report = study_report(study)
        if opts["format"] == "json":
            self.stdout.write(json.dumps(report.to_json(), indent=2))
        else:
            self.stdout.write(report_markdown(report))
