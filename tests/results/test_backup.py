"""A study survives a backup, a wipe and a restore; deleting one exports it first."""

import hashlib
import io
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.test import Client

from tests.conftest import PASSWORD, ReaderAPI
from turingtest.generation.models import GenerationJob, Generator
from turingtest.imaging.models import Image, ImportBatch
from turingtest.imaging.services import import_batch_get_or_create
from turingtest.results import backup
from turingtest.studies import services
from turingtest.studies.models import (
    Case,
    Enrollment,
    Invitation,
    Judgment,
    JudgmentRevision,
    Phase,
    Reader,
    ReadingSession,
    Study,
)


@pytest.fixture
def deleted_dir(settings, tmp_path):
    folder = tmp_path / "deleted"
    settings.TURINGTEST = {**settings.TURINGTEST, "DELETED_DIR": str(folder)}
    return folder


@pytest.fixture
def answered(make_study, make_reader):
    """A study with one reader done (with revisions), one halfway, one not started."""
    study = make_study(slug="knee", edit_policy="until_phase_end")
    apis = []
    for _ in range(3):
        enrollment = services.enrollment_consent(enrollment=make_reader(study))
        client = Client()
        client.force_login(enrollment.reader.user)
        apis.append((enrollment, ReaderAPI(client, study.slug)))
    done, half, _ = apis
    step = done[1].next().json()
    while "redirect" not in step:
        if step.get("review"):
            if step["stage"] == 1:
                revised = done[1].post(
                    "revisions", {"stage": 1, "position": 3, "kl_grade": 4}
                )
                assert revised.status_code == 201
            response = done[1].post("finish", {"stage": step["stage"]})
            assert response.status_code == 200, response.content
            step = response.json()["next"]
            continue
        response = done[1].answer(step, kl_grade=step["position"] % 5)
        assert response.status_code == 201, response.content
        step = response.json()["next"]
    step = half[1].next().json()
    for _ in range(7):  # practice (2) and part of the first phase
        step = half[1].answer(step).json()["next"]
    return study, half[0], step


def results(study_slug: str, out: Path) -> dict[str, bytes]:
    """What a researcher gets: the CSV export and, where present, the report."""
    call_command("export_results", study_slug, "--out", str(out))
    files = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    # The iMRMC file's header names when it was exported; all else must match.
    for name in [n for n in files if n.endswith(".imrmc")]:
        files[name] = re.sub(rb"(?m)^Exported by turingtest at .*$", b"", files[name])
    if "study_report" in get_commands():
        text = io.StringIO()
        call_command("study_report", study_slug, "--format", "json", stdout=text)
        files["study_report.json"] = text.getvalue().encode()
    return files


def wipe_everything(media: Path) -> None:
    for model in (
        JudgmentRevision,
        Judgment,
        ReadingSession,
        Enrollment,
        Invitation,
        Case,
        Phase,
        Study,
        Reader,
        Image,
        ImportBatch,
        GenerationJob,
        Generator,
    ):
        model.objects.all().delete()
    get_user_model().objects.all().delete()
    shutil.rmtree(media)


def row_counts() -> dict[str, int]:
    models = (Study, Case, Image, Reader, Enrollment, ReadingSession, Judgment)
    return {m.__name__: m.objects.count() for m in models}


@pytest.mark.parametrize("wipe", ["study", "database and media"])
def test_backup_wipe_restore_gives_the_same_report(
    answered, media, tmp_path, deleted_dir, wipe
):
    study, half, step = answered
    # The study's images came in with one import batch, which comes back too.
    batch = import_batch_get_or_create(name="site A", description="ward 3 archive")
    Image.objects.filter(cases__study=study).update(batch=batch)
    before = results(study.slug, tmp_path / "before")
    assert before["judgments.csv"].count(b"\n") > 20
    archive = tmp_path / "knee.zip"
    call_command("backup_study", study.slug, "--out", str(archive))

    if wipe == "study":
        backup.study_delete(study=study, confirmation=study.slug)
        assert Image.objects.exists()  # the pool is shared and stays
    else:
        wipe_everything(media)
    assert not Study.objects.exists() and not Judgment.objects.exists()

    out = io.StringIO()
    call_command("restore_study", str(archive), stdout=out)
    assert "Restored study 'knee'" in out.getvalue()
    restored = Study.objects.get(slug="knee")
    after = results(study.slug, tmp_path / "after")
    assert after == before
    assert set(
        Image.objects.filter(cases__study=restored).values_list(
            "batch__name", "batch__description"
        )
    ) == {("site A", "ward 3 archive")}

    # The reader who was halfway signs in again with the same password and
    # goes on at the same case of the same order.
    client = Client()
    email = half.reader.user.username
    signed_in = client.post(
        "/accounts/login/", {"username": email, "password": PASSWORD}
    )
    assert signed_in.status_code == 302, signed_in.content
    api = ReaderAPI(client, restored.slug)
    resumed = api.next().json()
    assert (resumed["stage"], resumed["position"]) == (step["stage"], step["position"])
    assert resumed["image"] == step["image"]
    served = client.get(resumed["image"])
    content = b"".join(served.streaming_content)
    token = resumed["image"].rsplit("/", 1)[1]
    # The restored case keeps its token, so the reader's URL still names the image.
    assert (
        hashlib.sha256(content).hexdigest()
        == Case.objects.get(token=token).image.sha256
    )
    assert api.answer(resumed).status_code == 201


def test_restore_refuses_an_existing_study_and_a_damaged_archive(
    answered, media, tmp_path
):
    study, _, _ = answered
    archive = tmp_path / "knee.zip"
    backup.study_backup(study=study, out=archive)
    counts = row_counts()
    with pytest.raises(CommandError, match="exists here already"):
        call_command("restore_study", str(archive))

    # Flip one byte of an image inside the archive: refused, nothing written.
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.startswith("media/") and info.filename.endswith(".png"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            dst.writestr(info, data)
    backup.study_delete(study=study, confirmation=study.slug)
    files_before = sorted(p for p in media.rglob("*") if p.is_file())
    counts = row_counts()
    with pytest.raises(CommandError, match="damaged"):
        call_command("restore_study", str(damaged))
    assert row_counts() == counts
    assert sorted(p for p in media.rglob("*") if p.is_file()) == files_before


def test_a_restore_that_fails_takes_back_its_files(
    answered, media, tmp_path, monkeypatch
):
    study, _, _ = answered
    archive = backup.study_backup(study=study, out=tmp_path / "knee.zip")
    backup.study_delete(study=study, confirmation=study.slug)
    wipe_everything(media)

    def broken(data):
        raise RuntimeError("disk full")

    monkeypatch.setattr(backup, "_restore_rows", broken)
    with pytest.raises(RuntimeError):
        backup.study_restore(path=archive)
    assert not [p for p in media.rglob("*") if p.is_file()]
    assert not Study.objects.exists()


def test_deleting_a_study_with_answers_needs_its_slug_and_exports_first(
    answered, deleted_dir
):
    study, _, _ = answered
    answers = Judgment.objects.filter(session__enrollment__study=study).count()
    for confirmation in ("", "yes", "KNEE "):
        with pytest.raises(ValidationError, match="Type its slug"):
            backup.study_delete(study=study, confirmation=confirmation)
    assert Study.objects.filter(pk=study.pk).exists()
    assert not deleted_dir.exists()

    main = Judgment.objects.filter(session__phase__isnull=False).count()
    deleted = backup.study_delete(study=study, confirmation="knee")
    assert deleted.answers == answers and deleted.archive.parent == deleted_dir
    with zipfile.ZipFile(deleted.archive) as archive:
        names = set(archive.namelist())
        judgments = archive.read("results/judgments.csv").decode()
    assert {"manifest.json", "data.json", "results/judgments.csv"} <= names
    # a header, one row per answer outside practice, one per revision
    assert len(judgments.strip().splitlines()) == 1 + main + 1
    assert not Study.objects.filter(pk=study.pk).exists()
    assert not Judgment.objects.exists()


def test_a_study_without_answers_deletes_without_ceremony(make_study, deleted_dir):
    study = make_study(slug="empty")
    deleted = backup.study_delete(study=study)
    assert deleted.archive is None and not Study.objects.exists()


def test_the_admin_asks_for_the_slug_before_deleting_a_study_with_answers(
    answered, staff_client, deleted_dir
):
    study, _, _ = answered
    url = f"/admin/studies/study/{study.pk}/delete/"
    page = staff_client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="confirm"' in html and "answers" in html
    for typed in ({}, {"confirm": "wrong"}):
        refused = staff_client.post(url, {"post": "yes", **typed}, follow=True)
        assert refused.status_code == 200
        assert "to confirm its deletion" in refused.content.decode()
        assert Study.objects.filter(pk=study.pk).exists()
    assert not deleted_dir.exists()

    done = staff_client.post(url, {"post": "yes", "confirm": "knee"}, follow=True)
    assert done.status_code == 200
    assert "restorable backup were written to" in done.content.decode()
    assert not Study.objects.filter(pk=study.pk).exists()
    (archive,) = deleted_dir.glob("knee-*.zip")
    assert backup.study_restore(path=archive).study.slug == "knee"
    # The bulk delete action would skip the confirmation: studies do not offer it.
    changelist = staff_client.get("/admin/studies/study/")
    assert b"delete_selected" not in changelist.content


def test_an_archive_from_before_sessions_kept_their_position_resumes_right(
    answered, media, tmp_path, deleted_dir
):
    import json

    study, half, step = answered
    archive = tmp_path / "knee.zip"
    call_command("backup_study", study.slug, "--out", str(archive))
    # Rewrite the archive as an older version wrote it: no position on sessions.
    old = tmp_path / "old.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename == "data.json":
                data = json.loads(content)
                for row in data["session"]:
                    del row["fields"]["answered"]
                content = json.dumps(data).encode()
            dst.writestr(item, content)
    backup.study_delete(study=study, confirmation=study.slug)
    restored = backup.study_restore(path=old).study
    for session in ReadingSession.objects.filter(enrollment__study=restored):
        assert session.answered == session.judgments.count()
    client = Client()
    client.force_login(get_user_model().objects.get(username=half.reader.user.username))
    resumed = ReaderAPI(client, restored.slug).next().json()
    assert (resumed["stage"], resumed["position"], resumed["image"]) == (
        step["stage"],
        step["position"],
        step["image"],
    )


def test_an_archive_from_before_the_pool_left_the_studies_app_restores(
    answered, media, tmp_path, deleted_dir
):
    """Archives written before the apps split label the pool's rows
    studies.image, studies.importbatch and studies.generator."""
    import json

    study, half, step = answered
    batch = import_batch_get_or_create(name="site B", description="older archive")
    Image.objects.filter(cases__study=study).update(batch=batch)
    archive = tmp_path / "knee.zip"
    call_command("backup_study", study.slug, "--out", str(archive))
    old = tmp_path / "old.zip"
    relabelled = 0
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename == "data.json":
                data = json.loads(content)
                for section in ("image", "batch", "generator"):
                    for row in data.get(section, []):
                        row["model"] = "studies." + row["model"].split(".")[1]
                        relabelled += 1
                content = json.dumps(data).encode()
            dst.writestr(item, content)
    assert relabelled > 10
    before = row_counts() | {
        "Image": Image.objects.filter(cases__study=study).distinct().count()
    }  # the archive holds the study's images, not the whole pool
    cases = study.cases.count()
    wipe_everything(media)
    restored = backup.study_restore(path=old).study
    assert row_counts() == before
    assert set(Image.objects.values_list("batch__name", flat=True)) == {"site B"}
    assert restored.cases.count() == cases
