"""Answers that list their items in the order the input gave them.

A puzzle fine-tune learned the order of the input words instead of the puzzle: across most examples, the groups
in the answer came in the order the words were given. These helpers measure that order for one example.
"""

import json
import re
from collections.abc import Iterable

from ..examples import Example

ORDERED_PAIRS_SHARE = 0.9  # an answer at least this much in input order counts as ordered
MIN_LIST_ITEMS = 3
MAX_ITEM_WORDS = 5

_LIST_MARKER = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")


def answer_items(answer: str) -> list[str]:
    """The items an answer lists: string leaves of JSON, else comma/semicolon/line-separated parts
    (text before a colon, such as a group's name, is left out)."""
    data = None
    if answer.lstrip()[:1] in ("[", "{"):  # only those can be a JSON list or object
        try:
            data = json.loads(answer)
        except json.JSONDecodeError:
            pass
    if isinstance(data, (list, dict)):
        items = list(_string_leaves(data))
    else:
        items = []
        for line in answer.splitlines():
            line = _LIST_MARKER.sub("", line)
            line = line.split(":", 1)[1] if ":" in line else line
            items += line.replace(";", ",").split(",")  # re.split(r"[,;]", line), several times faster
    unique: dict[str, None] = {}
    for item in items:
        item = item.strip().strip("\"'.").strip()
        # At most MAX_ITEM_WORDS splits: a long item (prose between commas) is not cut into all its words to be counted.
        if item and len(item.split(None, MAX_ITEM_WORDS)) <= MAX_ITEM_WORDS:
            unique[item] = None
    return list(unique)


def _string_leaves(data) -> Iterable[str]:
    values = data.values() if isinstance(data, dict) else data
    for value in values:
        if isinstance(value, str):
            yield value
        elif isinstance(value, (list, dict)):
            yield from _string_leaves(value)


def input_order_share(user_text: str, answer: str) -> float | None:
    """Share of item pairs the answer lists in the order the user message mentions them.

    None when the answer does not list at least MIN_LIST_ITEMS items found in the user message.
    A random order gives about 0.5; a list copied in input order gives 1.0.
    """
    items = answer_items(answer)
    if len(items) < MIN_LIST_ITEMS:  # most answers are prose: no need to look for their items in the input
        return None
    text = user_text.casefold()
    positions = [p for item in items if (p := _word_position(text, item.casefold())) is not None]
    if len(positions) < MIN_LIST_ITEMS:
        return None
    pairs = [(a, b) for i, a in enumerate(positions) for b in positions[i + 1:] if a != b]
    return sum(a < b for a, b in pairs) / len(pairs) if pairs else None


def _word_position(text: str, item: str) -> int | None:
    """Where `item` first occurs in `text` as whole words (no word character, \\w, just before or after it)."""
    start = text.find(item)
    while start >= 0:
        end = start + len(item)
        if (start == 0 or not _is_word(text[start - 1])) and (end == len(text) or not _is_word(text[end])):
            return start
        start = text.find(item, start + 1)
    return None


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"  # what re's \w matches in a str pattern


def last_exchange(example: Example) -> tuple[str, str] | None:
    turns = example.conversation()
    for i in range(len(turns) - 1, 0, -1):
        if turns[i].role == "assistant" and turns[i - 1].role == "user":
            return turns[i - 1].content, turns[i].content
    return None
