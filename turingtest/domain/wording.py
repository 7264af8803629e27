"""Words that tell a reader some images are not real.

A study whose first phase asks only for the KL grade must not say, anywhere a
reader looks before that phase, that synthetic images exist: the grading
would no longer be blind. This is the one list of such words.
"""

from __future__ import annotations

import re

# Each word with the forms of it that count. A form must start a word, so
# "degenerative" (a finding in knee radiographs) is not "generated", nor
# "organ" a "GAN"; matching ignores case.
REVEALING_WORDS: dict[str, str] = {
    "synthetic": r"synthe\w*",  # synthetic, synthesised, synthesized
    "fake": r"(?:deep)?fake\w*",
    "generated": r"generat\w*",  # generator, generative, computer-generated
    "GAN": r"gans?",
    "artificial": r"artificial\w*",
    "AI": r"ai|a\.i\.",
    # The design's own name: a visual Turing test is a test of real vs made.
    "Turing": r"turing\w*",
}

_PATTERN = re.compile(
    r"(?<!\w)(?:" + "|".join(REVEALING_WORDS.values()) + r")(?!\w)", re.IGNORECASE
)


def revealing_words(text: str) -> list[str]:
    """The revealing words in ``text`` as written there, each once, in order."""
    found: dict[str, None] = {}
    for match in _PATTERN.finditer(text or ""):
        found.setdefault(match.group(0), None)
    return list(found)
