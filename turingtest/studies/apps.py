from django.apps import AppConfig


class StudiesConfig(AppConfig):
    name = "turingtest.studies"
    verbose_name = "Studies"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Tasks declared with shared_task bind to the app loaded first.
        import turingtest.celery  # noqa: F401
        from turingtest.studies import signals

        signals.connect()
