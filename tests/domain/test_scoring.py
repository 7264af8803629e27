import pytest

from turingtest.domain.scales import BIRADS, KL, Scale
from turingtest.domain.scoring import (
    Given,
    final,
    grade_exact,
    grade_within_one,
    is_correct,
    score,
)


def test_the_latest_revision_is_the_answer_that_counts():
    first = Given("real", 2, None)
    assert final(first) is first
    revisions = [(2, Given("synthetic", 6, None)), (1, Given("real", 1, None))]
    assert final(first, revisions) == Given("synthetic", 6, None)


def test_each_phase_scores_its_own_question():
    assert is_correct("detection", "real", 2, "real", None) is True
    assert is_correct("combined", "synthetic", 2, "real", 2) is False
    assert is_correct("grading", "synthetic", 3, None, 3) is True
    # A grade given beside the real/synthetic call is scored by the call.
    assert is_correct("detection", "real", 3, None, 3) is None


def test_a_score_counts_both_questions():
    rows = [
        (Given("real", 1, 2), "real", 2),
        (Given("synthetic", 5, 4), "real", 3),
        (Given(None, None, 0), "synthetic", 2),
    ]
    s = score(rows)
    assert (s.detection_total, s.detection_correct) == (2, 1)
    assert (s.grading_total, s.grading_exact, s.grading_within_one) == (3, 1, 2)


def test_exact_and_within_one_follow_the_scales_order():
    assert grade_within_one(1, 2) and not grade_within_one(0, 2)  # KL by default
    assert grade_exact(3, 3, KL) and not grade_exact(3, 4, KL)
    # Steps are positions on the scale, whatever its codes: 10 and 20 are neighbours.
    steps = Scale.custom(
        name="steps",
        title="Steps",
        kind="ordinal",
        levels=[(0, "low"), (10, "mid"), (20, "high")],
    )
    assert grade_within_one(10, 20, steps) and not grade_within_one(0, 20, steps)
    assert grade_within_one(BIRADS.min, BIRADS.min + 1, BIRADS)
    with pytest.raises(KeyError):
        grade_exact(9, 1, KL)  # not a KL grade
    nominal = Scale.custom(
        name="cue",
        title="Cue",
        kind="nominal",
        levels=[("bone", "Bone"), ("soft", "Soft tissue")],
    )
    with pytest.raises(TypeError):
        grade_within_one("bone", "soft", nominal)
