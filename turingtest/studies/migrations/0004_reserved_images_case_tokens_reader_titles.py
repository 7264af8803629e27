"""Close truth leaks across studies and in study titles (issue 11).

- ``Image.reserved``: images used for practice or attention checks in any
  study, kept out of every study's main cases. Existing practice and
  attention images are marked.
- ``Case.token``: a per-study image token for URLs. Existing cases get fresh
  random tokens.
- ``Study.reader_title``: the title readers see. Existing studies keep their
  name as it, unless the name names the design: those get a neutral title.
- ``Study.revealing_words_allowed*``: the recorded override for opening a
  study whose reader-visible texts name the design.
"""

import secrets

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import turingtest.studies.models
from turingtest.domain.wording import revealing_words

NEUTRAL_TITLE = "Knee radiograph reading study"


def fill(apps, schema_editor):
    Case = apps.get_model("studies", "Case")
    Image = apps.get_model("studies", "Image")
    Study = apps.get_model("studies", "Study")
    for case in Case.objects.only("id").iterator():
        Case.objects.filter(pk=case.pk).update(token=secrets.token_urlsafe(16))
    Image.objects.filter(cases__role__in=["practice", "attention"]).update(
        reserved=True
    )
    for study in Study.objects.only("id", "name"):
        # A name that gives the design away (the demo's "real or synthetic?")
        # is not carried over: readers get a neutral title instead.
        title = NEUTRAL_TITLE if revealing_words(study.name) else study.name
        Study.objects.filter(pk=study.pk).update(reader_title=title)


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0003_study_report"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="reserved",
            field=models.BooleanField(
                default=False,
                editable=False,
                help_text="Used for practice or attention checks: never a main case.",
            ),
        ),
        migrations.AddField(
            model_name="case",
            name="token",
            field=models.CharField(editable=False, max_length=32, null=True),
        ),
        migrations.AddField(
            model_name="study",
            name="reader_title",
            field=models.CharField(default="", max_length=200),
            preserve_default=False,
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="case",
            name="token",
            field=models.CharField(
                default=turingtest.studies.models.new_token,
                editable=False,
                max_length=32,
                unique=True,
            ),
        ),
        migrations.AlterField(
            model_name="study",
            name="reader_title",
            field=models.CharField(
                help_text="The title readers see: on invitations, instructions and "
                "the reading page. Keep it neutral about the design.",
                max_length=200,
            ),
        ),
        migrations.AlterField(
            model_name="study",
            name="name",
            field=models.CharField(
                help_text="For the study team only; readers never see it.",
                max_length=200,
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="revealing_words_allowed",
            field=models.TextField(
                blank=True,
                editable=False,
                help_text="Words readers see that were allowed when the study was opened.",
            ),
        ),
        migrations.AddField(
            model_name="study",
            name="revealing_words_allowed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="study",
            name="revealing_words_allowed_by",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddConstraint(
            model_name="study",
            constraint=models.CheckConstraint(
                condition=models.Q(("revealing_words_allowed", ""))
                | models.Q(("revealing_words_allowed_at__isnull", False)),
                name="study_override_recorded",
            ),
        ),
    ]
