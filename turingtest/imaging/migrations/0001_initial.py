"""ImportBatch, Tag and Image move here from ``studies``: their tables stay as
they are (state only); 0002 renames them."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import turingtest.imaging.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("studies", "0013_phase_without_kl_grade"),
        ("generation", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Tag",
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
                    ],
                    options={
                        "db_table": "studies_tag",
                        "ordering": ["name"],
                    },
                ),
                migrations.CreateModel(
                    name="ImportBatch",
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
                        ("name", models.CharField(max_length=120, unique=True)),
                        (
                            "description",
                            models.TextField(
                                blank=True,
                                help_text="Where the images came from; never shown to readers.",
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "created_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "verbose_name_plural": "import batches",
                        "db_table": "studies_importbatch",
                        "ordering": ["-created_at", "name"],
                    },
                ),
                migrations.CreateModel(
                    name="Image",
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
                            "source",
                            models.CharField(
                                choices=[("real", "Real"), ("synthetic", "Synthetic")],
                                max_length=10,
                            ),
                        ),
                        (
                            "kl_grade",
                            models.PositiveSmallIntegerField(
                                verbose_name="reference KL grade"
                            ),
                        ),
                        (
                            "token",
                            models.CharField(
                                default=turingtest.imaging.models.new_token,
                                editable=False,
                                max_length=32,
                                unique=True,
                            ),
                        ),
                        ("file", models.FileField(max_length=200, upload_to="pool/")),
                        (
                            "sha256",
                            models.CharField(
                                help_text="Of the canonical file.",
                                max_length=64,
                                unique=True,
                            ),
                        ),
                        ("width", models.PositiveIntegerField()),
                        ("height", models.PositiveIntegerField()),
                        (
                            "original",
                            models.FileField(
                                blank=True, max_length=200, upload_to="originals/"
                            ),
                        ),
                        (
                            "origin",
                            models.TextField(
                                blank=True,
                                help_text="Where it came from; never shown to readers.",
                            ),
                        ),
                        ("seed", models.BigIntegerField(blank=True, null=True)),
                        (
                            "job_index",
                            models.PositiveIntegerField(blank=True, null=True),
                        ),
                        (
                            "reserved",
                            models.BooleanField(
                                default=False,
                                editable=False,
                                help_text="Used for practice or attention checks: never a main case.",
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "generator",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="images",
                                to="generation.generator",
                            ),
                        ),
                        (
                            "job",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="images",
                                to="generation.generationjob",
                            ),
                        ),
                        (
                            "batch",
                            models.ForeignKey(
                                blank=True,
                                help_text="The import the image first came in with.",
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="images",
                                to="imaging.importbatch",
                            ),
                        ),
                        (
                            "tags",
                            models.ManyToManyField(
                                blank=True, related_name="images", to="imaging.tag"
                            ),
                        ),
                    ],
                    options={
                        "db_table": "studies_image",
                        "ordering": ["id"],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("kl_grade__lte", 4)),
                                name="image_kl_grade_0_4",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(
                                    ("source", "synthetic"),
                                    models.Q(
                                        ("generator__isnull", True),
                                        ("seed__isnull", True),
                                    ),
                                    _connector="OR",
                                ),
                                name="image_real_has_no_generator",
                            ),
                            models.UniqueConstraint(
                                fields=("job", "job_index"),
                                name="image_unique_job_index",
                            ),
                        ],
                    },
                ),
            ],
        ),
    ]
