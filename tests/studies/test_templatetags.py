import re
from datetime import timedelta

import pytest

from turingtest.studies.templatetags.turingtest import duration


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (timedelta(minutes=13, seconds=33, microseconds=108000), "13 min 33 s"),
        (timedelta(milliseconds=8240), "8.2 s"),
        (42.4, "42 s"),
        (timedelta(hours=2, minutes=5, seconds=10), "2 h 05 min"),
        (timedelta(days=1, hours=3), "1 d 3 h"),
        (None, "—"),
    ],
)
def test_durations_read_in_human_units(value, shown):
    assert duration(value) == shown


def test_staff_page_shows_reading_time_in_human_units(study, make_reader, staff_client):
    from turingtest.studies.simulation import readers_simulate

    readers_simulate(study=study, readers=1, accuracy=0.7, seed=1)
    page = staff_client.get(f"/staff/studies/{study.slug}/").content.decode()
    table = page[page.index('<table id="progress">') :].split("</table>")[0]
    assert " min " in table
    # No raw timedelta ("0:04:12.500000"); the time of day a reader began
    # ("Dec. 3, 2026, 10:04 a.m.") has no seconds and may stay.
    assert ":00." not in table and not re.search(r"\d:\d\d:\d\d", table)
