"""Reference values: what an image of the pool is, on the scales a pool names.

An image of the reference study carries its KL grade; a mammography pool
carries BI-RADS categories, a pool may carry several. A study balances its
cases on one scale's reference values and scores its readers' answers on a
scale against the values on that scale (exact, within one, confusion).

Manifests and exports name a scale's reference column ``reference_<scale>``
(``reference_kl``, ``reference_birads``). A scale the registry knows checks
its values; a scale an admin defines on a study later (levels of its own)
is not known at import, so its values are kept as given (whole numbers as
numbers) and checked when a study uses them.

Pure Python, no Django.
"""

from __future__ import annotations

import re

from turingtest.domain.scales import KL, Code, Scale, scale_named

PREFIX = "reference_"
# A leading letter: a key of digits alone reads as an array index in JSON
# paths (on PostgreSQL and SQLite alike).
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_WHOLE = re.compile(r"^-?\d{1,9}$")
MAX_TEXT = 80


class ReferenceValueError(ValueError):
    """A reference value or column that cannot be kept: the message says why."""


def is_name(name: object) -> bool:
    """Whether ``name`` can name a scale of reference values."""
    return isinstance(name, str) and bool(_NAME.match(name))


def stored_number(text: str) -> int | None:
    """The whole number a value of a scale the registry does not know is
    kept as (``"3"`` is 3), or None where it is kept as text."""
    text = text.strip()
    return int(text) if _WHOLE.match(text) else None


def all_of(kl_grade: int | None, references: dict[str, Code]) -> dict[str, Code]:
    """Every reference value an image holds, by scale name, KL's included."""
    held = dict(references or {})
    if kl_grade is not None:
        held[KL.name] = kl_grade
    return held


def columns(references: dict[str, Code]) -> dict[str, Code]:
    """Reference values (KL's column aside) as export cells: ``reference_<scale>``."""
    return {column(name): value for name, value in (references or {}).items()}


def column(scale: Scale | str) -> str:
    """The manifest and export column of a scale's reference values."""
    return PREFIX + (scale if isinstance(scale, str) else scale.name)


def scale_of_column(name: str) -> str | None:
    """The scale a ``reference_<scale>`` column names, or None for other columns.

    Raises ReferenceValueError where the name after the prefix cannot name a scale.
    """
    if not name.startswith(PREFIX):
        return None
    scale = name[len(PREFIX) :]
    if not is_name(scale):
        raise ReferenceValueError(
            f"column {name!r}: {scale!r} is not a scale name (lowercase letters, "
            "digits and dashes, starting with a letter)"
        )
    return scale


def known_scale(name: str) -> Scale | None:
    try:
        return scale_named(name)
    except LookupError:
        return None


def _values_text(scale: Scale) -> str:
    if scale.ordinal:
        return scale.range_text("–")
    return ", ".join(str(c) for c in scale.codes)


def parse(scale_name: str, raw: str) -> Code:
    """The code ``raw`` stands for on the scale; raises ReferenceValueError."""
    text = raw.strip()
    scale = known_scale(scale_name)
    if scale is not None:
        for code in scale.codes:
            if str(code) == text:
                return code
        raise ReferenceValueError(
            f"{column(scale_name)} {raw!r} is not a {scale.short_label} "
            f"({_values_text(scale)})"
        )
    if not text:
        raise ReferenceValueError(f"{column(scale_name)} is empty")
    number = stored_number(text)
    if number is not None:
        return number
    if len(text) > MAX_TEXT:
        raise ReferenceValueError(
            f"{column(scale_name)} is longer than {MAX_TEXT} characters"
        )
    return text


def parse_assignment(text: str) -> dict[str, Code]:
    """``"birads=4"`` as ``{"birads": 4}``: one reference value for every
    file of an import; raises ReferenceValueError."""
    name, sep, raw = text.partition("=")
    name = name.strip().lower()
    if not sep or not name or not raw.strip():
        raise ReferenceValueError(f"{text!r}: give SCALE=VALUE, e.g. birads=4")
    scale = scale_of_column(PREFIX + name)
    assert scale is not None
    return {scale: parse(scale, raw)}


def on_scale(scale: Scale, value: object) -> Code | None:
    """The scale's code a stored reference value stands for, or None.

    Matched by text, so a value imported as 3 is the code "3" of a scale
    whose levels an admin typed as text, and the other way round."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value)
    for code in scale.codes:
        if str(code) == text:
            return code
    return None


def problems(references: object) -> list[str]:
    """Why a mapping of reference values cannot be an image's, or [] where
    it can: keys are scale names other than KL's (which has its own column),
    values whole numbers or short text, on the scale where it is known."""
    if not isinstance(references, dict):
        return ['Give the reference values as {"scale": value, ...}.']
    found = []
    for name, value in references.items():
        if not is_name(name):
            found.append(f"{name!r} is not a scale name.")
            continue
        if name == KL.name:
            found.append(f"The {KL.short_label} has its own field.")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            found.append(f"{name}: {value!r} is not a whole number or text.")
            continue
        if isinstance(value, str) and not 0 < len(value) <= MAX_TEXT:
            found.append(f"{name}: text values are 1-{MAX_TEXT} characters.")
            continue
        scale = known_scale(name)
        if scale is not None and value not in scale:
            found.append(
                f"{name}: {value!r} is not a {scale.short_label} "
                f"({_values_text(scale)})."
            )
    return found


def describe(kl_grade: int | None, references: dict[str, Code]) -> str:
    """An image's reference values in words, for import reports: "KL 2",
    "BI-RADS 4", "KL 2, realism-5 3"."""
    parts = [] if kl_grade is None else [KL.value_text(kl_grade)]
    for name in sorted(references):
        scale = known_scale(name)
        value = references[name]
        if scale is not None and value in scale and scale.abbreviation:
            parts.append(scale.value_text(value))
        else:
            parts.append(f"{name} {value}")
    return ", ".join(parts) or "no reference value"
