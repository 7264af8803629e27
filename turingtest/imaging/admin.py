"""Admin of the image pool: images, import batches and tags."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from turingtest.imaging.models import Image, ImportBatch, Tag


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "sha256",
        "source",
        "kl_grade",
        "other_references",
        "generator",
        "seed",
        "batch",
        "reserved",
        "created_at",
    ]
    list_filter = ["source", "kl_grade", "generator", "batch", "tags", "reserved"]
    search_fields = ["sha256", "token", "origin"]
    filter_horizontal = ["tags"]
    readonly_fields = [
        "preview",
        "token",
        "batch",
        "reserved",
        "sha256",
        "width",
        "height",
        "file_name",
        "original_name",
        "created_at",
    ]
    exclude = ["file", "original"]

    @admin.display(description="Image")
    def preview(self, obj: Image) -> str:
        return format_html(
            '<img src="{}" width="224" alt="">', reverse("api-image", args=[obj.token])
        )

    @admin.display(description="Other references")
    def other_references(self, obj: Image) -> str:
        refs = obj.references or {}
        return ", ".join(f"{k} {v}" for k, v in sorted(refs.items())) or "—"

    @admin.display(description="Canonical file")
    def file_name(self, obj: Image) -> str:
        return obj.file.name

    @admin.display(description="Original file")
    def original_name(self, obj: Image) -> str:
        return obj.original.name or "—"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.cases.exclude(study__status="draft").exists():
            # The truth of a case that readers are answering (or have answered):
            # a case of a study past its draft (the pool names no study model).
            fields += ["source", "kl_grade", "references", "generator", "seed"]
        return fields


@admin.register(ImportBatch)
class ImportBatchAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at", "created_by", "images_in_pool"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_at", "created_by", "images_in_pool"]

    @admin.display(description="Images")
    def images_in_pool(self, obj: ImportBatch) -> str:
        if obj.pk is None:
            return "—"
        return format_html(
            '<a href="{}?{}">{} in the pool</a>',
            reverse("imaging:pool"),
            urlencode({"batch": obj.name}),
            obj.images.count(),
        )


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]
