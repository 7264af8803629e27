"""What readers did with each image: the viewer's interaction log.

The reading page's viewer (static/js/viewer.js) logs, per case, compact
events ``[t_ms, kind, ...numbers]`` and sends them with the answer as one
JSON field, no extra request:

==========  =====================================  ============================
kind        numbers                                meaning
==========  =====================================  ============================
``"v"``     x, y, width, height (image pixels)     the visible part of the image
``"z"``     scale, x, y                            zoom: screen pixels per image
                                                   pixel, about image point x, y
                                                   (-1, -1: fit to screen)
``"m"``     dx, dy (screen pixels)                 a pan
``"w"``     window, level                          a window/level change
``"p"``     preset (0 default, 1 bone, 2 soft,     a window/level preset
            3 full range)
``"i"``     1 on, 0 off                            invert
``"r"``     (none)                                 reset the view
==========  =====================================  ============================

plus ``first_input_ms`` (to the first event that is not a viewport sample)
and ``answer_ms`` (to the answer), both measured in the browser from the
moment the image was drawn.

Staff get it back as ``interactions.csv`` (one row per event) and as a
heatmap per image of where readers looked while zoomed in.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from turingtest.studies.models import Case, Judgment, Study

KINDS = {
    "v": ("viewport", 4),
    "z": ("zoom", 3),
    "m": ("pan", 2),
    "w": ("window_level", 2),
    "p": ("preset", 1),
    "i": ("invert", 1),
    "r": ("reset", 0),
}
PRESETS = ("default", "bone", "soft", "full")
MAX_EVENTS = 2000
MAX_MS = 24 * 3600 * 1000


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or abs(value) > 1e7:
        return None
    return round(float(value), 1)


def _ms(value: Any) -> int | None:
    n = _number(value)
    return None if n is None or n < 0 or n > MAX_MS else int(n)


def interaction_clean(value: Any) -> dict | None:
    """The log as stored: well-formed events only, at most MAX_EVENTS.

    A malformed log never costs the reader their answer: what cannot be read
    is dropped, and a log with nothing readable is stored as None.
    """
    if not isinstance(value, dict):
        return None
    events = []
    raw = value.get("events")
    for e in raw[:MAX_EVENTS] if isinstance(raw, list) else []:
        if not isinstance(e, list) or len(e) < 2 or e[1] not in KINDS:
            continue
        t = _ms(e[0])
        arity = KINDS[e[1]][1]
        numbers = [_number(n) for n in e[2 : 2 + arity]]
        if t is None or len(numbers) != arity or None in numbers:
            continue
        events.append([t, e[1], *numbers])
    first, answer = _ms(value.get("first_input_ms")), _ms(value.get("answer_ms"))
    if not events and first is None and answer is None:
        return None
    return {"first_input_ms": first, "answer_ms": answer, "events": events}


# --- interactions.csv -----------------------------------------------------------

INTERACTION_COLUMNS = [
    "reader",
    "reader_kind",
    "phase",
    "position",
    "case",
    "image",
    "first_input_ms",
    "answer_ms",
    "t_ms",
    "event",
    "x",
    "y",
    "width",
    "height",
    "scale",
    "window",
    "level",
    "detail",
]


def _event_fields(kind: str, numbers: list[float]) -> dict[str, Any]:
    if kind == "v":
        return dict(zip(("x", "y", "width", "height"), numbers, strict=True))
    if kind == "z":
        scale, x, y = numbers
        if x < 0:
            return {"scale": scale, "detail": "fit"}
        return {"scale": scale, "x": x, "y": y}
    if kind == "m":
        return {"x": numbers[0], "y": numbers[1], "detail": "screen pixels"}
    if kind == "w":
        return {"window": numbers[0], "level": numbers[1]}
    if kind == "p":
        index = int(numbers[0])
        return {"detail": PRESETS[index] if 0 <= index < len(PRESETS) else ""}
    if kind == "i":
        return {"detail": "on" if numbers[0] else "off"}
    return {}


def interaction_rows(study: Study) -> Iterator[dict]:
    """One row per logged event of every main-case answer, in reading order."""
    judgments = (
        Judgment.objects.filter(
            session__enrollment__study=study,
            session__phase__isnull=False,
            interaction__isnull=False,
        )
        .select_related("session__enrollment__reader", "session__phase", "case__image")
        .order_by(
            "session__enrollment__reader__code", "session__phase__index", "position"
        )
    )
    for j in judgments.iterator(chunk_size=500):
        log = j.interaction or {}
        base = {
            "reader": j.session.enrollment.reader.code,
            "reader_kind": j.session.enrollment.reader.kind,
            "phase": j.session.phase.kind,
            "position": j.position + 1,  # 1-based, as in judgments.csv
            "case": j.case.number,
            "image": j.case.token,
            "first_input_ms": log.get("first_input_ms"),
            "answer_ms": log.get("answer_ms"),
        }
        events = log.get("events") or []
        if not events:
            yield base
        for t, kind, *numbers in events:
            yield (
                base
                | {"t_ms": t, "event": KINDS[kind][0]}
                | _event_fields(kind, numbers)
            )


# --- where readers zoomed ---------------------------------------------------------

GRID = 32


def _heat(logs: Iterable[dict], width: int, height: int) -> tuple[np.ndarray, int]:
    heat = np.zeros((GRID, GRID))
    readers = 0
    for log in logs:
        views = [e for e in log.get("events") or [] if e[1] == "v"]
        end = log.get("answer_ms") or (views[-1][0] if views else 0)
        zoomed = False
        for i, (t, _, x, y, w, h) in enumerate(views):
            if w * h >= 0.9 * width * height:
                continue
            until = views[i + 1][0] if i + 1 < len(views) else end
            seconds = max(0, until - t) / 1000
            x0 = int(np.clip(x / width * GRID, 0, GRID - 1))
            y0 = int(np.clip(y / height * GRID, 0, GRID - 1))
            x1 = int(np.clip(math.ceil((x + w) / width * GRID), x0 + 1, GRID))
            y1 = int(np.clip(math.ceil((y + h) / height * GRID), y0 + 1, GRID))
            heat[y0:y1, x0:x1] += seconds
            zoomed = True
        readers += zoomed
    return heat, readers


def zoom_heatmap(*, case: Case) -> tuple[np.ndarray, int]:
    """Seconds readers spent looking at each cell of a GRID×GRID grid over
    the image while zoomed in, summed over readers; and how many readers
    zoomed in on it at all.

    A viewport sample counts while the view covers less than 90% of the
    image, for as long as it stayed (to the next sample, or to the answer).
    """
    logs = Judgment.objects.filter(case=case, interaction__isnull=False).values_list(
        "interaction", flat=True
    )
    return _heat(logs, case.image.width or 1, case.image.height or 1)


def zoom_heatmap_png(*, case: Case, size: int = 256) -> bytes:
    """The image in gray under its zoom heatmap (transparent to red-yellow)."""
    from PIL import Image as PILImage

    heat, _ = zoom_heatmap(case=case)
    with case.image.file.open("rb") as fh:
        base = PILImage.open(fh).convert("L").resize((size, size))
    gray = np.asarray(base, dtype=float) / 255
    peak = heat.max()
    level = heat / peak if peak > 0 else heat
    level = (
        np.asarray(
            PILImage.fromarray((level * 255).astype(np.uint8)).resize(
                (size, size), PILImage.Resampling.BILINEAR
            ),
            dtype=float,
        )
        / 255
    )
    # A warm ramp over a dimmed image: red where little time was spent,
    # yellow where most.
    alpha = np.clip(level * 1.4, 0, 0.75)[..., None]
    colour = np.stack([np.ones_like(level), level, np.zeros_like(level)], axis=-1)
    rgb = (gray[..., None] * 0.85) * (1 - alpha) + colour * alpha
    out = io.BytesIO()
    PILImage.fromarray((rgb * 255).astype(np.uint8), "RGB").save(out, format="PNG")
    return out.getvalue()


def zoom_heatmap_cases(*, study: Study) -> list[dict[str, Any]]:
    """Main cases that readers zoomed into, synthetic first, then by how many
    readers zoomed in, with how often each was called what it is (for
    synthetic images caught: where the fakes gave themselves away)."""
    logs: dict[int, list[dict]] = {}
    calls: dict[int, list[str]] = {}
    judgments = Judgment.objects.filter(
        session__enrollment__study=study, session__phase__isnull=False
    ).values_list("case_id", "answer", "interaction")
    for case_id, answer, log in judgments.iterator(chunk_size=500):
        if log:
            logs.setdefault(case_id, []).append(log)
        if answer is not None:
            calls.setdefault(case_id, []).append(answer)
    rows = []
    cases = study.cases.filter(role=Case.Role.MAIN, pk__in=logs).select_related("image")
    for case in cases:
        heat, readers = _heat(
            logs[case.pk], case.image.width or 1, case.image.height or 1
        )
        if not readers:
            continue
        answers = calls.get(case.pk, [])
        rows.append(
            {
                "case": case,
                "number": case.number,
                "source": case.image.source,
                "readers": readers,
                "seconds": round(float(heat.max()), 1),
                "caught": sum(a == case.image.source for a in answers),
                "calls": len(answers),
            }
        )
    rows.sort(key=lambda r: (r["source"] != "synthetic", -r["readers"], r["number"]))
    return rows
