"""Generator and GenerationJob move here from ``studies``: their tables stay as
they are (state only); 0002 renames them."""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

import turingtest.imaging.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("studies", "0013_phase_without_kl_grade"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Generator",
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
                        ("name", models.SlugField(max_length=80, unique=True)),
                        (
                            "kind",
                            models.CharField(
                                choices=[
                                    ("checkpoint", "Checkpoint of this project"),
                                    ("torchscript", "TorchScript file"),
                                    ("entrypoint", "Python entry point"),
                                ],
                                default="checkpoint",
                                max_length=12,
                            ),
                        ),
                        (
                            "checkpoint",
                            models.CharField(
                                help_text="Path to the checkpoint or TorchScript file, or the entry point package.module:function.",
                                max_length=500,
                            ),
                        ),
                        ("sha256", models.CharField(max_length=64)),
                        ("config", models.JSONField(blank=True, default=dict)),
                        ("training_data", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "studies_generator",
                        "ordering": ["name"],
                    },
                ),
                migrations.CreateModel(
                    name="GenerationJob",
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
                            "per_grade",
                            models.JSONField(
                                help_text='Images to make per KL grade, e.g. {"0": 10, "4": 10}.'
                            ),
                        ),
                        (
                            "status",
                            models.CharField(
                                choices=[
                                    ("pending", "Pending"),
                                    ("running", "Running"),
                                    ("done", "Done"),
                                    ("failed", "Failed"),
                                ],
                                default="pending",
                                max_length=10,
                            ),
                        ),
                        (
                            "image_size",
                            models.PositiveIntegerField(
                                default=turingtest.imaging.models.default_image_size,
                                help_text="Side length the generated images are stored at, px.",
                                validators=[
                                    django.core.validators.MinValueValidator(8)
                                ],
                            ),
                        ),
                        ("done", models.PositiveIntegerField(default=0)),
                        ("total", models.PositiveIntegerField(default=0)),
                        ("error", models.TextField(blank=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("started_at", models.DateTimeField(blank=True, null=True)),
                        ("finished_at", models.DateTimeField(blank=True, null=True)),
                        (
                            "worker",
                            models.CharField(
                                blank=True,
                                help_text="host:pid holding the job while it runs.",
                                max_length=200,
                            ),
                        ),
                        ("heartbeat_at", models.DateTimeField(blank=True, null=True)),
                        ("attempts", models.PositiveIntegerField(default=0)),
                        (
                            "generator",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="jobs",
                                to="generation.generator",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "studies_generationjob",
                        "ordering": ["-created_at"],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("done__lte", models.F("total"))),
                                name="job_done_le_total",
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
