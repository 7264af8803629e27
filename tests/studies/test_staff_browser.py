"""The staff study page in Chromium at 1280×800: a partial study says so, every
figure names its n, invitations are listed and copied, Close asks first."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from turingtest.studies import services
from turingtest.studies.models import Invitation, Study
from turingtest.studies.simulation import readers_simulate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def partial_study(study, make_reader):
    """Two simulated readers finished; a third has answered one practice case."""
    readers_simulate(study=study, readers=2, accuracy=0.7, seed=1)
    started = services.enrollment_consent(enrollment=make_reader(study))
    session = services.reading_session_start(enrollment=started, phase=None)
    services.reading_session_serve(session=session, position=0)
    services.judgment_record(session=session, position=0, kl_grade=2)
    # One more link that nobody used in time.
    ((expired, _),) = services.invitations_create(study=study)
    Invitation.objects.filter(pk=expired.pk).update(
        expires_at=timezone.now() - timedelta(days=1)
    )
    return study


def _staff_page(page, live_server, django_user_model, slug):
    user = django_user_model.objects.create_user(
        "admin@example.org", "admin@example.org", PASSWORD, is_staff=True
    )
    user.is_superuser = True
    user.save()
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": live_server.url,
            }
        ]
    )
    page.goto(f"{live_server.url}/staff/studies/{slug}/")
    # The report's plots, drawn on first request, before anything else.
    page.wait_for_load_state("networkidle")


def test_partial_study_names_its_n_and_renders_the_full_report(
    page, live_server, django_user_model, partial_study
):
    _staff_page(page, live_server, django_user_model, partial_study.slug)
    banner = page.locator("#partial-study")
    expect(banner).to_be_visible()
    assert banner.bounding_box()["y"] < 200  # at the top, not under the report
    # 3 consented readers × 10 main cases × 2 phases; 2 readers answered 40.
    expect(banner).to_contain_text("2 of 3 readers have finished")
    expect(banner).to_contain_text("40 of 60 answers")
    heading = page.locator("h3", has_text="Real or synthetic?")
    expect(heading).to_contain_text("2 of 3 readers; 10 of 10 images")
    expect(heading).to_contain_text("5 of 5 real and 5 of 5 synthetic")
    expect(page.locator("#report-partial")).to_be_visible()
    expect(page.locator("#report-readers-detection")).to_contain_text("10 of 10")
    expect(page.locator(".tt-plots figcaption").first).to_contain_text("of 3 readers")
    # The full report: Markdown tables rendered as tables, no raw pipes.
    page.locator("#report-full summary").click()
    full = page.locator("#report-full")
    assert full.locator("table").count() >= 4
    assert not re.search(r"^\s*\|", full.inner_text(), re.M)
    # Reading times in human units.
    expect(page.locator("#progress")).to_contain_text(re.compile(r"\d+ min \d\d s"))


def test_invitations_are_listed_copied_and_scrolled_to(
    page, live_server, django_user_model, partial_study
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    _staff_page(page, live_server, django_user_model, partial_study.slug)
    counts = page.locator("#invitation-counts")
    # Three readers' links used, one expired.
    expect(counts).to_contain_text("4 issued: 0 open, 3 used, 1 expired")
    listed = page.locator("#invitation-list tbody tr")
    expect(listed).to_have_count(4)
    code = partial_study.enrollments.first().reader.code
    expect(page.locator("#invitation-list")).to_contain_text(code)

    page.fill("#id_count", "2")
    page.locator("form", has=page.locator("#id_count")).locator(
        "button[type=submit]"
    ).click()
    page.wait_for_url(re.compile(r"/invite#new-links$"))
    page.wait_for_load_state("networkidle")
    fresh = page.locator("#new-links")
    expect(fresh).to_be_in_viewport()
    links = fresh.locator("code")
    expect(links).to_have_count(2)
    expect(counts).to_contain_text("6 issued: 2 open, 3 used, 1 expired")
    first = links.first.inner_text()
    button = fresh.locator(".tt-copy").first
    button.click()
    expect(button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == first


def test_close_asks_first_and_says_what_readers_will_see(
    page, live_server, django_user_model, partial_study
):
    _staff_page(page, live_server, django_user_model, partial_study.slug)
    confirm = page.locator("#close-confirm")
    expect(confirm).to_be_hidden()  # one click does not close the study
    page.locator("#close-study summary").click()
    expect(confirm).to_be_visible()
    expect(page.locator("#close-study")).to_contain_text(
        "This study is not open for reading at the moment"
    )
    partial_study.refresh_from_db()
    assert partial_study.status == Study.Status.OPEN
    confirm.click()
    expect(page.locator("#study-status")).to_have_text("Closed")
    page.wait_for_load_state("networkidle")
    partial_study.refresh_from_db()
    assert partial_study.status == Study.Status.CLOSED
