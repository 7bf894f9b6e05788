"""Words (nearly) every user message has: counted by word hash while examples stream past, named only at the end.

A dataset-building script often leaks a word into every input (a label, a marker, the puzzle's name); the
fine-tune then relies on it. Each word is counted once per user message it is in. The counts are keyed by the
word's hash from fingerprints.word_hashes, which the duplicate index computes anyway, so counting costs no string
work per example; the words themselves are looked up again only when a check finds common ones.
"""

from collections import Counter
from collections.abc import Iterable
from itertools import islice

import numpy as np

from .fingerprints import text_word_hashes

# A word is counted by the top 56 bits of its hash; the low 8 bits hold the example (of up to 256 at a time), so
# that one sort finds each message's distinct words.
_EXAMPLES_AT_ONCE = 256
_WORD_BITS = np.uint64(~(_EXAMPLES_AT_ONCE - 1) & 0xFFFFFFFFFFFFFFFF)


class UserWordCounts:
    """In how many user messages (texts) each word is, by word key (see word_keys)."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.texts = 0  # messages with at least one word
        self.first_text: int | None = None  # the example the first such message belongs to

    def add(self, hashes: np.ndarray, examples: np.ndarray) -> None:
        """The word hashes of a batch of examples' user messages, with the (ascending) example each is in."""
        if not len(hashes):
            return
        if examples[-1] - examples[0] >= _EXAMPLES_AT_ONCE:
            cut = int(np.searchsorted(examples, examples[0] + _EXAMPLES_AT_ONCE))
            self.add(hashes[:cut], examples[:cut])
            self.add(hashes[cut:], examples[cut:])
            return
        keys = (hashes & _WORD_BITS) | (examples - examples[0]).astype(np.uint64)
        keys.sort()
        self.counts.update((keys[np.r_[True, keys[1:] != keys[:-1]]] & _WORD_BITS).tolist())
        self.texts += 1 + int(np.count_nonzero(examples[1:] != examples[:-1]))
        if self.first_text is None:
            self.first_text = int(examples[0])

    def common(self, share: float, known: Iterable[str]) -> dict[int, int]:
        """The keys (and counts) of the words in at least `share` of the messages, other than the known words."""
        known_keys = set(word_keys([" ".join(known)])[0])
        return {k: n for k, n in self.counts.items() if n >= share * self.texts and k not in known_keys}


def word_keys(texts: list[str]) -> list[list[int]]:
    """The key each word of each (normalized) text is counted by, in order."""
    hashes = text_word_hashes([text.encode("utf-8", "surrogatepass") for text in texts])
    return [[h & int(_WORD_BITS) for h in text] for text in hashes]


def common_runs(user_words: Iterable[list[str]], common: set[int]) -> Counter[tuple[str, ...]]:
    """In how many messages each run of consecutive common words stands; `user_words`: each message's
    (normalized) words, `common`: the common words' keys."""
    runs: Counter[tuple[str, ...]] = Counter()
    words_of_common: set[str] = set()  # every common word of the messages seen so far, as text
    messages = iter(user_words)
    while batch := list(islice(messages, _EXAMPLES_AT_ONCE)):  # hashed a batch at a time, as the index hashes them
        for words, keys in zip(batch, word_keys([" ".join(words) for words in batch])):
            words_of_common.update(w for w, k in zip(words, keys) if k in common)
            runs.update(set(_runs(words, words_of_common)))
    return runs


def _runs(words: list[str], common: set[str]) -> Iterable[tuple[str, ...]]:
    run: list[str] = []
    for word in [*words, ""]:
        if word in common:
            run.append(word)
        elif run:
            yield tuple(run)
            run = []
