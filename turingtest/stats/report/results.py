"""The study report's result objects: frozen dataclasses, stored as JSON.

:func:`~turingtest.stats.report.build_report` returns a :class:`Report`; a
stored report (``StudyReport.data``) is its :meth:`Report.to_json` and comes
back with :meth:`Report.from_json`. The JSON is the shape the report has
always had, so the ``report.json`` export and stored reports keep their keys:
a field listed in a class's ``_optional`` is left out of the JSON when it is
None, as the key was absent before, and a key missing from stored JSON takes
the field's default. Reports stored by earlier versions (``StudyReport.version``
below :data:`~turingtest.stats.report.REPORT_VERSION`) are rebuilt before
they are exported; until then the staff page shows them as they are, so the
fields that later versions added have defaults: readers' ``kind``,
``machine_readers`` and ``counts.machine`` (version 2), ``retest`` and
``counts.repeats`` (version 3), a question's ``reference`` (version 4).

Each estimate (a proportion, a kappa, an AUC...) is a :class:`Figure`: the
plain fields of the :mod:`turingtest.stats` result it came from, with NaN
already turned into None by the report, and attributes for the fields every
estimate shares.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

__all__ = [
    "RETEST_KAPPA_MIN",
    "Agreement",
    "Attention",
    "AttentionFailure",
    "AttentionReader",
    "Counts",
    "Detection",
    "DetectionFigures",
    "DetectionImage",
    "DetectionReader",
    "Equivalence",
    "ErrorAsymmetry",
    "ErrorRate",
    "Figure",
    "GeneratorShare",
    "GradeAgreement",
    "Grading",
    "GradingImage",
    "GradingReader",
    "GradingSummary",
    "MachineReader",
    "PooledRoc",
    "ReadingTime",
    "Report",
    "ReportReader",
    "Retest",
    "RetestEntry",
    "Roc",
    "RocCurve",
    "Settings",
    "SourceGrading",
    "Subgroup",
    "TimeSpread",
]

T = TypeVar("T")

# A reader whose test-retest kappa on the repeated cases is below this is
# flagged: below 0.4 is "fair" agreement or worse (Landis & Koch 1977).
RETEST_KAPPA_MIN = 0.4
HUMAN = "human"


def _plain(value: Any) -> Any:
    if isinstance(value, (_Json, Figure)):
        return value.to_json()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Json:
    """JSON in and out for the report's frozen dataclasses.

    ``_nested`` names the fields that hold other result objects and how to
    rebuild them from JSON; every other field is taken as it is.
    """

    _nested: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    _optional: ClassVar[frozenset[str]] = frozenset()

    def _omitted(self) -> set[str]:
        return {name for name in self._optional if getattr(self, name) is None}

    def to_json(self) -> dict[str, Any]:
        """The fields as plain JSON values (dicts, lists, numbers, str, None)."""
        omitted = self._omitted()
        return {
            f.name: _plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in omitted
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild the object from :meth:`to_json`'s values."""
        kwargs = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name not in data:
                continue
            value = data[f.name]
            rebuild = cls._nested.get(f.name)
            kwargs[f.name] = rebuild(value) if rebuild and value is not None else value
        return cls(**kwargs)


@dataclass(frozen=True)
class Figure:
    """One estimate: the plain fields of a stats result (``estimate``, ``ci``,
    ``p_value``, ``note`` and whatever else that result has)."""

    fields: Mapping[str, Any]

    @property
    def estimate(self) -> Any:
        return self.fields.get("estimate")

    @property
    def ci(self) -> list[float | None] | None:
        return self.fields.get("ci")

    @property
    def p_value(self) -> float | None:
        return self.fields.get("p_value")

    @property
    def note(self) -> str | None:
        return self.fields.get("note")

    def get(self, key: str, default: Any = None) -> Any:
        """A field that only some estimates have (``equivalent``, ``mean``...)."""
        return self.fields.get(key, default)

    @classmethod
    def of(cls, fields: Mapping[str, Any] | None) -> Figure | None:
        """The estimate a stats result's ``to_dict()`` gave, or None."""
        return None if fields is None else cls(fields)

    def to_json(self) -> dict[str, Any]:
        return dict(self.fields)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Figure:
        return cls(dict(data))


def _tuple_of(rebuild: Callable[[Any], T]) -> Callable[[list[Any]], tuple[T, ...]]:
    return lambda values: tuple(rebuild(v) for v in values)


def _dict_of(
    rebuild: Callable[[Any], T],
) -> Callable[[Mapping[str, Any]], dict[str, T]]:
    return lambda values: {k: rebuild(v) for k, v in values.items()}


_figure = Figure.from_json


# ---------------------------------------------------------------- readers


@dataclass(frozen=True)
class Settings(_Json):
    """The options the report was built with."""

    level: float
    margin: float
    n_boot: int
    seed: int


@dataclass(frozen=True)
class Counts(_Json):
    """How many answers went where: analysed (``main``), excluded, ignored."""

    rows: int
    main: int
    practice: int
    attention: int
    ignored: int
    machine: int = 0
    repeats: int = 0


@dataclass(frozen=True)
class ReportReader(_Json):
    """A (non-machine) reader and how many main answers each phase has."""

    reader: Any
    profession: str
    experience_years: Any
    experience_band: str
    answers: dict[str, int]
    kind: str = HUMAN


@dataclass(frozen=True)
class AttentionFailure(_Json):
    """One failed attention check and what was answered."""

    phase: str
    case: Any
    image: Any
    failed: list[str]
    truth: str
    answer: str | None
    reference_kl: int | None
    kl_grade: int | None


@dataclass(frozen=True)
class AttentionReader(_Json):
    """A reader's attention checks: answered, failed, unanswered."""

    reader: Any
    n: int
    n_failed: int
    n_unanswered: int
    failed: tuple[AttentionFailure, ...]

    _nested = {"failed": _tuple_of(AttentionFailure.from_json)}


@dataclass(frozen=True)
class Attention(_Json):
    """The attention checks of every reader who answered one."""

    n_checks: int
    n_readers_failing: int
    readers: tuple[AttentionReader, ...]
    rule: str
    note: str | None

    _nested = {"readers": _tuple_of(AttentionReader.from_json)}


# ---------------------------------------------------------------- detection


@dataclass(frozen=True)
class DetectionFigures(_Json):
    """One reader's real/synthetic calls (:class:`~turingtest.stats.DetectionSummary`)."""

    n: int
    n_real: int
    n_synthetic: int
    n_missing: int
    hits: int
    misses: int
    false_alarms: int
    correct_rejections: int
    accuracy: Figure
    sensitivity: Figure
    specificity: Figure
    fake_as_real: Figure
    real_as_fake: Figure
    p_value: float | None
    d_prime: float | None
    d_prime_se: float | None
    d_prime_ci: list[float | None]
    criterion: float | None
    auc: Figure | None
    note: str | None

    _nested = {
        name: _figure
        for name in (
            "accuracy",
            "sensitivity",
            "specificity",
            "fake_as_real",
            "real_as_fake",
            "auc",
        )
    }


@dataclass(frozen=True)
class DetectionReader(DetectionFigures):
    """A reader's detection figures in one phase, with who the reader is."""

    reader: Any
    profession: str
    experience_years: Any
    median_seconds: float | None
    kind: str = HUMAN


@dataclass(frozen=True)
class ErrorRate(_Json):
    """One kind of error: pooled over answers and averaged over readers."""

    pooled: Figure
    mean_over_readers: Figure

    _nested = {"pooled": _figure, "mean_over_readers": _figure}


@dataclass(frozen=True)
class ErrorAsymmetry(_Json):
    """Fakes taken for real against reals taken for fake."""

    fake_as_real: ErrorRate
    real_as_fake: ErrorRate
    difference: Figure

    _nested = {
        "fake_as_real": ErrorRate.from_json,
        "real_as_fake": ErrorRate.from_json,
        "difference": _figure,
    }


@dataclass(frozen=True)
class Equivalence(_Json):
    """TOST of accuracy within ``0.5 +/- margin``, over readers and by MRMC."""

    margin: float
    readers: Figure
    mrmc: Figure

    _nested = {"readers": _figure, "mrmc": _figure}


@dataclass(frozen=True)
class Agreement(_Json):
    """Agreement between readers on the real/synthetic call."""

    fleiss_kappa: Figure
    krippendorff_alpha: Figure
    cohen_kappa: Figure
    krippendorff_alpha_confidence: Figure | None = None

    _nested = {
        name: _figure
        for name in (
            "fleiss_kappa",
            "krippendorff_alpha",
            "cohen_kappa",
            "krippendorff_alpha_confidence",
        )
    }
    _optional = frozenset({"krippendorff_alpha_confidence"})


@dataclass(frozen=True)
class DetectionImage(_Json):
    """How often one image was called real, ranked most convincing first."""

    rank: int
    case: Any
    image: str
    truth: str
    generator: str
    reference_kl: int | None
    n: int
    n_called_real: int
    fraction_real: float | None
    ci: list[float | None]
    mean_confidence: float | None
    note: str | None


@dataclass(frozen=True)
class GeneratorShare(_Json):
    """How often one generator's images were called real."""

    generator: str
    n_images: int
    called_real: Figure

    _nested = {"called_real": _figure}


@dataclass(frozen=True)
class Subgroup(_Json):
    """Accuracy of the readers of one profession or experience band."""

    group: str
    n_readers: int
    readers: list[Any]
    mean_accuracy: Figure
    pooled_accuracy: Figure

    _nested = {"mean_accuracy": _figure, "pooled_accuracy": _figure}


@dataclass(frozen=True)
class TimeSpread(_Json):
    """Reading times on one kind of image, in seconds."""

    n: int
    median: float | None
    q1: float | None = None
    q3: float | None = None
    mean: float | None = None
    note: str | None = None

    _optional = frozenset({"q1", "q3", "mean", "note"})


@dataclass(frozen=True)
class ReadingTime(_Json):
    """Reading times on real and synthetic images and their paired difference."""

    unit: str
    real: TimeSpread
    synthetic: TimeSpread
    difference: Figure

    _nested = {
        "real": TimeSpread.from_json,
        "synthetic": TimeSpread.from_json,
        "difference": _figure,
    }


@dataclass(frozen=True)
class RocCurve(_Json):
    """One reader's empirical ROC curve."""

    reader: Any
    fpr: list[float]
    tpr: list[float]
    auc: float | None
    note: str | None


@dataclass(frozen=True)
class PooledRoc(_Json):
    """The ROC curve of every reader's ratings pooled."""

    fpr: list[float]
    tpr: list[float]
    note: str | None


@dataclass(frozen=True)
class Roc(_Json):
    """ROC curves of a phase with confidence ratings."""

    readers: tuple[RocCurve, ...]
    pooled: PooledRoc | None
    note: str | None = None

    _nested = {
        "readers": _tuple_of(RocCurve.from_json),
        "pooled": PooledRoc.from_json,
    }
    _optional = frozenset({"note"})


@dataclass(frozen=True)
class Detection(_Json):
    """Every real/synthetic figure of one phase."""

    phase: str
    n_readers: int
    n_cases: int
    n_real: int
    n_synthetic: int
    n_answers: int
    n_missing: int
    readers: tuple[DetectionReader, ...]
    pooled_accuracy: Figure
    mrmc_percent_correct: Figure
    mrmc_auc: Figure
    error_asymmetry: ErrorAsymmetry
    equivalence: Equivalence
    agreement: Agreement
    images: tuple[DetectionImage, ...]
    by_generator: tuple[GeneratorShare, ...]
    subgroups: dict[str, tuple[Subgroup, ...]]
    reading_time: ReadingTime
    roc: Roc
    note: str | None

    _nested = {
        "readers": _tuple_of(DetectionReader.from_json),
        "pooled_accuracy": _figure,
        "mrmc_percent_correct": _figure,
        "mrmc_auc": _figure,
        "error_asymmetry": ErrorAsymmetry.from_json,
        "equivalence": Equivalence.from_json,
        "agreement": Agreement.from_json,
        "images": _tuple_of(DetectionImage.from_json),
        "by_generator": _tuple_of(GeneratorShare.from_json),
        "subgroups": _dict_of(_tuple_of(Subgroup.from_json)),
        "reading_time": ReadingTime.from_json,
        "roc": Roc.from_json,
    }


# ---------------------------------------------------------------- grading


@dataclass(frozen=True)
class GradeAgreement(_Json):
    """One reader's KL grades against the reference grade on some images.

    With ``n`` zero only ``note`` says why; machine readers have no
    ``within_one`` or ``mean_difference``.
    """

    n: int
    kappa_quadratic: Figure | None = None
    exact: Figure | None = None
    within_one: Figure | None = None
    mean_difference: float | None = None
    note: str | None = None

    _nested = {
        "kappa_quadratic": _figure,
        "exact": _figure,
        "within_one": _figure,
    }
    _optional = frozenset(
        {"kappa_quadratic", "exact", "within_one", "mean_difference", "note"}
    )


@dataclass(frozen=True)
class GradingReader(_Json):
    """A reader's grades against the reference on real, synthetic and all images."""

    reader: Any
    profession: str
    experience_years: Any
    real: GradeAgreement
    synthetic: GradeAgreement
    all: GradeAgreement
    kind: str = HUMAN

    _nested = {
        "real": GradeAgreement.from_json,
        "synthetic": GradeAgreement.from_json,
        "all": GradeAgreement.from_json,
    }


@dataclass(frozen=True)
class SourceGrading(_Json):
    """Grading figures over readers for one kind of image."""

    mean_kappa_quadratic: Figure
    pooled_exact: Figure

    _nested = {"mean_kappa_quadratic": _figure, "pooled_exact": _figure}


@dataclass(frozen=True)
class GradingSummary(_Json):
    """Real against synthetic images: kappa and exact agreement over readers."""

    real: SourceGrading
    synthetic: SourceGrading
    kappa_difference: Figure

    _nested = {
        "real": SourceGrading.from_json,
        "synthetic": SourceGrading.from_json,
        "kappa_difference": _figure,
    }


@dataclass(frozen=True)
class GradingImage(_Json):
    """The grades one image got; the spread fields only where it has grades."""

    case: Any
    image: str
    truth: str
    generator: str
    reference_kl: int | None
    n: int
    mean_grade: float | None = None
    modal_grade: int | None = None
    counts: list[int] | None = None
    exact: float | None = None
    within_one: float | None = None
    note: str | None = None

    def _omitted(self) -> set[str]:
        if self.n:
            return {"note"} if self.note is None else set()
        return {"mean_grade", "modal_grade", "counts", "exact", "within_one"}


@dataclass(frozen=True)
class Grading(_Json):
    """Every KL grading figure of one phase."""

    phase: str
    n_readers: int
    n_cases: int
    n_real: int
    n_synthetic: int
    n_grades: int
    n_missing: int
    readers: tuple[GradingReader, ...]
    summary: GradingSummary
    # grades, real and synthetic (5 x 5 counts, rows the reference grade),
    # orientation
    confusion: dict[str, Any]
    inter_reader_alpha: dict[str, Figure]
    images: tuple[GradingImage, ...]
    note: str | None

    _nested = {
        "readers": _tuple_of(GradingReader.from_json),
        "summary": GradingSummary.from_json,
        "inter_reader_alpha": _dict_of(_figure),
        "images": _tuple_of(GradingImage.from_json),
    }


# ---------------------------------------------------------------- others


@dataclass(frozen=True)
class MachineReader(_Json):
    """A machine reader's own figures in one phase."""

    reader: Any
    model: str
    phase: str
    detection: DetectionFigures | None
    grading: dict[str, GradeAgreement] | None

    _nested = {
        "detection": DetectionFigures.from_json,
        "grading": _dict_of(GradeAgreement.from_json),
    }


@dataclass(frozen=True)
class RetestEntry(_Json):
    """A reader's test-retest kappa on one question in one phase."""

    reader: Any
    kind: str
    phase: str
    question: str
    weights: str
    n: int
    same: int
    kappa: float | None
    ci: list[float | None]
    flagged: bool
    note: str | None


@dataclass(frozen=True)
class Retest(_Json):
    """Test-retest agreement of every reader shown repeated cases."""

    threshold: float
    readers: tuple[RetestEntry, ...]

    _nested = {"readers": _tuple_of(RetestEntry.from_json)}


@dataclass(frozen=True)
class Report(_Json):
    """The full study report (see :func:`~turingtest.stats.report.build_report`).

    ``detection`` and ``grading`` map a phase name to its section, in the
    order the phases come. ``questions`` holds the summaries of the study's
    own choice questions (:func:`turingtest.stats.questions.question_summary`)
    where the study has any.
    """

    study: str | None
    version: int
    settings: Settings
    counts: Counts
    readers: tuple[ReportReader, ...]
    attention: Attention
    detection: dict[str, Detection]
    grading: dict[str, Grading]
    machine_readers: tuple[MachineReader, ...] = ()
    retest: Retest = Retest(threshold=RETEST_KAPPA_MIN, readers=())
    messages: tuple[str, ...] = ()
    questions: tuple[dict[str, Any], ...] | None = None

    _nested = {
        "settings": Settings.from_json,
        "counts": Counts.from_json,
        "readers": _tuple_of(ReportReader.from_json),
        "attention": Attention.from_json,
        "detection": _dict_of(Detection.from_json),
        "grading": _dict_of(Grading.from_json),
        "machine_readers": _tuple_of(MachineReader.from_json),
        "retest": Retest.from_json,
        "messages": tuple,
        "questions": tuple,
    }
    _optional = frozenset({"questions"})
