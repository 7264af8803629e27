"""What a study's answers add up to, as last built."""

from django.db import models


class StudyReport(models.Model):
    """The study report as last built, so a page shows it without computing it.

    Building takes seconds for a large study, so it is stored and compared
    with the answers on each view. Judgments and their revisions are
    append-only, hence any new or changed answer moves ``answers_count``,
    ``revisions_count`` or ``last_answer_at``; a report whose three figures
    (or ``version``, the report format) differ from the database's is stale.

    ``plots`` maps a plot name to its PNG as base64 text. The PNGs are small
    (30-160 kB each), are written in the same transaction as the figures
    they draw, need no file clean-up when the report is rebuilt or the study
    deleted, and are filled in per plot where a report was built without them.
    """

    study = models.OneToOneField(
        "studies.Study", on_delete=models.CASCADE, related_name="stored_report"
    )
    version = models.PositiveSmallIntegerField(
        help_text="Report format the figures follow."
    )
    built_at = models.DateTimeField()
    build_seconds = models.FloatField(default=0.0)
    answers_count = models.PositiveIntegerField(
        help_text="Judgments outside practice when built."
    )
    revisions_count = models.PositiveIntegerField()
    last_answer_at = models.DateTimeField(null=True, blank=True)
    data = models.JSONField(
        help_text="The report of turingtest.stats.report.build_report."
    )
    plots = models.JSONField(
        default=dict, blank=True, help_text="Plot name -> PNG as base64."
    )

    class Meta:
        ordering = ["study"]

    def __str__(self) -> str:
        return f"report of {self.study.slug} ({self.answers_count} answers)"
