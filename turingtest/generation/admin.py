"""Admin of generators and their jobs: staff queue a job and watch it run."""

from django import forms
from django.contrib import admin

from turingtest.generation.models import GenerationJob, Generator
from turingtest.generation.services import generation_job_create, per_grade_normalise
from turingtest.imaging.models import default_image_size


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
        return self.cleaned_data["image_size"] or default_image_size()

    def clean_per_grade(self):
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
        job = generation_job_create(
            generator=obj.generator,
            per_grade=obj.per_grade,
            image_size=obj.image_size,
        )
        obj.pk, obj.total, obj._state.adding = job.pk, job.total, False
