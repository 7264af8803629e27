from turingtest.domain.scoring import Given, final, is_correct, score


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
