"""Questions a study admin adds to a phase, and the one check of their answers.

A phase asks its built-in questions (:mod:`turingtest.domain.protocols`) and
any number of extra ones: an ordinal scale (BI-RADS, a realism Likert, a
custom one), a nominal choice, or free text ("What gave it away?"). Each has
a key, the name its answer is stored and exported under, and a keyboard map
from keys to codes. :func:`answer_clean` is the check every answer to one
of them goes through.

Pure Python, no Django.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping

from turingtest.domain.references import PREFIX as REFERENCE_PREFIX
from turingtest.domain.scales import Code, Kind, Scale

FREE_TEXT_MAX = 2000

# Answer fields of the built-in questions and request fields of the reader's
# API: an extra question's key may be none of them.
RESERVED_FIELDS = frozenset(
    {
        "answer",
        "answers",
        "confidence",
        "kl_grade",
        "stage",
        "position",
        "interaction",
        "revision",
        "image",
        "phase",
        "total",
    }
)

# Keys the reading page already gives a meaning (viewer.js: zoom, pan,
# window/level, invert; reader.js: back, Enter, Tab): a keyboard map may not
# take them.
RESERVED_KEYS = frozenset("+=-_fpirwsadb?") | {" "}

KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class QuestionType(enum.StrEnum):
    ORDINAL = "ordinal"
    NOMINAL = "nominal"
    FREE_TEXT = "free_text"


class QuestionError(ValueError):
    """A question that cannot be asked as defined: the message says why."""


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name an extra question's answer, or None."""
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        return (
            f"The key {key!r} must be 1-40 lowercase letters, digits and "
            "underscores, starting with a letter."
        )
    if key in RESERVED_FIELDS:
        return f"The key {key!r} is taken by a built-in field; choose another."
    if key.startswith(REFERENCE_PREFIX):
        return (
            f"The key {key!r} starts like a reference column "
            f"({REFERENCE_PREFIX}<scale>) of the exports; choose another."
        )
    return None


def default_keys(scale: Scale) -> dict[str, Code]:
    """The keyboard map a question gets unless its admin gives one.

    Whole-number codes 0-9 are typed as themselves (as the KL grades are);
    other scales of up to nine values take each value's first letter where
    those are distinct and free, else the digits 1-9 in order.
    """
    codes = scale.codes
    if all(isinstance(c, int) and 0 <= c <= 9 for c in codes):
        return {str(c): c for c in codes}
    firsts = [str(level.label).strip()[:1].lower() for level in scale.levels]
    if (
        all(f.isalpha() for f in firsts)
        and len(set(firsts)) == len(firsts)
        and not set(firsts) & RESERVED_KEYS
    ):
        return dict(zip(firsts, codes, strict=True))
    return {str(i): c for i, c in enumerate(codes[:9], start=1)}


def keys_check(keys: Mapping[str, object], scale: Scale) -> dict[str, Code]:
    """A keyboard map as given, checked against ``scale``; raises QuestionError."""
    if not isinstance(keys, Mapping):
        raise QuestionError("The keyboard map is an object of key -> code.")
    out: dict[str, Code] = {}
    for key, code in keys.items():
        # Letters and digits only: shifted symbols differ between keyboard
        # layouts, and Shift+1-4 choose the viewer's window presets.
        if not isinstance(key, str) or len(key) != 1 or not key.isascii():
            raise QuestionError(f"The keyboard key {key!r} is not a single character.")
        if not key.isalnum():
            raise QuestionError(f"The keyboard key {key!r} is not a letter or digit.")
        key = key.lower()
        if key in RESERVED_KEYS:
            raise QuestionError(
                f"The key {key!r} already zooms, pans or adjusts the image."
            )
        if not isinstance(code, int | str) or code not in scale:
            raise QuestionError(
                f"The key {key!r} names {code!r}, which is not a value of the scale."
            )
        if key in out:
            raise QuestionError(f"The key {key!r} is mapped twice.")
        out[key] = code
    return out


def answer_clean(
    value: object, *, type: QuestionType, scale: Scale | None, required: bool
) -> Code | str | None:
    """An answer to one extra question as stored, or QuestionError saying why not.

    Free text is stripped and at most :data:`FREE_TEXT_MAX` characters;
    empty counts as unanswered. A choice must be one of the scale's codes.
    """
    if type is QuestionType.FREE_TEXT:
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise QuestionError("The answer must be text.")
        value = value.strip()
        if len(value) > FREE_TEXT_MAX:
            raise QuestionError(
                f"Keep the answer to {FREE_TEXT_MAX} characters (it has {len(value)})."
            )
        if not value:
            if required:
                raise QuestionError("Write an answer.")
            return None
        return value
    assert scale is not None
    if value is None or value == "":
        if required:
            raise QuestionError(_choose(scale))
        return None
    if value not in scale:
        raise QuestionError(_choose(scale))
    return scale.level(value).code  # type: ignore[arg-type]


def _choose(scale: Scale) -> str:
    if scale.kind is Kind.ORDINAL:
        return f"Choose a value from {scale.range_text()}."
    return "Choose one of: " + ", ".join(str(c) for c in scale.codes) + "."
