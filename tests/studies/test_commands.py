import io

import pytest
from django.core.management import CommandError, call_command

from turingtest.studies.models import Case, Enrollment, Judgment, Study


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_study_setup_from_the_command_line(pool):
    assert "grading → detection" in run(
        "create_study", "cli", "--name", "CLI study", "--phases", "grading,detection"
    )
    assert "10 main cases, 2 practice" in run(
        "build_cases", "cli", "--per-grade", "1", "--seed", "3", "--practice", "2"
    )
    study = Study.objects.get(slug="cli")
    assert study.cases.filter(role=Case.Role.MAIN).count() == 10
    links = run("invite_readers", "cli", "--count", "3").split()
    assert len(links) == 3 and len(set(links)) == 3
    assert all(link.startswith("http://127.0.0.1:8000/invite/") for link in links)


def test_build_cases_explains_shortage(pool):
    run("create_study", "short", "--name", "Short")
    with pytest.raises(CommandError, match="too few images"):
        run("build_cases", "short", "--per-grade", "5", "--seed", "1")


def test_create_study_rejects_bad_protocol(db):
    with pytest.raises(CommandError, match="Unsupported protocol"):
        run("create_study", "bad", "--name", "Bad", "--phases", "grading,grading")


def test_simulated_readers_answer_everything(study):
    out = run(
        "simulate_readers",
        study.slug,
        "--readers",
        "3",
        "--accuracy",
        "0.7",
        "--seed",
        "1",
    )
    assert "3 simulated readers gave 66 answers" in out
    assert (
        Enrollment.objects.filter(study=study, completed_at__isnull=False).count() == 3
    )
    assert Judgment.objects.filter(session__phase__isnull=False).count() == 60
    # Their simulated clock runs in the past; enrolment is on it too.
    for e in Enrollment.objects.filter(study=study):
        assert e.enrolled_at <= e.consented_at <= e.completed_at
        first = Judgment.objects.filter(session__enrollment=e).earliest("served_at")
        assert e.enrolled_at <= first.served_at


def test_simulated_accuracy_tracks_the_setting(make_study):
    study = make_study(slug="sim", phases=("detection",), per_grade=2, practice=0)
    from turingtest.studies.simulation import readers_simulate

    def accuracy(p, seed):
        Judgment.objects.all().delete()
        readers_simulate(study=study, readers=6, accuracy=p, seed=seed)
        js = Judgment.objects.filter(session__enrollment__study=study).select_related(
            "case__image"
        )
        return sum(j.answer == j.case.image.source for j in js) / js.count()

    assert accuracy(0.95, 1) > accuracy(0.5, 2) + 0.2


def test_simulation_needs_an_open_study(make_study):
    study = make_study(slug="draft", open=False)
    with pytest.raises(CommandError, match="open it before"):
        run("simulate_readers", study.slug, "--readers", "1")


def test_open_and_close_from_the_command_line(make_study):
    study = make_study(slug="cli-open", open=False)
    assert run("open_study", study.slug).strip() == "cli-open is open."
    assert run("open_study", study.slug, "--close").strip() == "cli-open is closed."
    with pytest.raises(CommandError, match="needs cases"):
        from turingtest.studies.services import study_create

        study_create(slug="bare", name="Bare")
        run("open_study", "bare")


def test_a_revealing_reader_title_needs_the_override_to_open(pool):
    run(
        "create_study",
        "titled",
        "--name",
        "Knee GAN pilot",
        "--reader-title",
        "Knee radiographs: real or synthetic?",
    )
    run("build_cases", "titled", "--per-grade", "1", "--seed", "3")
    with pytest.raises(CommandError, match="reader title: synthetic"):
        run("open_study", "titled")
    assert run("open_study", "titled", "--allow-revealing-words").strip() == (
        "titled is open."
    )
    study = Study.objects.get(slug="titled")
    assert study.revealing_words_allowed == "reader title: synthetic"
    assert study.revealing_words_allowed_by is None  # a command, not a person


def test_a_study_created_without_a_reader_title_gets_a_neutral_one(pool):
    run("create_study", "plain", "--name", "Real or synthetic, 2026")
    assert Study.objects.get(slug="plain").reader_title == (
        "Knee radiograph reading study"
    )
