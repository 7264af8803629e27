"""Backup, restore and deletion of one study, on SQLite and PostgreSQL alike.

A backup is one ZIP archive::

    manifest.json   format version, study, time, row counts, file checksums
    data.json       the study's rows (Django's serialization; times in full)
    media/...       every file its images use, under their storage names
    results/...     the CSVs of ``export_results``, readable without restoring

It holds everything the study's results depend on: the study, its phases and
cases, the images of those cases (and their generators and import batches),
invitations, the
readers with their accounts (password hashes included, so they can sign in
after a restore), enrollments, reading sessions with their stored orders,
judgments and revisions.

Restore inserts the rows with new primary keys and rewrites every reference
(the orders in ``ReadingSession.order`` included), so an archive restores into
the database it came from after the study was deleted, or into any other.
Rows that other studies share are matched rather than duplicated: users by
username, readers by code, generators and import batches by name, images by
SHA-256. Tags of images are not kept (staff labels of the pool). Generation
job links are not kept (a restored image has no job), since jobs belong to the
pool, not to the study.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models.functions import Coalesce

from turingtest.conf import project_settings
from turingtest.generation.models import Generator
from turingtest.imaging.models import Image, ImportBatch
from turingtest.media_storage import STORAGE_ERRORS
from turingtest.results.exports import RESULT_FILES, result_file_chunks
from turingtest.studies.models import (
    Case,
    Enrollment,
    Invitation,
    Judgment,
    JudgmentRevision,
    MachineScore,
    Phase,
    PhaseQuestion,
    Reader,
    ReadingSession,
    Study,
)
from turingtest.studies.services import study_close

FORMAT = "turingtest-study-backup"
VERSION = 1
USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "password",
    "is_active",
    "date_joined",
    "last_login",
)

# Parents before children: the order rows are written and restored in.
MODELS: list[tuple[str, type[models.Model]]] = [
    ("user", get_user_model()),
    ("reader", Reader),
    ("generator", Generator),
    ("batch", ImportBatch),
    ("image", Image),
    ("study", Study),
    ("phase", Phase),
    ("phase_question", PhaseQuestion),
    ("case", Case),
    ("invitation", Invitation),
    ("enrollment", Enrollment),
    ("session", ReadingSession),
    ("judgment", Judgment),
    ("revision", JudgmentRevision),
    ("machine_score", MachineScore),
]


class BackupInvalid(ValidationError):
    """The archive cannot be restored here; nothing was changed."""


@dataclass(frozen=True)
class RestoreResult:
    study: Study
    created: dict[str, int]
    reused: dict[str, int]
    files_written: int


def deleted_dir() -> Path:
    return project_settings().deleted_dir or settings.VAR_DIR / "deleted"


def _storage():
    return Image._meta.get_field("file").storage


def _study_rows(study: Study) -> dict[str, models.QuerySet]:
    cases = Case.objects.filter(study=study)
    images = Image.objects.filter(pk__in=cases.values("image"))
    enrollments = Enrollment.objects.filter(study=study)
    invitations = Invitation.objects.filter(study=study)
    readers = Reader.objects.filter(
        models.Q(pk__in=enrollments.values("reader"))
        | models.Q(pk__in=invitations.values("used_by"))
    )
    sessions = ReadingSession.objects.filter(enrollment__study=study)
    judgments = Judgment.objects.filter(session__in=sessions)
    return {
        "user": get_user_model().objects.filter(pk__in=readers.values("user")),
        "reader": readers,
        "generator": Generator.objects.filter(pk__in=images.values("generator")),
        "batch": ImportBatch.objects.filter(pk__in=images.values("batch")),
        "image": images,
        "study": Study.objects.filter(pk=study.pk),
        "phase": Phase.objects.filter(study=study),
        "phase_question": PhaseQuestion.objects.filter(phase__study=study),
        "case": cases,
        "invitation": invitations,
        "enrollment": enrollments,
        "session": sessions,
        "judgment": judgments,
        "revision": JudgmentRevision.objects.filter(judgment__in=judgments),
        "machine_score": MachineScore.objects.filter(judgment__in=judgments),
    }


def _fields(key: str, model: type[models.Model]) -> list[str] | None:
    if key == "user":
        return list(USER_FIELDS)  # no staff flags, groups or permissions
    if key == "batch":
        return ["name", "description", "created_at"]  # not who: accounts stay here
    if key == "image":
        return [
            f.name
            for f in model._meta.concrete_fields
            if not f.primary_key and f.name not in ("job", "job_index")
        ]
    return None


class _Encoder(DjangoJSONEncoder):
    """Django's JSON, but with times to the microsecond (its own stops at the
    millisecond, and a restored study must export exactly as before)."""

    def default(self, o):
        if isinstance(o, datetime):
            return o.isoformat()
        return super().default(o)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def _snapshot() -> Iterator[None]:
    """A transaction in which every query sees the same moment of the database."""
    with transaction.atomic():
        if connection.vendor == "postgresql" and len(connection.atomic_blocks) == 1:
            # Answers keep arriving during a backup of an open study; one
            # snapshot keeps judgments and the sessions they point to consistent.
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def study_backup(*, study: Study, out: str | os.PathLike) -> Path:
    """Write ``study`` to the archive ``out``; returns its path.

    The archive is written beside ``out`` and renamed into place at the end,
    so a failed backup never leaves half an archive under the final name.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(out.name + ".part")
    try:
        with _snapshot():
            _backup_into(study, part)
        with open(part, "rb") as fh:
            os.fsync(fh.fileno())
        part.replace(out)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return out


def _backup_into(study: Study, part: Path) -> None:
    study = Study.objects.get(pk=study.pk)
    rows = _study_rows(study)
    data: dict[str, list] = {}
    counts: dict[str, int] = {}
    for key, model in MODELS:
        objects = rows[key].order_by("pk")
        data[key] = serializers.serialize("python", objects, fields=_fields(key, model))
        counts[key] = len(data[key])
    media: dict[str, str] = {}
    storage = _storage()
    with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for image in rows["image"].order_by("pk"):
            for field in (image.file, image.original):
                if not field.name or field.name in media:
                    continue
                with storage.open(field.name, "rb") as fh:
                    content = fh.read()
                media[field.name] = _sha256(content)
                # Pool files are compressed images already: store them as they are.
                archive.writestr(f"media/{field.name}", content, zipfile.ZIP_STORED)
        archive.writestr("data.json", json.dumps(data, indent=1, cls=_Encoder))
        for name, columns, source in RESULT_FILES:
            with archive.open(f"results/{name}", "w", force_zip64=True) as fh:
                for chunk in result_file_chunks(study, columns, source):
                    fh.write(chunk)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "study": study.slug,
            "created_at": datetime.now(UTC).isoformat(),
            "database": connection.vendor,
            "counts": counts,
            "media": media,
        }
        archive.writestr("manifest.json", json.dumps(manifest, indent=1))


# --- restore -------------------------------------------------------------------


def _read_archive(path: Path) -> tuple[dict, dict, dict[str, bytes]]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise BackupInvalid(f"{path} is not a study backup: {exc}") from exc
    with archive:
        names = set(archive.namelist())
        if not {"manifest.json", "data.json"} <= names:
            raise BackupInvalid(f"{path} is not a study backup (no manifest.json).")
        manifest = json.loads(archive.read("manifest.json"))
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
            raise BackupInvalid(
                f"{path} has format {manifest.get('format')!r} version "
                f"{manifest.get('version')!r}; this version reads {FORMAT} {VERSION}."
            )
        data = json.loads(archive.read("data.json"))
        files: dict[str, bytes] = {}
        for name, digest in manifest["media"].items():
            content = archive.read(f"media/{name}")
            if _sha256(content) != digest:
                raise BackupInvalid(f"{name} in {path} is damaged (checksum differs).")
            files[name] = content
    return manifest, data, files


def _objects(data: dict, key: str) -> Iterable:
    rows = data.get(key, [])
    if key == "reader":
        rows = [_reader_fields(row) for row in rows]
    # The section names the model. Archives written before the pool and the
    # generators left the studies app label their rows "studies.image",
    # "studies.importbatch", "studies.generator": read them as today's models.
    label = dict(MODELS)[key]._meta.label_lower
    return serializers.deserialize("python", [row | {"model": label} for row in rows])


def _reader_fields(row: dict) -> dict:
    # Archives written before readers had a kind say "simulated": true/false.
    fields = dict(row["fields"])
    if "simulated" in fields:
        fields["kind"] = (
            Reader.Kind.SIMULATED if fields.pop("simulated") else Reader.Kind.HUMAN
        )
    return row | {"fields": fields}


def _insert(obj: models.Model) -> int:
    obj.pk = None
    # raw: keep the stored auto_now_add times (enrolled_at, started_at...).
    type(obj).save_base(obj, raw=True, force_insert=True)
    return obj.pk


def _write_files(files: dict[str, bytes]) -> list[str]:
    storage = _storage()
    written: list[str] = []
    try:
        for name, content in files.items():
            if storage.exists(name):
                with storage.open(name, "rb") as fh:
                    if fh.read() == content:
                        continue
                raise BackupInvalid(
                    f"{name} exists here with other content; refusing to overwrite it."
                )
            saved = storage.save(name, ContentFile(content))
            written.append(saved)
            if saved != name:
                raise BackupInvalid(f"{name} could not be stored under its own name.")
    except BaseException:
        _discard(written)
        raise
    return written


def _discard(names: list[str]) -> None:
    storage = _storage()
    for name in names:
        try:
            storage.delete(name)
        except STORAGE_ERRORS:
            pass


def study_restore(*, path: str | os.PathLike) -> RestoreResult:
    """Restore the study in the archive at ``path``; refuses if its slug exists.

    Files are written first and the rows in one transaction; if the rows
    cannot be stored, the files this restore wrote are removed again.
    """
    manifest, data, files = _read_archive(Path(path))
    slug = manifest["study"]
    if Study.objects.filter(slug=slug).exists():
        raise BackupInvalid(
            f"A study {slug!r} exists here already: delete it first, or restore "
            "into another database."
        )
    written = _write_files(files)
    try:
        result = _restore_rows(data)
    except BaseException:
        _discard(written)
        raise
    return RestoreResult(
        study=result[0], created=result[1], reused=result[2], files_written=len(written)
    )


@transaction.atomic
def _restore_rows(data: dict) -> tuple[Study, dict[str, int], dict[str, int]]:
    user_model = get_user_model()
    ids: dict[str, dict[int, int]] = {key: {} for key, _ in MODELS}
    created = dict.fromkeys(ids, 0)
    reused = dict.fromkeys(ids, 0)

    def keep(key: str, old: int, new: int, was_created: bool) -> None:
        ids[key][old] = new
        (created if was_created else reused)[key] += 1

    def match_or_insert(key: str, obj: models.Model, existing) -> None:
        old = obj.pk
        if existing is not None:
            keep(key, old, existing.pk, False)
        else:
            keep(key, old, _insert(obj), True)

    for d in _objects(data, "user"):
        obj = d.object
        existing = user_model.objects.filter(username=obj.username).first()
        match_or_insert("user", obj, existing)
    for d in _objects(data, "reader"):
        obj = d.object
        obj.user_id = ids["user"][obj.user_id]
        existing = Reader.objects.filter(code=obj.code).first()
        if existing is not None and existing.user_id != obj.user_id:
            raise BackupInvalid(
                f"Reader {obj.code} belongs to another account here; cannot restore."
            )
        match_or_insert("reader", obj, existing)
    for d in _objects(data, "generator"):
        obj = d.object
        match_or_insert(
            "generator", obj, Generator.objects.filter(name=obj.name).first()
        )
    for d in _objects(data, "batch"):
        obj = d.object
        match_or_insert("batch", obj, ImportBatch.objects.filter(name=obj.name).first())
    for d in _objects(data, "image"):
        obj = d.object
        existing = Image.objects.filter(sha256=obj.sha256).first()
        if existing is None and Image.objects.filter(token=obj.token).exists():
            raise BackupInvalid(
                f"Image token {obj.token} is taken here; cannot restore."
            )
        if obj.generator_id is not None:
            obj.generator_id = ids["generator"][obj.generator_id]
        if obj.batch_id is not None:
            obj.batch_id = ids["batch"][obj.batch_id]
        obj.job_id, obj.job_index = None, None
        match_or_insert("image", obj, existing)

    def insert_all(key: str, remap) -> None:
        for d in _objects(data, key):
            obj = d.object
            old = obj.pk
            remap(obj)
            keep(key, old, _insert(obj), True)

    def study_of(obj):
        obj.study_id = ids["study"][obj.study_id]

    insert_all("study", lambda obj: None)
    insert_all("phase", study_of)

    def phase_question(obj):
        obj.phase_id = ids["phase"][obj.phase_id]

    # Archives written before phases had questions of their own hold none.
    insert_all("phase_question", phase_question)

    def case(obj):
        study_of(obj)
        obj.image_id = ids["image"][obj.image_id]

    def invitation(obj):
        study_of(obj)
        if obj.used_by_id is not None:
            obj.used_by_id = ids["reader"][obj.used_by_id]

    def enrollment(obj):
        study_of(obj)
        obj.reader_id = ids["reader"][obj.reader_id]

    def session(obj):
        obj.enrollment_id = ids["enrollment"][obj.enrollment_id]
        if obj.phase_id is not None:
            obj.phase_id = ids["phase"][obj.phase_id]
        obj.order = [ids["case"][case_id] for case_id in obj.order]

    insert_all("case", case)
    # Images a restored study used for practice or attention checks stay out
    # of every study's main cases here too (archives from before images were
    # reserved do not say so).
    Image.objects.filter(
        cases__study_id__in=ids["study"].values(),
        cases__role__in=[Case.Role.PRACTICE, Case.Role.ATTENTION],
    ).update(reserved=True)
    insert_all("invitation", invitation)
    insert_all("enrollment", enrollment)
    insert_all("session", session)

    # Judgments and revisions have no automatic fields, so they can go in
    # batches; they are most of the rows.
    def bulk(key: str, model, remap) -> None:
        pending = []
        for d in _objects(data, key):
            obj = d.object
            remap(obj)
            pending.append((obj.pk, obj))
        for _, obj in pending:
            obj.pk = None
        model.objects.bulk_create([obj for _, obj in pending], batch_size=1000)
        for old, obj in pending:
            keep(key, old, obj.pk, True)

    def judgment(obj):
        obj.session_id = ids["session"][obj.session_id]
        obj.case_id = ids["case"][obj.case_id]

    def revision(obj):
        obj.judgment_id = ids["judgment"][obj.judgment_id]

    bulk("judgment", Judgment, judgment)
    bulk("revision", JudgmentRevision, revision)
    bulk("machine_score", MachineScore, revision)
    # Each session's position, from its judgments: archives written before
    # sessions stored it do not hold it.
    counted = (
        Judgment.objects.filter(session=models.OuterRef("pk"))
        .order_by()
        .values("session")
        .annotate(n=models.Count("id"))
        .values("n")
    )
    ReadingSession.objects.filter(pk__in=ids["session"].values()).update(
        answered=Coalesce(models.Subquery(counted), 0)
    )
    (study_pk,) = ids["study"].values()
    return Study.objects.get(pk=study_pk), created, reused


# --- deletion ------------------------------------------------------------------


def study_answer_count(*, study: Study) -> int:
    return Judgment.objects.filter(session__enrollment__study=study).count()


@dataclass(frozen=True)
class Deleted:
    slug: str
    answers: int
    archive: Path | None


def study_delete(*, study: Study, confirmation: str = "") -> Deleted:
    """Delete a study; one with answers only when ``confirmation`` is its slug.

    A study with answers is closed first (no new answers are taken), then
    backed up into :func:`deleted_dir` (results CSVs included) while its
    reading sessions are locked, so an answer in flight is either in the
    archive or refused; only then are its rows deleted. Images stay in the
    pool, which other studies share.
    """
    answers = study_answer_count(study=study)
    if answers and confirmation.strip() != study.slug:
        raise ValidationError(
            f"Study {study.slug!r} has {answers} answers. Type its slug to confirm "
            "that it should be deleted; its results are exported first."
        )
    archive = None
    if answers:
        study_close(study=study)
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=study.pk)
        list(
            ReadingSession.objects.select_for_update()
            .filter(enrollment__study=study)
            .values_list("pk", flat=True)
        )
        answers = study_answer_count(study=study)
        if answers:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            archive = study_backup(
                study=study, out=deleted_dir() / f"{study.slug}-{stamp}.zip"
            )
        slug = study.slug
        # Judgments protect their cases, so they go first, then the rest cascades.
        Judgment.objects.filter(session__enrollment__study=study).delete()
        study.delete()
    return Deleted(slug=slug, answers=answers, archive=archive)
