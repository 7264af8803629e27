"""Machine readers: classifiers answering a study beside people, and the labels
that keep machines and simulated readers apart from people everywhere."""

import csv
import io

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db.models import Count

from tests.imaging.builders import picture
from turingtest.results.report import study_report
from turingtest.stats.report import build_report, imrmc_rows
from turingtest.stats.simulate import evidence_effects, simulate_rows
from turingtest.studies import services
from turingtest.studies.machine import (
    MachineAnswers,
    machine_evidence,
    machine_reader_add,
    rating_from_probability,
)
from turingtest.studies.models import (
    Enrollment,
    Judgment,
    MachineScore,
    Reader,
)
from turingtest.studies.simulation import readers_simulate

# Small and quick: 32 px analysis, one thread, no classifier cache on disk.
FAST = ["--resolution", "32", "--threads", "1", "--cache", "", "--epochs", "15"]


@pytest.fixture
def blob_pool(db, media, make_image):
    """Real knee phantoms and synthetic images that are plain blobs: 6 of each per grade."""
    from turingtest.imaging.services import image_create

    for grade in range(5):
        for i in range(6):
            make_image("real", grade)
            image_create(
                pixels=picture(seed=1000 * grade + i, size=(128, 128)),
                source="synthetic",
                kl_grade=grade,
                origin=f"blob {grade}-{i}",
            )


def _study(slug="machines", phases=("grading", "detection"), practice=2, **opts):
    study = services.study_create(
        slug=slug, name=slug, phases=phases, practice_count=practice, **opts
    )
    services.cases_build(study=study, per_grade=1, seed=3)
    return services.study_open(study=study)


def _add(slug, model, *extra):
    out = io.StringIO()
    call_command(
        "add_machine_reader", slug, "--model", model, *FAST, *extra, stdout=out
    )
    return out.getvalue()


def _machine_judgments(study, model):
    return Judgment.objects.filter(
        session__enrollment__study=study,
        session__enrollment__reader__kind="machine",
        session__enrollment__reader__machine_model=model,
    ).select_related("case__image", "session__phase")


def test_c2st_reader_answers_real_or_synthetic_and_calls_blobs_synthetic(blob_pool):
    study = _study()
    out = _add(study.slug, "c2st")
    assert "answered 10 cases in detection" in out

    reader = Reader.objects.get(kind="machine")
    assert reader.machine_model == "c2st" and reader.code.startswith("M")
    assert not reader.user.has_usable_password()
    enrollment = Enrollment.objects.get(reader=reader, study=study)
    assert enrollment.completed_at is not None

    judgments = list(_machine_judgments(study, "c2st"))
    # Only the phase that asks real or synthetic, every case outside practice.
    assert {j.session.phase.kind for j in judgments} == {"detection"}
    assert len(judgments) == study.cases.exclude(role="practice").count() == 10
    for j in judgments:
        p = j.machine_score.p_synthetic
        assert j.confidence == rating_from_probability(p)
        assert j.answer == ("synthetic" if p >= 0.5 else "real")
        assert j.kl_grade is None
    # Blobs against knee phantoms: the classifier is not fooled.
    correct = sum(j.answer == j.case.image.source for j in judgments)
    assert correct >= 9


def test_kl_reader_grades_the_grading_phase_only(blob_pool):
    study = _study()
    out = _add(study.slug, "kl")
    assert "answered 10 cases in grading" in out
    judgments = list(_machine_judgments(study, "kl"))
    assert len(judgments) == 10
    assert {j.session.phase.kind for j in judgments} == {"grading"}
    assert all(j.answer is None and 0 <= j.kl_grade <= 4 for j in judgments)
    assert not MachineScore.objects.exists()


def test_c2st_reader_grades_too_where_the_phase_asks(blob_pool):
    study = _study(slug="combined", phases=("combined",))
    _add(study.slug, "c2st")
    judgments = list(_machine_judgments(study, "c2st"))
    assert len(judgments) == 10
    assert all(j.confidence and j.kl_grade is not None for j in judgments)


def _nothing_written(before_users):
    from django.contrib.auth import get_user_model

    assert not Reader.objects.filter(kind="machine").exists()
    assert get_user_model().objects.count() == before_users
    assert not Judgment.objects.exists()


def test_bad_input_is_refused_with_a_reason_and_nothing_written(db, media, pool):
    from django.contrib.auth import get_user_model

    from turingtest.imaging.models import Image

    users = get_user_model().objects.count()
    with pytest.raises(CommandError, match="No study 'nope'"):
        _add("nope", "c2st")

    study = _study(slug="short", practice=0)
    # Every synthetic image left in the pool is a case of the study.
    Image.objects.filter(source="synthetic").exclude(
        pk__in=study.cases.values("image")
    ).delete()
    with pytest.raises(CommandError, match="0 synthetic images .* outside its cases"):
        _add(study.slug, "c2st")

    grading_only = services.study_create(slug="grades", name="g", phases=("grading",))
    with pytest.raises(CommandError, match="open it before"):
        _add(grading_only.slug, "kl")
    services.cases_build(study=grading_only, per_grade=1, seed=1)
    services.study_open(study=grading_only)
    with pytest.raises(CommandError, match="no phase that asks real or synthetic"):
        _add(grading_only.slug, "c2st")
    with pytest.raises(CommandError, match="--train /nowhere: no such folder"):
        _add(grading_only.slug, "kl", "--train", "/nowhere")
    _nothing_written(users)


def test_a_failing_answer_leaves_no_half_written_reader(blob_pool):
    study = _study()
    cases = list(study.cases.exclude(role="practice"))
    # One case without a score: the service refuses after it began writing.
    answers = MachineAnswers(p_synthetic={c.pk: 0.9 for c in cases[1:]})
    with pytest.raises(ValidationError, match="No real/synthetic score"):
        machine_reader_add(study=study, model="c2st", answers=answers)
    assert not Reader.objects.exists()
    assert not Judgment.objects.exists()
    # A second one of the same model is refused.
    machine_reader_add(
        study=study,
        model="c2st",
        answers=MachineAnswers(p_synthetic={c.pk: 0.9 for c in cases}),
    )
    with pytest.raises(ValidationError, match="already has a c2st machine reader"):
        machine_reader_add(
            study=study,
            model="c2st",
            answers=MachineAnswers(p_synthetic={c.pk: 0.9 for c in cases}),
        )


@pytest.fixture
def read_study(pool):
    """Four simulated readers and a c2st machine reader on one study."""
    study = _study(slug="read")
    cases = list(study.cases.exclude(role="practice").select_related("image"))
    machine_reader_add(
        study=study,
        model="c2st",
        answers=MachineAnswers(
            p_synthetic={
                c.pk: 0.97 if c.image.source == "synthetic" else 0.04 for c in cases
            }
        ),
    )
    readers_simulate(study=study, readers=4, accuracy=0.6, seed=4)
    return study


def test_report_shows_machine_readers_apart_and_beside_the_humans(
    read_study, staff_client
):
    study = read_study
    report = study_report(study)
    machine = Reader.objects.get(kind="machine").code
    detection = report.detection["detection"]
    assert detection.n_readers == 4
    assert machine not in {r.reader for r in detection.readers}
    assert machine not in {r.reader for r in report.readers}
    assert {r.kind for r in detection.readers} == {"simulated"}
    (entry,) = report.machine_readers
    assert entry.reader == machine and entry.model == "c2st"
    assert entry.detection.accuracy.estimate == 1.0
    assert entry.phase == "detection" and entry.grading is None

    page = staff_client.get(f"/staff/studies/{study.slug}/").content.decode()
    assert 'id="report-machine-readers"' in page
    assert "CNN real vs synthetic (c2st)" in page and "100.0%" in page
    assert "Simulated readers" in page  # what the humans are, said plainly
    assert page.count("(simulated)") >= 4 * 2  # progress table and report tables
    assert "(machine: c2st)" in page
    # The full report says it too.
    assert "## Machine readers" in page or "Machine readers</h2>" in page


def test_human_statistics_are_the_same_with_or_without_machine_rows():
    rows = simulate_rows(n_readers=5, n_cases=20, seed=2)
    for r in rows:
        r["reader_kind"] = "simulated"
    machine = [
        r
        | {
            "reader": "M1",
            "reader_kind": "machine",
            "reader_model": "c2st",
            "answer": r["truth"],
            "confidence": 6 if r["truth"] == "synthetic" else 1,
        }
        for r in rows
        if r["reader"] == "R001"
    ]
    without = build_report(rows, n_boot=50)
    with_machine = build_report(rows + machine, n_boot=50)
    for section in ("detection", "grading", "readers", "attention"):
        assert getattr(with_machine, section) == getattr(without, section)
    assert without.machine_readers == ()
    assert {m.reader for m in with_machine.machine_readers} == {"M1"}
    assert "M1" not in {r["readerID"] for r in imrmc_rows(rows + machine)}


def test_exports_label_every_reader_by_kind(read_study, tmp_path):
    call_command(
        "export_results", read_study.slug, "--out", str(tmp_path), stdout=io.StringIO()
    )

    def rows(name):
        return list(csv.DictReader((tmp_path / name).open()))

    judgments = rows("judgments.csv")
    kinds = {r["reader"]: r["reader_kind"] for r in judgments}
    machine = Reader.objects.get(kind="machine").code
    assert kinds.pop(machine) == "machine"
    assert set(kinds.values()) == {"simulated"} and len(kinds) == 4
    readers = {r["reader"]: r for r in rows("readers.csv")}
    assert readers[machine]["reader_kind"] == "machine"
    assert readers[machine]["machine_model"] == "c2st"
    assert {r["reader_kind"] for c, r in readers.items() if c != machine} == {
        "simulated"
    }
    summary = rows("reader_summary.csv")
    assert {r["reader_kind"] for r in summary if r["reader"] == machine} == {"machine"}
    assert {r["reader_kind"] for r in summary if r["reader"] != machine} == {
        "simulated"
    }
    assert machine not in (tmp_path / "imrmc_input.csv").read_text()
    assert "reader_kind" in (tmp_path / "interactions.csv").read_text().splitlines()[0]
    orders = rows("orders.csv")
    assert {r["reader_kind"] for r in orders if r["reader"] == machine} == {"machine"}
    assert {r["reader_kind"] for r in orders if r["reader"] != machine} == {"simulated"}


def test_evidence_effects_order_images_within_each_truth():
    p = np.array([0.1, 0.5, 0.9, 0.2, 0.6, 0.99])
    synthetic = np.array([False, False, False, True, True, True])
    e = evidence_effects(p, synthetic)
    assert np.argsort(e[:3]).tolist() == [0, 1, 2]
    assert np.argsort(e[3:]).tolist() == [0, 1, 2]
    # Centred within each group: the machine does not make readers better.
    assert abs(e[:3].mean()) < 1e-12 and abs(e[3:].mean()) < 1e-12
    assert np.all(evidence_effects(np.full(4, 0.7), np.array([0, 0, 1, 1], bool)) == 0)


def test_simulated_rows_follow_the_machine_evidence():
    n = 40
    evidence = np.tile([0.99, 0.2], n // 2)  # cases alternate: obvious, subtle
    rows = simulate_rows(
        n_readers=30, n_cases=n, n_practice=0, n_attention=0, evidence=evidence, seed=1
    )
    calls = {}
    for r in rows:
        if r["phase"] == "detection" and r["truth"] == "synthetic":
            i = int(r["case"][1:]) - 1
            calls.setdefault(evidence[i] > 0.5, []).append(r["answer"] == "real")
    assert np.mean(calls[True]) + 0.2 < np.mean(calls[False])


def test_simulated_readers_follow_the_machine_evidence(db, media, make_image):
    for grade in range(5):
        for source in ("real", "synthetic", "synthetic", "real"):
            make_image(source, grade)
    study = services.study_create(
        slug="evidence", name="e", phases=("detection",), practice_count=0
    )
    services.cases_build(study=study, per_grade=2, seed=1)
    study = services.study_open(study=study)
    fakes = list(study.cases.filter(image__source="synthetic").order_by("number"))
    # Half the fakes are obvious to the machine, half fool it.
    obvious = {c.pk for c in fakes[::2]}
    evidence = {c.pk: (0.99 if c.pk in obvious else 0.3) for c in fakes}
    readers_simulate(study=study, readers=8, accuracy=0.6, seed=5, evidence=evidence)
    called_real = dict(
        Judgment.objects.filter(case__in=fakes, answer="real")
        .values_list("case")
        .annotate(n=Count("id"))
    )
    obvious_real = sum(called_real.get(pk, 0) for pk in obvious) / (8 * len(obvious))
    subtle = [c.pk for c in fakes if c.pk not in obvious]
    subtle_real = sum(called_real.get(pk, 0) for pk in subtle) / (8 * len(subtle))
    # Expected about 0.25 against 0.75 (reader orders, hence draws, vary
    # from run to run with the study's seed); each bound is 3 SE away.
    assert obvious_real < 0.5 < subtle_real
    assert subtle_real - obvious_real > 0.2


def test_simulated_readers_draw_on_the_studys_machine_reader(read_study):
    evidence = machine_evidence(study=read_study)
    assert len(evidence) == 10
    assert all(
        (p > 0.5)
        == (
            Judgment.objects.filter(case_id=pk).first().case.image.source == "synthetic"
        )
        for pk, p in evidence.items()
    )


def test_a_backup_keeps_machine_readers_and_their_scores(
    read_study, tmp_path, settings
):
    from turingtest.results import backup

    settings.TURINGTEST = {**settings.TURINGTEST, "DELETED_DIR": str(tmp_path / "del")}

    scores = sorted(
        MachineScore.objects.values_list(
            "judgment__case__number", "judgment__session__phase__kind", "p_synthetic"
        )
    )
    kinds = sorted(read_study.enrollments.values_list("reader__code", "reader__kind"))
    archive = backup.study_backup(study=read_study, out=tmp_path / "read.zip")
    backup.study_delete(study=read_study, confirmation=read_study.slug)
    assert not MachineScore.objects.exists()
    restored = backup.study_restore(path=archive).study
    assert (
        sorted(
            MachineScore.objects.values_list(
                "judgment__case__number",
                "judgment__session__phase__kind",
                "p_synthetic",
            )
        )
        == scores
    )
    assert (
        sorted(restored.enrollments.values_list("reader__code", "reader__kind"))
        == kinds
    )


def test_archives_from_before_reader_kinds_restore_simulated_readers():
    from turingtest.results.backup import _reader_fields

    old = {
        "model": "studies.reader",
        "pk": 3,
        "fields": {"code": "R1", "simulated": True},
    }
    assert _reader_fields(old)["fields"] == {"code": "R1", "kind": "simulated"}
    old["fields"]["simulated"] = False
    assert _reader_fields(old)["fields"]["kind"] == "human"


@pytest.mark.django_db(transaction=True)
def test_the_migration_turns_simulated_readers_into_their_kind():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    # By name, not number: migrations of the same number may be renumbered.
    (key,) = [
        k
        for k in executor.loader.disk_migrations
        if k[0] == "studies" and k[1].endswith("_reader_kind_machine_score")
    ]
    after = [key]
    before = [
        d
        for d in executor.loader.disk_migrations[key].dependencies
        if d[0] == "studies"
    ]
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    user_model = old.get_model("auth", "User")
    reader_model = old.get_model("studies", "Reader")
    for n, simulated in enumerate((True, False)):
        reader_model.objects.create(
            user=user_model.objects.create(username=f"u{n}"),
            code=f"R{n}",
            name=f"Reader {n}",
            profession="radiologist",
            experience_years=3,
            simulated=simulated,
        )
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    new = executor.loader.project_state(after).apps.get_model("studies", "Reader")
    assert dict(new.objects.values_list("code", "kind")) == {
        "R0": "simulated",
        "R1": "human",
    }
    call_command("migrate", verbosity=0)


def test_the_gpu_workers_can_add_a_machine_reader(
    blob_pool, monkeypatch, tmp_path, django_capture_on_commit_callbacks
):
    from turingtest.celery import app
    from turingtest.studies.tasks import machine_reader_run

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    study = _study()
    route = app.amqp.router.route({}, "turingtest.studies.tasks.machine_reader_run")
    assert route["queue"].name == "gpu"
    with django_capture_on_commit_callbacks() as queued:
        out = io.StringIO()
        call_command(
            "add_machine_reader", study.slug, "--model", "kl", "--queue", stdout=out
        )
    assert "queued" in out.getvalue() and len(queued) == 1
    assert not Reader.objects.filter(kind="machine").exists()  # nothing trained here

    done = machine_reader_run(study.pk, "kl")
    assert done["ran"] and Reader.objects.get(kind="machine").code == done["reader"]
    assert len(_machine_judgments(study, "kl")) == 10
    # A task run twice (acks_late) adds no second reader.
    assert machine_reader_run(study.pk, "kl")["ran"] is False
    assert Reader.objects.filter(kind="machine").count() == 1


def test_kl_reader_learns_from_a_training_folder(blob_pool, tmp_path):
    from tests.generator.conftest import write_grades

    write_grades(tmp_path / "train", per_grade=4, seed0=0)
    study = _study(slug="trained")
    out = _add(study.slug, "kl", "--train", str(tmp_path))
    assert f"KL grades from 20 real images from {tmp_path}" in out
    reader = Reader.objects.get(kind="machine")
    assert "20 real images" in reader.name
    assert len(_machine_judgments(study, "kl")) == 10
