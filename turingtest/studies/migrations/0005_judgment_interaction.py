from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0004_reserved_images_case_tokens_reader_titles"),
    ]

    operations = [
        migrations.AddField(
            model_name="judgment",
            name="interaction",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
