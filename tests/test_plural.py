"""Counted nouns: one helper for every message that counts something."""

import pytest

from playground.ab.checks import Check, run_check
from playground.ab.promptset import BadPromptSet, parse_prompt_set
from playground.core.plural import plural


@pytest.mark.parametrize("n, noun, many, expected", [
    (0, "error", None, "0 errors"),
    (1, "error", None, "1 error"),
    (2, "chunk", None, "2 chunks"),
    (1, "bad line", None, "1 bad line"),
    (1, "reply", "replies", "1 reply"),
    (3, "reply", "replies", "3 replies"),
    (12_345, "token", None, "12,345 tokens"),
])
def test_plural(n, noun, many, expected):
    assert plural(n, noun, many) == expected


def test_messages_that_count_one_thing_say_it_in_the_singular():
    with pytest.raises(BadPromptSet, match="1 bad line;"):
        parse_prompt_set(["{not json"])
    result = run_check(Check(kind="groups"), '[["a", "b"]]', [["a", "b"], ["c", "d"]])
    assert result.detail == "1 of 2 groups right; 1 group given."
