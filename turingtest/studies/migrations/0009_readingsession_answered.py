from django.db import migrations, models
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce


def count_answers(apps, schema_editor):
    ReadingSession = apps.get_model("studies", "ReadingSession")
    Judgment = apps.get_model("studies", "Judgment")
    counted = (
        Judgment.objects.filter(session=OuterRef("pk"))
        .order_by()
        .values("session")
        .annotate(n=Count("id"))
        .values("n")
    )
    ReadingSession.objects.update(answered=Coalesce(Subquery(counted), 0))


class Migration(migrations.Migration):
    dependencies = [("studies", "0008_reader_kind_machine_score")]

    operations = [
        migrations.AddField(
            model_name="readingsession",
            name="answered",
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        migrations.RunPython(count_answers, migrations.RunPython.noop),
    ]
