from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("studies", "0005_judgment_interaction"),
    ]

    operations = [
        migrations.AddField(
            model_name="generator",
            name="kind",
            field=models.CharField(
                choices=[
                    ("checkpoint", "Checkpoint of this project"),
                    ("torchscript", "TorchScript file"),
                    ("entrypoint", "Python entry point"),
                ],
                default="checkpoint",
                max_length=12,
            ),
        ),
        migrations.AlterField(
            model_name="generator",
            name="checkpoint",
            field=models.CharField(
                help_text="Path to the checkpoint or TorchScript file, or the entry "
                "point package.module:function.",
                max_length=500,
            ),
        ),
    ]
