"""Writes to the image pool: one image from pixels, or a whole import.

Every image enters the pool in two steps: its canonical PNG (and the
original) is written under the SHA-256 of the canonical bytes, then its row
is saved; an import saves the rows of up to ``BATCH_SIZE`` files in one
transaction. Any failure, an interrupt included, deletes the files whose rows
were not committed, so an import leaves rows with their files or nothing.
A hard kill between writing and committing can still leave files without
rows; :func:`pool_orphans_remove` sweeps those. Two processes importing the
same content at the same moment are settled by the unique ``sha256``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from turingtest.conf import project_settings
from turingtest.domain import references as reference_values
from turingtest.domain.scales import KL, Code
from turingtest.imaging.canonical import CanonicalSpec, canonicalise
from turingtest.imaging.decode import ImageRejected, Limits, decode, sniff
from turingtest.imaging.models import Image, ImportBatch, Source, Tag
from turingtest.media_storage import STORAGE_ERRORS

if TYPE_CHECKING:
    # Annotations only: generation imports the pool, never the other way.
    from turingtest.generation.models import GenerationJob, Generator

POOL_DIR = "pool"
MIN_IMAGE_SIZE = 8  # px: the smallest canonical side a study or import may ask for
_RANGE = KL.range_text("–")  # the grades in messages, with an en dash
ORIGINALS_DIR = "originals"
EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "TIFF": ".tif", "DICOM": ".dcm"}
# Files next to a dataset that are not images (readmes, manifests) are skipped
# when they sit at the top of the imported folder.
DOC_SUFFIXES = {".csv", ".txt", ".md", ".json", ".pdf", ".html", ".rst", ".yaml"}
IGNORED_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
MANIFEST_COLUMNS = ("path",)
# Besides the path, a manifest gives each image at least one reference value:
# kl_grade (the reference study's column, also read as reference_kl) or
# reference_<scale> for any other scale (reference_birads).
MANIFEST_HELP = (
    "needs path and kl_grade or reference_<scale> columns (e.g. "
    "reference_birads)[, source, patient, side, note, seed]"
)
# Rows committed together: one fsync per batch, and a write lock held for
# a fraction of a second only (rows are saved after the files are written).
BATCH_SIZE = 32


class ImportRefused(ValueError):
    """The import as a whole cannot go ahead; nothing was written."""


@dataclass(frozen=True)
class FileOutcome:
    """One file of an import: where it came from and what happened to it."""

    file: str
    reason: str = ""
    image: Image | None = None


@dataclass
class ImportResult:
    imported: list[FileOutcome] = field(default_factory=list)
    duplicates: list[FileOutcome] = field(default_factory=list)
    rejected: list[FileOutcome] = field(default_factory=list)
    batch: ImportBatch | None = None

    @property
    def failed(self) -> bool:
        """Nothing could be imported and something was rejected."""
        return not self.imported and bool(self.rejected)

    @property
    def total(self) -> int:
        return len(self.imported) + len(self.duplicates) + len(self.rejected)

    def extend(self, other: ImportResult) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.rejected += other.rejected

    def summary(self) -> str:
        text = (
            f"{len(self.imported)} imported, {len(self.duplicates)} duplicates "
            f"skipped, {len(self.rejected)} rejected"
        )
        if self.batch is not None and self.imported:
            text += f" (import batch {self.batch.name!r})"
        return text


@dataclass(frozen=True)
class ImportLimits:
    max_file_bytes: int
    max_archive_bytes: int
    max_archive_ratio: float
    max_archive_entries: int

    @classmethod
    def from_settings(cls) -> ImportLimits:
        conf = project_settings()
        return cls(
            max_file_bytes=conf.image_bytes_limit,
            max_archive_bytes=conf.archive_bytes_limit,
            max_archive_ratio=conf.max_archive_ratio,
            max_archive_entries=conf.max_archive_entries,
        )


def _keep_originals() -> bool:
    return project_settings().keep_originals


def _keep_dicom_originals() -> bool:
    # A DICOM file carries its patient's data in the header; keeping it would
    # store exactly what the import is meant to leave behind.
    return project_settings().keep_dicom_originals


def _canonical_by_default() -> bool:
    return project_settings().canonicalise


# --------------------------------------------------------------------------
# Import batches and tags
# --------------------------------------------------------------------------


def import_batch_default_name(label: str, *, now=None) -> str:
    """``label`` and the time, made unique: "knee-kl-sample 2026-12-02 03:50"."""
    now = timezone.localtime(now or timezone.now())
    base = f"{label[:90]} {now:%Y-%m-%d %H:%M}".strip()
    name, n = base, 1
    while ImportBatch.objects.filter(name=name).exists():
        n += 1
        name = f"{base} ({n})"
    return name


@transaction.atomic
def import_batch_get_or_create(
    *, name: str, description: str = "", created_by=None
) -> ImportBatch:
    """The batch called ``name``, created if new: importing under a name
    that exists adds to that batch."""
    name = " ".join(name.split())
    if not name:
        raise ValidationError("An import batch needs a name.")
    batch = ImportBatch.objects.filter(name=name).first()
    if batch is not None:
        return batch
    batch = ImportBatch(name=name, description=description, created_by=created_by)
    batch.full_clean()
    batch.save()
    return batch


def import_batch_drop_if_empty(*, batch: ImportBatch) -> bool:
    """Delete a batch no image came in with (an import of duplicates only)."""
    deleted, _ = ImportBatch.objects.filter(pk=batch.pk, images__isnull=True).delete()
    return bool(deleted)


def tags_get_or_create(*, names: list[str]) -> list[Tag]:
    tags = []
    for name in names:
        tag = Tag.objects.filter(name=name).first()
        if tag is None:
            tag = Tag(name=name)
            tag.full_clean()
            tag.save()
        tags.append(tag)
    return tags


@transaction.atomic
def images_tag(*, images, names: list[str], remove: bool = False) -> int:
    """Put the tags ``names`` on ``images`` (or take them off); returns how many images."""
    ids = list(images.values_list("pk", flat=True))
    if remove:
        Image.tags.through.objects.filter(
            image_id__in=ids, tag__name__in=names
        ).delete()
        return len(ids)
    for tag in tags_get_or_create(names=names):
        have = set(
            Image.tags.through.objects.filter(tag=tag, image_id__in=ids).values_list(
                "image_id", flat=True
            )
        )
        Image.tags.through.objects.bulk_create(
            Image.tags.through(image_id=i, tag=tag) for i in ids if i not in have
        )
    return len(ids)


# --------------------------------------------------------------------------
# One image
# --------------------------------------------------------------------------


def _storage():
    return Image._meta.get_field("file").storage


def _write(name: str, data: bytes, written: list[str]) -> str:
    storage = _storage()
    if storage.exists(name):
        with storage.open(name, "rb") as fh:
            if fh.read() == data:
                return name  # left by an earlier run; content-addressed, so reuse it
        storage.delete(name)
    saved = storage.save(name, ContentFile(data))
    written.append(saved)
    return saved


def _discard(names: list[str]) -> None:
    """Delete files this process wrote, unless a saved row already uses them
    (another import of the same content may have picked the file up)."""
    storage = _storage()
    for name in names:
        try:
            if Image.objects.filter(Q(file=name) | Q(original=name)).exists():
                continue
        except DatabaseError:
            pass  # the database is gone: our rows cannot have been committed
        try:
            storage.delete(name)
        except STORAGE_ERRORS:
            pass


def _existing(sha256: str, job: GenerationJob | None, job_index: int | None):
    image = Image.objects.filter(sha256=sha256).first()
    if image is None and job is not None and job_index is not None:
        image = Image.objects.filter(job=job, job_index=job_index).first()
    return image


def _original_suffix(data: bytes, name: str) -> str:
    kind = sniff(data)
    if kind in EXTENSIONS:
        return EXTENSIONS[kind]
    suffix = Path(name).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ".bin"


@dataclass
class _Pending:
    """An image whose files are written and whose row is not saved yet."""

    image: Image
    written: list[str]


def _image_prepare(
    *,
    stored: bytes,
    sha256: str,
    suffix: str,
    width: int,
    height: int,
    source: str,
    kl_grade: int | None,
    origin: str,
    generator: Generator | None,
    seed: int | None,
    job: GenerationJob | None,
    job_index: int | None,
    original_bytes: bytes | None,
    original_name: str,
    batch: ImportBatch | None = None,
    references: dict[str, Code] | None = None,
) -> Image | _Pending:
    """The image already holding this content (or job slot), or a pending one."""
    existing = _existing(sha256, job, job_index)
    if existing is not None:
        return existing
    written: list[str] = []
    try:
        file_name = _write(f"{POOL_DIR}/{sha256}{suffix}", stored, written)
        original = ""
        if original_bytes is not None and _keep_originals():
            ext = _original_suffix(original_bytes, original_name)
            original = _write(f"{ORIGINALS_DIR}/{sha256}{ext}", original_bytes, written)
    except BaseException:
        _discard(written)
        raise
    image = Image(
        source=source,
        kl_grade=kl_grade,
        references=references or {},
        file=file_name,
        sha256=sha256,
        width=width,
        height=height,
        original=original,
        origin=origin,
        generator=generator,
        seed=seed,
        job=job,
        job_index=job_index,
        batch=batch,
    )
    return _Pending(image=image, written=written)


def _pending_save(pending: _Pending) -> tuple[Image, bool]:
    """Save the row in a savepoint. On a clash with an image stored in the
    meantime, that image is returned and this one's files are dropped."""
    image = pending.image
    try:
        with transaction.atomic():
            # Uniqueness is left to the database: the lookup in
            # _image_prepare found the usual duplicate, and a racing writer
            # ends in the IntegrityError branch either way.
            image.full_clean(validate_unique=False)
            image.save()
        return image, True
    except (IntegrityError, ValidationError):
        existing = _existing(image.sha256, image.job, image.job_index)
        _discard(pending.written)
        if existing is not None:
            return existing, False
        raise


def canonical_spec(size: int | None = None) -> CanonicalSpec:
    """The configured canonical form, at ``size`` px where given."""
    spec = CanonicalSpec.from_settings()
    if size is None:
        return spec
    if isinstance(size, bool) or not isinstance(size, int) or size < MIN_IMAGE_SIZE:
        raise ImportRefused(
            f"the image size must be a whole number of at least {MIN_IMAGE_SIZE} px"
        )
    return dataclasses.replace(spec, size=size)


@transaction.atomic
def image_create(
    *,
    pixels,
    source: str,
    kl_grade: int | None,
    origin: str = "",
    generator: Generator | None = None,
    seed: int | None = None,
    job: GenerationJob | None = None,
    job_index: int | None = None,
    original_bytes: bytes | None = None,
    original_name: str = "",
    batch: ImportBatch | None = None,
    size: int | None = None,
    references: dict[str, Code] | None = None,
) -> Image:
    """Put one image into the pool in canonical form (``size`` px square;
    the configured size by default).

    ``pixels``: a 2-D uint8 (or uint16) array, or a PIL image. Returns the
    existing image when the same canonical content, or the same
    ``(job, job_index)``, is already in the pool, so a retried generation
    task does not duplicate.
    """
    canon = canonicalise(pixels, canonical_spec(size))
    step = _image_prepare(
        stored=canon.png,
        sha256=canon.sha256,
        suffix=".png",
        width=canon.width,
        height=canon.height,
        source=source,
        kl_grade=kl_grade,
        origin=origin,
        generator=generator,
        seed=seed,
        job=job,
        job_index=job_index,
        original_bytes=original_bytes,
        original_name=original_name,
        batch=batch,
        references=references,
    )
    if isinstance(step, Image):
        return step
    try:
        image, _ = _pending_save(step)
    except BaseException:
        _discard(step.written)
        raise
    return image


# --------------------------------------------------------------------------
# Imports: find candidate files, then import each on its own
# --------------------------------------------------------------------------


@dataclass
class _Candidate:
    name: str  # shown to the admin
    parts: tuple[str, ...]  # path components used for the grade/split layout
    read: Callable[[], bytes] | None = None
    problem: str = ""
    kl_grade: int | None = None
    references: dict[str, Code] = field(default_factory=dict)
    source: str | None = None
    seed: int | None = None
    origin_extra: str = ""

    @property
    def split(self) -> str | None:
        return self.parts[-3] if len(self.parts) >= 3 else None

    @property
    def folder(self) -> str | None:
        return self.parts[-2] if len(self.parts) >= 2 else None


def _ignored(name: str) -> bool:
    if name in (".", ".."):
        return False
    return name.startswith(".") or name.lower() in IGNORED_NAMES


def _file_reader(path: Path, limit: int) -> Callable[[], bytes]:
    def read() -> bytes:
        size = path.stat().st_size
        if size > limit:
            raise ImageRejected(f"file too large ({size:,} bytes; limit {limit:,})")
        return path.read_bytes()

    return read


def _folder_candidates(root: Path, limits: ImportLimits) -> Iterator[_Candidate]:
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).parts
        for d in sorted(dirnames):
            p = here / d
            if _ignored(d):
                dirnames.remove(d)
            elif p.is_symlink():
                dirnames.remove(d)
                if not p.resolve().is_relative_to(real_root):
                    yield _Candidate(
                        name="/".join((root.name, *rel_dir, d)),
                        parts=(root.name, *rel_dir, d),
                        problem="symlink leads outside the imported folder",
                    )
        dirnames.sort()
        for f in sorted(filenames):
            if _ignored(f):
                continue
            p = here / f
            parts = (root.name, *rel_dir, f)
            cand = _Candidate(name="/".join(parts), parts=parts)
            if not rel_dir and p.suffix.lower() in DOC_SUFFIXES:
                continue
            if p.is_symlink() and not p.resolve().is_relative_to(real_root):
                cand.problem = "symlink leads outside the imported folder"
            elif not p.is_file():
                cand.problem = "not a regular file"
            else:
                cand.read = _file_reader(p, limits.max_file_bytes)
            yield cand


def _unsafe_member(name: str) -> bool:
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    return (
        posix.startswith("/")
        or ".." in parts
        or bool(parts and re.match(r"^[A-Za-z]:", parts[0]))
    )


def _zip_candidates(
    zf: zipfile.ZipFile, label: str, limits: ImportLimits
) -> Iterator[_Candidate]:
    infos = [i for i in zf.infolist() if not i.is_dir()]
    if len(infos) > limits.max_archive_entries:
        raise ImportRefused(
            f"{label}: {len(infos):,} entries (limit {limits.max_archive_entries:,})"
        )
    total = sum(i.file_size for i in infos)
    if total > limits.max_archive_bytes:
        raise ImportRefused(
            f"{label} would expand to {total:,} bytes "
            f"(limit {limits.max_archive_bytes:,}): archive bomb or too big"
        )
    for info in infos:
        if info.file_size > 1024 * 1024 and info.file_size > (
            limits.max_archive_ratio * max(info.compress_size, 1)
        ):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ImportRefused(
                f"{label}: entry {info.filename!r} expands {ratio:,.0f}:1 "
                f"(limit {limits.max_archive_ratio:,.0f}:1): archive bomb"
            )
    for info in infos:
        posix = info.filename.replace("\\", "/")
        parts = tuple(p for p in PurePosixPath(posix).parts if p not in ("", "/"))
        if any(_ignored(p) for p in parts):
            continue
        if len(parts) == 1 and PurePosixPath(posix).suffix.lower() in DOC_SUFFIXES:
            continue
        cand = _Candidate(name=f"{label}:{info.filename}", parts=parts)
        if _unsafe_member(info.filename):
            cand.problem = "unsafe path in archive (absolute or with '..')"
        elif stat.S_ISLNK(info.external_attr >> 16):
            cand.problem = "symbolic link in archive"
        elif info.flag_bits & 0x1:
            cand.problem = "encrypted archive entry"
        elif info.file_size > limits.max_file_bytes:
            cand.problem = (
                f"file too large ({info.file_size:,} bytes; "
                f"limit {limits.max_file_bytes:,})"
            )
        else:
            cand.read = _zip_reader(zf, info)
        yield cand


def _zip_reader(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            # ZipExtFile stops at the declared size and checks the CRC.
            with zf.open(info) as fh:
                return fh.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ImageRejected(f"damaged archive entry: {exc}") from None

    return read


def _grade_from_folder(
    cand: _Candidate, grade: int | None, references: dict[str, Code] | None = None
) -> None:
    if cand.problem or cand.kl_grade is not None or cand.references:
        return
    if grade is not None or references:
        cand.kl_grade = grade
        cand.references = dict(references or {})
        return
    folder = cand.folder
    if folder is None:
        cand.problem = f"not in a grade folder ({_RANGE}) and no grade given"
    elif folder.isdigit() and int(folder) in KL:
        cand.kl_grade = int(folder)
    elif folder.isdigit():
        cand.problem = f"grade folder '{folder}' is not a {KL.short_label} ({_RANGE})"
    else:
        cand.problem = f"folder '{folder}' is not a {KL.short_label} ({_RANGE})"


def _read_manifest(data: bytes, label: str) -> list[dict[str, str]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused(f"manifest {label} is not UTF-8 text") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in MANIFEST_COLUMNS if c not in columns]
    try:
        scales = [reference_values.scale_of_column(c) for c in columns]
    except reference_values.ReferenceValueError as exc:
        raise ImportRefused(f"manifest {label}: {exc}") from None
    if not any(scales) and "kl_grade" not in columns:
        missing.append("kl_grade or reference_<scale>")
    if "kl_grade" in columns and reference_values.column(KL) in columns:
        raise ImportRefused(
            f"manifest {label} has both kl_grade and {reference_values.column(KL)}: "
            "keep one"
        )
    if missing:
        raise ImportRefused(
            f"manifest {label} lacks column(s) {', '.join(missing)} ({MANIFEST_HELP})"
        )
    rows = []
    for row in reader:
        rows.append(
            {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k}
        )
    return rows


def _manifest_candidates(
    rows: list[dict[str, str]],
    lookup: Callable[[str], _Candidate | None],
    label: str,
) -> Iterator[_Candidate]:
    for number, row in enumerate(rows, start=2):
        rel = row.get("path", "")
        name = f"{label} row {number}: {rel or '(no path)'}"
        if not rel:
            yield _Candidate(name=name, parts=(), problem="manifest row without a path")
            continue
        if _unsafe_member(rel):
            yield _Candidate(name=name, parts=(), problem="unsafe path in manifest")
            continue
        cand = lookup(rel)
        if cand is None:
            yield _Candidate(
                name=name, parts=(), problem="listed in the manifest but not found"
            )
            continue
        _manifest_references(cand, row)
        if row.get("source"):
            if row["source"] not in Source.values:
                cand.problem = cand.problem or f"source {row['source']!r} unknown"
            cand.source = row["source"]
        if row.get("seed"):
            try:
                cand.seed = int(row["seed"])
            except ValueError:
                cand.problem = cand.problem or f"seed {row['seed']!r} not an integer"
        extra = [f"{k}={row[k]}" for k in ("patient", "side", "note") if row.get(k)]
        cand.origin_extra = ", ".join(extra)
        yield cand


def _manifest_references(cand: _Candidate, row: dict[str, str]) -> None:
    """The row's reference values onto the candidate; an empty cell is no
    value, a bad one the file's problem, a row with none at all too."""
    given = {"kl_grade": row.get("kl_grade", "")} if "kl_grade" in row else {}
    given |= {c: v for c, v in row.items() if c.startswith(reference_values.PREFIX)}
    for name, raw in given.items():
        if not raw.strip():
            continue
        scale = (
            KL.name if name == "kl_grade" else reference_values.scale_of_column(name)
        )
        assert scale is not None  # only reference columns are in `given`
        try:
            code = reference_values.parse(scale, raw)
        except reference_values.ReferenceValueError as exc:
            problem = str(exc)
            if name == "kl_grade":
                problem = f"kl_grade {raw!r} is not {_RANGE}"
            cand.problem = cand.problem or problem
            continue
        if scale == KL.name:
            cand.kl_grade = int(code)
        else:
            cand.references[scale] = code
    if cand.kl_grade is None and not cand.references:
        cand.problem = (
            cand.problem
            or "no reference value in its row (kl_grade, reference_<scale>)"
        )


def _select_split(cands: list[_Candidate], split: str | None, label: str):
    graded = {
        c.split
        for c in cands
        if c.split is not None and c.folder is not None and c.folder.isdigit()
    }
    if split is not None:
        # Unsafe entries are reported whichever split they would belong to.
        chosen = [c for c in cands if c.split == split or c.problem]
        if not chosen and cands:
            found = ", ".join(sorted(graded)) or "none"
            raise ImportRefused(f"{label} has no split {split!r} (splits: {found})")
        return chosen
    # A dataset root with train/ and test/ must not be mixed by accident.
    if len(graded) > 1:
        raise ImportRefused(
            f"{label} holds several splits ({', '.join(sorted(graded))}): "
            "choose one with --split"
        )
    return cands


def images_import(
    path: str | os.PathLike,
    *,
    source: str,
    manifest: str | os.PathLike | None = None,
    generator: Generator | None = None,
    split: str | None = None,
    grade: int | None = None,
    references: dict[str, Code] | None = None,
    origin_prefix: str = "",
    canonical: bool | None = None,
    all_or_nothing: bool = False,
    progress: Callable[[int, int], None] | None = None,
    batch: ImportBatch | None = None,
    tags: list[str] | tuple[str, ...] = (),
    size: int | None = None,
) -> ImportResult:
    """Import a file, a ``{grade}/*`` folder, a ``{split}/{grade}/*`` dataset,
    a ZIP of either, or a CSV manifest (``path`` and ``kl_grade`` or
    ``reference_<scale>`` columns, e.g. ``reference_birads``, ``[, source,
    patient, side, note, seed]``; paths relative to the manifest, or to
    ``path`` when ``manifest`` is given separately; a ZIP may hold its own
    ``manifest.csv`` at its top).

    Each file goes in on its own; bad files are listed in the result with a
    reason. Raises :class:`ImportRefused` only for problems with the import
    as a whole (missing path, ambiguous splits, archive bomb, bad manifest),
    before anything is written. ``grade`` sets the KL grade of every file,
    ``references`` its reference values on other scales (``{"birads": 4}``);
    folder names are then ignored. ``canonical=False`` stores files as they
    came, which breaks blinding; it exists to show that the audit notices.
    ``progress(done, total)`` is called after each file.

    New images record ``batch``; without one, the import is its own batch,
    named after ``path`` and the time (and dropped again if nothing new came
    in). ``tags`` go on every image of the import, duplicates included.

    An exception part-way (an interrupt, a database error) leaves every
    committed image with its file; with ``all_or_nothing`` the images this
    call created are taken out again before the exception propagates.
    """
    if source not in Source.values:
        raise ImportRefused(f"source must be one of {', '.join(Source.values)}")
    if generator is not None and source != Source.SYNTHETIC:
        raise ImportRefused("a generator can only be given for synthetic images")
    if grade is not None and grade not in KL:
        raise ImportRefused(f"grade {grade} is not a {KL.short_label} ({_RANGE})")
    problems = reference_values.problems(references) if references else []
    if problems:
        raise ImportRefused(" ".join(problems))
    root = Path(path)
    if not root.exists() and not root.is_symlink():
        raise ImportRefused(f"{root} does not exist")
    limits = ImportLimits.from_settings()
    canonical = _canonical_by_default() if canonical is None else canonical
    spec = canonical_spec(size)
    pixel_limits = Limits.from_settings()

    result = ImportResult()
    options = {
        "source": source,
        "generator": generator,
        "origin_prefix": origin_prefix,
        "canonical": canonical,
        "spec": spec,
        "pixel_limits": pixel_limits,
    }
    for name in tags:  # a bad tag name stops the import before any file
        try:
            Tag(name=name).clean_fields()
        except ValidationError:
            raise ImportRefused(
                f"tag {name!r}: use letters, digits, hyphens and underscores only"
            ) from None
    own_batch = batch is None
    with ExitStack() as stack:
        cands = _candidates(root, manifest, limits, stack, split, grade, references)
        if own_batch:
            batch = import_batch_get_or_create(
                name=import_batch_default_name(root.name),
                description=f"{source} images from {root}",
            )
        options["batch"] = result.batch = batch
        total, done = len(cands), 0
        try:
            for start in range(0, total, BATCH_SIZE):
                chunk = cands[start : start + BATCH_SIZE]
                for kind, outcome in _import_batch(chunk, options):
                    getattr(result, kind).append(outcome)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        except BaseException:
            if all_or_nothing:
                images_discard(images=[o.image for o in result.imported if o.image])
            raise
        finally:
            with suppress(DatabaseError):
                if own_batch and import_batch_drop_if_empty(batch=batch):
                    result.batch = None
    if tags:
        outcomes = result.imported + result.duplicates
        images_tag(
            images=Image.objects.filter(
                pk__in=[o.image.pk for o in outcomes if o.image]
            ),
            names=list(tags),
        )
    return result


def archive_check(path: str | os.PathLike) -> None:
    """Raise :class:`ImportRefused` if a ZIP is unreadable or a bomb."""
    limits = ImportLimits.from_settings()
    try:
        with zipfile.ZipFile(path) as zf:
            for _ in _zip_candidates(zf, Path(path).name, limits):
                pass
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ImportRefused(
            f"{Path(path).name} is a damaged archive (truncated or corrupt: {exc}); "
            "nothing was imported. Upload it again, or check the file."
        ) from None


@transaction.atomic
def images_discard(*, images: list[Image]) -> None:
    """Take just-imported images out of the pool again, rows and files.

    Only for images no study uses yet (cases protect theirs).
    """
    names = []
    for image in images:
        names.append(image.file.name)
        if image.original:
            names.append(image.original.name)
    Image.objects.filter(pk__in=[i.pk for i in images]).delete()
    transaction.on_commit(lambda: _discard(names))


ZIP_MANIFEST = "manifest.csv"


def _zip_manifest(
    zf: zipfile.ZipFile, label: str, limits: ImportLimits
) -> tuple[bytes, str, str] | None:
    """A ``manifest.csv`` at the top of an archive (or of the one folder
    that holds everything in it), which then lists the archive's images and
    their reference values as a manifest beside a folder does: its bytes,
    its name, and the folder its paths are relative to."""
    names = [i.filename for i in zf.infolist() if not i.is_dir()]
    tops = {name.split("/", 1)[0] for name in names}
    folder = f"{next(iter(tops))}/" if len(tops) == 1 and "/" in names[0] else ""
    try:
        info = zf.getinfo(folder + ZIP_MANIFEST)
    except KeyError:
        return None
    where = f"{label}:{info.filename}"
    if info.flag_bits & 0x1:
        raise ImportRefused(f"{where} is encrypted")
    if info.file_size > limits.max_file_bytes:
        raise ImportRefused(f"{where} is too large")
    try:
        with zf.open(info) as fh:
            return fh.read(info.file_size + 1), where, folder
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:
        raise ImportRefused(f"{where} is damaged: {exc}") from None
    except NotImplementedError as exc:
        raise ImportRefused(f"{where}: {exc}") from None


def _candidates(
    root: Path,
    manifest: str | os.PathLike | None,
    limits: ImportLimits,
    stack: ExitStack,
    split: str | None,
    grade: int | None,
    references: dict[str, Code] | None = None,
) -> list[_Candidate]:
    is_zip = root.is_file() and zipfile.is_zipfile(root)
    if manifest is None and root.is_file() and root.suffix.lower() == ".csv":
        manifest, root = root, root.parent

    manifest_data: tuple[bytes, str] | None = None
    manifest_folder = ""  # inside an archive: the folder its paths start from
    if is_zip:
        try:
            zf = stack.enter_context(zipfile.ZipFile(root))
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImportRefused(f"{root.name} is not a readable ZIP: {exc}") from None
        found = list(_zip_candidates(zf, root.name, limits))
        inner = _zip_manifest(zf, root.name, limits) if manifest is None else None
        if inner is not None:
            data, name, manifest_folder = inner
            manifest_data = data, name
    elif root.is_dir():
        found = list(_folder_candidates(root, limits))
    else:
        parts = (root.parent.name, root.name)
        cand = _Candidate(name=root.name, parts=parts)
        if root.is_symlink():
            cand.problem = "symlink: import the file it points to"
        else:
            cand.read = _file_reader(root, limits.max_file_bytes)
        found = [cand]

    if manifest is not None:
        manifest = Path(manifest)
        if not manifest.is_file():
            raise ImportRefused(f"manifest {manifest} does not exist")
        manifest_data = manifest.read_bytes(), manifest.name
    if manifest_data is not None:
        rows = _read_manifest(*manifest_data)
        if split is not None and rows and "split" in rows[0]:
            rows = [r for r in rows if r.get("split") == split]
        by_rel: dict[str, _Candidate] = {}
        for c in found:
            rel = c.parts[1:] if not is_zip and root.is_dir() else c.parts
            by_rel["/".join(rel)] = c

        def lookup(rel: str) -> _Candidate | None:
            key = "/".join(PurePosixPath(rel.replace("\\", "/")).parts)
            # Manifests often name files from the folder above the dataset.
            alt = key.removeprefix(f"{root.name}/")
            return (
                by_rel.pop(manifest_folder + key, None)
                or by_rel.pop(key, None)
                or by_rel.pop(alt, None)
            )

        return list(_manifest_candidates(rows, lookup, manifest_data[1]))

    found = _select_split(found, split, root.name)
    for cand in found:
        _grade_from_folder(cand, grade, references)
    return found


@dataclass
class _Ready:
    cand: _Candidate
    pending: _Pending
    notes: list[str]


def _import_batch(
    batch: list[_Candidate], options: dict
) -> list[tuple[str, FileOutcome]]:
    """Prepare each file (decode, canonicalise, write), then save all rows in
    one transaction: one commit per batch instead of per image. Any exception
    takes back the files of rows that were not committed."""
    outcomes: list[tuple[str, FileOutcome]] = []
    ready: list[_Ready] = []
    same_as: list[tuple[_Candidate, str]] = []  # repeats within this batch
    by_sha: dict[str, _Ready] = {}
    try:
        for cand in batch:
            step = _import_prepare(cand, by_sha=by_sha, **options)
            if isinstance(step, _Ready):
                ready.append(step)
                by_sha[step.pending.image.sha256] = step
            elif isinstance(step, str):
                same_as.append((cand, step))
            else:
                outcomes.append(step)
        saved: dict[str, Image] = {}
        with transaction.atomic():
            for item in ready:
                try:
                    image, created = _pending_save(item.pending)
                except ValidationError as exc:
                    outcomes.append(
                        (
                            "rejected",
                            FileOutcome(item.cand.name, "; ".join(exc.messages)),
                        )
                    )
                    continue
                saved[item.pending.image.sha256] = image
                if created:
                    reason = f"{image.reference_text()}, {image.source}"
                    if item.notes:
                        reason += "; " + "; ".join(item.notes)
                    outcomes.append(
                        ("imported", FileOutcome(item.cand.name, reason, image))
                    )
                else:
                    outcomes.append(
                        (
                            "duplicates",
                            FileOutcome(
                                item.cand.name,
                                _duplicate_reason(image, item.cand),
                                image,
                            ),
                        )
                    )
    except BaseException:
        for item in ready:
            _discard(item.pending.written)
        raise
    for cand, sha in same_as:
        image = saved.get(sha)
        if image is None:
            reason = "same image as another file of this import, which failed"
            outcomes.append(("rejected", FileOutcome(cand.name, reason)))
        else:
            reason = _duplicate_reason(image, cand)
            outcomes.append(("duplicates", FileOutcome(cand.name, reason, image)))
    return outcomes


def _import_prepare(
    cand: _Candidate,
    *,
    by_sha: dict[str, _Ready],
    source: str,
    generator: Generator | None,
    origin_prefix: str,
    canonical: bool,
    spec: CanonicalSpec,
    pixel_limits: Limits,
    batch: ImportBatch | None,
) -> tuple[str, FileOutcome] | _Ready | str:
    """A final outcome, a file ready to be saved, or the sha256 of an earlier
    file of the same batch with the same content."""
    if cand.problem:
        return "rejected", FileOutcome(cand.name, cand.problem)
    try:
        data = cand.read()
        decoded = decode(
            data, cand.parts[-1] if cand.parts else "", limits=pixel_limits
        )
    except ImageRejected as exc:
        return "rejected", FileOutcome(cand.name, str(exc))
    except OSError as exc:
        return "rejected", FileOutcome(cand.name, f"cannot read: {exc}")
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on bad input
        return "rejected", FileOutcome(cand.name, f"cannot decode: {exc}")

    if canonical:
        canon = canonicalise(decoded.pixels, spec)
        stored, sha, suffix = canon.png, canon.sha256, ".png"
        width, height = canon.width, canon.height
    else:
        stored, sha = data, hashlib.sha256(data).hexdigest()
        suffix = _original_suffix(data, cand.name)
        width, height = decoded.width, decoded.height
    if sha in by_sha:
        return sha

    source = cand.source or source
    details = [decoded.format, *decoded.notes]
    keep_original = canonical and (decoded.format != "DICOM" or _keep_dicom_originals())
    if canonical and not keep_original:
        details.append("original not kept")
    if cand.origin_extra:
        details.append(cand.origin_extra)
    step = _image_prepare(
        stored=stored,
        sha256=sha,
        suffix=suffix,
        width=width,
        height=height,
        source=source,
        kl_grade=cand.kl_grade,
        references=cand.references,
        origin=f"{origin_prefix}{cand.name} ({'; '.join(details)})",
        generator=generator,
        seed=cand.seed if source == Source.SYNTHETIC else None,
        job=None,
        job_index=None,
        original_bytes=data if keep_original else None,
        original_name=cand.name,
        batch=batch,
    )
    if isinstance(step, Image):
        return "duplicates", FileOutcome(cand.name, _duplicate_reason(step, cand), step)
    return _Ready(cand=cand, pending=step, notes=decoded.notes)


def _duplicate_reason(existing: Image, cand: _Candidate) -> str:
    reason = "same image already in the pool"
    if existing.origin:
        reason += f" (from {existing.origin.split(' (')[0]})"
    given = reference_values.all_of(cand.kl_grade, cand.references)
    if any(existing.reference(scale) != code for scale, code in given.items()):
        there = existing.reference_text()
        here = reference_values.describe(cand.kl_grade, cand.references)
        reason += f"; graded {there} there, {here} here"
    return reason


# --------------------------------------------------------------------------
# Consistency of files and rows
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PoolCheck:
    orphan_files: list[str]  # under pool/ or originals/ without a row
    missing_files: list[int]  # ids of images whose file is not there

    @property
    def ok(self) -> bool:
        return not self.orphan_files and not self.missing_files


def _stored_names() -> list[str]:
    storage = _storage()
    names = []
    for folder in (POOL_DIR, ORIGINALS_DIR):
        try:
            _, files = storage.listdir(folder)
        except FileNotFoundError:
            continue
        names += [f"{folder}/{f}" for f in files]
    return names


def pool_check() -> PoolCheck:
    """Files without rows and rows without files."""
    storage = _storage()
    referenced = set()
    missing = []
    for pk, name, original in Image.objects.values_list("pk", "file", "original"):
        referenced.add(name)
        if original:
            referenced.add(original)
        if not storage.exists(name):
            missing.append(pk)
    orphans = sorted(n for n in _stored_names() if n not in referenced)
    return PoolCheck(orphan_files=orphans, missing_files=missing)


def pool_orphans_remove(*, older_than: timedelta = timedelta(hours=1)) -> list[str]:
    """Delete pool files that no row references and that are older than
    ``older_than`` (younger ones may belong to an import still running)."""
    storage = _storage()
    cutoff = timezone.now() - older_than
    removed = []
    for name in pool_check().orphan_files:
        try:
            if storage.get_modified_time(name) <= cutoff:
                storage.delete(name)
                removed.append(name)
        except STORAGE_ERRORS:  # gone meanwhile, or the store is unreachable
            continue
    return removed
