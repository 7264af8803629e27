from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from turingtest.imaging.models import Image
from turingtest.studies import selectors, services
from turingtest.studies.models import (
    Case,
    Invitation,
    Judgment,
    JudgmentRevision,
    Study,
)


def test_study_create_rejects_unknown_protocol(db):
    with pytest.raises(ValidationError, match="Unsupported protocol"):
        services.study_create(slug="s", name="S", phases=["detection", "grading"])
    assert not Study.objects.exists()


def test_cases_are_balanced_by_grade_and_source(make_study):
    study = make_study(per_grade=2, practice=2, open=False)
    main = study.cases.filter(role=Case.Role.MAIN).select_related("image")
    cells = {}
    for case in main:
        key = (case.image.kl_grade, case.image.source)
        cells[key] = cells.get(key, 0) + 1
    assert cells == {(g, s): 2 for g in range(5) for s in ("real", "synthetic")}
    practice = study.cases.filter(role=Case.Role.PRACTICE).select_related("image")
    assert practice.count() == 2
    assert all(c.image.source == "real" for c in practice)
    assert sorted(study.cases.values_list("number", flat=True)) == list(range(1, 23))


def test_cases_build_same_seed_same_cases(make_study, pool):
    a = make_study(slug="a", open=False)
    b = make_study(slug="b", open=False)
    assert set(a.cases.values_list("image", "role")) == set(
        b.cases.values_list("image", "role")
    )


def test_cases_build_reports_shortage_and_keeps_old_cases(make_study):
    study = make_study(per_grade=1, open=False)
    before = list(study.cases.values_list("id", flat=True))
    with pytest.raises(ValidationError, match="too few images.*KL0 synthetic: 2 of 3"):
        services.cases_build(study=study, per_grade=3, seed=1)
    assert list(study.cases.values_list("id", flat=True)) == before


def test_cases_cannot_change_once_open(study):
    with pytest.raises(ValidationError, match="only change while it is a draft"):
        services.cases_build(study=study, per_grade=1, seed=99)


def test_study_cannot_open_without_cases(db):
    study = services.study_create(slug="empty", name="Empty")
    with pytest.raises(ValidationError, match="needs cases"):
        services.study_open(study=study)


def test_invitation_is_single_use(study, make_reader):
    ((_, token),) = services.invitations_create(study=study, count=1)
    services.reader_signup(
        token=token,
        email="a@example.org",
        password="correct-horse-battery-staple",
        name="A",
        profession="radiologist",
        experience_years=3,
    )
    assert services.invitation_find(token=token) is None
    with pytest.raises(ValidationError):
        services.reader_signup(
            token=token,
            email="b@example.org",
            password="correct-horse-battery-staple",
            name="B",
            profession="radiologist",
            experience_years=3,
        )
    # The failed sign-up left no account behind.
    assert not selectors.enrollment_for(
        user=type("U", (), {"is_authenticated": False})(), study_slug=study.slug
    )
    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="b@example.org").exists()


def test_expired_invitation_is_refused(study):
    ((invitation, token),) = services.invitations_create(study=study, count=1)
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.invitation_find(token=token) is None
    assert services.invitation_find(token="not-a-token") is None


def test_weak_password_is_refused(study):
    ((_, token),) = services.invitations_create(study=study, count=1)
    with pytest.raises(ValidationError):
        services.reader_signup(
            token=token,
            email="c@example.org",
            password="12345678",
            name="C",
            profession="radiologist",
            experience_years=3,
        )
    assert services.invitation_find(token=token) is not None


def test_each_reader_gets_own_stored_order(study, make_reader):
    phase = study.phases.get(index=0)
    a = services.reading_session_start(enrollment=make_reader(study), phase=phase)
    b = services.reading_session_start(enrollment=make_reader(study), phase=phase)
    assert sorted(a.order) == sorted(b.order)
    assert a.order != b.order
    again = services.reading_session_start(enrollment=a.enrollment, phase=phase)
    assert again.pk == a.pk and again.order == a.order
    detection = services.reading_session_start(
        enrollment=a.enrollment, phase=study.phases.get(index=1)
    )
    assert detection.order != a.order and sorted(detection.order) == sorted(a.order)


def test_order_is_reproducible_from_seed(study, enrollment):
    import random

    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.first()
    )
    ids = list(
        study.cases.exclude(role="practice")
        .order_by("number")
        .values_list("id", flat=True)
    )
    random.Random(session.seed).shuffle(ids)
    assert ids == session.order


def test_judgment_record_is_idempotent_and_ordered(study, enrollment):
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(index=0)
    )
    first = services.judgment_record(session=session, position=0, kl_grade=2)
    again = services.judgment_record(session=session, position=0, kl_grade=3)
    assert first.created and not again.created
    assert again.judgment.pk == first.judgment.pk and again.judgment.kl_grade == 2
    with pytest.raises(ValidationError, match="not the current case"):
        services.judgment_record(session=session, position=5, kl_grade=1)
    assert Judgment.objects.count() == 1


@pytest.mark.parametrize(
    ("confidence", "kl_grade", "message"),
    [
        (None, 2, "does not ask for a KL grade"),
        (7, None, "from 1 to 6"),
        (None, None, "Choose one of the six"),
        (True, None, "from 1 to 6"),
    ],
)
def test_detection_answers_are_validated(
    study, enrollment, confidence, kl_grade, message
):
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(kind="detection")
    )
    with pytest.raises(ValidationError, match=message):
        services.judgment_record(
            session=session, position=0, confidence=confidence, kl_grade=kl_grade
        )
    assert not Judgment.objects.exists()


def test_detection_rating_sets_answer(study, enrollment):
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(kind="detection")
    )
    j = services.judgment_record(session=session, position=0, confidence=3).judgment
    assert (j.answer, j.confidence) == ("real", 3)
    j = services.judgment_record(session=session, position=1, confidence=4).judgment
    assert (j.answer, j.confidence) == ("synthetic", 4)


def _answer_session(session, **answer):
    for position in range(len(session.order)):
        services.judgment_record(session=session, position=position, **answer)


def test_completing_all_phases_completes_enrollment(study, enrollment):
    for phase in study.phases.order_by("index"):
        assert enrollment.completed_at is None
        session = services.reading_session_start(enrollment=enrollment, phase=phase)
        _answer_session(
            session,
            **({"kl_grade": 1} if phase.kind == "grading" else {"confidence": 2}),
        )
        enrollment.refresh_from_db()
    assert enrollment.completed_at is not None
    assert selectors.reader_stage(enrollment=enrollment).name == "done"


def test_stage_walks_consent_practice_phases(study, make_reader):
    enrollment = make_reader(study)
    assert selectors.reader_stage(enrollment=enrollment).name == "consent"
    enrollment = services.enrollment_consent(enrollment=enrollment)
    assert selectors.reader_stage(enrollment=enrollment).name == "practice"
    _answer_session(
        services.reading_session_start(enrollment=enrollment, phase=None), kl_grade=0
    )
    stage = selectors.reader_stage(enrollment=enrollment)
    assert (stage.name, stage.phase.kind, stage.phase_number) == ("phase", "grading", 1)


def test_revisions_keep_the_first_answer(make_study, make_reader):
    study = make_study(slug="edits", edit_policy=Study.EditPolicy.UNTIL_PHASE_END)
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(index=0)
    )
    _answer_session(session, kl_grade=1)
    session.refresh_from_db()
    assert session.completed_at is None  # open for review until finished
    services.judgment_revise(session=session, position=3, kl_grade=4)
    services.judgment_revise(session=session, position=3, kl_grade=2)
    judgment = session.judgments.get(position=3)
    assert judgment.kl_grade == 1
    assert list(judgment.revisions.values_list("revision", "kl_grade")) == [
        (1, 4),
        (2, 2),
    ]
    services.reading_session_finish(session=session)
    with pytest.raises(ValidationError, match="finished"):
        services.judgment_revise(session=session, position=3, kl_grade=0)
    assert JudgmentRevision.objects.count() == 2


def test_the_readers_own_score_counts_their_revised_answers(make_study, make_reader):
    from django.test import Client

    study = make_study(
        slug="revised", edit_policy=Study.EditPolicy.UNTIL_PHASE_END, show_score=True
    )
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    _answer_session(
        services.reading_session_start(enrollment=enrollment, phase=None), kl_grade=0
    )
    for phase in study.phases.order_by("index"):
        session = services.reading_session_start(enrollment=enrollment, phase=phase)
        grading = phase.kind == "grading"
        # First every answer wrong, then each one revised to the reference.
        _answer_session(session, **({"kl_grade": 4} if grading else {"confidence": 6}))
        for judgment in session.judgments.select_related("case__image"):
            image = judgment.case.image
            if grading:
                services.judgment_revise(
                    session=session, position=judgment.position, kl_grade=0
                )
                services.judgment_revise(
                    session=session,
                    position=judgment.position,
                    kl_grade=image.kl_grade,
                )
            else:
                services.judgment_revise(
                    session=session,
                    position=judgment.position,
                    confidence=1 if image.source == "real" else 6,
                )
        services.reading_session_finish(session=session)
    client = Client()
    client.force_login(enrollment.reader.user)
    page = client.get(f"/s/{study.slug}/done/").content.decode()
    assert "Real or synthetic: 10 of 10 correct" in page
    assert "KL grade: 10 of 10 matched the reference (10 within one grade)" in page
    # The report and the exports score the same final answers by the same rule.
    from turingtest.results.exports import judgment_rows
    from turingtest.results.report import report_rows

    assert [r["correct"] for r in report_rows(study)] == [True] * 20
    final = {}
    for row in judgment_rows(study):
        final[(row["phase"], row["case"])] = row["correct"]
    assert list(final.values()) == ["true"] * 20


def test_no_revisions_without_policy(study, enrollment):
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(index=0)
    )
    services.judgment_record(session=session, position=0, kl_grade=1)
    with pytest.raises(ValidationError, match="cannot be changed"):
        services.judgment_revise(session=session, position=0, kl_grade=2)


def test_closed_study_takes_no_answers(study, enrollment):
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(index=0)
    )
    services.study_close(study=study)
    with pytest.raises(ValidationError, match="not open"):
        services.judgment_record(session=session, position=0, kl_grade=1)


def test_served_time_survives_reload(study, enrollment):
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(index=0)
    )
    t0 = timezone.now() - timedelta(seconds=30)
    services.reading_session_serve(session=session, position=0, now=t0)
    services.reading_session_serve(
        session=session, position=0, now=t0 + timedelta(seconds=20)
    )
    j = services.judgment_record(
        session=session, position=0, kl_grade=2, now=t0 + timedelta(seconds=25)
    ).judgment
    assert j.served_at == t0
    assert j.duration_ms == 25_000


# --- the pool's reserved part: practice tells readers the truth --------------


def _real_pool(make_image, real: int, grade: int = 0) -> None:
    for _ in range(real):
        make_image("real", grade)
    for _ in range(3):
        make_image("synthetic", grade)


def test_practice_images_of_one_study_are_never_main_cases_of_another(
    make_image, make_reader
):
    _real_pool(make_image, real=6)
    b = services.study_create(slug="b", name="B", practice_count=3)
    services.cases_build(study=b, per_grade=1, seed=1, grades=(0,))
    b = services.study_open(study=b)
    practice = set(
        b.cases.filter(role=Case.Role.PRACTICE).values_list("image", flat=True)
    )
    for seed in range(12):
        a = services.study_create(slug=f"a{seed}", name="A", practice_count=0)
        services.cases_build(study=a, per_grade=2, seed=seed, grades=(0,))
        main = set(a.cases.filter(role=Case.Role.MAIN).values_list("image", flat=True))
        assert not main & practice, seed


def test_cases_build_refuses_when_only_reserved_images_would_fit(make_image):
    _real_pool(make_image, real=3)
    b = services.study_create(slug="b", name="B", practice_count=2)
    services.cases_build(study=b, per_grade=1, seed=1, grades=(0,))
    a = services.study_create(slug="a", name="A", practice_count=0)
    with pytest.raises(
        ValidationError, match=r"KL0 real: 1 of 3 \(2 more reserved\).*reserved"
    ):
        services.cases_build(study=a, per_grade=3, seed=1, grades=(0,))
    assert not a.cases.exists()


def test_main_cases_of_one_study_are_never_practice_of_another(make_image):
    _real_pool(make_image, real=4)
    a = services.study_create(slug="a", name="A", practice_count=0)
    services.cases_build(study=a, per_grade=3, seed=1, grades=(0,))
    b = services.study_create(slug="b", name="B", practice_count=2)
    with pytest.raises(ValidationError, match="no study's main cases; the pool has 1"):
        services.cases_build(study=b, per_grade=1, seed=1, grades=(0,))


def test_opening_reserves_practice_images_for_good(make_study):
    study = make_study(open=False)
    practice = study.cases.filter(role=Case.Role.PRACTICE)
    assert not practice.filter(image__reserved=True).exists()  # a draft shows nothing
    services.study_open(study=study)
    assert practice.filter(image__reserved=False).count() == 0
    study.delete()  # what readers saw stays seen
    assert Image.objects.filter(reserved=True).count() == 2


def test_a_study_whose_main_case_shows_a_reserved_image_does_not_open(make_study):
    shown = make_study(slug="shown")
    image = shown.cases.filter(role=Case.Role.PRACTICE).first().image
    study = make_study(slug="later", practice=0, open=False)
    # Added by hand, as the admin allows in a draft.
    Case.objects.create(study=study, image=image, role=Case.Role.MAIN, number=99)
    with pytest.raises(ValidationError, match="Case 99 use images"):
        services.study_open(study=study)
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT


# --- what readers see must not give the design away ----------------------------


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("reader_title", "Knee radiographs: real or synthetic?"),
        ("instructions", "Some images were made by a GAN."),
        ("instructions", "Spot the AI-generated knees."),
        ("consent_text", "I agree to judge fakes."),
    ],
)
def test_a_blind_grading_study_naming_its_design_does_not_open(make_study, field, text):
    study = make_study(open=False)
    setattr(study, field, text)
    study.save()
    with pytest.raises(ValidationError, match="readers would see words"):
        services.study_open(study=study)
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT


def test_the_override_opens_it_and_is_recorded(make_study, django_user_model):
    study = make_study(open=False)
    study.instructions = "Some of these are synthetic."
    study.save()
    admin = django_user_model.objects.create_user("pi@example.org", is_staff=True)
    study = services.study_open(study=study, allow_revealing_words=True, by=admin)
    assert study.status == Study.Status.OPEN
    study.refresh_from_db()
    assert study.revealing_words_allowed == "instructions: synthetic"
    assert study.revealing_words_allowed_by == admin
    assert study.revealing_words_allowed_at is not None


def test_neutral_words_and_a_detection_first_study_open(make_study):
    neutral = make_study(slug="neutral", open=False)
    neutral.instructions = "Look for degenerative changes of the organ; grade them."
    neutral.save()
    assert services.study_open(study=neutral).status == Study.Status.OPEN
    told = make_study(slug="told", phases=("detection",), open=False)
    told.reader_title = "Real or synthetic?"
    told.save()
    told = services.study_open(study=told)
    assert told.status == Study.Status.OPEN and told.revealing_words_allowed == ""
