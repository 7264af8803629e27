"""The pool, generation and report models leave ``studies`` for the apps that
own them (``imaging``, ``generation``, ``results``).

State only: no table changes here, so no row moves. The case's key to its
image now names ``imaging.Image``; the new apps' 0002 migrations rename the
tables."""

import django.db.models.deletion
from django.db import migrations, models

MOVED = {
    "generator": "generation",
    "generationjob": "generation",
    "importbatch": "imaging",
    "tag": "imaging",
    "image": "imaging",
    "studyreport": "results",
}


def content_types_forward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app in MOVED.items():
        ContentType.objects.filter(app_label="studies", model=model).update(
            app_label=app
        )


def content_types_backward(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model, app in MOVED.items():
        ContentType.objects.filter(app_label=app, model=model).update(
            app_label="studies"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("generation", "0001_initial"),
        ("imaging", "0001_initial"),
        ("studies", "0013_phase_without_kl_grade"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="image",
                    name="job",
                ),
                migrations.RemoveField(
                    model_name="image",
                    name="generator",
                ),
                migrations.RemoveField(
                    model_name="image",
                    name="batch",
                ),
                migrations.RemoveField(
                    model_name="image",
                    name="tags",
                ),
                migrations.AlterField(
                    model_name="case",
                    name="image",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="cases",
                        to="imaging.image",
                    ),
                ),
                migrations.RemoveField(
                    model_name="importbatch",
                    name="created_by",
                ),
                migrations.RemoveField(
                    model_name="studyreport",
                    name="study",
                ),
                migrations.DeleteModel(
                    name="GenerationJob",
                ),
                migrations.DeleteModel(
                    name="Generator",
                ),
                migrations.DeleteModel(
                    name="Tag",
                ),
                migrations.DeleteModel(
                    name="Image",
                ),
                migrations.DeleteModel(
                    name="ImportBatch",
                ),
                migrations.DeleteModel(
                    name="StudyReport",
                ),
            ],
        ),
        # Content types (and so the permissions staff hold) follow the models.
        migrations.RunPython(content_types_forward, content_types_backward),
    ]
