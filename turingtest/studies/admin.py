from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.urls import reverse
from django.utils.html import format_html

from turingtest.studies.models import (
    Case,
    Enrollment,
    Invitation,
    Judgment,
    JudgmentRevision,
    Phase,
    PhaseQuestion,
    Reader,
    ReadingSession,
    Study,
)


class PhaseInline(admin.TabularInline):
    model = Phase
    extra = 0
    # A phase's extra questions are set on the phase's own page.
    show_change_link = True


class PhaseQuestionInline(admin.StackedInline):
    model = PhaseQuestion
    extra = 0
    fields = ["order", "key", "type", "scale", "levels", "required", "prompt", "keys"]

    # obj is the phase: its questions change only while its study is a draft.
    def _draft(self, obj) -> bool:
        return obj is None or obj.study.status == Study.Status.DRAFT

    def has_add_permission(self, request, obj=None):
        return self._draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._draft(obj) and super().has_delete_permission(request, obj)


@admin.register(Phase)
class PhaseAdmin(admin.ModelAdmin):
    """A phase and the questions it asks beyond its own; these change only
    while the study is a draft, so no reader sees a question change."""

    list_display = ["__str__", "study", "kind", "questions_asked"]
    list_filter = ["study"]
    inlines = [PhaseQuestionInline]

    @admin.display(description="Extra questions")
    def questions_asked(self, obj: Phase) -> str:
        return ", ".join(obj.questions.values_list("key", flat=True)) or "—"

    def _draft(self, obj) -> bool:
        return obj is None or obj.study.status == Study.Status.DRAFT

    def get_readonly_fields(self, request, obj=None):
        return (
            []
            if self._draft(obj)
            else [
                "study",
                "index",
                "kind",
                "asks_grade_in_detection",
                "asks_kl_grade",
            ]
        )

    # Phases are added with their study (its inline, shown while a draft), and
    # change only while it is one: readers mid-study keep the protocol they got.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return self._draft(obj) and super().has_change_permission(request, obj)

    # A phase goes with its study (whose deletion asks for this permission
    # too, so it is not withheld here); on its own, only while a draft.
    actions = None

    def delete_view(self, request, object_id, extra_context=None):
        phase = self.get_object(request, unquote(object_id))
        if phase is not None and not self._draft(phase):
            raise PermissionDenied("Readers are mid-study: its phases stay.")
        return super().delete_view(request, object_id, extra_context)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "reader_title",
        "slug",
        "status",
        "study_page",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["name", "reader_title", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = [
        "status",
        "opened_at",
        "closed_at",
        "created_at",
        "study_page",
        "revealing_words_allowed",
        "revealing_words_allowed_at",
        "revealing_words_allowed_by",
    ]
    inlines = [PhaseInline]

    @admin.display(description="Study page")
    def study_page(self, obj: Study) -> str:
        if obj.pk is None:
            return "—"
        return format_html(
            '<a href="{}">Progress, invitations, results</a>',
            reverse("staff-study", args=[obj.slug]),
        )

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != Study.Status.DRAFT:
            # Readers are mid-study: the protocol they were given stays as it was.
            fields += [
                "slug",
                "reader_title",
                "seed",
                "edit_policy",
                "practice_count",
                "repeat_cases",
                "repeat_min_gap",
                "image_size",
                "instructions",
                "consent_text",
            ]
        return fields

    def get_prepopulated_fields(self, request, obj=None):
        return (
            {}
            if obj is not None and obj.status != Study.Status.DRAFT
            else self.prepopulated_fields
        )

    def get_inlines(self, request, obj):
        return (
            [] if obj is not None and obj.status != Study.Status.DRAFT else self.inlines
        )


@admin.register(Case)
class CaseAdmin(admin.ModelAdmin):
    list_display = ["study", "number", "role", "image"]
    list_filter = ["study", "role"]
    raw_id_fields = ["image"]

    # Cases change only while their study is a draft: readers mid-study keep theirs.
    def has_change_permission(self, request, obj=None):
        if obj is not None and obj.study.status != Study.Status.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.study.status != Study.Status.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "study":
            kwargs["queryset"] = Study.objects.filter(status=Study.Status.DRAFT)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(Reader)
class ReaderAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "profession", "experience_years"]
    list_filter = ["kind", "profession"]
    search_fields = ["code", "name", "user__email"]


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    list_display = ["reader", "study", "enrolled_at", "consented_at", "completed_at"]
    list_filter = ["study", "reader__kind"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["study", "email", "created_at", "expires_at", "used_at", "used_by"]
    list_filter = ["study"]
    readonly_fields = ["token_hash", "used_at", "used_by"]


@admin.register(ReadingSession)
class ReadingSessionAdmin(admin.ModelAdmin):
    list_display = ["enrollment", "phase", "started_at", "completed_at"]
    readonly_fields = [
        "enrollment",
        "phase",
        "seed",
        "order",
        "started_at",
        "served_position",
        "served_at",
    ]


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
    list_display = [
        "session",
        "position",
        "answer",
        "confidence",
        "kl_grade",
        "answers",
        "answered_at",
        "duration_ms",
    ]
    list_filter = ["session__enrollment__study"]


@admin.register(JudgmentRevision)
class JudgmentRevisionAdmin(ReadOnlyAdmin):
    list_display = [
        "judgment",
        "revision",
        "answer",
        "confidence",
        "kl_grade",
        "answered_at",
    ]
