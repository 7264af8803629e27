"""Staff pages of the image pool, included under ``/staff/images/``."""

from django.urls import path

from turingtest.imaging import admin_views

app_name = "imaging"

urlpatterns = [
    path("", admin_views.pool, name="pool"),
    path("tag", admin_views.pool_tag, name="pool-tag"),
    path("upload/", admin_views.upload, name="upload"),
]
