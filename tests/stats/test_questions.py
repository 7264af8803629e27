import math
from dataclasses import replace

import numpy as np
import pytest

from turingtest.domain.scales import BIRADS
from turingtest.stats.agreement import cohen_kappa
from turingtest.stats.questions import question_summary, reference_agreement
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


# ----------------------------------------------------------- against a reference


def _graded(seed: int, n_readers: int = 4, n_images: int = 30):
    """BI-RADS answers of readers who mostly agree with the reference."""
    rng = np.random.default_rng(seed)
    reference = rng.integers(0, 7, n_images)
    noise = rng.choice([-2, -1, 0, 0, 0, 1, 2], size=(n_readers, n_images))
    answers = np.clip(reference[None, :] + noise, 0, 6).astype(object)
    answers[rng.random(answers.shape) < 0.1] = None  # some left unanswered
    sources = ["real" if i % 2 else "synthetic" for i in range(n_images)]
    return answers, [int(r) for r in reference], sources


def test_answers_against_the_reference_as_independent_code_computes_them():
    """Exact and within-one per reader and pooled, the confusion matrix and
    each reader's quadratic kappa, against numpy by hand and statsmodels."""
    from statsmodels.stats.inter_rater import cohens_kappa

    answers, reference, sources = _graded(1)
    result = reference_agreement(
        scale="birads",
        kind="ordinal",
        codes=BIRADS.codes,
        ratings=answers,
        reference=reference,
        sources=sources,
        readers=["r1", "r2", "r3", "r4"],
    )
    ref = np.array(reference)
    pairs = [
        (j, i, answers[j, i])
        for j in range(answers.shape[0])
        for i in range(answers.shape[1])
        if answers[j, i] is not None
    ]
    diffs = np.array([a - ref[i] for _, i, a in pairs])
    assert result.n_answers == len(pairs) and result.n_images == 30
    assert result.exact["estimate"] == pytest.approx(np.mean(diffs == 0))
    assert result.within_one["estimate"] == pytest.approx(np.mean(abs(diffs) <= 1))
    low, high = result.exact["ci"]
    assert low < result.exact["estimate"] < high
    for source in ("real", "synthetic"):
        mine = [a == ref[i] for _, i, a in pairs if sources[i] == source]
        assert result.exact_by_source[source] == pytest.approx(np.mean(mine))
        table = np.zeros((7, 7), int)
        for _, i, a in pairs:
            if sources[i] == source:
                table[ref[i], a] += 1
        assert np.array_equal(result.confusion[source], table)
    for j, row in enumerate(result.readers):
        given = [(a, ref[i]) for jj, i, a in pairs if jj == j]
        assert row.reader == f"r{j + 1}" and row.n == len(given)
        assert row.exact["estimate"] == pytest.approx(
            np.mean([a == r for a, r in given])
        )
        table = np.zeros((7, 7))
        for a, r in given:
            table[a, r] += 1
        expected = cohens_kappa(table, wt="quadratic").kappa
        assert row.kappa["estimate"] == pytest.approx(expected)
    assert result.mean_kappa == pytest.approx(
        np.mean([r.kappa["estimate"] for r in result.readers])
    )


def test_within_one_counts_steps_of_the_scale_and_nominal_scales_have_none():
    # A custom ordinal scale 1, 2, 5: 2 and 5 are one step apart.
    result = reference_agreement(
        scale="custom",
        kind="ordinal",
        codes=[1, 2, 5],
        ratings=[[5, 1, 9]],
        reference=[2, 5, 1],
        sources=["real", "synthetic", "real"],
    )
    assert result.n_answers == 2  # the 9 is not on the scale
    assert result.within_one["estimate"] == pytest.approx(0.5)
    assert "1 answers are not on the scale" in result.note
    nominal = reference_agreement(
        scale="finding",
        kind="nominal",
        codes=["mass", "calc", "none"],
        ratings=[["mass", "none"], ["calc", "none"]],
        reference=["mass", "none"],
        sources=["real", "synthetic"],
    )
    assert nominal.within_one is None and nominal.weights == "none"
    assert nominal.exact["estimate"] == pytest.approx(0.75)


def test_no_reference_values_no_section():
    assert (
        reference_agreement(
            scale="birads",
            kind="ordinal",
            codes=BIRADS.codes,
            ratings=[[1, 2]],
            reference=[None, None],
            sources=["real", "synthetic"],
        )
        is None
    )


def test_the_markdown_section_scores_against_the_reference():
    answers, reference, sources = _graded(2, n_readers=2)
    summary = question_summary(
        key="birads",
        kind="ordinal",
        codes=BIRADS.codes,
        labels=BIRADS.labels,
        ratings=answers,
        sources=sources,
    )
    against = reference_agreement(
        scale="birads",
        kind="ordinal",
        codes=BIRADS.codes,
        ratings=answers,
        reference=reference,
        sources=sources,
        readers=["r1", "r2"],
    )
    q = replace(summary, reference=against).to_dict() | {
        "phase": "grading",
        "title": "BI-RADS",
    }
    text = "\n".join(questions_markdown([q]))
    exact = f"{100 * against.exact['estimate']:.1f}%"
    assert "**birads** against the reference values on the scale birads" in text
    assert f"exact agreement {exact} (" in text
    assert "| r1 |" in text and "Confusion, synthetic images" in text
