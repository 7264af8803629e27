"""Extra questions per phase: set up, asked, answered and checked."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from tests.conftest import ReaderAPI
from turingtest.domain.scales import BIRADS
from turingtest.studies import services
from turingtest.studies.models import Judgment, PhaseQuestion, Study
from turingtest.studies.services import QuestionSpec

BIRADS_Q = QuestionSpec(phase=1, key="birads", type="ordinal", scale="birads")
REALISM_Q = QuestionSpec(phase=2, key="realism", type="ordinal", scale="realism-5")
WHY_Q = QuestionSpec(
    phase=2,
    key="why",
    type="free_text",
    required=False,
    prompt="What gave it away?",
)
QUESTIONS = [BIRADS_Q, REALISM_Q, WHY_Q]


def _study(make_study, **opts):
    return make_study(slug="mammo", questions=QUESTIONS, **opts)


def _answer(api: ReaderAPI, step: dict, **extra):
    body = {"stage": step["stage"], "position": step["position"]}
    answers = {}
    for q in step["phase"]["questions"]:
        if q.get("extra"):
            if q["field"] in extra:
                answers[q["field"]] = extra[q["field"]]
            elif q["required"]:
                answers[q["field"]] = q["choices"][0][0]
        elif q["field"] == "kl_grade":
            body["kl_grade"] = extra.get("kl_grade", 2)
        else:
            body["confidence"] = extra.get("confidence", 5)
    body["answers"] = answers
    return api.post("answers", body)


@pytest.fixture
def mammo_api(make_study, make_reader, client):
    study = _study(make_study)
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    client.force_login(enrollment.reader.user)
    return ReaderAPI(client, study.slug)


# --- set-up ------------------------------------------------------------------


def test_questions_are_stored_in_order_per_phase(make_study):
    study = _study(make_study, open=False)
    rows = PhaseQuestion.objects.filter(phase__study=study).order_by(
        "phase__index", "order"
    )
    assert [(q.phase.index, q.key, q.order) for q in rows] == [
        (0, "birads", 0),
        (1, "realism", 0),
        (1, "why", 1),
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (QuestionSpec(1, "why", "free_text"), "realism"),
        (QuestionSpec(1, "x", "ordinal", scale="lung-rads"), "No scale is named"),
        (QuestionSpec(1, "x", "nominal", scale="birads"), "is ordinal, not nominal"),
        (QuestionSpec(1, "kl_grade", "ordinal", scale="birads"), "built-in"),
        (QuestionSpec(1, "x", "ordinal"), "Name a built-in scale"),
        (QuestionSpec(1, "x", "ordinal", levels=[[2, "b"], [1, "a"]]), "increase"),
        (QuestionSpec(1, "x", "ordinal", scale="birads", keys={"f": 1}), "zooms"),
        (QuestionSpec(3, "x", "ordinal", scale="birads"), "phases 1 to 2"),
        (QuestionSpec(2, "why", "free_text", scale="birads"), "no scale"),
        (
            QuestionSpec(1, "x", "ordinal", scale="real-synthetic-6"),
            "question of a detection or combined phase",
        ),
    ],
)
def test_bad_questions_are_refused_and_nothing_is_written(pool, spec, message):
    with pytest.raises(ValidationError, match=message):
        services.study_create(slug="bad", name="Bad", questions=[spec])
    assert not Study.objects.filter(slug="bad").exists()


def test_custom_levels_make_a_scale_of_their_own(make_study):
    spec = QuestionSpec(
        1, "artefact", "nominal", levels=[["yes", "Visible"], ["no", "None seen"]]
    )
    study = make_study(slug="art", questions=[spec])
    (question,) = services.selectors.study_definition(study=study).extras(
        study.phases.get(index=0)
    )
    assert question.scale.codes == ("yes", "no")
    assert question.keymap() == {"v": "yes", "n": "no"}


def test_questions_change_only_while_the_study_is_a_draft(make_study):
    study = make_study(slug="open")
    with pytest.raises(ValidationError, match="draft"):
        services.phase_question_add(study=study, spec=BIRADS_Q)


def test_create_study_takes_questions_on_the_command_line(pool):
    out = io.StringIO()
    call_command(
        "create_study",
        "cli",
        "--name",
        "CLI",
        "--question",
        "1:birads:ordinal:birads",
        "--question",
        "detection:realism:ordinal:realism-5",
        "--question",
        "2:why:free_text::optional:What gave it away? Be brief: one line.",
        "--question",
        "2:artefact:nominal:y=Yes,n=No:optional",
        stdout=out,
    )
    assert "asks why in phase 2" in out.getvalue()
    rows = {q.key: q for q in PhaseQuestion.objects.filter(phase__study__slug="cli")}
    assert rows["birads"].phase.index == 0 and rows["birads"].required
    assert rows["why"].prompt == "What gave it away? Be brief: one line."
    assert not rows["why"].required
    assert rows["artefact"].levels == [["y", "Yes"], ["n", "No"]]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1:birads", "expected PHASE:KEY:TYPE:SCALE"),
        ("9:birads:ordinal:birads", "PHASE 9"),
        ("review:birads:ordinal:birads", "PHASE 'review'"),
        ("1:birads:likert:birads", "TYPE 'likert'"),
        ("1:birads:ordinal:birads:maybe", "'maybe' after SCALE"),
        ("1:x:nominal:a=A,b", "level 'b'"),
        ("1:why:free_text::optional", "realism"),
        ("1:birads:ordinal:bi-rads", "No scale is named 'bi-rads'"),
    ],
)
def test_create_study_names_the_bad_part_and_writes_nothing(pool, value, message):
    with pytest.raises(CommandError, match=message):
        call_command(
            "create_study",
            "bad",
            "--name",
            "Bad",
            "--question",
            value,
            stdout=io.StringIO(),
        )
    assert not Study.objects.filter(slug="bad").exists()


# --- asking and answering -------------------------------------------------------


def test_the_reference_protocol_asks_what_it_always_asked(reader_api):
    step = reader_api.next().json()
    (grade,) = step["phase"]["questions"]
    assert grade["field"] == "kl_grade" and "extra" not in grade
    assert grade["keys"] == {str(c): c for c in range(5)}
    assert [c[0] for c in grade["choices"]] == [0, 1, 2, 3, 4]


def test_payload_lists_the_extra_questions_with_choices_and_keys(mammo_api):
    step = mammo_api.next().json()
    assert step["stage"] == "practice"  # practice asks what the first phase asks
    grade, birads = step["phase"]["questions"]
    assert grade["field"] == "kl_grade"
    assert birads["field"] == "birads" and birads["extra"] is True
    assert birads["type"] == "ordinal" and birads["required"] is True
    assert birads["choices"][4] == [4, "Suspicious", ""]
    assert birads["keys"]["4"] == 4
    while step["stage"] != 2:
        step = _answer(mammo_api, step).json()["next"]
    fields = [q["field"] for q in step["phase"]["questions"]]
    assert fields == ["confidence", "realism", "why"]
    why = step["phase"]["questions"][2]
    assert why["type"] == "free_text" and why["required"] is False
    assert why["title"] == "What gave it away?" and why["choices"] == []
    assert why["max_length"] == 2000


def test_answers_are_stored_with_the_judgment(mammo_api):
    step = mammo_api.next().json()
    while step["stage"] != 2:
        response = _answer(mammo_api, step, birads=3)
        assert response.status_code == 201, response.content
        step = response.json()["next"]
    response = _answer(mammo_api, step, realism=2, why="  too smooth \n")
    assert response.status_code == 201, response.content
    step = response.json()["next"]
    assert _answer(mammo_api, step, realism=4).status_code == 201
    graded = Judgment.objects.filter(session__phase__index=0).first()
    assert graded.answers == {"birads": 3}
    detected = list(
        Judgment.objects.filter(session__phase__index=1).order_by("position")
    )
    assert detected[0].answers == {"realism": 2, "why": "too smooth"}
    assert detected[1].answers == {"realism": 4}  # the optional why left out


@pytest.mark.parametrize(
    ("answers", "field"),
    [
        ({}, "birads"),
        ({"birads": 7}, "birads"),
        ({"birads": "3"}, "birads"),
        ({"birads": 3, "realism": 2}, "realism"),
        ([3], "answers"),
    ],
)
def test_bad_answers_are_refused_per_question(mammo_api, answers, field):
    step = mammo_api.next().json()
    body = {"stage": step["stage"], "position": 0, "kl_grade": 1, "answers": answers}
    response = mammo_api.post("answers", body)
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Judgment.objects.exists()


def test_free_text_longer_than_the_limit_is_refused(mammo_api):
    step = mammo_api.next().json()
    while step["stage"] != 2:
        step = _answer(mammo_api, step).json()["next"]
    response = _answer(mammo_api, step, realism=3, why="x" * 2001)
    assert response.status_code == 400
    assert "2000 characters" in response.json()["fields"]["why"]


def test_revisions_carry_the_extra_answers(make_study, make_reader, client):
    study = _study(make_study, practice=0, edit_policy="until_phase_end")
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    client.force_login(enrollment.reader.user)
    api = ReaderAPI(client, study.slug)
    step = api.next().json()
    assert _answer(api, step, birads=1).status_code == 201
    body = {"stage": 1, "position": 0, "kl_grade": 3, "answers": {"birads": 5}}
    assert api.post("revisions", body).status_code == 201
    detail = client.get(f"/api/v1/studies/{study.slug}/answers/1/0").json()
    assert (detail["kl_grade"], detail["birads"]) == (3, 5)
    judgment = Judgment.objects.get()
    assert judgment.answers == {"birads": 1}
    assert judgment.revisions.get().answers == {"birads": 5}


# --- results ----------------------------------------------------------------------


def _zip_csv(staff_client, study, name):
    import csv
    import zipfile

    response = staff_client.get(f"/staff/studies/{study.slug}/results.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    text = archive.read(f"{study.slug}/{name}").decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_simulated_readers_answer_the_extra_questions(make_study):
    from turingtest.results.report import study_report
    from turingtest.studies.simulation import readers_simulate

    study = _study(make_study)
    readers_simulate(study=study, readers=3, accuracy=0.7, seed=1)
    graded = Judgment.objects.filter(session__phase__index=0)
    assert all(set(j.answers) == {"birads"} for j in graded)
    report = study_report(study)
    by_key = {q["key"]: q for q in report.questions}
    assert set(by_key) == {"birads", "realism"}  # free text has no agreement
    birads = by_key["birads"]
    assert birads["weights"] == "quadratic" and birads["phase"] == "grading"
    assert birads["n_readers"] == 3 and birads["n_pairs"] == 3
    assert birads["kappa"] is not None
    real, synthetic = birads["by_source"]
    assert real["n"] + synthetic["n"] == 3 * 10  # main cases, first showings


def test_reference_study_report_has_no_question_section(study, reader_api):
    from turingtest.results.report import study_report

    reader_api.answer_all()
    report = study_report(study)
    assert report.questions is None and "questions" not in report.to_json()


def test_exports_hold_one_column_per_question_and_the_free_text(
    mammo_api, staff_client
):
    study = Study.objects.get(slug="mammo")
    step = mammo_api.next().json()
    while step["stage"] != 2:
        step = _answer(mammo_api, step, birads=2).json()["next"]
    step = _answer(mammo_api, step, realism=1, why="=SUM(A1) halo").json()["next"]
    _answer(mammo_api, step, realism=5)
    rows = _zip_csv(staff_client, study, "judgments.csv")
    assert list(rows[0])[-3:] == ["birads", "realism", "why"]
    graded = [r for r in rows if r["phase"] == "grading"]
    assert {r["birads"] for r in graded} == {"2"}
    assert {r["realism"] for r in graded} == {""}
    detected = [r for r in rows if r["phase"] == "detection"]
    assert [(r["realism"], r["why"]) for r in detected] == [
        ("1", "'=SUM(A1) halo"),  # a formula-like cell carries its quote
        ("5", ""),
    ]
    (free,) = _zip_csv(staff_client, study, "free_text.csv")
    assert free["question"] == "why" and free["text"] == "'=SUM(A1) halo"
    assert free["phase"] == "detection" and free["truth"] in ("real", "synthetic")
    page = staff_client.get(f"/staff/studies/{study.slug}/")
    assert b'id="free-text"' in page.content
    assert b"=SUM(A1) halo" in page.content
    assert b'id="report-questions-table"' in page.content


def test_phase_admin_adds_questions_while_the_study_is_a_draft(
    make_study, staff_client
):
    study = make_study(slug="adm", open=False)
    phase = study.phases.get(index=1)
    url = f"/admin/studies/phase/{phase.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200
    form = {
        "study": study.pk,
        "index": 1,
        "kind": "detection",
        "questions-TOTAL_FORMS": 2,
        "questions-INITIAL_FORMS": 0,
        "questions-MIN_NUM_FORMS": 0,
        "questions-MAX_NUM_FORMS": 1000,
        "questions-0-order": 0,
        "questions-0-key": "realism",
        "questions-0-type": "ordinal",
        "questions-0-scale": "realism-5",
        "questions-0-levels": "null",
        "questions-0-required": "on",
        "questions-0-keys": "null",
        "questions-1-order": 1,
        "questions-1-key": "why",
        "questions-1-type": "free_text",
        "questions-1-levels": "null",
        "questions-1-keys": "null",
        "questions-1-prompt": "What gave it away?",
    }
    response = staff_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(phase.questions.values_list("key", flat=True)) == ["realism", "why"]
    grading = study.phases.get(index=0)
    bad = form | {
        "index": 0,
        "kind": "grading",
        "questions-TOTAL_FORMS": 1,
        "questions-0-key": "why",
        "questions-0-type": "free_text",
        "questions-0-scale": "",
    }
    response = staff_client.post(f"/admin/studies/phase/{grading.pk}/change/", bad)
    assert response.status_code == 200
    assert b"realism" in response.content  # the error says where free text goes
    assert not grading.questions.exists()
    services.study_open(study=study)
    page = staff_client.get(url)
    assert b'name="questions-0-key"' not in page.content  # shown, not editable


def test_a_backup_restores_the_questions_and_their_answers(
    mammo_api, tmp_path, settings
):
    from turingtest.results import backup

    settings.TURINGTEST = {
        **settings.TURINGTEST,
        "DELETED_DIR": str(tmp_path / "deleted"),
    }
    study = Study.objects.get(slug="mammo")
    step = mammo_api.next().json()
    while step["stage"] != 2:
        step = _answer(mammo_api, step, birads=6).json()["next"]
    _answer(mammo_api, step, realism=2, why="grain")
    archive = tmp_path / "mammo.zip"
    call_command("backup_study", "mammo", "--out", str(archive), stdout=io.StringIO())
    backup.study_delete(study=study, confirmation="mammo")
    assert not PhaseQuestion.objects.exists()
    call_command("restore_study", str(archive), stdout=io.StringIO())
    restored = PhaseQuestion.objects.filter(phase__study__slug="mammo")
    assert sorted(restored.values_list("key", flat=True)) == [
        "birads",
        "realism",
        "why",
    ]
    assert Judgment.objects.filter(answers={"realism": 2, "why": "grain"}).exists()


def test_an_open_studys_phase_is_not_deleted_on_its_own(make_study, staff_client):
    study = make_study(slug="keep")
    phase = study.phases.get(index=0)
    response = staff_client.post(
        f"/admin/studies/phase/{phase.pk}/delete/", {"post": "yes"}
    )
    assert response.status_code == 403
    assert study.phases.count() == 2


def test_a_blind_grading_question_may_not_name_the_design(make_study):
    spec = QuestionSpec(
        1, "origin", "nominal", levels=[["h", "Human"], ["g", "GAN-made"]]
    )
    study = make_study(slug="blind", open=False, questions=[spec])
    with pytest.raises(ValidationError, match="question origin: GAN"):
        services.study_open(study=study)
    assert services.study_open(study=study, allow_revealing_words=True).opened_at


def test_opening_checks_the_questions_against_the_phases_as_they_are(make_study):
    why = QuestionSpec(1, "why", "free_text", required=False)
    study = make_study(slug="moved", phases=("detection",), open=False, questions=[why])
    Phase = study.phases.model
    Phase.objects.filter(study=study).update(kind="grading")
    with pytest.raises(ValidationError, match="Phase 1, question 'why'.*realism"):
        services.study_open(study=study)


# --- a phase graded by its own questions only ----------------------------------


def test_birads_may_grade_in_place_of_the_kl_grade(make_study, make_reader, client):
    study = make_study(slug="birads", questions=[BIRADS_Q], asks_kl_grade=False)
    assert study.reader_title == "Image reading study"  # not a knee study
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    client.force_login(enrollment.reader.user)
    api = ReaderAPI(client, study.slug)
    step = api.next().json()
    assert [q["field"] for q in step["phase"]["questions"]] == ["birads"]
    assert "Kellgren" not in step["phase"]["intro"]
    refused = api.post(
        "answers", {"stage": "practice", "position": 0, "kl_grade": 2}
    ).json()
    assert set(refused["fields"]) == {"kl_grade", "birads"}
    practice = _answer(api, step, birads=4).json()
    assert practice["feedback"] == {}  # no reference BI-RADS to show
    step = practice["next"]
    while step["stage"] != 2:
        step = _answer(api, step, birads=1).json()["next"]
    assert [q["field"] for q in step["phase"]["questions"]] == ["confidence"]
    graded = Judgment.objects.filter(session__phase__index=0)
    assert graded.exists()
    assert all((j.kl_grade, j.answers) == (None, {"birads": 1}) for j in graded)
    from turingtest.results.report import study_report

    # Its report speaks of its own questions, never of KL grades it never asked.
    assert not [m for m in study_report(study).messages if "KL" in m]


def test_a_reference_study_without_grades_yet_says_so(study):
    from turingtest.results.report import study_report

    assert study.reader_title == "Knee radiograph reading study"
    assert "No KL grades: no grading statistics." in study_report(study).messages


def test_a_phase_without_the_kl_grade_needs_a_required_question(pool):
    with pytest.raises(ValidationError, match="Phase 1 \\(grading\\) asks no KL"):
        services.study_create(slug="empty", name="Empty", asks_kl_grade=False)
    optional = QuestionSpec(1, "birads", "ordinal", scale="birads", required=False)
    with pytest.raises(ValidationError, match="asks no KL"):
        services.study_create(
            slug="empty", name="Empty", asks_kl_grade=False, questions=[optional]
        )
    assert not Study.objects.filter(slug="empty").exists()
    call_command(
        "create_study",
        "mammo",
        "--name",
        "Mammo",
        "--no-kl-grade",
        "--question",
        "1:birads:ordinal:birads",
        stdout=io.StringIO(),
    )
    assert not Study.objects.get(slug="mammo").phases.filter(asks_kl_grade=True)


def test_simulated_birads_readers_land_near_the_reference_and_the_report_says_so(
    make_image,
):
    """On a pool graded in BI-RADS, simulated readers answer near each image's
    reference category: the report's exact agreement is well above chance
    (1 in 7) and within one step is most answers; a question on a scale the
    pool holds no reference values on (realism) has no such section."""
    from turingtest.results.report import study_report
    from turingtest.studies.simulation import readers_simulate

    for birads in range(7):
        for source in ("real", "real", "synthetic", "synthetic"):
            make_image(source, birads % 5, kl_grade=None, references={"birads": birads})
    study = services.study_create(
        slug="mammo-sim",
        name="Mammo",
        practice_count=0,
        asks_kl_grade=False,
        questions=[BIRADS_Q, REALISM_Q],
    )
    services.cases_build(study=study, per_grade=2, seed=1, scale=BIRADS)
    study = services.study_open(study=study)
    readers_simulate(study=study, readers=3, accuracy=0.7, seed=4)
    by_key = {q["key"]: q for q in study_report(study).questions}
    reference = by_key["birads"]["reference"]
    assert reference["n_images"] == 28 and reference["n_answers"] == 3 * 28
    assert reference["exact"]["estimate"] > 0.35
    assert reference["within_one"]["estimate"] > 0.75
    assert by_key["realism"]["reference"] is None


def test_a_stored_real_synthetic_question_still_reads(make_study):
    """Refused when set up now, but a row saved before the refusal still
    reads: readers' pages and reports go on working."""
    study = _study(make_study, open=False)
    row = PhaseQuestion.objects.create(
        phase=study.phases.get(index=1),
        key="rating",
        type="ordinal",
        scale="real-synthetic-6",
        order=5,
    )
    assert row.as_question().scale.name == "real-synthetic-6"
    with pytest.raises(ValidationError, match="detection or combined phase"):
        row.full_clean()


def test_practice_shows_the_reference_on_the_questions_own_scale(
    make_image, make_reader, client
):
    """On a pool graded in BI-RADS, a practice answer is followed by the
    practice image's reference category; main cases never get one."""
    for birads in range(1, 4):
        for source in ("real", "real", "real", "synthetic"):
            make_image(source, birads, kl_grade=None, references={"birads": birads})
    study = services.study_create(
        slug="mammo-practice",
        name="Mammo",
        practice_count=2,
        asks_kl_grade=False,
        questions=[BIRADS_Q],
    )
    services.cases_build(
        study=study, per_grade=1, seed=2, scale=BIRADS, grades=(1, 2, 3)
    )
    study = services.study_open(study=study)
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    client.force_login(enrollment.reader.user)
    api = ReaderAPI(client, study.slug)
    step = api.next().json()
    seen = []
    while step["stage"] == "practice":
        case = Judgment.objects.filter(session__enrollment=enrollment).count()
        reply = _answer(api, step, birads=6).json()
        judgment = Judgment.objects.filter(session__enrollment=enrollment).latest("id")
        assert (
            Judgment.objects.filter(session__enrollment=enrollment).count() == case + 1
        )
        expected = judgment.case.image.reference("birads")
        assert reply["feedback"] == {
            "references": [
                {
                    "field": "birads",
                    "label": "Reference BI-RADS category",
                    "value": expected,
                    "value_label": BIRADS.label(expected),
                }
            ]
        }
        seen.append(expected)
        step = reply["next"]
    assert len(seen) == 2
    main = _answer(api, step, birads=2).json()
    assert "feedback" not in main or not main["feedback"]
