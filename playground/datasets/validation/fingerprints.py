"""Duplicates and near-duplicates among examples seen one at a time, in bounded memory and near-linear time.

`duplicate_links` (duplicates.py) holds every example and compares candidates found by prefix filtering; on large
sets of natural text that turns quadratic (every example shares some fairly rare word with hundreds of others).
This index keeps 8 bytes per key and 4 per band per example (about 80 bytes in flat arrays) and finds the same links:

- exact copies and copies with the same user turns: hashed keys, grouped by sorting at the end;
- near copies (Jaccard >= threshold on the word sets) by locality-sensitive hashing: each example's words get
  BANDS x ROWS min-hashes (one-permutation hashing, computed for a batch of examples at once with numpy); two
  examples that agree on all ROWS values of some band are candidates, which are then checked exactly on their
  word sets, fetched back (from the list, the store or the file) for those examples only. A pair at the
  threshold becomes a candidate with probability 1 - (1 - 0.9**ROWS)**BANDS = 0.999 (random word sets of 40 to
  400 words: 0.998 to 1); one at Jaccard 0.2 (two unrelated texts sharing common words) with probability
  16 * 0.2**10 < 2e-6. The min-hashes are deterministic (the same words, the same bands, in every process).

Words are hashed a batch at a time with numpy, from running sums over all the batch's bytes; the same word hashes
give the user key (a hash of the user turns' words in order) and, through a callback, the counts of the words
users type (user_words.py). The exact keys are Python's own hashes, compared within one run and never stored.

Validation names each later copy's earliest original, so that is all `links` returns (duplicates.duplicate_links
returns every pair, which splitting needs). Within a band, an example is compared with the earliest CANDIDATES
examples that share its bucket: in a cluster of near copies the earliest is among them; only data in which most
examples are 70-90% alike could crowd a true original out.
"""

from array import array
from collections.abc import Callable, Iterable

import numpy as np

from ..examples import Example
from .duplicates import SIMILARITY_THRESHOLD, DuplicateLink, normalize_text, word_bytes

BANDS, ROWS = 16, 10
BINS = 32  # per one-permutation sketch: examples have dozens to hundreds of distinct words
SKETCHES = BANDS * ROWS // BINS
BATCH = 256  # examples hashed together
CANDIDATES = 32  # per band bucket: the earliest members an example is compared with
NO_KEY = 0  # the user key of an example with no user text: never a duplicate by it
_EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)
_RNG = np.random.default_rng(20240611)  # fixed: the same examples always get the same fingerprints
_SEEDS = _RNG.integers(1, 2**63, size=SKETCHES, dtype=np.uint64)
_ROW_MULTIPLIERS = _RNG.integers(1, 2**63, size=ROWS, dtype=np.uint64) | np.uint64(1)
_P = np.uint64(1099511628211)
_P_INVERSE = np.uint64(pow(int(_P), -1, 2**64))  # P is odd, so it has an inverse mod 2**64
with np.errstate(over="ignore"):
    _BYTE_POWERS = np.cumprod(np.r_[np.uint64(1), np.full(63, _P, dtype=np.uint64)], dtype=np.uint64)


# Keys are hashed with Python's own 64-bit string hash: they are compared within one check, never stored, and
# hashing them is several times cheaper than a hashlib digest. (Never 0: that stands for no key.)


def key_hash(text: str) -> int:
    return hash(text) or 1


def exact_hash(example: Example) -> int:
    """A hash of duplicates.exact_key (the turns and the rejected reply), without building that JSON text."""
    key: list[str | None] = [example.rejected]
    for m in example.conversation():
        key += (m.role, m.content)
    return hash(tuple(key)) or 1


def words_text(example: Example) -> str:
    """duplicates.word_set's words, as normalized text (a set costs more to build than the hashing needs)."""
    return normalize_text(" ".join(m.content for m in example.conversation() if m.role != "system"))


def word_set_of(text: str) -> frozenset[str]:
    return frozenset(text.split())


class DuplicateIndex:
    def __init__(self, threshold: float = SIMILARITY_THRESHOLD,
                 user_words: Callable[[np.ndarray, np.ndarray], None] | None = None):
        """`user_words(hashes, examples)`, if given, gets the hashes of the words of each batch's user turns
        (word_hashes), and the index of the example each word is in: the hashing is done once for both."""
        self.threshold = threshold
        self.exact, self.user = array("q"), array("q")
        self.bands = array("I")  # BANDS per example, the low 32 bits of each (see _band_keys)
        self._batch: list[bytes] = []  # two texts an example: the words of its user turns, then of its replies
        self._user_words = user_words
        self._powers = byte_powers(0)  # grown to the longest batch, kept: computing them costs as much as using them

    def __len__(self) -> int:
        return len(self.exact)

    def add(self, example: Example) -> None:
        replies = " ".join(m.content for m in example.conversation() if m.role == "assistant")
        self.add_keys(exact_hash(example), word_bytes(example.user_text()), word_bytes(replies))

    def add_keys(self, exact: int, user_words: bytes, reply_words: bytes) -> None:
        """An example by its exact_hash and the words (duplicates.word_bytes) of its user turns and of its replies:
        together its word set, and the user turns' words in order its user key."""
        self.exact.append(exact)
        self._batch += (user_words, reply_words)
        if len(self._batch) >= 2 * BATCH:
            self.flush()

    def flush(self) -> None:
        """Hash the examples added since the last batch was hashed (done before any result is read)."""
        if not self._batch:
            return
        size = sum(len(words) + 1 for words in self._batch)
        if self._powers.shape[1] < size:
            self._powers = byte_powers(size + size // 8)
        hashes, texts = word_hashes(self._batch, self._powers)
        examples, n = texts >> 1, len(self._batch) // 2
        self.bands.frombytes(_band_keys(bands_of_words(hashes, examples, n)).tobytes())
        user = (texts & 1) == 0
        self.user.frombytes(sequence_hashes(hashes[user], examples[user], n).tobytes())
        if self._user_words is not None:
            self._user_words(hashes[user], examples[user] + (len(self.user) - n))
        self._batch = []

    # --- after the last example ----------------------------------------------------------------------------

    def exact_links(self) -> tuple[list[DuplicateLink], np.ndarray]:
        """Links to the first copy, and which examples are representatives (neither kind of copy)."""
        self.flush()
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
        self.flush()
        n = len(self.exact)
        found: dict[int, set[int]] = {}
        if n < 2:
            return found
        bands = np.frombuffer(self.bands, dtype=np.uint32).reshape(n, BANDS)
        members = np.flatnonzero(representative & (bands[:, 0] != 0))  # 0: no words at all
        for b in range(BANDS):
            keys = bands[members, b]
            order = np.argsort(keys)
            keys, owners = keys[order], members[order]
            starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
            sizes = np.diff(np.r_[starts, len(keys)])
            for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
                group = sorted(owners[start:start + size].tolist())  # in file order (a stable sort costs 6x more)
                for position in range(1, len(group)):
                    found.setdefault(group[position], set()).update(group[:min(position, CANDIDATES)])
        return found

    def links(self, fetch: Callable[[set[int]], Iterable[tuple[int, Example]]]) -> list[DuplicateLink]:
        """Each later copy's link to its earliest original; `fetch(indices)` gives (index, example) again for the
        candidates of a near copy, whose word sets are compared exactly."""
        self.flush()
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


def _band_keys(bands: np.ndarray) -> np.ndarray:
    """The low 32 bits of each band hash, 0 still for a text with no words: half the memory a large file's bands
    take. Two bands that agree in them by chance only make a candidate more, whose words are compared exactly."""
    keys = (bands.view(np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    keys[(keys == 0) & (bands != 0)] = 1
    return keys


def _first_of_group(keys: np.ndarray) -> np.ndarray:
    """For each position, the first position holding the same key."""
    n = len(keys)
    if not n:
        return np.zeros(0, np.int64)
    order = np.argsort(keys, kind="stable")  # equal keys in file order (and no array of positions to sort by)
    sorted_keys = keys[order]
    starts = np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]
    del sorted_keys
    group = np.cumsum(starts)
    group -= 1
    first = np.empty(n, np.int64)
    first[order] = order[np.flatnonzero(starts)][group]
    return first


# --- the min-hashes ------------------------------------------------------------------------------------------


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: every input bit moves every output bit."""
    return _mix_in_place(x.copy(), np.empty_like(x))


def _mix_in_place(x: np.ndarray, scratch: np.ndarray) -> np.ndarray:
    """_mix, overwriting x (and scratch, of x's shape): no new arrays, for the word hashes of a batch."""
    for shift, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
        np.right_shift(x, np.uint64(shift), out=scratch)
        np.bitwise_xor(x, scratch, out=x)
        if multiplier is not None:
            np.multiply(x, np.uint64(multiplier), out=x)
    return x


def byte_powers(n: int) -> np.ndarray:
    """P**k and P**-k (mod 2**64) for k < n: word_hashes weighs a byte by P to the power of its place in the batch."""
    with np.errstate(over="ignore"):
        powers = np.empty((2, n), dtype=np.uint64)
        powers[0], powers[1] = _P, _P_INVERSE
        powers[:, :1] = 1
        return np.cumprod(powers, axis=1, dtype=np.uint64)


def word_hashes(texts: list[bytes], powers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(hash of each word, which text it is in) for words separated by spaces, all texts at once.

    A word's hash mixes the sum of (byte + 1) * P**i over its bytes (i from 0, capped at 63). That sum is taken
    from running sums over the whole batch, each byte weighed by P**place, and shifted back by P**-start:
    a few passes over the bytes instead of one per word. `powers`: byte_powers of at least the batch's length.
    """
    data = np.frombuffer(b"\n".join(texts), dtype=np.uint8)
    letter = ((data != 32) & (data != 10)).view(np.int8)
    edges = np.flatnonzero(np.diff(letter, prepend=np.int8(0), append=np.int8(0)) != 0)  # (a bool array is quicker)
    starts, ends = edges[0::2], edges[1::2]  # a word starts, ends, the next starts...
    if not len(starts):
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    if powers is None or powers.shape[1] < len(data):
        powers = byte_powers(len(data))
    with np.errstate(over="ignore"):
        running = data.astype(np.uint64)  # (byte + 1) * P**place, summed
        running += np.uint64(1)
        running *= powers[0, :len(data)]
        np.cumsum(running, dtype=np.uint64, out=running)
        before = running[starts - 1]
        if starts[0] == 0:  # nothing before the first byte
            before[0] = 0
        sums = (running[ends - 1] - before) * powers[1, starts]
        for w in np.flatnonzero(ends - starts > len(_BYTE_POWERS)):  # rare: a long word, whose offsets are capped
            sums[w] = _capped_word_sum(data[starts[w]:ends[w]])
        hashes = _mix(sums)
    text_starts = np.cumsum([0] + [len(text) + 1 for text in texts[:-1]])
    words_per_text = np.diff(np.searchsorted(starts, text_starts), append=len(starts))
    return hashes, np.repeat(np.arange(len(texts)), words_per_text)


def _capped_word_sum(word: np.ndarray) -> np.uint64:
    """The sum word_hashes mixes, for a word of more than 64 bytes."""
    offsets = np.minimum(np.arange(len(word)), len(_BYTE_POWERS) - 1)
    with np.errstate(over="ignore"):
        return ((word.astype(np.uint64) + np.uint64(1)) * _BYTE_POWERS[offsets]).sum(dtype=np.uint64)


def text_word_hashes(texts: list[bytes]) -> list[list[int]]:
    """word_hashes of each text, in the order its words stand."""
    hashes, owners = word_hashes(texts)
    return [part.tolist() for part in np.split(hashes, np.searchsorted(owners, np.arange(1, len(texts))))]


def sequence_hashes(hashes: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """For each of n texts, a hash of its sequence of word hashes (int64; NO_KEY when it has no words);
    `owner`: the text each word is in, ascending."""
    places = np.arange(len(hashes)) - np.searchsorted(owner, owner)  # each word's place in its text
    with np.errstate(over="ignore"):
        terms = _mix(hashes ^ (places.astype(np.uint64) * _ROW_MULTIPLIERS[0]))
        sums = np.zeros(n, dtype=np.uint64)
        np.add.at(sums, owner, terms)
        keys = _mix(sums + np.bincount(owner, minlength=n).astype(np.uint64))
    keys[keys == NO_KEY] = 1
    keys[np.bincount(owner, minlength=n) == 0] = NO_KEY
    return keys.view(np.int64)


def band_hashes(texts: list[bytes], powers: np.ndarray | None = None) -> np.ndarray:
    """BANDS hashes per text (int64; 0 for a text with no words), each over ROWS one-permutation min-hashes."""
    hashes, owner = word_hashes(texts, powers)
    return bands_of_words(hashes, owner, len(texts))


def bands_of_words(hashes: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """band_hashes of n texts from their words' hashes and the text each is in."""
    values = np.full((n, SKETCHES * BINS), _EMPTY, dtype=np.uint64)
    h, scratch, slots = np.empty_like(hashes), np.empty_like(hashes), np.empty(len(hashes), np.int64)
    first_slots = owner * (SKETCHES * BINS)
    with np.errstate(over="ignore"):
        for s in range(SKETCHES):  # in place: these arrays hold every word of the batch
            _mix_in_place(np.bitwise_xor(hashes, _SEEDS[s], out=h), scratch)
            np.add(first_slots, np.right_shift(h, np.uint64(59), out=scratch).view(np.int64), out=slots)
            slots += s * BINS
            np.minimum.at(values.reshape(-1), slots, np.bitwise_and(h, np.uint64((1 << 59) - 1), out=h))
        values = _densify(values.reshape(n, SKETCHES, BINS)).reshape(n, BANDS, ROWS)  # type: ignore[assignment]
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
