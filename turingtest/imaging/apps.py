from django.apps import AppConfig


class ImagingConfig(AppConfig):
    name = "turingtest.imaging"
    verbose_name = "Image pool"
    default_auto_field = "django.db.models.BigAutoField"
