import pytest

from turingtest.domain.wording import REVEALING_WORDS, revealing_words


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Knee radiographs: real or synthetic?", ["synthetic"]),
        ("Some were synthesised by a GAN.", ["synthesised", "GAN"]),
        ("Spot the AI-made or A.I. images", ["AI", "A.I."]),
        (
            "computer-generated, or deepfakes, or fake",
            ["generated", "deepfakes", "fake"],
        ),
        ("artificially made; a visual Turing test", ["artificially", "Turing"]),
        ("Degenerative changes of the organ; said; paint", []),
    ],
)
def test_revealing_words_are_found_as_written(text, found):
    assert revealing_words(text) == found


def test_every_word_of_the_list_is_found():
    for word in REVEALING_WORDS:
        assert revealing_words(f"a {word} image") == [word]
