from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import NestedObjects, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import router
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from turingtest.studies import backup
from turingtest.studies.models import (
    Case,
    Enrollment,
    GenerationJob,
    Generator,
    Image,
    ImportBatch,
    Invitation,
    Judgment,
    JudgmentRevision,
    Phase,
    PhaseQuestion,
    Reader,
    ReadingSession,
    Study,
    Tag,
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

    # Deleting a study with answers: one at a time, typed confirmation, results first.
    delete_confirmation_template = "admin/studies/study/delete_confirmation.html"

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(
            objs, request
        )
        # Answers and an open study's cases are never deleted one by one; with
        # their study they go, once delete_model has exported them.
        perms_needed -= {
            m._meta.verbose_name for m in (Case, Judgment, JudgmentRevision)
        }
        if protected:
            collector = NestedObjects(using=router.db_for_write(Study))
            collector.collect(objs)
            # Judgments protect their cases; study_delete removes them first.
            if all(isinstance(obj, Judgment) for obj in collector.protected):
                protected = []
        return deleted, counts, perms_needed, protected

    def delete_view(self, request, object_id, extra_context=None):
        study = self.get_object(request, unquote(object_id))
        answers = backup.study_answer_count(study=study) if study is not None else 0
        if (
            answers
            and request.method == "POST"
            and request.POST.get("confirm", "").strip() != study.slug
        ):
            messages.error(
                request,
                f"Type the study's slug ({study.slug}) to confirm its deletion.",
            )
            return HttpResponseRedirect(request.path)
        extra_context = (extra_context or {}) | {
            "answers": answers,
            "deleted_dir": backup.deleted_dir(),
        }
        try:
            return super().delete_view(request, object_id, extra_context)
        except ValidationError as exc:  # answers arrived after the page was shown
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(request.path)

    def delete_model(self, request, obj):
        deleted = backup.study_delete(
            study=obj, confirmation=request.POST.get("confirm", "")
        )
        if deleted.archive is not None:
            messages.info(
                request,
                f"Its answers and a restorable backup were written to {deleted.archive}.",
            )


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = [
        "sha256",
        "source",
        "kl_grade",
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

    @admin.display(description="Canonical file")
    def file_name(self, obj: Image) -> str:
        return obj.file.name

    @admin.display(description="Original file")
    def original_name(self, obj: Image) -> str:
        return obj.original.name or "—"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if (
            obj is not None
            and obj.cases.exclude(study__status=Study.Status.DRAFT).exists()
        ):
            # The truth of a case that readers are answering (or have answered).
            fields += ["source", "kl_grade", "generator", "seed"]
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


@admin.register(Generator)
class GeneratorAdmin(admin.ModelAdmin):
    list_display = ["name", "sha256", "created_at"]
    readonly_fields = ["sha256", "created_at"]


class GenerationJobForm(forms.ModelForm):
    class Meta:
        model = GenerationJob
        fields = ["generator", "per_grade", "image_size"]

    image_size = forms.IntegerField(
        required=False,
        min_value=8,
        help_text="Side length the generated images are stored at, px "
        "(empty: TURINGTEST_IMAGE_SIZE).",
    )

    def clean_image_size(self):
        from turingtest.studies.models import default_image_size

        return self.cleaned_data["image_size"] or default_image_size()

    def clean_per_grade(self):
        from turingtest.studies.generation import per_grade_normalise

        return per_grade_normalise(self.cleaned_data["per_grade"])


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    form = GenerationJobForm
    list_display = [
        "id",
        "generator",
        "status",
        "progress",
        "created_at",
        "finished_at",
        "error",
    ]
    list_filter = ["status", "generator"]
    readonly_fields = [
        "status",
        "progress",
        "error",
        "worker",
        "heartbeat_at",
        "attempts",
        "started_at",
        "finished_at",
    ]

    @admin.display(description="Progress")
    def progress(self, obj: GenerationJob) -> str:
        if not obj.total:
            return "—"
        return f"{obj.done} / {obj.total} ({100 * obj.done // obj.total}%)"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["generator", "per_grade", "image_size"]
        return ["generator", "per_grade", "image_size", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        # A job, once queued, is the worker's: staff watch it, never edit it.
        if obj is None:
            return []
        return ["generator", "per_grade", "image_size", *self.readonly_fields]

    def save_model(self, request, obj, form, change):
        if change:
            return
        from turingtest.studies.generation import generation_job_create

        job = generation_job_create(
            generator=obj.generator,
            per_grade=obj.per_grade,
            image_size=obj.image_size,
        )
        obj.pk, obj.total, obj._state.adding = job.pk, job.total, False
