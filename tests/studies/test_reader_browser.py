"""A reader completes a study in Chromium with the keyboard; staff download what was clicked."""

import csv
import io
import os
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from turingtest.studies import services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR")


def _progress(page) -> str:
    return page.locator("#progress-text").inner_text()


def _wait_progress_change(page, before: str) -> None:
    # Polled from Python: the page's CSP forbids the eval behind wait_for_function.
    for _ in range(200):
        if page.url.endswith("/done/"):
            return
        try:
            if (
                page.locator("#interstitial").is_visible()
                or page.locator("#progress-text").inner_text(timeout=500) != before
            ):
                return
        except PlaywrightError:
            pass  # the page is navigating to the completion page
        page.wait_for_timeout(50)
    raise AssertionError(f"the reading page did not move on from {before}")


def _wait_image(page) -> None:
    expect(page.locator("#image")).to_have_attribute(
        "src", re.compile(r"^/api/v1/images/")
    )


def test_reader_completes_study_by_keyboard_and_export_matches(
    live_server, page, pool, django_user_model
):
    study = services.study_create(
        slug="browser",
        name="Knee radiographs",
        phases=("grading", "detection"),
        practice_count=2,
    )
    services.cases_build(study=study, per_grade=1, seed=11)
    services.study_open(study=study)
    # A personal invitation: its address signs up at once (an anonymous link
    # would first confirm the address by mail).
    ((_, token),) = services.invitations_create(study=study, emails=["ada@example.org"])
    base = live_server.url
    errors = []  # uncaught script errors, e.g. reading a phase after the last answer
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{base}/invite/{token}/")
    page.fill("#id_name", "Dr Ada Reader")
    page.fill("#id_email", "ada@example.org")
    page.fill("#id_password", PASSWORD)
    page.fill("#id_password_again", PASSWORD)
    page.select_option("#id_profession", "radiologist")
    page.fill("#id_experience_years", "12")
    page.fill("#id_subspecialty", "Musculoskeletal")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/s/browser/")
    page.check("#id_consent")
    page.click("#start")
    page.wait_for_url(f"{base}/s/browser/read/")

    clicked = {}  # (phase kind, image url) -> what was pressed
    stage_kinds = {"Part 1 of 2": "grading", "Part 2 of 2": "detection"}
    reloaded = False
    answered = 0
    while not page.url.endswith("/done/"):
        if "/done/" in page.url:
            break
        _wait_image(
            page
        )  # the page shows a stage's introduction before its first image
        inter = page.locator("#interstitial")
        if inter.is_visible():
            page.keyboard.press("Enter")
            inter.wait_for(state="hidden")
            continue
        label = page.locator("#phase-label").inner_text()
        src = page.get_attribute("#image", "src")
        before = _progress(page)
        position = int(before.split("/")[0]) - 1
        if label == "Practice round":
            page.keyboard.press("2")
            page.keyboard.press("Enter")
            page.locator("#feedback").wait_for(state="visible")
            assert "Reference KL grade" in page.locator("#feedback").inner_text()
            assert "synthetic" not in page.content().lower()
            page.keyboard.press("Enter")
            _wait_progress_change(page, before)
            continue
        kind = stage_kinds[label]
        if kind == "grading" and position == 4 and not reloaded:
            if SCREENSHOTS:
                page.screenshot(path=str(Path(SCREENSHOTS) / "reading.png"))
            page.reload()
            _wait_image(page)
            assert _progress(page) == before
            assert page.get_attribute("#image", "src") == src
            reloaded = True
        if kind == "grading":
            key = str(position % 5)
            page.keyboard.press(key)
            clicked[(kind, src)] = {"kl_grade": key}
        else:
            key = str(position % 6 + 1)
            page.keyboard.press(key)
            clicked[(kind, src)] = {
                "confidence": key,
                "answer": "real" if int(key) <= 3 else "synthetic",
            }
        assert page.locator("#confirm").is_enabled()
        page.keyboard.press("Enter")
        answered += 1
        _wait_progress_change(page, before)
    assert reloaded and answered == 20
    assert "Thank you" in page.content()
    assert errors == []

    # Staff sign in to the admin and download the results.
    django_user_model.objects.create_user(
        "admin@example.org",
        "admin@example.org",
        PASSWORD,
        is_staff=True,
        is_superuser=True,
    )
    page.goto(f"{base}/admin/login/?next=/staff/studies/browser/")
    page.fill("#id_username", "admin@example.org")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/staff/studies/browser/")
    assert "20\nanswers" in page.locator(".tt-grid").inner_text()
    with page.expect_download() as download_info:
        page.click("#download-results")
    data = Path(download_info.value.path()).read_bytes()
    rows = list(
        csv.DictReader(
            io.StringIO(
                zipfile.ZipFile(io.BytesIO(data)).read("browser/judgments.csv").decode()
            )
        )
    )
    assert len(rows) == 20
    for row in rows:
        # A token starting with "-" carries the CSV formula quote; tokens are
        # URL-safe base64, so a leading quote is never part of one.
        token = row["image"].removeprefix("'")
        expected = clicked[(row["phase"], f"/api/v1/images/{token}")]
        for column, value in expected.items():
            assert row[column] == value, (row, expected)
        assert (
            row["reader_profession"] == "radiologist"
            and row["reader_experience_years"] == "12"
        )
    page.goto(f"{base}/staff/studies/browser/")
    page.wait_for_load_state(
        "networkidle"
    )  # the report's plots, before the server stops
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "study-page.png"), full_page=True)


def test_a_combined_phase_builds_both_questions_and_a_revision_changes_both(
    live_server, page, pool, make_reader
):
    from turingtest.studies.models import JudgmentRevision, Study

    study = services.study_create(
        slug="combined",
        name="Combined",
        phases=("combined",),
        practice_count=0,
        edit_policy=Study.EditPolicy.UNTIL_PHASE_END,
    )
    services.cases_build(study=study, per_grade=1, seed=3)
    study = services.study_open(study=study)
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", enrollment.reader.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.goto(f"{base}/s/combined/read/")
    page.locator("#interstitial").wait_for(state="visible")
    page.keyboard.press("Enter")
    sections = page.locator("#questions .question")
    expect(sections).to_have_count(2)
    assert [sections.nth(i).get_attribute("data-field") for i in (0, 1)] == [
        "confidence",
        "kl_grade",
    ]
    for _ in range(10):
        _wait_image(page)
        before = _progress(page)
        page.keyboard.press("5")  # the rating; focus moves on to the grade
        page.keyboard.press("3")
        page.keyboard.press("Enter")
        if before == "10 / 10":
            break
        _wait_progress_change(page, before)
    expect(page.locator("#status")).to_contain_text("All cases answered")
    page.keyboard.press("b")  # back to the last case, its answers shown
    _wait_image(page)
    expect(page.locator("#questions button.chosen")).to_have_count(2)
    page.keyboard.press("1")
    page.keyboard.press("0")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Changed.")
    page.click("#finish")
    page.wait_for_url(f"{base}/s/combined/done/")
    revision = JudgmentRevision.objects.get()
    assert (revision.confidence, revision.kl_grade, revision.answer) == (1, 0, "real")
    first = revision.judgment
    assert (first.confidence, first.kl_grade, first.position) == (5, 3, 9)
