"""The project's own settings, typed: ``project_settings().image_size``.

Every one is declared once, in ``turingtest/settings.py`` (the ``TURINGTEST``
dictionary), read from the environment variable ``TURINGTEST_<NAME>`` with
its default there, and listed in docs/deploy.md; tests/test_conf.py keeps the
three in step. Code reads them only through :func:`project_settings`, which
checks names, types and allowed values once per settings change: a typo in a
name or a value that cannot be used stops the app at start with a message
naming the variable, instead of deep inside a request.

No Django import at module level beyond exceptions and signals, so
``settings.py`` can validate its own values with :meth:`ProjectSettings.from_mapping`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

IMAGE_FITS = ("crop", "pad")
IMAGE_NORMALISATIONS = ("none", "percentile")
IMAGE_SERVERS = ("django", "nginx", "apache", "nginx-signed")


@dataclass(frozen=True)
class ProjectSettings:
    # --- pool images: the canonical form every image is stored in ---
    image_size: int  # side length, px
    image_fit: str  # "crop" or "pad" to a square
    image_normalise: str  # "none" or "percentile"
    image_normalise_low: float  # percentiles, with "percentile"
    image_normalise_high: float
    png_compress_level: int  # 0 (fastest) to 9
    canonicalise: bool  # False: imports keep each file's own size
    keep_originals: bool  # keep each imported file beside its canonical form
    keep_dicom_originals: bool  # DICOM headers carry patient data: off by default
    # --- what an import or upload may be ---
    max_upload_bytes: int
    max_image_bytes: int | None  # None: max_upload_bytes
    max_archive_bytes: int | None  # None: 4 x max_upload_bytes
    max_archive_ratio: float  # unpacked / packed, against zip bombs
    max_archive_entries: int
    max_image_pixels: int
    min_image_side: int
    max_aspect_ratio: float
    # --- serving images to readers ---
    image_serving: str  # "django", "nginx", "apache" or "nginx-signed"
    image_internal_prefix: str  # nginx's internal location for them
    # "nginx-signed": the API hands readers short-lived signed URLs under this
    # location, and nginx checks them (secure_link) with this key.
    image_signed_prefix: str
    image_signing_key: str
    image_url_seconds: int
    # --- invitations ---
    invitation_days: int
    invitation_guesses_free: int
    invitation_guess_backoff_seconds: float
    invitation_guess_backoff_max_seconds: float
    # --- generation workers ---
    generation_lease_seconds: float
    generation_batch_size: int
    # --- backups of deleted studies (None: var/deleted) ---
    deleted_dir: Path | None

    def __post_init__(self) -> None:
        checks = [
            (self.image_fit in IMAGE_FITS, "IMAGE_FIT", f"one of {IMAGE_FITS}"),
            (
                self.image_normalise in IMAGE_NORMALISATIONS,
                "IMAGE_NORMALISE",
                f"one of {IMAGE_NORMALISATIONS}",
            ),
            (
                0 <= self.image_normalise_low < self.image_normalise_high <= 100,
                "IMAGE_NORMALISE_LOW",
                "below IMAGE_NORMALISE_HIGH, both from 0 to 100",
            ),
            (
                self.image_serving in IMAGE_SERVERS,
                "IMAGE_SERVING",
                "django, nginx, apache or nginx-signed",
            ),
            (
                self.image_serving != "nginx-signed"
                or len(self.image_signing_key) >= 32,
                "IMAGE_SIGNING_KEY",
                "a random string of at least 32 characters with "
                "TURINGTEST_IMAGE_SERVING=nginx-signed (the same in nginx.conf)",
            ),
            (
                self.image_signed_prefix.startswith("/")
                and self.image_signed_prefix.endswith("/"),
                "IMAGE_SIGNED_PREFIX",
                "a path that starts and ends with /",
            ),
            (self.image_url_seconds >= 60, "IMAGE_URL_SECONDS", "at least 60"),
            (self.image_size >= 8, "IMAGE_SIZE", "at least 8"),
            (0 <= self.png_compress_level <= 9, "PNG_COMPRESS_LEVEL", "0 to 9"),
            (self.generation_batch_size >= 1, "GENERATION_BATCH_SIZE", "at least 1"),
            (self.invitation_days >= 1, "INVITATION_DAYS", "at least 1"),
        ]
        for ok, name, expected in checks:
            if not ok:
                value = getattr(self, name.lower())
                shown = (
                    f"{len(value)} characters" if name.endswith("_KEY") else repr(value)
                )
                raise ImproperlyConfigured(
                    f"TURINGTEST_{name} must be {expected}, not {shown}."
                )

    @property
    def image_bytes_limit(self) -> int:
        return self.max_image_bytes or self.max_upload_bytes

    @property
    def archive_bytes_limit(self) -> int:
        return self.max_archive_bytes or 4 * self.max_upload_bytes

    @classmethod
    def names(cls) -> list[str]:
        """The settings' names as ``settings.TURINGTEST`` spells them."""
        return [f.name.upper() for f in dataclasses.fields(cls)]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ProjectSettings:
        """From ``settings.TURINGTEST``: every name declared, none unknown."""
        names = cls.names()
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown TURINGTEST setting(s): {', '.join(unknown)}. "
                f"Known: {', '.join(names)}."
            )
        missing = [name for name in names if name not in values]
        if missing:
            raise ImproperlyConfigured(
                f"TURINGTEST does not declare {', '.join(missing)} "
                "(turingtest/settings.py declares them all)."
            )
        kwargs = {}
        for field in dataclasses.fields(cls):
            value = values[field.name.upper()]
            # Postponed annotations: every field's type is its source text.
            assert isinstance(field.type, str)
            kwargs[field.name] = _typed(field.name.upper(), value, field.type)
        return cls(**kwargs)


def _typed(name: str, value: Any, kind: str) -> Any:
    """``value`` as the field's type (annotations are strings here)."""
    optional = kind.endswith(" | None")
    base = kind.removesuffix(" | None")
    if value is None or (value == "" and base != "str"):
        if optional:
            return None
        raise ImproperlyConfigured(f"TURINGTEST_{name} must be set.")
    try:
        if base == "bool":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("1", "true", "yes", "on")
            return bool(value)
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and value % 1):
                raise ValueError(value)
            return int(value)
        if base == "float":
            return float(value)
        if base == "Path":
            return Path(value)
        return str(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"TURINGTEST_{name} must be {'a whole number' if base == 'int' else 'a ' + base}, "
            f"not {value!r}."
        ) from None


@lru_cache(maxsize=1)
def project_settings() -> ProjectSettings:
    """The project's settings, checked; cached until a setting changes."""
    from django.conf import settings

    return ProjectSettings.from_mapping(settings.TURINGTEST)


def _forget(*, setting: str, **kwargs) -> None:
    if setting == "TURINGTEST":
        project_settings.cache_clear()


setting_changed.connect(_forget, dispatch_uid="turingtest.conf")
