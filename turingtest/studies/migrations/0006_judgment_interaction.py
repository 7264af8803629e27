from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0003_study_report"),
    ]

    operations = [
        migrations.AddField(
            model_name="judgment",
            name="interaction",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
