import pytest

from turingtest.domain.protocols import Question
from turingtest.domain.questions import (
    FREE_TEXT_MAX,
    QuestionError,
    QuestionType,
    answer_clean,
    default_keys,
    key_problem,
    keys_check,
)
from turingtest.domain.scales import BIRADS, KL, REALISM, Kind, Scale

YES_NO = Scale.custom(
    name="artefact",
    title="Artefact?",
    kind=Kind.NOMINAL,
    levels=[("yes", "Yes, visible"), ("no", "None")],
)


def test_ordinal_answers_must_be_a_code_of_the_scale():
    clean = lambda v: answer_clean(  # noqa: E731
        v, type=QuestionType.ORDINAL, scale=BIRADS, required=True
    )
    assert clean(4) == 4
    for bad in (7, -1, "4", True, None, ""):
        with pytest.raises(QuestionError, match="0 to 6"):
            clean(bad)


def test_optional_questions_may_be_left_out():
    assert (
        answer_clean(None, type=QuestionType.ORDINAL, scale=REALISM, required=False)
        is None
    )
    assert (
        answer_clean("  ", type=QuestionType.FREE_TEXT, scale=None, required=False)
        is None
    )


def test_nominal_answers_name_the_choices():
    assert (
        answer_clean("yes", type=QuestionType.NOMINAL, scale=YES_NO, required=True)
        == "yes"
    )
    with pytest.raises(QuestionError, match="yes, no"):
        answer_clean("maybe", type=QuestionType.NOMINAL, scale=YES_NO, required=True)


def test_free_text_is_stripped_and_bounded():
    clean = lambda v, required=True: answer_clean(  # noqa: E731
        v, type=QuestionType.FREE_TEXT, scale=None, required=required
    )
    assert clean("  blurred trabeculae \n") == "blurred trabeculae"
    assert clean("x" * FREE_TEXT_MAX) == "x" * FREE_TEXT_MAX
    with pytest.raises(QuestionError, match="2000 characters"):
        clean("x" * (FREE_TEXT_MAX + 1))
    with pytest.raises(QuestionError, match="Write an answer"):
        clean("   ")
    with pytest.raises(QuestionError, match="text"):
        clean(3)


def test_default_keys_are_digits_or_first_letters():
    assert default_keys(BIRADS) == {str(c): c for c in range(7)}
    assert default_keys(KL) == {"0": 0, "1": 1, "2": 2, "3": 3, "4": 4}
    assert default_keys(YES_NO) == {"y": "yes", "n": "no"}
    # "Absent" starts with a key that adjusts the image: digits instead.
    clash = Scale.custom(
        name="clash",
        title="?",
        kind="nominal",
        levels=[("a", "Absent"), ("p", "Present")],
    )
    assert default_keys(clash) == {"1": "a", "2": "p"}


def test_keyboard_maps_are_checked_against_the_scale():
    assert keys_check({"Y": "yes", "n": "no"}, YES_NO) == {"y": "yes", "n": "no"}
    with pytest.raises(QuestionError, match="not a value"):
        keys_check({"m": "maybe"}, YES_NO)
    with pytest.raises(QuestionError, match="zooms"):
        keys_check({"f": "yes"}, YES_NO)
    with pytest.raises(QuestionError, match="single character"):
        keys_check({"yes": "yes"}, YES_NO)
    with pytest.raises(QuestionError, match="letter or digit"):
        keys_check({"!": "yes"}, YES_NO)


def test_keys_name_answers_and_may_not_take_a_built_in_field():
    assert key_problem("birads") is None
    assert "built-in" in key_problem("kl_grade")
    assert "lowercase" in key_problem("Why?")
    # reference_<scale> names the exports' reference columns.
    assert "reference column" in key_problem("reference_birads")


def test_an_extra_question_reads_as_the_built_in_ones_do():
    q = Question("birads", BIRADS, required=True, extra=True)
    assert q.kind is QuestionType.ORDINAL
    assert q.title == BIRADS.title
    assert q.keymap()["6"] == 6
    why = Question(
        "why",
        None,
        "What gave it away?",
        False,
        extra=True,
        type=QuestionType.FREE_TEXT,
    )
    assert why.title == "What gave it away?"
    assert why.clean("  the edges ") == "the edges"
    assert why.keymap() == {}


def test_without_the_kl_grade_a_phase_asks_only_the_rest():
    from turingtest.domain.protocols import REALNESS, phase_questions

    assert phase_questions("grading", kl_grade=False) == ()
    assert phase_questions("combined", kl_grade=False) == (REALNESS,)
    assert phase_questions("detection", grade_in_detection=True, kl_grade=False) == (
        REALNESS,
    )
