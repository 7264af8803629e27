from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from turingtest.studies.models import (
    Case,
    Enrollment,
    GenerationJob,
    Generator,
    Image,
    Invitation,
    Judgment,
    JudgmentRevision,
    Phase,
    Reader,
    ReadingSession,
    Study,
)


class PhaseInline(admin.TabularInline):
    model = Phase
    extra = 0


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "status", "study_page", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["status", "opened_at", "closed_at", "created_at", "study_page"]
    inlines = [PhaseInline]

    @admin.display(description="Study page")
    def study_page(self, obj: Study) -> str:
        if obj.pk is None:
            return "—"
        return format_html('<a href="{}">Progress, invitations, results</a>', reverse("staff-study", args=[obj.slug]))

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != Study.Status.DRAFT:
            # Readers are mid-study: the protocol they were given stays as it was.
            fields += ["slug", "seed", "edit_policy", "practice_count"]
        return fields

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None and obj.status != Study.Status.DRAFT else self.prepopulated_fields

    def get_inlines(self, request, obj):
        return [] if obj is not None and obj.status != Study.Status.DRAFT else self.inlines


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["sha256", "source", "kl_grade", "generator", "seed", "created_at"]
    list_filter = ["source", "kl_grade", "generator"]
    search_fields = ["sha256", "token", "origin"]
    readonly_fields = ["preview", "token", "sha256", "width", "height", "file_name", "original_name", "created_at"]
    exclude = ["file", "original"]

    @admin.display(description="Image")
    def preview(self, obj: Image) -> str:
        return format_html('<img src="{}" width="224" alt="">', reverse("api-image", args=[obj.token]))

    @admin.display(description="Canonical file")
    def file_name(self, obj: Image) -> str:
        return obj.file.name

    @admin.display(description="Original file")
    def original_name(self, obj: Image) -> str:
        return obj.original.name or "—"


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["study", "number", "role", "image"]
    list_filter = ["study", "role"]
    raw_id_fields = ["image"]


@admin.register(Reader)
class ReaderAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "profession", "experience_years", "simulated"]
    list_filter = ["profession", "simulated"]
    search_fields = ["code", "name", "user__email"]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["reader", "study", "enrolled_at", "consented_at", "completed_at"]
    list_filter = ["study"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["study", "email", "created_at", "expires_at", "used_at", "used_by"]
    list_filter = ["study"]
    readonly_fields = ["token_hash", "used_at", "used_by"]


@admin.register(ReadingSession)
class ReadingSessionAdmin(admin.ModelAdmin):
    list_display = ["enrollment", "phase", "started_at", "completed_at"]
    readonly_fields = ["enrollment", "phase", "seed", "order", "started_at", "served_position", "served_at"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Answers are append-only: staff may look, never edit or delete."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ["session", "position", "answer", "confidence", "kl_grade", "answered_at", "duration_ms"]
    list_filter = ["session__enrollment__study"]


@admin.register(JudgmentRevision)
class JudgmentRevisionAdmin(ReadOnlyAdmin):
    list_display = ["judgment", "revision", "answer", "confidence", "kl_grade", "answered_at"]


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    list_display = ["name", "sha256", "created_at"]
    readonly_fields = ["sha256", "created_at"]


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "generator", "status", "done", "total", "created_at", "finished_at"]
    list_filter = ["status", "generator"]
    readonly_fields = ["status", "done", "total", "error", "started_at", "finished_at"]
