"""Results as CSV files, streamed row by row and zipped on the fly.

The same generators feed ``export_results`` (files on disk) and the admin's
download button (a streamed ZIP), so both give byte-identical CSVs.
"""

import io
import stat
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

from django.utils import timezone

from turingtest.domain.references import column as reference_column
from turingtest.domain.references import columns as reference_columns
from turingtest.domain.scoring import is_correct
from turingtest.results import report
from turingtest.safe_csv import SafeDictWriter
from turingtest.stats import report as stats_report
from turingtest.studies.interactions import INTERACTION_COLUMNS, interaction_rows
from turingtest.studies.models import (
    Case,
    Judgment,
    PhaseQuestion,
    ReadingSession,
    Study,
)

JUDGMENT_COLUMNS = [
    "study",
    "reader",
    "reader_kind",
    "reader_profession",
    "reader_experience_years",
    "phase",
    "position",
    "repeat",
    "case",
    "image",
    "truth",
    "reference_kl",
    "generator",
    "answer",
    "confidence",
    "kl_grade",
    "correct",
    "served_at",
    "answered_at",
    "duration_ms",
    "revision",
]
READER_COLUMNS = [
    "reader",
    "profession",
    "experience_years",
    "subspecialty",
    "reader_kind",
    "machine_model",
    "enrolled_at",
    "consented_at",
    "completed_at",
]
IMAGE_COLUMNS = [
    "case",
    "image",
    "role",
    "truth",
    "reference_kl",
    "generator",
    "seed",
    "sha256",
    "origin",
]
ORDER_COLUMNS = ["reader", "reader_kind", "phase", "position", "case"]


def question_keys(study: Study) -> list[str]:
    """The keys of the study's extra questions, in the order readers meet them;
    a key asked in two phases is one column."""
    keys = PhaseQuestion.objects.filter(phase__study=study).order_by(
        "phase__index", "order", "id"
    )
    return list(dict.fromkeys(keys.values_list("key", flat=True)))


def reference_scales(study: Study) -> list[str]:
    """The scales other than KL that the study's images hold reference values
    on (``Image.references``), sorted: each is a ``reference_<scale>`` column."""
    held: set[str] = set()
    for values in Case.objects.filter(study=study).values_list(
        "image__references", flat=True
    ):
        held.update(values or {})
    return sorted(held)


def _with_references(columns: list[str], study: Study) -> list[str]:
    """``columns`` with a ``reference_<scale>`` column after ``reference_kl``
    for each other scale the study's images hold reference values on."""
    at = columns.index("reference_kl") + 1
    extra = [reference_column(scale) for scale in reference_scales(study)]
    return columns[:at] + extra + columns[at:]


def judgment_columns(study: Study) -> list[str]:
    """The columns of ``judgments.csv``: the fixed ones (with a reference
    column per scale the images hold values on), then one per extra question."""
    return _with_references(JUDGMENT_COLUMNS, study) + question_keys(study)


def image_columns(study: Study) -> list[str]:
    """The columns of ``images.csv``, with a reference column per scale."""
    return _with_references(IMAGE_COLUMNS, study)


def iso(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


def _bool(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


def judgment_rows(study: Study, *, with_role: bool = False) -> Iterator[dict]:
    """One row per answer (first answers and later revisions), practice excluded.

    Rows come ordered by reader, phase and position; ``with_role`` adds the
    case role, which the statistics need to leave attention checks out.
    """
    judgments = (
        Judgment.objects.filter(
            session__enrollment__study=study, session__phase__isnull=False
        )
        .select_related(
            "session__enrollment__reader",
            "session__phase",
            "case__image__generator",
        )
        .prefetch_related("revisions")
        .order_by(
            "session__enrollment__enrolled_at",
            "session__enrollment_id",
            "session__phase__index",
            "position",
        )
    )
    keys = question_keys(study)
    for j in judgments.iterator(chunk_size=2000):
        reader = j.session.enrollment.reader
        image = j.case.image
        base = {
            "study": study.slug,
            "reader": reader.code,
            "reader_kind": reader.kind,
            "reader_profession": reader.profession,
            "reader_experience_years": reader.experience_years,
            "phase": j.session.phase.kind,
            "position": j.position + 1,
            "repeat": _bool(j.repeat),
            "case": j.case.number,
            "image": j.case.token,
            "truth": image.source,
            "reference_kl": image.kl_grade,
            **reference_columns(image.references),
            "generator": image.generator.name if image.generator else "",
            "served_at": iso(j.served_at),
        }
        if with_role:
            base["role"] = j.case.role
        answers = [(0, j.answer, j.confidence, j.kl_grade, j.answers, j.answered_at)]
        answers += [
            (r.revision, r.answer, r.confidence, r.kl_grade, r.answers, r.answered_at)
            for r in j.revisions.all()
        ]
        for revision, answer, confidence, kl_grade, extra, answered_at in answers:
            extra = extra or {}
            yield (
                base
                | {key: extra.get(key, "") for key in keys}
                | {
                    "answer": answer or "",
                    "confidence": "" if confidence is None else confidence,
                    "kl_grade": "" if kl_grade is None else kl_grade,
                    "correct": _bool(
                        is_correct(
                            base["phase"],
                            image.source,
                            image.kl_grade,
                            answer,
                            kl_grade,
                        )
                    ),
                    "answered_at": iso(answered_at),
                    "duration_ms": j.duration_ms if revision == 0 else "",
                    "revision": revision,
                }
            )


def reader_rows(study: Study) -> Iterator[dict]:
    for e in study.enrollments.select_related("reader").order_by("enrolled_at", "id"):
        yield {
            "reader": e.reader.code,
            "profession": e.reader.profession,
            "experience_years": e.reader.experience_years,
            "subspecialty": e.reader.subspecialty,
            "reader_kind": e.reader.kind,
            "machine_model": e.reader.machine_model,
            "enrolled_at": iso(e.enrolled_at),
            "consented_at": iso(e.consented_at),
            "completed_at": iso(e.completed_at),
        }


def image_rows(study: Study) -> Iterator[dict]:
    for case in study.cases.select_related("image__generator").order_by("number"):
        image = case.image
        yield {
            "case": case.number,
            "image": case.token,
            "role": case.role,
            "truth": image.source,
            "reference_kl": image.kl_grade,
            **reference_columns(image.references),
            "generator": image.generator.name if image.generator else "",
            "seed": "" if image.seed is None else image.seed,
            "sha256": image.sha256,
            "origin": image.origin,
        }


def order_rows(study: Study) -> Iterator[dict]:
    numbers = dict(Case.objects.filter(study=study).values_list("id", "number"))
    sessions = (
        ReadingSession.objects.filter(enrollment__study=study)
        .select_related("enrollment__reader", "phase")
        .order_by("enrollment__enrolled_at", "enrollment_id", "phase__index")
    )
    for s in sessions:
        phase = "practice" if s.phase is None else s.phase.kind
        for position, case_id in enumerate(s.order, start=1):
            yield {
                "reader": s.enrollment.reader.code,
                "reader_kind": s.enrollment.reader.kind,
                "phase": phase,
                "position": position,
                "case": numbers[case_id],
            }


class _Echo:
    """A write-only file whose ``write`` hands the text back (Django's streaming-CSV recipe)."""

    def write(self, value: str) -> str:
        return value


def csv_lines(columns: list[str], rows: Iterable[dict]) -> Iterator[str]:
    writer = SafeDictWriter(_Echo(), fieldnames=columns, lineterminator="\n")
    yield writer.writeheader()
    for row in rows:
        yield writer.writerow(row)


# (file name, columns, row source). Later parts of the product append to it.
# Columns that depend on the study are a function of it.
Columns = list[str] | Callable[[Study], list[str]] | None
RESULT_FILES: list[tuple[str, Columns, Callable[[Study], Iterable]]] = [
    ("judgments.csv", judgment_columns, judgment_rows),
    ("readers.csv", READER_COLUMNS, reader_rows),
    ("images.csv", image_columns, image_rows),
    ("orders.csv", ORDER_COLUMNS, order_rows),
]


# The report's files.
IMRMC_COLUMNS = ["readerID", "caseID", "modalityID", "score"]


def reader_summary_rows(study: Study) -> Iterable[dict]:
    return report.reader_summary_export(study)


def image_summary_rows(study: Study) -> Iterable[dict]:
    return report.image_summary_export(study)


def report_json_chunks(study: Study) -> Iterable[str]:
    return report.report_json_export(study)


def imrmc_input_rows(study: Study) -> Iterable[dict]:
    return report.imrmc_export(study)


def retest_rows(study: Study) -> Iterable[dict]:
    return report.retest_export(study)


def imrmc_file_chunks(study: Study) -> Iterable[str]:
    return report.imrmc_file_export(study)


RESULT_FILES += [
    ("reader_summary.csv", list(stats_report.READER_COLUMNS), reader_summary_rows),
    ("image_summary.csv", list(stats_report.IMAGE_COLUMNS), image_summary_rows),
    ("report.json", None, report_json_chunks),
    ("imrmc_input.csv", IMRMC_COLUMNS, imrmc_input_rows),
    ("imrmc_input.imrmc", None, imrmc_file_chunks),
    ("retest.csv", list(stats_report.RETEST_COLUMNS), retest_rows),
]

# What readers did with each image (turingtest.studies.interactions).
RESULT_FILES.append(("interactions.csv", INTERACTION_COLUMNS, interaction_rows))


def report_html_chunks(study: Study) -> Iterator[str]:
    return report.report_html_export(study)


# The report to read or share: figures, plots and zoom heatmaps in one file.
RESULT_FILES.append(("report.html", None, report_html_chunks))


def free_text_rows(study: Study) -> Iterable[dict]:
    return report.free_text_rows(study)


def free_text_columns(study: Study) -> list[str]:
    return list(report.FREE_TEXT_COLUMNS)


# What readers wrote to the study's free-text questions, per image.
RESULT_FILES.append(("free_text.csv", free_text_columns, free_text_rows))


def result_file_chunks(study: Study, columns: Columns, source) -> Iterator[bytes]:
    """A result file's bytes in chunks: CSV rows when ``columns`` is set, else raw text."""
    if callable(columns):
        columns = columns(study)
    if columns is None:
        for text in source(study):
            yield text.encode()
        return
    buffer = []
    size = 0
    for line in csv_lines(columns, source(study)):
        buffer.append(line)
        size += len(line)
        if size > 64 * 1024:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()


def results_write(study: Study, out_dir) -> list[str]:
    """Write every result file into ``out_dir``; returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, columns, source in RESULT_FILES:
        path = out / name
        tmp = path.with_suffix(path.suffix + ".part")
        with open(tmp, "wb") as fh:
            for chunk in result_file_chunks(study, columns, source):
                fh.write(chunk)
        tmp.replace(path)  # a reader of the folder never sees half a file
        written.append(str(path))
    return written


class _ZipSink(io.RawIOBase):
    """Collects what zipfile writes so it can be yielded as the archive grows."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.offset = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self) -> int:
        return self.offset

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def results_zip_stream(study: Study) -> Iterator[bytes]:
    """The result files as one ZIP archive, produced while it is sent."""
    sink = _ZipSink()
    # Members made from a bare name would carry 1980-01-01 and mode 0600.
    stamp = timezone.localtime().timetuple()[:6]
    with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, columns, source in RESULT_FILES:
            info = zipfile.ZipInfo(f"{study.slug}/{name}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.create_system = 3  # Unix, so unzip reads the mode above
            with archive.open(info, mode="w", force_zip64=True) as member:
                for chunk in result_file_chunks(study, columns, source):
                    member.write(chunk)
                    if sink.chunks:
                        yield sink.take()
            yield sink.take()
    yield sink.take()
