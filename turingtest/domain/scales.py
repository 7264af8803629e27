"""The scales a reader answers on: the one place that names their values and labels.

A scale is ordinal (its values are ordered, so "within one" and weighted
agreement mean something) or nominal (values are only equal or not). The
built-in scales are the Kellgren–Lawrence grade of the reference study, the
6-point real/synthetic confidence scale of its detection phase, a 1–5 realism
Likert and BI-RADS; :meth:`Scale.custom` builds one from ``(code, label)``
pairs, as a study admin will define them.

Everything else (models, services, the reader API, the viewer, reports,
exports, the phantom and the generator) reads the scales from here; a test
fails where a KL label or the number of KL grades is written anywhere else.
Pure Python: ``generator`` imports this module, so it must not import Django.

References
----------
Kellgren JH, Lawrence JS. Radiological assessment of osteo-arthrosis.
Ann Rheum Dis 1957;16(4):494-502. doi:10.1136/ard.16.4.494

American College of Radiology. ACR BI-RADS Atlas, 5th edition. 2013.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

Code = int | str


class ScaleError(ValueError):
    """A scale that cannot be built: the message says what is wrong."""


class Kind(enum.StrEnum):
    ORDINAL = "ordinal"
    NOMINAL = "nominal"


@dataclass(frozen=True)
class Level:
    """One value of a scale: its code, its label, and a one-word short form."""

    code: Code
    label: str
    short: str = ""


_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class Scale:
    """An answer scale.

    ``name`` is its key in the registry; ``title`` the question it answers,
    as a reader reads it; ``short_label`` how tables and messages name it
    ("KL grade"); ``abbreviation`` what precedes a single value ("KL 2");
    ``system`` the scale's own name in prose ("the Kellgren–Lawrence scale").
    Ordinal codes are whole numbers in increasing order, nominal codes whole
    numbers or strings.
    """

    name: str
    title: str
    short_label: str
    kind: Kind
    levels: tuple[Level, ...]
    abbreviation: str = ""
    system: str = ""

    def __post_init__(self) -> None:
        problems = _problems(self)
        if problems:
            raise ScaleError(f"Scale {self.name!r}: " + "; ".join(problems) + ".")

    @classmethod
    def custom(
        cls,
        *,
        name: str,
        title: str,
        kind: Kind | str,
        levels: Iterable[tuple[Code, str]],
        short_label: str = "",
    ) -> Scale:
        """A scale from ``(code, label)`` pairs, in order; raises :class:`ScaleError`."""
        try:
            kind = Kind(kind)
        except ValueError:
            raise ScaleError(
                f"Scale {name!r}: kind is 'ordinal' or 'nominal', not {kind!r}."
            ) from None
        pairs = []
        for item in levels:
            if not isinstance(item, tuple | list) or len(item) != 2:
                raise ScaleError(
                    f"Scale {name!r}: each level is a (code, label) pair, not {item!r}."
                )
            code, label = item
            pairs.append(
                Level(code, label.strip() if isinstance(label, str) else label)
            )
        return cls(
            name=name,
            title=title,
            short_label=short_label or title,
            kind=kind,
            levels=tuple(pairs),
        )

    # --- reading the values -------------------------------------------------
    @property
    def codes(self) -> tuple[Code, ...]:
        return tuple(level.code for level in self.levels)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(level.label for level in self.levels)

    @property
    def count(self) -> int:
        return len(self.levels)

    @property
    def ordinal(self) -> bool:
        return self.kind is Kind.ORDINAL

    @property
    def min(self) -> int:
        return self._ends()[0]

    @property
    def max(self) -> int:
        return self._ends()[1]

    def _ends(self) -> tuple[int, int]:
        if not self.ordinal:
            raise TypeError(
                f"The nominal scale {self.name!r} has no minimum or maximum."
            )
        first, last = self.levels[0].code, self.levels[-1].code
        # _problems() made every code of an ordinal scale a whole number.
        assert isinstance(first, int) and isinstance(last, int)
        return first, last

    def __contains__(self, code: object) -> bool:
        # bool is an int to Python, never a value of a scale.
        return not isinstance(code, bool) and code in self.codes

    def level(self, code: Code) -> Level:
        for level in self.levels:
            if level.code == code and not isinstance(code, bool):
                return level
        raise KeyError(f"{code!r} is not a value of the scale {self.name!r}.")

    def label(self, code: Code) -> str:
        return self.level(code).label

    def rank(self, code: Code) -> int:
        """The position of ``code`` on the scale, from 0."""
        return self.codes.index(self.level(code).code)

    def value_text(self, code: Code) -> str:
        """One value as messages and tables write it: "KL 2", else its label."""
        return f"{self.abbreviation} {code}" if self.abbreviation else self.label(code)

    def codes_from_text(self, text: str) -> tuple[Code, ...]:
        """The values named in comma-separated ``text`` ("1,2,5"), in the
        order given; raises ScaleError naming any that are not values."""
        by_text = {str(code): code for code in self.codes}
        given = [part.strip() for part in text.split(",") if part.strip()]
        unknown = [part for part in given if part not in by_text]
        if unknown or not given:
            raise ScaleError(
                f"{', '.join(unknown) or 'nothing'}: not values of the "
                f"{self.short_label} ({', '.join(by_text)})."
            )
        return tuple(dict.fromkeys(by_text[part] for part in given))

    def range_text(self, between: str = " to ") -> str:
        """The values of an ordinal scale in words: "0 to 4"."""
        return f"{self.min}{between}{self.max}"

    def choices(self) -> list[tuple[Code, str]]:
        """``(code, label)`` pairs, the form Django's ``choices`` take."""
        return [(level.code, level.label) for level in self.levels]

    def hint(self) -> str:
        """The codes with their short forms on one line: "0 none · 1 doubtful · …"."""
        return " · ".join(f"{lv.code} {lv.short}" for lv in self.levels if lv.short)

    def within_one(self, given: Code, reference: Code) -> bool:
        """Whether ``given`` is at most one step from ``reference`` (ordinal only)."""
        if not self.ordinal:
            raise TypeError(
                f"'Within one' means nothing on the nominal scale {self.name!r}."
            )
        return abs(self.rank(given) - self.rank(reference)) <= 1


def _problems(scale: Scale) -> list[str]:
    problems = []
    if not isinstance(scale.name, str) or not _NAME.match(scale.name):
        problems.append(
            "the name is 1-40 lowercase letters, digits and hyphens, starting "
            "with a letter or digit"
        )
    if not isinstance(scale.title, str) or not scale.title.strip():
        problems.append("the title is empty")
    if not isinstance(scale.kind, Kind):
        problems.append("kind is 'ordinal' or 'nominal'")
    levels = scale.levels
    if not isinstance(levels, tuple) or len(levels) < 2:
        problems.append("a scale has at least two values")
        return problems
    codes = [level.code for level in levels]
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int | str):
            problems.append(f"the code {code!r} is not a whole number or a string")
        elif isinstance(code, str) and not code.strip():
            problems.append("a code is empty")
    duplicates = sorted({str(c) for c in codes if codes.count(c) > 1})
    if duplicates:
        problems.append("duplicate codes " + ", ".join(duplicates))
    if any(not isinstance(lv.label, str) or not lv.label.strip() for lv in levels):
        problems.append("every value needs a label")
    else:
        labels = [lv.label.strip().casefold() for lv in levels]
        if len(set(labels)) < len(labels):
            problems.append("two values have the same label")
    if scale.kind is Kind.ORDINAL and not problems:
        whole = [c for c in codes if isinstance(c, int)]
        if len(whole) < len(codes):
            problems.append("the codes of an ordinal scale are whole numbers")
        elif any(b <= a for a, b in zip(whole, whole[1:], strict=False)):
            problems.append("the codes of an ordinal scale increase")
    return problems


# --- built-in scales --------------------------------------------------------

KL = Scale(
    name="kl",
    title="Kellgren–Lawrence grade",
    short_label="KL grade",
    abbreviation="KL",
    system="Kellgren–Lawrence",
    kind=Kind.ORDINAL,
    levels=(
        Level(0, "No features of osteoarthritis", "none"),
        Level(1, "Doubtful narrowing, possible osteophytic lipping", "doubtful"),
        Level(2, "Definite osteophytes, possible narrowing", "minimal"),
        Level(
            3, "Multiple osteophytes, definite narrowing, some sclerosis", "moderate"
        ),
        Level(
            4,
            "Large osteophytes, marked narrowing, severe sclerosis, deformity",
            "severe",
        ),
    ),
)

# One click gives the decision and its confidence: the lower half says real,
# the upper half synthetic; the code orders "how synthetic" for ROC analysis.
DETECTION = Scale(
    name="real-synthetic-6",
    title="Real or synthetic?",
    short_label="Real/synthetic",
    kind=Kind.ORDINAL,
    levels=(
        Level(1, "Definitely real"),
        Level(2, "Probably real"),
        Level(3, "Possibly real"),
        Level(4, "Possibly synthetic"),
        Level(5, "Probably synthetic"),
        Level(6, "Definitely synthetic"),
    ),
)

REALISM = Scale(
    name="realism-5",
    title="How realistic does this image look?",
    short_label="Realism",
    kind=Kind.ORDINAL,
    levels=(
        Level(1, "Not at all realistic"),
        Level(2, "Slightly realistic"),
        Level(3, "Moderately realistic"),
        Level(4, "Very realistic"),
        Level(5, "Completely realistic"),
    ),
)

BIRADS = Scale(
    name="birads",
    title="BI-RADS assessment category",
    short_label="BI-RADS category",
    abbreviation="BI-RADS",
    system="BI-RADS",
    kind=Kind.ORDINAL,
    levels=(
        Level(0, "Incomplete: needs additional imaging evaluation"),
        Level(1, "Negative"),
        Level(2, "Benign"),
        Level(3, "Probably benign"),
        Level(4, "Suspicious"),
        Level(5, "Highly suggestive of malignancy"),
        Level(6, "Known biopsy-proven malignancy"),
    ),
)


def detection_answer(code: int) -> str:
    """The real/synthetic call a :data:`DETECTION` rating makes."""
    return "real" if DETECTION.rank(code) < DETECTION.count // 2 else "synthetic"


def detection_codes(answer: str) -> tuple[int, ...]:
    """The :data:`DETECTION` ratings that make the call ``answer``."""
    return tuple(
        c
        for c in DETECTION.codes
        if isinstance(c, int) and detection_answer(c) == answer
    )


# --- the registry -----------------------------------------------------------

_REGISTRY: dict[str, Scale] = {s.name: s for s in (KL, DETECTION, REALISM, BIRADS)}


def register(scale: Scale) -> Scale:
    """Add a scale to the registry; a name names one scale only."""
    held = _REGISTRY.get(scale.name)
    if held is not None and held != scale:
        raise ScaleError(f"A different scale is already named {scale.name!r}.")
    _REGISTRY[scale.name] = scale
    return scale


def scale_named(name: str) -> Scale:
    """The registered scale called ``name``; raises ``LookupError`` for others."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise LookupError(f"No scale is named {name!r} (known: {known}).") from None


def scale_names() -> list[str]:
    return sorted(_REGISTRY)
