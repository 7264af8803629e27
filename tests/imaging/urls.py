"""The upload page mounted as the project mounts it, for tests."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("staff/images/", include("turingtest.imaging.urls")),
    path("admin/", admin.site.urls),
]
