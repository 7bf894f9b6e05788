"""Duplicates and near-duplicates among examples held in memory: the keys they are compared by, and the links.

Splitting needs every pair (duplicate_groups keeps copies in one split); validation of a stream uses
fingerprints.DuplicateIndex, which finds the same earliest originals in bounded memory.
"""

import functools
import json
import math
import sys
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..examples import Example

SIMILARITY_THRESHOLD = 0.9


@functools.cache
def _punctuation() -> dict[int, str]:
    """Every Unicode punctuation character (category P*) mapped to a space, for str.translate (0.1 s, once)."""
    return {c: " " for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)).startswith("P")}


@functools.cache
def _ascii_punctuation() -> bytes:
    table = bytearray(range(256))
    for c in (c for c in _punctuation() if c < 128):
        table[c] = ord(" ")
    return bytes(table)


def normalize_text(text: str) -> str:
    """Case, punctuation and spacing removed, so trivially different copies compare equal."""
    if text.isascii():  # the same result, faster: NFKC leaves ASCII as it is and casefold is lower
        text = text.lower().encode("ascii").translate(_ascii_punctuation()).decode("ascii")
    else:
        text = unicodedata.normalize("NFKC", text).casefold().translate(_punctuation())
    return " ".join(text.split())


@functools.cache
def _ascii_separators() -> bytes:
    """_ascii_punctuation, plus every character str.split() splits at turned into a space too."""
    table = bytearray(_ascii_punctuation())
    for c in (c for c in range(128) if chr(c).isspace()):
        table[c] = ord(" ")
    return bytes(table)


def word_bytes(text: str) -> bytes:
    """normalize_text(text) as UTF-8, except that words may stand apart by more than one space.

    The same words, for hashing word by word: collapsing the spaces costs more than the rest on a long reply.
    """
    if text.isascii():
        return text.lower().encode("ascii").translate(_ascii_separators())
    return normalize_text(text).encode("utf-8", "surrogatepass")


def exact_key(example: Example) -> str:
    turns = [(m.role, m.content) for m in example.conversation()]
    return json.dumps([turns, example.rejected], ensure_ascii=False)


def user_key(example: Example) -> str:
    return normalize_text(example.user_text())


def word_set(example: Example) -> frozenset[str]:
    text = " ".join(m.content for m in example.conversation() if m.role != "system")
    return frozenset(normalize_text(text).split())


@dataclass(frozen=True)
class DuplicateLink:
    earlier: int  # index into the examples given
    later: int
    kind: Literal["exact", "same_user_turns", "similar"]


def duplicate_links(examples: Sequence[Example], threshold: float = SIMILARITY_THRESHOLD) -> list[DuplicateLink]:
    """Pairs of examples that are the same or nearly the same.

    Copies are linked to the first of their kind only, so a thousand copies make a thousand links, not half a million.
    """
    links: list[DuplicateLink] = []
    first_exact: dict[str, int] = {}
    first_user: dict[str, int] = {}
    representatives: list[int] = []
    for i, example in enumerate(examples):
        key = exact_key(example)
        if key in first_exact:
            links.append(DuplicateLink(first_exact[key], i, "exact"))
            continue
        first_exact[key] = i
        user = user_key(example)
        if user and user in first_user:
            links.append(DuplicateLink(first_user[user], i, "same_user_turns"))
            continue
        if user:
            first_user[user] = i
        representatives.append(i)
    sets = [word_set(examples[i]) for i in representatives]
    for a, b in similar_pairs(sets, threshold):
        links.append(DuplicateLink(representatives[a], representatives[b], "similar"))
    return links


def similar_pairs(sets: Sequence[frozenset[str]], threshold: float) -> list[tuple[int, int]]:
    """Index pairs (earlier, later) with Jaccard similarity >= threshold.

    Prefix filtering: order each set's words rarest first; two sets that similar must share a word within
    their first len - ceil(threshold * len) + 1 words, so only those words are indexed and compared.
    """
    frequency = Counter(word for s in sets for word in s)
    index: dict[str, list[int]] = defaultdict(list)
    pairs = []
    for i, words in enumerate(sets):
        if not words:
            continue
        ordered = sorted(words, key=lambda w: (frequency[w], w))
        prefix = len(words) - math.ceil(threshold * len(words) - 1e-9) + 1
        candidates: set[int] = set()
        for word in ordered[:prefix]:
            candidates.update(index[word])
            index[word].append(i)
        for j in sorted(candidates):
            other = sets[j]
            if min(len(other), len(words)) < threshold * max(len(other), len(words)):
                continue
            if len(words & other) / len(words | other) >= threshold:
                pairs.append((j, i))
    return pairs


def duplicate_groups(examples: Sequence[Example]) -> list[list[int]]:
    """Indices grouped so that duplicates and near-duplicates share a group, groups in order of first member."""
    parent = list(range(len(examples)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for link in duplicate_links(examples):
        a, b = root(link.earlier), root(link.later)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(examples)):
        groups[root(i)].append(i)
    return [groups[k] for k in sorted(groups)]
