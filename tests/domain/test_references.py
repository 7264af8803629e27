"""Reference values on a scale: columns, parsing, checking, matching."""

import pytest

from turingtest.domain import references
from turingtest.domain.references import ReferenceValueError
from turingtest.domain.scales import BIRADS, KL, Scale


def test_columns_name_their_scale():
    assert references.column(BIRADS) == "reference_birads"
    assert references.column("realism-5") == "reference_realism-5"
    assert references.scale_of_column("reference_birads") == "birads"
    assert references.scale_of_column("kl_grade") is None
    with pytest.raises(ReferenceValueError, match="not a scale name"):
        references.scale_of_column("reference_Bad_Name")


def test_values_are_checked_on_a_known_scale_and_kept_on_others():
    assert references.parse("birads", " 4 ") == 4
    with pytest.raises(ReferenceValueError, match=r"not a BI-RADS category \(0–6\)"):
        references.parse("birads", "7")
    # A scale an admin defines later: whole numbers as numbers, text as text.
    assert references.parse("density", "3") == 3
    assert references.parse("density", "c") == "c"
    with pytest.raises(ReferenceValueError, match="empty"):
        references.parse("density", " ")
    assert references.parse_assignment("BIRADS=2") == {"birads": 2}
    with pytest.raises(ReferenceValueError, match="SCALE=VALUE"):
        references.parse_assignment("birads")


def test_stored_values_match_a_scale_by_their_text():
    nominal = Scale.custom(
        name="finding",
        title="Finding",
        kind="nominal",
        levels=[["1", "mass"], ["2", "none"]],
    )
    assert references.on_scale(nominal, 1) == "1"
    assert references.on_scale(nominal, "2") == "2"
    assert references.on_scale(nominal, 3) is None
    assert references.on_scale(KL, "4") == 4
    assert references.on_scale(KL, True) is None


def test_problems_name_each_bad_value():
    assert references.problems({"birads": 3, "density": "c"}) == []
    found = references.problems({"birads": 9, "kl": 2, "x y": 1, "n": 1.5})
    assert found == [
        "birads: 9 is not a BI-RADS category (0–6).",
        "The KL grade has its own field.",
        "'x y' is not a scale name.",
        "n: 1.5 is not a whole number or text.",
    ]
    assert references.describe(2, {"birads": 4, "density": "c"}) == (
        "KL 2, BI-RADS 4, density c"
    )
