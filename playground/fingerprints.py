"""Duplicates and near-duplicates among examples seen one at a time, in bounded memory and near-linear time.

`duplicate_links` (duplicates.py) holds every example and compares candidates found by prefix filtering; on large
sets of natural text that turns quadratic (every example shares some fairly rare word with hundreds of others).
This index keeps 8 bytes per key and band per example (about 150 bytes in flat arrays) and finds the same links:

- exact copies and copies with the same user turns: hashed keys, grouped by sorting at the end;
- near copies (Jaccard >= threshold on the word sets) by locality-sensitive hashing: each example's words get
  BANDS x ROWS min-hashes (one-permutation hashing, computed for a batch of examples at once with numpy); two
  examples that agree on all ROWS values of some band are candidates, which are then checked exactly on their
  word sets, fetched back (from the list, the store or the file) for those examples only. A pair at the
  threshold becomes a candidate with probability 1 - (1 - 0.9**ROWS)**BANDS > 0.9999; one at Jaccard 0.2 (two
  unrelated texts sharing common words) with probability 16 * 0.2**10 < 2e-6. Hashing is deterministic.

Validation names each later copy's earliest original, so that is all `links` returns (duplicates.duplicate_links
returns every pair, which splitting needs). Within a band, an example is compared with the earliest CANDIDATES
examples that share its bucket: in a cluster of near copies the earliest is among them; only data in which most
examples are 70-90% alike could crowd a true original out.
"""

import hashlib
from array import array
from collections.abc import Callable, Iterable

import numpy as np

from .datasets import Example
from .duplicates import SIMILARITY_THRESHOLD, DuplicateLink, normalize_text, user_key

BANDS, ROWS = 16, 10
BINS = 32  # per one-permutation sketch: examples have dozens to hundreds of distinct words
SKETCHES = BANDS * ROWS // BINS
BATCH = 512  # examples hashed together
CANDIDATES = 32  # per band bucket: the earliest members an example is compared with
NO_KEY = 0  # the user key of an example with no user text: never a duplicate by it
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_RNG = np.random.default_rng(20240611)  # fixed: the same examples always get the same fingerprints
_SEEDS = _RNG.integers(1, 2**63, size=SKETCHES, dtype=np.uint64)
_ROW_MULTIPLIERS = _RNG.integers(1, 2**63, size=ROWS, dtype=np.uint64) | np.uint64(1)
with np.errstate(over="ignore"):
    _BYTE_POWERS = np.cumprod(np.r_[np.uint64(1), np.full(63, 1099511628211, dtype=np.uint64)], dtype=np.uint64)


def key_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little",
                          signed=True) or 1


def exact_hash(example: Example) -> int:
    """A hash of duplicates.exact_key (the turns and the rejected reply), without building that JSON text."""
    h = hashlib.blake2b(digest_size=8)
    for m in example.conversation():
        content = m.content.encode("utf-8", "surrogatepass")
        h.update(b"%s:%d:" % (m.role.encode(), len(content)))
        h.update(content)
    if example.rejected is not None:
        rejected = example.rejected.encode("utf-8", "surrogatepass")
        h.update(b"rejected:%d:" % len(rejected))
        h.update(rejected)
    return int.from_bytes(h.digest(), "little", signed=True) or 1


def words_text(example: Example) -> str:
    """duplicates.word_set's words, as normalized text (a set costs more to build than the hashing needs)."""
    return normalize_text(" ".join(m.content for m in example.conversation() if m.role != "system"))


def word_set_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


class DuplicateIndex:
    def __init__(self, threshold: float = SIMILARITY_THRESHOLD):
        self.threshold = threshold
        self.exact, self.user = array("q"), array("q")
        self.bands = array("q")  # BANDS per example
        self._batch: list[str] = []

    def __len__(self) -> int:
        return len(self.exact)

    def add(self, example: Example) -> None:
        self.add_keys(exact_hash(example), user_key(example), words_text(example))

    def add_keys(self, exact: int, user: str, words: str) -> None:
        """An example by its keys: `exact_hash`, `user_key` and `words_text` of it (callers may have them already)."""
        self.exact.append(exact)
        self.user.append(key_hash(user) if user else NO_KEY)
        self._batch.append(words)
        if len(self._batch) >= BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._batch:
            self.bands.frombytes(band_hashes(self._batch).tobytes())
            self._batch = []

    # --- after the last example ----------------------------------------------------------------------------

    def exact_links(self) -> tuple[list[DuplicateLink], np.ndarray]:
        """Links to the first copy, and which examples are representatives (neither kind of copy)."""
        n = len(self.exact)
        exact = np.frombuffer(self.exact, dtype=np.int64) if n else np.zeros(0, np.int64)
        first = _first_of_group(exact)
        original = first == np.arange(n)
        links = [DuplicateLink(int(first[later]), int(later), "exact") for later in np.flatnonzero(~original)]
        user = np.frombuffer(self.user, dtype=np.int64) if n else np.zeros(0, np.int64)
        keyed = np.flatnonzero(original & (user != NO_KEY))
        first_user = np.arange(n)
        first_user[keyed] = keyed[_first_of_group(user[keyed])]
        links += [DuplicateLink(int(first_user[later]), int(later), "same_user_turns")
                  for later in keyed[first_user[keyed] != keyed]]
        return links, original & (first_user == np.arange(n))

    def candidates(self, representative: np.ndarray) -> dict[int, set[int]]:
        """For each representative, earlier representatives that agree with it on every row of some band.

        Per band, only the earliest CANDIDATES members of a bucket are offered, so a large cluster of similar
        examples costs a bounded amount per example instead of every pair.
        """
        self._flush()
        n = len(self.exact)
        found: dict[int, set[int]] = {}
        if n < 2:
            return found
        bands = np.frombuffer(self.bands, dtype=np.int64).reshape(n, BANDS)
        members = np.flatnonzero(representative & (bands[:, 0] != 0))  # 0: no words at all
        for b in range(BANDS):
            keys = bands[members, b]
            order = np.argsort(keys, kind="stable")  # stable: a bucket's members stay in file order
            keys, owners = keys[order], members[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            sizes = np.diff(np.r_[starts, len(keys)])
            for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
                group = owners[start:start + size].tolist()
                for position in range(1, len(group)):
                    found.setdefault(group[position], set()).update(group[:min(position, CANDIDATES)])
        return found

    def links(self, fetch: Callable[[set[int]], Iterable[tuple[int, Example]]]) -> list[DuplicateLink]:
        """Each later copy's link to its earliest original; `fetch(indices)` gives (index, example) again for the
        candidates of a near copy, whose word sets are compared exactly."""
        links, representative = self.exact_links()
        candidates = self.candidates(representative)
        if candidates:
            needed = set(candidates).union(*candidates.values())
            sets = {i: word_set_of(words_text(e)) for i, e in fetch(needed)}
            for later in sorted(candidates):
                earlier = next((j for j in sorted(candidates[later]) if _similar(sets[j], sets[later], self.threshold)),
                               None)
                if earlier is not None:
                    links.append(DuplicateLink(earlier, later, "similar"))
        return links


def _similar(a: frozenset, b: frozenset, threshold: float) -> bool:
    return bool(a and b) and len(a & b) / len(a | b) >= threshold


def _first_of_group(keys: np.ndarray) -> np.ndarray:
    """For each position, the first position holding the same key."""
    n = len(keys)
    if not n:
        return np.zeros(0, np.int64)
    order = np.lexsort((np.arange(n), keys))
    sorted_keys = keys[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    group_first = order[np.flatnonzero(starts)]
    first = np.empty(n, np.int64)
    first[order] = group_first[np.cumsum(starts) - 1]
    return first


# --- the min-hashes ------------------------------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(hash of each word, which text it is in) for space-separated words, all texts at once."""
    data = np.frombuffer("\n".join(texts).encode("utf-8", "surrogatepass"), dtype=np.uint8)
    letter = (data != 32) & (data != 10)
    positions = np.flatnonzero(letter)
    if not len(positions):
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    starts_mask = np.r_[True, positions[1:] != positions[:-1] + 1]
    word_of = np.cumsum(starts_mask) - 1
    word_starts = positions[starts_mask]
    offset = np.minimum(positions - word_starts[word_of], len(_BYTE_POWERS) - 1)
    with np.errstate(over="ignore"):
        terms = (data[positions].astype(np.uint64) + np.uint64(1)) * _BYTE_POWERS[offset]
        hashes = _mix(np.add.reduceat(terms, np.flatnonzero(starts_mask)))
    text_ends = np.flatnonzero(data == 10)
    return hashes, np.searchsorted(text_ends, word_starts)


def band_hashes(texts: list[str]) -> np.ndarray:
    """BANDS hashes per text (int64; 0 for a text with no words), each over ROWS one-permutation min-hashes."""
    hashes, owner = word_hashes(texts)
    n = len(texts)
    values = np.full((n, SKETCHES * BINS), _EMPTY, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for s in range(SKETCHES):
            h = _mix(hashes ^ _SEEDS[s])
            slot = owner * (SKETCHES * BINS) + s * BINS + (h >> np.uint64(59)).astype(np.int64)
            np.minimum.at(values.reshape(-1), slot, h & np.uint64((1 << 59) - 1))
        values = _densify(values.reshape(n, SKETCHES, BINS)).reshape(n, BANDS, ROWS)
        bands = _mix((values * _ROW_MULTIPLIERS).sum(axis=2, dtype=np.uint64))
    bands[bands == 0] = 1
    bands[np.bincount(owner, minlength=n) == 0] = 0
    return bands.view(np.int64)


def _densify(values: np.ndarray) -> np.ndarray:
    """An empty bin takes the value of the next non-empty bin of its sketch (rotating), marked by the distance."""
    out = values.copy()
    rows = np.flatnonzero((values == _EMPTY).any(axis=(1, 2)))
    step = 1
    with np.errstate(over="ignore"):
        while len(rows) and step < BINS:
            part = values[rows]
            empty = out[rows] == _EMPTY
            borrowed = np.roll(part, -step, axis=2)
            fill = empty & (borrowed != _EMPTY)
            updated = out[rows]
            updated[fill] = _mix(borrowed[fill] + np.uint64(step))
            out[rows] = updated
            rows = rows[(empty & ~fill).any(axis=(1, 2))]
            step += 1
    return out
