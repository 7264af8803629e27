"""StudyReport moves here from ``studies``: its table stays as it is (state
only); 0002 renames it."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("studies", "0014_models_moved_to_their_apps"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="StudyReport",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "version",
                            models.PositiveSmallIntegerField(
                                help_text="Report format the figures follow."
                            ),
                        ),
                        ("built_at", models.DateTimeField()),
                        ("build_seconds", models.FloatField(default=0.0)),
                        (
                            "answers_count",
                            models.PositiveIntegerField(
                                help_text="Judgments outside practice when built."
                            ),
                        ),
                        ("revisions_count", models.PositiveIntegerField()),
                        ("last_answer_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "data",
                            models.JSONField(
                                help_text="The report of turingtest.stats.report.build_report."
                            ),
                        ),
                        (
                            "plots",
                            models.JSONField(
                                blank=True,
                                default=dict,
                                help_text="Plot name -> PNG as base64.",
                            ),
                        ),
                        (
                            "study",
                            models.OneToOneField(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="stored_report",
                                to="studies.study",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "studies_studyreport",
                        "ordering": ["study"],
                    },
                ),
            ],
        ),
    ]
