"""Template filters for staff pages: figures in the units people read."""

from datetime import timedelta

from django import template

register = template.Library()


@register.filter
def duration(value: timedelta | float | int | None) -> str:
    """A span of time in human units: ``8.2 s``, ``13 min 33 s``, ``2 h 05 min``.

    Takes a ``timedelta`` or a number of seconds; ``None`` is a dash.
    """
    if value is None or value == "":
        return "—"
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
