"""Shared machinery of the result objects.

Every result is a frozen dataclass. ``to_dict`` turns it into plain Python
values (lists, floats, ints, str, bool, None) so that it can go into a JSON
report; NaN and infinity are kept as floats there, and the report decides how
to show them, because only the report knows which note explains them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["Result", "plain", "z_quantile", "nan_ci"]


def plain(value: Any) -> Any:
    """Convert results, numpy scalars and arrays to plain Python values."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value


class Result:
    """Mixin for the frozen dataclasses returned by :mod:`turingtest.stats`."""

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as plain Python values (NaN kept as ``nan``)."""
        return {
            field.name: plain(getattr(self, field.name))
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
        }


@functools.lru_cache(maxsize=64)
def z_quantile(level: float) -> float:
    """Two-sided standard normal quantile for a confidence ``level``.

    Cached: a report asks for the same few levels thousands of times, and
    each scipy call costs about half a millisecond.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def nan_ci() -> tuple[float, float]:
    """An interval that could not be computed."""
    return (math.nan, math.nan)


def join_notes(*notes: str | None) -> str | None:
    """Join the non-empty notes into one sentence list, or None."""
    kept = [n for n in notes if n]
    return " ".join(kept) if kept else None
