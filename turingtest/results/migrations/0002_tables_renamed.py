"""The tables moved from ``studies`` take this app's names (a rename: rows,
keys and sequences stay)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0014_models_moved_to_their_apps"),
        ("results", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelTable(
            name="studyreport",
            table=None,
        ),
    ]
