from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "turingtest.studies"
    verbose_name = "Studies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from turingtest.studies import signals

        signals.connect()
