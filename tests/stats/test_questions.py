import math

import numpy as np
import pytest

from turingtest.stats.agreement import cohen_kappa
from turingtest.stats.questions import question_summary
from turingtest.stats.report.markdown import questions_markdown

CODES = (1, 2, 3, 4, 5)
LABELS = ("one", "two", "three", "four", "five")


def _summary(ratings, sources, kind="ordinal", codes=CODES, labels=LABELS):
    return question_summary(
        key="realism",
        kind=kind,
        codes=codes,
        labels=labels,
        ratings=ratings,
        sources=sources,
    )


def test_two_readers_agree_as_weighted_kappa_says():
    a = [1, 2, 3, 4, 5, 3, 2, 4]
    b = [1, 3, 3, 5, 4, 3, 1, 4]
    s = _summary([a, b], ["real"] * 4 + ["synthetic"] * 4)
    expected = cohen_kappa(a, b, weights="quadratic", categories=CODES).estimate
    assert s.kappa == pytest.approx(expected)
    assert s.weights == "quadratic" and s.n_pairs == 1
    assert (s.n_readers, s.n_images, s.n_answers) == (2, 8, 16)


def test_many_readers_take_the_mean_of_the_pairs():
    rng = np.random.default_rng(3)
    truth = rng.integers(1, 6, 30)
    readers = [
        np.clip(truth + rng.integers(-1, 2, 30), 1, 5).tolist() for _ in range(4)
    ]
    s = _summary(readers, ["real", "synthetic"] * 15)
    pairs = [
        cohen_kappa(
            readers[i], readers[j], weights="quadratic", categories=CODES
        ).estimate
        for i in range(4)
        for j in range(i + 1, 4)
    ]
    assert s.kappa == pytest.approx(np.mean(pairs))
    assert s.kappa_min == pytest.approx(min(pairs))
    assert s.n_pairs == 6


def test_nominal_questions_are_unweighted():
    a = ["y", "n", "y", "y", "n", "n"]
    b = ["y", "n", "n", "y", "n", "y"]
    s = _summary(
        [a, b], ["real"] * 6, kind="nominal", codes=("y", "n"), labels=("Yes", "No")
    )
    assert s.weights == "none"
    assert s.kappa == pytest.approx(cohen_kappa(a, b, categories=("y", "n")).estimate)
    real = s.by_source[0]
    assert real.counts == (6, 6) and real.mean is None


def test_spread_per_source_counts_each_value_and_the_mean():
    ratings = [[1, 5, None, 4], [2, 5, 3, None]]
    s = _summary(ratings, ["real", "synthetic", "real", "synthetic"])
    real, synthetic = s.by_source
    assert (real.source, real.n, real.counts) == ("real", 3, (1, 1, 1, 0, 0))
    assert real.mean == pytest.approx(2.0)
    assert synthetic.counts == (0, 0, 0, 1, 2) and synthetic.mean == pytest.approx(
        14 / 3
    )


def test_one_reader_has_no_agreement_and_says_so():
    s = _summary([[1, 2, 3]], ["real"] * 3)
    assert s.kappa is None and s.n_pairs == 0
    assert "two readers" in s.note
    d = s.to_dict()
    assert d["kappa"] is None and not any(
        isinstance(v, float) and math.isnan(v) for v in d.values()
    )


def test_the_markdown_section_names_each_question():
    s = _summary(
        [[1, 2, 3, 4], [1, 2, 4, 4]], ["real", "real", "synthetic", "synthetic"]
    )
    text = "\n".join(questions_markdown([s.to_dict() | {"phase": "detection"}]))
    assert "## Questions of this study" in text
    assert "| detection | realism (ordinal) | 2 | 4 |" in text
    assert "| 4 four | 0 | 3 |" in text
