"""The image pool: every image once, in canonical form, with where it came from.

A study draws its cases from the pool (``turingtest.studies``); a generation
job fills it (``turingtest.generation``). The pool knows neither: the
foreign keys to a generator and its job name their models by label, and no
module of this app imports either app.
"""

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from turingtest.domain.references import describe as describe_references
from turingtest.domain.references import problems as reference_problems
from turingtest.domain.scales import KL, Code


def new_token() -> str:
    """An opaque public identifier: 128 random bits, URL-safe."""
    return secrets.token_urlsafe(16)


def default_image_size() -> int:
    """The canonical side length new studies and imports use (TURINGTEST_IMAGE_SIZE)."""
    from turingtest.conf import project_settings

    return project_settings().image_size


class Source(models.TextChoices):
    REAL = "real", "Real"
    SYNTHETIC = "synthetic", "Synthetic"


class ImportBatch(models.Model):
    """One import into the pool: a folder, an upload, or a generation job.

    Every image records the batch it first came in with, so a study can be
    drawn from the images the admin chose and from nothing else.
    """

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(
        blank=True, help_text="Where the images came from; never shown to readers."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at", "name"]
        verbose_name_plural = "import batches"

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    """A label staff put on images of the pool, to draw cases from them."""

    name = models.SlugField(max_length=80, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    """One image of the pool, shared across studies, in canonical form."""

    source = models.CharField(max_length=10, choices=Source)
    kl_grade = models.PositiveSmallIntegerField(
        f"reference {KL.short_label}", null=True, blank=True
    )
    # Reference values on other scales, by scale name ({"birads": 4}); the
    # KL grade keeps its own column (the reference study's, and indexed).
    references = models.JSONField(
        default=dict,
        blank=True,
        help_text='Reference values on other scales, e.g. {"birads": 4}; '
        "never shown to readers.",
    )
    token = models.CharField(
        max_length=32, unique=True, default=new_token, editable=False
    )
    file = models.FileField(upload_to="pool/", max_length=200)
    sha256 = models.CharField(
        max_length=64, unique=True, help_text="Of the canonical file."
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    original = models.FileField(upload_to="originals/", max_length=200, blank=True)
    origin = models.TextField(
        blank=True, help_text="Where it came from; never shown to readers."
    )
    generator = models.ForeignKey(
        "generation.Generator",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="images",
    )
    seed = models.BigIntegerField(null=True, blank=True)
    job = models.ForeignKey(
        "generation.GenerationJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="images",
    )
    job_index = models.PositiveIntegerField(null=True, blank=True)
    batch = models.ForeignKey(
        ImportBatch,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="images",
        help_text="The import the image first came in with.",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="images")
    # Practice feedback tells readers an image's truth, and attention checks
    # are known to the study team: such an image is never a main case again,
    # in any study. Set once, never cleared (what a reader saw stays seen).
    reserved = models.BooleanField(
        default=False,
        editable=False,
        help_text="Used for practice or attention checks: never a main case.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kl_grade__isnull=True) | Q(kl_grade__lte=KL.max),
                name="image_kl_grade_0_4",
            ),
            models.CheckConstraint(
                condition=Q(source="synthetic")
                | Q(generator__isnull=True, seed__isnull=True),
                name="image_real_has_no_generator",
            ),
            # A retried generation task finds its images instead of making more.
            models.UniqueConstraint(
                fields=["job", "job_index"], name="image_unique_job_index"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.reference_text()} {self.sha256[:10]}"

    def clean(self) -> None:
        found = reference_problems(self.references)
        if found:
            raise ValidationError({"references": found})

    def reference(self, scale: str) -> Code | None:
        """The image's reference value on the scale named, or None."""
        if scale == KL.name:
            return self.kl_grade
        return (self.references or {}).get(scale)

    def reference_text(self) -> str:
        """Its reference values in words: "KL 2", "BI-RADS 4"."""
        return describe_references(self.kl_grade, self.references or {})
