"""Generators and the jobs that fill the image pool from them on GPU workers."""

from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from turingtest.domain.scales import KL
from turingtest.imaging.models import default_image_size


class Generator(models.Model):
    """A trained model that can make synthetic images.

    Three kinds sample the same way on the GPU workers (see
    :mod:`generator.sample`): a checkpoint of this project, a TorchScript
    file, or a Python entry point installed on the workers.
    """

    class Kind(models.TextChoices):
        CHECKPOINT = "checkpoint", "Checkpoint of this project"
        TORCHSCRIPT = "torchscript", "TorchScript file"
        ENTRYPOINT = "entrypoint", "Python entry point"

    name = models.SlugField(max_length=80, unique=True)
    kind = models.CharField(max_length=12, choices=Kind, default=Kind.CHECKPOINT)
    checkpoint = models.CharField(
        max_length=500,
        help_text="Path to the checkpoint or TorchScript file, or the entry point "
        "package.module:function.",
    )
    sha256 = models.CharField(max_length=64)
    config = models.JSONField(default=dict, blank=True)
    training_data = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GenerationJob(models.Model):
    """A request to fill the synthetic pool from a generator, run on a GPU worker."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    generator = models.ForeignKey(
        Generator, on_delete=models.PROTECT, related_name="jobs"
    )
    per_grade = models.JSONField(
        help_text=f"Images to make per {KL.short_label}, "
        f'e.g. {{"{KL.min}": 10, "{KL.max}": 10}}.'
    )
    status = models.CharField(max_length=10, choices=Status, default=Status.PENDING)
    image_size = models.PositiveIntegerField(
        default=default_image_size,
        validators=[MinValueValidator(8)],
        help_text="Side length the generated images are stored at, px.",
    )
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # A running job is leased to one worker process; a lease not renewed in
    # time means the worker died, and the job is queued again.
    worker = models.CharField(
        max_length=200, blank=True, help_text="host:pid holding the job while it runs."
    )
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(done__lte=models.F("total")), name="job_done_le_total"
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.generator} job {self.pk} ({self.status} {self.done}/{self.total})"
        )
