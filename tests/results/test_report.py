"""The study report from the database: figures, staff page, plots, exports, task."""

import csv
import io
import json
import stat
import zipfile
from statistics import mean

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from turingtest.results import report as study_reports
from turingtest.results.models import StudyReport
from turingtest.results.report import study_report
from turingtest.results.tasks import study_report_build
from turingtest.stats.report import Report
from turingtest.stats.report.results import Counts
from turingtest.studies import services
from turingtest.studies.models import Judgment
from turingtest.studies.simulation import readers_simulate

NEW_FILES = (
    "reader_summary.csv",
    "image_summary.csv",
    "report.json",
    "imrmc_input.csv",
)


@pytest.fixture
def answered(study):
    readers_simulate(study=study, readers=4, accuracy=0.7, seed=1)
    return study


def _by_reader(judgments):
    out = {}
    for j in judgments.select_related("case__image", "session__enrollment__reader"):
        out.setdefault(j.session.enrollment.reader.code, []).append(j)
    return out


def _zip(client, study) -> zipfile.ZipFile:
    response = client.get(f"/staff/studies/{study.slug}/results.zip")
    assert response.status_code == 200
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_reader_figures_match_the_judgments(answered):
    report = study_report(answered)
    detection = report.detection["detection"]
    figures = {r.reader: r for r in detection.readers}
    judgments = Judgment.objects.filter(session__phase__kind="detection")
    by_reader = _by_reader(judgments)
    assert set(figures) == set(by_reader) and len(figures) == 4
    for code, js in by_reader.items():
        r = figures[code]
        assert r.n == len(js) == 10
        assert r.accuracy.estimate == pytest.approx(
            mean(j.answer == j.case.image.source for j in js)
        )
        fakes = [j for j in js if j.case.image.source == "synthetic"]
        assert r.fake_as_real.estimate == pytest.approx(
            mean(j.answer == "real" for j in fakes)
        )
    # Each reader also answered two practice cases; none is counted.
    assert Judgment.objects.filter(session__phase__isnull=True).count() == 8
    assert report.counts == Counts(
        rows=80, main=80, practice=0, attention=0, ignored=0, machine=0, repeats=0
    )
    grading = report.grading["grading"]
    assert grading.n_readers == 4 and grading.n_cases == 10


def test_attention_checks_are_left_out_and_failures_counted(pool):
    study = services.study_create(
        slug="att", name="Attention", phases=("grading", "detection"), practice_count=2
    )
    services.cases_build(study=study, per_grade=1, seed=3, attention=2)
    study = services.study_open(study=study)
    readers_simulate(study=study, readers=3, accuracy=0.7, seed=2)
    # One reader calls an attention check (a real image) synthetic.
    check = Judgment.objects.filter(
        case__role="attention", session__phase__kind="detection"
    ).first()
    Judgment.objects.filter(pk=check.pk).update(answer="synthetic", confidence=6)

    report = study_report(study)
    assert report.counts.main == 3 * 10 * 2
    assert report.counts.attention == 3 * 2 * 2
    detection = report.detection["detection"]
    assert detection.n_cases == 10
    main = _by_reader(
        Judgment.objects.filter(session__phase__kind="detection", case__role="main")
    )
    for r in detection.readers:
        js = main[r.reader]
        assert r.n == 10
        assert r.accuracy.estimate == pytest.approx(
            mean(j.answer == j.case.image.source for j in js)
        )
    checks = _by_reader(Judgment.objects.filter(case__role="attention"))
    failures = {
        code: sum(
            (j.answer is not None and j.answer != j.case.image.source)
            or (j.kl_grade is not None and j.kl_grade != j.case.image.kl_grade)
            for j in js
        )
        for code, js in checks.items()
    }
    reported = {a.reader: (a.n, a.n_failed) for a in report.attention.readers}
    assert reported == {code: (4, failures[code]) for code in checks}
    assert reported[check.session.enrollment.reader.code][1] >= 1


def _answer_all_real(study, make_reader):
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get()
    )
    for position in range(len(session.order)):
        services.judgment_record(session=session, position=position, confidence=2)
    return session


def test_a_revision_changes_the_report_and_marks_the_stored_one_stale(
    make_study, make_reader, monkeypatch
):
    study = make_study(
        slug="edits", phases=("detection",), edit_policy="until_phase_end", practice=0
    )
    session = _answer_all_real(study, make_reader)
    before = study_report(study).detection["detection"].readers[0]
    assert before.accuracy.estimate == 0.5
    StudyReport.objects.all().delete()
    stored = study_reports.study_report_save(study=study)

    fake = next(
        p
        for p, case in enumerate(session.order)
        if study.cases.get(pk=case).image.source == "synthetic"
    )
    services.judgment_revise(session=session, position=fake, confidence=6)
    after = study_report(study).detection["detection"].readers[0]
    assert after.n == 10
    assert after.accuracy.estimate == pytest.approx(0.6)
    assert after.sensitivity.estimate == pytest.approx(0.2)

    # Treated as a large study, the page keeps the stored report and flags it.
    monkeypatch.setattr(study_reports, "SYNC_BUILD_MAX_ANSWERS", 0)
    page = study_reports.study_report_for_page(study=study)
    assert page.stale and page.stored.built_at == stored.built_at


def test_command_prints_json_and_markdown(answered):
    out = io.StringIO()
    call_command("study_report", answered.slug, "--format", "json", stdout=out)
    printed = json.loads(out.getvalue())
    fresh = study_report(answered)
    assert printed == fresh.to_json()
    assert printed["counts"]["main"] == 80
    pooled = printed["detection"]["detection"]["pooled_accuracy"]
    assert pooled == fresh.detection["detection"].pooled_accuracy.to_json()

    out = io.StringIO()
    call_command("study_report", answered.slug, "--format", "md", stdout=out)
    text = out.getvalue()
    assert text.startswith(f"# Visual Turing test report: {answered.slug}")
    line = next(ln for ln in text.splitlines() if ln.startswith("| Pooled accuracy"))
    assert f"{pooled['estimate']:.3f}" in line
    auc = printed["detection"]["detection"]["mrmc_auc"]["estimate"]
    assert f"{auc:.3f}" in text
    assert "## Real or synthetic (detection phase)" in text


def test_staff_page_shows_the_report_and_its_plots(answered, staff_client):
    page = staff_client.get(f"/staff/studies/{answered.slug}/")
    assert page.status_code == 200
    html = page.content.decode()
    report = study_report(answered)
    detection = report.detection["detection"]
    assert 'id="report-readers-detection"' in html
    assert 'id="report-stale"' not in html
    for r in detection.readers:
        assert r.reader in html
    acc = detection.pooled_accuracy.estimate
    assert f"{100 * acc:.1f}%" in html
    assert f"{detection.mrmc_auc.estimate:.3f}" in html
    assert "Kappa, synthetic" in html

    # The strip shows the synthetic images readers most often called real.
    fakes = sorted(
        (i for i in detection.images if i.truth == "synthetic"),
        key=lambda i: -i.fraction_real,
    )
    most = html.split('id="report-most-convincing"')[1].split("</div>")[0]
    assert f"/api/v1/images/{fakes[0].image}" in most
    assert staff_client.get(f"/api/v1/images/{fakes[0].image}").status_code == 200

    for name in study_reports.PLOTS:
        url = f"/staff/studies/{answered.slug}/report/{name}.png"
        assert url in html
        response = staff_client.get(url)
        assert response.status_code == 200, name
        assert response["Content-Type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")
    # Drawn once, then served from the store.
    assert set(StudyReport.objects.get().plots) == set(study_reports.PLOTS)
    assert (
        staff_client.get(f"/staff/studies/{answered.slug}/report/pie.png").status_code
        == 404
    )


def test_report_pages_refuse_readers_and_anonymous(answered, make_reader):
    reader = Client()
    reader.force_login(
        services.enrollment_consent(enrollment=make_reader(answered)).reader.user
    )
    for client in (reader, Client()):
        for url in (
            f"/staff/studies/{answered.slug}/",
            f"/staff/studies/{answered.slug}/report/forest.png",
        ):
            response = client.get(url)
            assert (
                response.status_code == 302 and "/admin/login/" in response["Location"]
            )
        rebuild = client.post(f"/staff/studies/{answered.slug}/report/rebuild")
        assert rebuild.status_code == 302 and "/admin/login/" in rebuild["Location"]
    assert not StudyReport.objects.exists()


def test_results_zip_holds_the_report_files(answered, staff_client, tmp_path):
    archive = _zip(staff_client, answered)
    names = {n.split("/", 1)[1] for n in archive.namelist()}
    assert set(NEW_FILES) <= names
    # Members unpack readable by all, dated today (not 0600 and 1980).
    today = timezone.localtime().timetuple()[:3]
    for info in archive.infolist():
        assert stat.S_IMODE(info.external_attr >> 16) == 0o644, info.filename
        assert stat.S_ISREG(info.external_attr >> 16)
        assert info.date_time[:3] == today

    def rows(name):
        return list(
            csv.DictReader(
                io.StringIO(archive.read(f"{answered.slug}/{name}").decode())
            )
        )

    readers = rows("reader_summary.csv")
    assert len(readers) == 4 * 2  # one row per reader and phase
    fresh = study_report(answered)
    accuracy = {
        r.reader: r.accuracy.estimate for r in fresh.detection["detection"].readers
    }
    for row in readers:
        if row["phase"] == "detection":
            assert float(row["accuracy"]) == pytest.approx(accuracy[row["reader"]])
    assert len(rows("image_summary.csv")) == 10 * 2
    stored = Report.from_json(json.loads(archive.read(f"{answered.slug}/report.json")))
    assert stored.counts == fresh.counts
    assert (
        stored.detection["detection"].mrmc_auc == fresh.detection["detection"].mrmc_auc
    )
    imrmc = rows("imrmc_input.csv")
    assert list(imrmc[0]) == ["readerID", "caseID", "modalityID", "score"]
    assert sum(r["readerID"] == "-1" for r in imrmc) == 10
    assert sum(r["modalityID"] == "detection" for r in imrmc) == 40
    # The same rows in the iMRMC program's own format, ready to open.
    program = archive.read(f"{answered.slug}/imrmc_input.imrmc").decode()
    lines = program.splitlines()
    assert lines[0].startswith(f"{answered.slug}: visual Turing test")
    assert f"Study - {answered.name}" in lines
    exported = [line for line in lines if line.startswith("Exported by turingtest")]
    assert exported and str(timezone.now().year) in exported[0]
    data = lines[lines.index("BEGIN DATA:") + 1 :]
    assert data == [",".join(r.values()) for r in imrmc]

    call_command(
        "export_results", answered.slug, "--out", str(tmp_path), stdout=io.StringIO()
    )
    for name in NEW_FILES:
        assert (
            archive.read(f"{answered.slug}/{name}") == (tmp_path / name).read_bytes()
        ), name


def test_an_unanswered_study_exports_and_shows_an_empty_report(
    make_study, staff_client, tmp_path
):
    study = make_study(slug="empty")
    archive = _zip(staff_client, study)
    report = json.loads(archive.read("empty/report.json"))
    assert report["counts"]["main"] == 0 and report["detection"] == {}
    assert archive.read("empty/reader_summary.csv").decode().count("\n") == 1
    call_command(
        "export_results", study.slug, "--out", str(tmp_path), stdout=io.StringIO()
    )
    assert (
        tmp_path / "imrmc_input.csv"
    ).read_text() == "readerID,caseID,modalityID,score\n"
    page = staff_client.get("/staff/studies/empty/")
    assert (
        page.status_code == 200 and "No real/synthetic answers" in page.content.decode()
    )
    plot = staff_client.get("/staff/studies/empty/report/roc.png")
    assert plot.status_code == 200 and plot["Content-Type"] == "image/png"


def test_task_builds_and_stores_the_report_once(answered):
    result = study_report_build.apply(args=[answered.pk]).get()
    assert result == {"study": answered.pk, "built": True, "answers": 80}
    stored = StudyReport.objects.get(study=answered)
    assert set(stored.plots) == set(study_reports.PLOTS)
    data = Report.from_json(stored.data)
    assert data.counts.main == 80
    assert (
        data.detection["detection"].pooled_accuracy
        == study_report(answered).detection["detection"].pooled_accuracy
    )

    again = study_report_build.apply(args=[answered.pk]).get()
    assert again["built"] is False
    assert StudyReport.objects.get(study=answered).built_at == stored.built_at
    assert study_report_build.apply(args=[10**9]).get() == {
        "study": 10**9,
        "built": False,
    }


def test_stale_report_is_flagged_and_rebuilt_through_the_queue(
    answered, make_reader, staff_client, monkeypatch, django_capture_on_commit_callbacks
):
    # Treated as a large study: the page never builds, the button queues the task.
    monkeypatch.setattr(study_reports, "SYNC_BUILD_MAX_ANSWERS", 0)
    page = staff_client.get(f"/staff/studies/{answered.slug}/").content.decode()
    assert 'id="report-missing"' in page
    assert (
        staff_client.get(
            f"/staff/studies/{answered.slug}/report/forest.png"
        ).status_code
        == 404
    )

    queued = []
    monkeypatch.setattr(
        study_report_build,
        "apply_async",
        lambda args, queue: queued.append((args, queue)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(f"/staff/studies/{answered.slug}/report/rebuild")
    assert response.status_code == 302 and response["Location"].endswith("#report")
    assert queued == [([answered.pk], "default")]
    study_report_build.apply(args=[answered.pk])
    page = staff_client.get(f"/staff/studies/{answered.slug}/").content.decode()
    assert 'id="report-readers-detection"' in page and 'id="report-stale"' not in page

    # A new reader's answers make the stored report stale.
    readers_simulate(study=answered, readers=1, accuracy=0.7, seed=9)
    page = staff_client.get(f"/staff/studies/{answered.slug}/").content.decode()
    assert 'id="report-stale"' in page
    assert "100 answers now, 80 then" in page
    study_report_build.apply(args=[answered.pk])
    page = staff_client.get(f"/staff/studies/{answered.slug}/").content.decode()
    assert 'id="report-stale"' not in page
    assert StudyReport.objects.get().answers_count == 100


def test_report_from_the_database_equals_the_report_of_the_same_answers(db):
    from turingtest.stats.report import build_report
    from turingtest.stats.simulate import simulate_rows
    from turingtest.studies.simulated_rows import study_load_rows

    rows = simulate_rows(6, 20, n_practice=2, n_attention=2, seed=4, study="sim")
    study = study_load_rows(slug="sim", rows=rows)
    db_report, memory = study_report(study), build_report(rows)
    for e in study.enrollments.all():
        first = Judgment.objects.filter(session__enrollment=e).earliest("served_at")
        assert e.enrolled_at <= first.served_at and e.enrolled_at <= e.completed_at
    assert db_report.counts.main == memory.counts.main == 6 * 20 * 2
    assert db_report.counts.attention == memory.counts.attention

    def attention(report):
        return [(a.reader, a.n, a.n_failed) for a in report.attention.readers]

    assert attention(db_report) == attention(memory)
    d, m = db_report.detection["detection"], memory.detection["detection"]
    for key in ("pooled_accuracy", "mrmc_percent_correct", "mrmc_auc"):
        for field in ("estimate", "se", "df"):
            assert getattr(d, key).get(field) == pytest.approx(
                getattr(m, key).get(field), rel=1e-9
            ), key
    assert d.agreement.fleiss_kappa.estimate == pytest.approx(
        m.agreement.fleiss_kappa.estimate, rel=1e-9
    )
    assert [r.accuracy for r in d.readers] == [r.accuracy for r in m.readers]
    g, mg = db_report.grading["grading"], memory.grading["grading"]
    for source in ("real", "synthetic"):
        assert getattr(
            g.summary, source
        ).mean_kappa_quadratic.estimate == pytest.approx(
            getattr(mg.summary, source).mean_kappa_quadratic.estimate, rel=1e-9
        )
    assert g.confusion == mg.confusion


def test_report_read_as_arrays_equals_the_report_of_the_rows(db):
    from datetime import timedelta

    from turingtest.results.report import report_columns, report_rows
    from turingtest.stats.report import build_report
    from turingtest.stats.simulate import simulate_rows
    from turingtest.studies.models import JudgmentRevision
    from turingtest.studies.simulated_rows import study_load_rows

    rows = simulate_rows(5, 20, n_practice=2, n_attention=2, seed=3, study="cols")
    study = study_load_rows(slug="cols", rows=rows)
    # Revised answers count with their latest revision, in both readings.
    judgments = list(
        Judgment.objects.filter(session__phase__kind="detection").order_by("id")[:6]
    )
    for n, judgment in enumerate(judgments):
        for revision in range(1, 2 + n % 2):
            confidence = 7 - (judgment.confidence or 1) if revision == 1 else 3
            JudgmentRevision.objects.create(
                judgment=judgment,
                revision=revision,
                answer="real" if confidence <= 3 else "synthetic",
                confidence=confidence,
                kl_grade=judgment.kl_grade,
                answered_at=judgment.answered_at + timedelta(minutes=revision),
            )
    from_rows = build_report(report_rows(study), study=study.slug)
    from_columns = build_report(report_columns(study), study=study.slug)
    assert from_columns == from_rows
    assert from_columns.counts.main == 5 * 20 * 2
    assert from_columns.attention.n_checks > 0
    assert study_report(study) == from_columns


def test_a_report_stored_by_an_earlier_version_is_shown_then_rebuilt(
    answered, staff_client, monkeypatch
):
    stored = study_reports.study_report_save(study=answered, with_plots=False)
    data = stored.data
    del data["retest"], data["counts"]["repeats"]
    StudyReport.objects.filter(pk=stored.pk).update(
        version=study_reports.REPORT_VERSION - 1, data=data
    )
    # A large study's page shows the stored report as it is, flagged stale.
    monkeypatch.setattr(study_reports, "SYNC_BUILD_MAX_ANSWERS", 0)
    page = staff_client.get(f"/staff/studies/{answered.slug}/").content.decode()
    assert 'id="report-readers-detection"' in page and 'id="report-stale"' in page
    # Exports never use it: the report is rebuilt at this version first.
    report = study_reports.study_report_current(answered)
    assert report.version == study_reports.REPORT_VERSION
    row = StudyReport.objects.get(study=answered)
    assert row.version == study_reports.REPORT_VERSION and "retest" in row.data
