"""Staff cannot change an open study's cases or protocol under its readers."""

import pytest
from django.core.exceptions import ValidationError

from turingtest.imaging.models import Image
from turingtest.studies import services
from turingtest.studies.models import Case, Study


def change_form(client, url: str) -> dict:
    """The change page's editable fields as a browser would post them back."""
    import re

    html = client.get(url).content.decode()
    data = {}
    for tag in re.findall(r"<(?:input|textarea|select)[^>]*>", html):
        name = re.search(r'name="([^"]+)"', tag)
        if not name or name.group(1) in ("csrfmiddlewaretoken", "_save"):
            continue
        value = re.search(r'value="([^"]*)"', tag)
        data[name.group(1)] = value.group(1) if value else ""
    return data


def test_an_open_studys_protocol_is_read_only_in_the_admin(study, staff_client):
    url = f"/admin/studies/study/{study.pk}/change/"
    before = Study.objects.get(pk=study.pk)
    phases = list(study.phases.values_list("index", "kind"))
    form = change_form(staff_client, url)
    protocol = {"seed", "edit_policy", "practice_count", "instructions", "slug"}
    assert not protocol & set(form), "protocol fields are editable on an open study"
    assert not any(name.startswith("phases-") for name in form)

    # A crafted post carrying protocol fields and phase rows changes none of them.
    hostile = form | {
        "name": "Renamed",
        "seed": "1",
        "edit_policy": "until_phase_end",
        "practice_count": "0",
        "instructions": "Grade generously.",
        "consent_text": "Changed.",
        # Opening checked the readers' texts; they cannot change afterwards.
        "reader_title": "Real or synthetic?",
        "slug": "other",
        "phases-TOTAL_FORMS": "1",
        "phases-INITIAL_FORMS": "0",
        "phases-0-index": "5",
        "phases-0-kind": "combined",
    }
    response = staff_client.post(url, hostile)
    assert response.status_code == 302
    after = Study.objects.get(pk=study.pk)
    assert after.name == "Renamed"
    for field in (
        "slug",
        "seed",
        "edit_policy",
        "practice_count",
        "instructions",
        "reader_title",
    ):
        assert getattr(after, field) == getattr(before, field), field
    assert after.consent_text == before.consent_text
    assert list(study.phases.values_list("index", "kind")) == phases


def test_a_draft_studys_protocol_stays_editable(make_study, staff_client):
    draft = make_study(slug="draft", open=False)
    form = change_form(staff_client, f"/admin/studies/study/{draft.pk}/change/")
    assert {"seed", "edit_policy", "practice_count", "instructions"} <= set(form)
    assert "phases-TOTAL_FORMS" in form


def test_an_open_studys_phases_cannot_be_added_changed_or_deleted(study, staff_client):
    phase = study.phases.order_by("index").first()
    url = f"/admin/studies/phase/{phase.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    changed = staff_client.post(
        url, {"study": study.pk, "index": 0, "kind": "detection"}
    )
    assert changed.status_code == 403
    assert staff_client.get("/admin/studies/phase/add/").status_code == 403
    deleted = staff_client.post(
        f"/admin/studies/phase/{phase.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 403
    phase.refresh_from_db()
    assert (phase.index, phase.kind) == (0, "grading")


def test_an_open_studys_cases_cannot_be_changed_added_or_deleted(
    study, staff_client, pool
):
    case = study.cases.order_by("number").first()
    spare = Image.objects.exclude(cases__study=study).first()
    url = f"/admin/studies/case/{case.pk}/change/"
    page = staff_client.get(url)
    assert page.status_code == 200 and b'name="_save"' not in page.content
    changed = staff_client.post(
        url, {"study": study.pk, "image": spare.pk, "role": "main", "number": 999}
    )
    assert changed.status_code == 403

    delete = staff_client.post(
        f"/admin/studies/case/{case.pk}/delete/", {"post": "yes"}
    )
    assert delete.status_code == 403
    bulk = staff_client.post(
        "/admin/studies/case/",
        {"action": "delete_selected", "_selected_action": [case.pk], "post": "yes"},
    )
    assert bulk.status_code == 403

    added = staff_client.post(
        "/admin/studies/case/add/",
        {"study": study.pk, "image": spare.pk, "role": "main", "number": 999},
    )
    assert added.status_code == 200 and b"Select a valid choice" in added.content

    after = Case.objects.get(pk=case.pk)
    assert (after.image_id, after.number) == (case.image_id, case.number)
    assert study.cases.count() == 12 and not study.cases.filter(number=999).exists()
    with pytest.raises(ValidationError, match="only change while it is a draft"):
        services.cases_build(study=study, per_grade=1, seed=99)


def test_a_draft_studys_cases_can_be_edited(make_study, staff_client, pool):
    draft = make_study(slug="draft", open=False)
    case = draft.cases.order_by("number").first()
    response = staff_client.post(
        f"/admin/studies/case/{case.pk}/change/",
        {"study": draft.pk, "image": case.image_id, "role": "main", "number": 500},
    )
    assert response.status_code == 302
    assert Case.objects.get(pk=case.pk).number == 500


def test_the_truth_of_an_image_in_an_open_study_is_read_only(study, staff_client):
    image = study.cases.first().image
    url = f"/admin/imaging/image/{image.pk}/change/"
    form = change_form(staff_client, url)
    assert not {"source", "kl_grade"} & set(form)
    staff_client.post(url, form | {"source": "synthetic", "kl_grade": "4"})
    after = Image.objects.get(pk=image.pk)
    assert (after.source, after.kl_grade) == (image.source, image.kl_grade)


def test_the_staff_page_opens_a_revealing_study_only_with_the_recorded_override(
    make_study, staff_client
):
    study = make_study(slug="revealing", open=False)
    study.instructions = "Half of the images come from a GAN."
    study.save()
    url = f"/staff/studies/{study.slug}/"
    page = staff_client.get(url).content.decode()
    assert "Readers would see GAN (instructions)" in page
    refused = staff_client.post(f"{url}status", {"action": "open"}, follow=True)
    assert "readers would see words" in refused.content.decode()
    assert Study.objects.get(pk=study.pk).status == Study.Status.DRAFT
    staff_client.post(
        f"{url}status", {"action": "open", "allow_revealing_words": "1"}, follow=True
    )
    study.refresh_from_db()
    assert study.status == Study.Status.OPEN
    assert study.revealing_words_allowed == "instructions: GAN"
    assert study.revealing_words_allowed_by.username == "staff@example.org"
    assert "revealing words allowed by staff@example.org" in (
        staff_client.get(url).content.decode()
    )
