from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "turingtest.studies"
    verbose_name = "Studies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The Celery app, so that the shared tasks bind to it (and its broker)
        # in every process that runs Django: web, commands and workers.
        import turingtest.celery  # noqa: F401
        from turingtest.studies import signals

        signals.connect()
