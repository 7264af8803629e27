"""A study of its own questions, set up by command, read in Chromium, reported.

BI-RADS in place of the KL grade in the grading phase, on a pool whose
images hold BI-RADS reference categories and no KL grade; a realism Likert
and an optional "What gave it away?" in the detection phase; 10 cases shown
twice.
"""

import csv
import io
import zipfile
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.conftest import PASSWORD
from tests.studies.test_reader_browser import (
    _progress,
    _wait_image,
    _wait_progress_change,
)
from turingtest.studies import services
from turingtest.studies.models import Judgment, Study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _setup() -> Study:
    out = io.StringIO()
    call_command(
        "create_study",
        "mammo",
        "--name",
        "Own questions",
        "--practice",
        "2",
        "--repeats",
        "10",
        "--repeat-gap",
        "5",
        "--no-kl-grade",
        "--question",
        "1:birads:ordinal:birads",
        "--question",
        "detection:realism:ordinal:realism-5",
        "--question",
        "2:why:free_text::optional:What gave it away?",
        stdout=out,
    )
    call_command(
        "build_cases", "mammo", "--per-grade", "2", "--seed", "5",
        "--grades", "1,2,3,4,5", stdout=out,
    )  # fmt: skip
    return services.study_open(study=Study.objects.get(slug="mammo"))


def _choice(page, field: str, value) -> None:
    page.click(
        f'#questions .question[data-field="{field}"] button[data-value="{value}"]'
    )


@pytest.fixture
def mammo_pool(make_image):
    """Two real and two synthetic images per BI-RADS category 1-5, and two
    more real ones for practice; no KL grades."""
    return [
        make_image(source, b % 5, kl_grade=None, references={"birads": b})
        for b in range(1, 6)
        for source in ("real", "real", "synthetic", "synthetic")
    ] + [
        make_image("real", 3, kl_grade=None, references={"birads": 3}) for _ in range(2)
    ]


def test_own_questions_are_read_by_keyboard_and_mouse_then_exported_and_reported(
    live_server, page, mammo_pool, make_reader, django_user_model
):
    study = _setup()
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    base = live_server.url
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", enrollment.reader.user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.goto(f"{base}/s/mammo/read/")

    given = {}  # (phase, position from 1) -> the answers given
    stage_kinds = {"Part 1 of 2": "grading", "Part 2 of 2": "detection"}
    checked_labels = set()
    practiced = 0
    while not page.url.endswith("/done/"):
        _wait_image(page)
        inter = page.locator("#interstitial")
        if inter.is_visible():
            page.keyboard.press("Enter")
            inter.wait_for(state="hidden")
            continue
        label = page.locator("#phase-label").inner_text()
        if label == "Practice round":
            # The practice image's reference category follows the answer.
            before = _progress(page)
            page.keyboard.press("4")
            page.keyboard.press("Enter")
            page.locator("#feedback").wait_for(state="visible")
            expect(page.locator("#feedback")).to_contain_text(
                "Reference BI-RADS category: 3 (Probably benign)."
            )
            page.keyboard.press("Enter")
            _wait_progress_change(page, before)
            practiced += 1
            continue
        kind = stage_kinds[label]
        before = _progress(page)
        position = int(before.split("/")[0])
        mouse = position % 3 == 0
        if kind not in checked_labels:
            checked_labels.add(kind)
            fields = page.locator("#questions .question")
            if kind == "grading":
                expect(fields).to_have_count(1)
                expect(fields.nth(0)).to_contain_text("BI-RADS assessment category")
                expect(fields.nth(0)).to_contain_text("Highly suggestive of malignancy")
            else:
                expect(fields).to_have_count(3)
                expect(fields.nth(1)).to_contain_text("How realistic")
                expect(fields.nth(2)).to_contain_text("What gave it away? (optional)")
        if kind == "grading":
            birads = position % 7
            expect(page.locator("#confirm")).to_be_disabled()  # BI-RADS is required
            if mouse:
                _choice(page, "birads", birads)
                page.click("#confirm")
            else:
                page.keyboard.press(str(birads))
                page.keyboard.press("Enter")
            given[(kind, position)] = {
                "kl_grade": "",
                "birads": str(birads),
                "realism": "",
                "why": "",
            }
        else:
            rating, realism = position % 6 + 1, position % 5 + 1
            why = f"edges at case {position}" if position % 2 else ""
            if mouse:
                _choice(page, "confidence", rating)
                expect(page.locator("#confirm")).to_be_disabled()  # realism is required
                _choice(page, "realism", realism)
                if why:
                    page.click('#questions .question[data-field="why"] textarea')
                    page.keyboard.type(why)
                page.click("#confirm")
            else:
                page.keyboard.press(str(rating))
                page.keyboard.press(str(realism))  # then the cursor is in the text box
                if why:
                    page.keyboard.type(why + "  ")  # stored stripped
                page.keyboard.press("Enter")
            given[(kind, position)] = {
                "confidence": str(rating),
                "realism": str(realism),
                "why": why,
                "birads": "",
            }
        _wait_progress_change(page, before)
    assert len(given) == 2 * 30  # 20 cases and 10 repeats per phase
    assert practiced == 2
    assert errors == []
    assert Judgment.objects.filter(repeat=True).count() == 20

    # Two more readers, simulated, so the report has pairs to agree.
    from turingtest.studies.simulation import readers_simulate

    readers_simulate(study=study, readers=2, accuracy=0.7, seed=2)

    django_user_model.objects.create_user(
        "admin@example.org",
        "admin@example.org",
        PASSWORD,
        is_staff=True,
        is_superuser=True,
    )
    page.goto(f"{base}/admin/login/?next=/staff/studies/mammo/")
    page.fill("#id_username", "admin@example.org")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/staff/studies/mammo/")
    table = page.locator("#report-questions-table")
    expect(table.locator('tr[data-key="birads"]')).to_contain_text("grading")
    expect(table.locator('tr[data-key="realism"]')).to_contain_text("detection")
    kappa = table.locator('tr[data-key="birads"] td').nth(4).inner_text()
    assert kappa != "n/a" and "to" in kappa  # the mean over 3 pairs, with its range
    # BI-RADS against the pool's reference categories, as the exported rows say.
    reference = page.locator('.tt-question-reference[data-key="birads"]')
    expect(reference).to_contain_text("20 images with a reference value")
    expect(reference.locator(".tt-reference-readers tbody tr")).to_have_count(3)
    shown_exact = reference.locator("p strong").first.inner_text()
    expect(
        page.locator('#report-questions-table tr[data-key="realism"]')
    ).to_be_visible()
    assert not page.locator('.tt-question-reference[data-key="realism"]').count()
    expect(page.locator("#free-text")).to_be_visible()
    expect(page.locator(".tt-free-text").first).to_contain_text("edges at case")

    with page.expect_download() as download_info:
        page.click("#download-results")
    archive = zipfile.ZipFile(io.BytesIO(Path(download_info.value.path()).read_bytes()))

    def rows(name):
        return list(csv.DictReader(io.StringIO(archive.read(f"mammo/{name}").decode())))

    reader = enrollment.reader.code
    judgments = [r for r in rows("judgments.csv") if r["reader"] == reader]
    assert len(judgments) == 60
    for row in judgments:
        expected = given[(row["phase"], int(row["position"]))]
        for column, value in expected.items():
            assert row[column] == value, (row, expected)
    graded = [
        r
        for r in rows("judgments.csv")
        if r["phase"] == "grading" and r["repeat"] == "false"
    ]
    assert {r["reference_birads"] for r in graded} == {"1", "2", "3", "4", "5"}
    assert {r["reference_kl"] for r in graded} == {""}
    exact = sum(r["birads"] == r["reference_birads"] for r in graded) / len(graded)
    assert shown_exact.startswith(f"{100 * exact:.1f}% (")
    images = rows("images.csv")
    assert len(images) == 22 and all(r["reference_birads"] for r in images)
    written = {
        (r["phase"], r["text"]) for r in rows("free_text.csv") if r["reader"] == reader
    }
    assert written == {("detection", a["why"]) for a in given.values() if a["why"]}
    html = archive.read("mammo/report.html").decode()
    assert "Questions of this study" in html
    assert "against the reference values on the scale birads" in html
