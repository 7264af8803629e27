from django.apps import AppConfig


class ResultsConfig(AppConfig):
    name = "turingtest.results"
    verbose_name = "Results"
    default_auto_field = "django.db.models.BigAutoField"
