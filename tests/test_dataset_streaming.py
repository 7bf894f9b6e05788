"""Checking and exporting large files in one streaming pass: the same findings as in memory, flat memory."""

import json
import random
import time
import tracemalloc

import numpy as np
import pytest

from playground.core.tokens import count_messages
from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.exports import export_file
from playground.datasets.formats.readers import parse_lines
from playground.datasets.stats import example_tokens
from playground.datasets.validation import check_file, validate_examples
from playground.datasets.validation.duplicates import duplicate_links, normalize_text, word_bytes, word_set
from playground.datasets.validation.fingerprints import (
    BATCH,
    DuplicateIndex,
    band_hashes,
    byte_powers,
    word_hashes,
    word_set_of,
    words_text,
)
from playground.datasets.validation.user_words import UserWordCounts, word_keys

SYSTEM = "Answer questions about Brindlecombe in a few words."


def chat(user: str, answer: str, system: str | None = SYSTEM) -> Example:
    messages = [TrainingMessage(role="system", content=system)] if system else []
    return Example(messages=[*messages, TrainingMessage(role="user", content=user),
                             TrainingMessage(role="assistant", content=answer)])


def line(user: str, answer: str, system: str = SYSTEM) -> str:
    return json.dumps({"messages": [{"role": "system", "content": system}, {"role": "user", "content": user},
                                    {"role": "assistant", "content": answer}]})


def town_file(path, n: int, seed: int = 1, vocabulary: int = 5_000) -> None:
    rng = random.Random(seed)
    words = [f"{rng.choice('bcdfglmnprstvw')}{rng.choice('aeiou')}{rng.choice('lmnrst')}{i}" for i in range(vocabulary)]
    weights = [1 / (rank + 1) for rank in range(vocabulary)]  # a few common words, a long tail of rare ones
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            question = f"What about the {rng.choice(words)} and the {rng.choice(words)}, number {i}?"
            answer = " ".join(rng.choices(words, weights, k=rng.randint(20, 60))) + "."
            f.write(line(question, answer) + "\n")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-3.5-turbo", "llama3.2"])
@pytest.mark.parametrize("text", ["hello", "<|endoftext|> is plain text here", "wörd 🙂 " * 40, " "])
def test_example_tokens_are_counted_as_count_messages_counts_them(model, text):
    example = chat(text, text)
    preference = Example(messages=[TrainingMessage(role="user", content=text)], chosen="yes " + text, rejected="no")
    for e in (example, preference):
        assert example_tokens(e, model) == count_messages(e.conversation(), model)


TEXTS = ["Hello, World!", "a\tb\x0bc\x1cd\x1fe\rf\ng", "wörd Ünïcode naïve ﬁne İstanbul Straße", "", "  ",
         "🙂, «quoted»; (x)", "line\u2028sep\u00a0nbsp\u3000wide", "ctl\x01char del\x7f", "don't e.g. 1,000 x_y",
         "x" * 63 + " " + "y" * 64 + " " + "z" * 65 + "   " + "w" * 300, "PARIS paris Paris,"]


@pytest.mark.parametrize("text", TEXTS)
def test_word_bytes_hold_the_normalized_words(text):
    assert [w for w in word_bytes(text).split(b" ") if w] == [w.encode() for w in normalize_text(text).split()]


def splitmix(x: int) -> int:
    mask = 2**64 - 1
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


def test_word_hashes_follow_their_definition_word_by_word():
    texts = [word_bytes(t) for t in TEXTS]
    hashes, owners = word_hashes(texts)
    powers = [pow(1099511628211, min(i, 63), 2**64) for i in range(400)]  # the offset capped at 63
    expected = [(splitmix(sum((byte + 1) * powers[i] for i, byte in enumerate(word)) % 2**64), n)
                for n, text in enumerate(texts) for word in text.split(b" ") if word]
    assert list(zip(hashes.tolist(), owners.tolist())) == expected


def test_band_hashes_do_not_depend_on_the_batch():
    texts = [word_bytes(t) for t in TEXTS * 3]
    together = band_hashes(texts)
    assert [band_hashes([t]).tolist()[0] for t in texts] == together.tolist()
    assert band_hashes(texts, byte_powers(5)).tolist() == together.tolist()  # too few powers: computed anew
    assert (together[[i for i, t in enumerate(texts) if not t.strip()]] == 0).all()  # no words, no bands


def random_examples(rng: random.Random, n: int) -> list[Example]:
    vocab = [f"w{i}" for i in range(300)] + ["Ünïcode", "naïve", "x_y", "Paris,", "PARIS"]
    examples: list[Example] = []
    for i in range(n):
        roll = rng.random()
        if examples and roll < 0.1:
            examples.append(rng.choice(examples))  # an exact copy
        elif examples and roll < 0.3:  # a near copy: one word changed
            answer = rng.choice(examples).messages[-1].content.split()
            answer[rng.randrange(len(answer))] = rng.choice(vocab)
            examples.append(chat(f"question {i}", " ".join(answer)))
        elif examples and roll < 0.4:  # the same question, shouted
            examples.append(chat(rng.choice(examples).messages[1].content.upper() + "!!", f"answer {i}"))
        else:
            examples.append(chat(" ".join(rng.choices(vocab, k=rng.randint(1, 6))),
                                 " ".join(rng.choices(vocab, k=rng.randint(1, 50)))))
    return examples


RANK = {"exact": 0, "same_user_turns": 1, "similar": 2}


def earliest_originals(links) -> dict[int, tuple[int, str]]:
    """Each later copy's closest kind of link and earliest original: what validation reports."""
    best: dict[int, tuple] = {}
    for link in links:
        candidate = (RANK[link.kind], link.earlier, link.kind)
        best[link.later] = min(best.get(link.later, candidate), candidate)
    return {later: (earlier, kind) for later, (_, earlier, kind) in best.items()}


@pytest.mark.parametrize("seed", range(4))
def test_the_streaming_index_names_the_originals_the_list_names(seed):
    examples = random_examples(random.Random(seed), BATCH * 2 + 37)  # several hashing batches
    index = DuplicateIndex()
    for e in examples:
        index.add(e)

    streamed = index.links(lambda needed: ((i, examples[i]) for i in sorted(needed)))

    assert earliest_originals(streamed) == earliest_originals(duplicate_links(examples))
    assert any(kind == "similar" for _, kind in earliest_originals(streamed).values())
    assert all(word_set_of(words_text(e)) == word_set(e) for e in examples)


def test_a_dataset_of_few_distinct_words_is_checked_quickly_and_fully(tmp_path):
    path = tmp_path / "small-vocabulary.jsonl"
    town_file(path, 3_000, vocabulary=25)  # every answer shares most of its words with many others
    examples = [p.example for p in parse_lines(path)]
    index = DuplicateIndex()
    for e in examples:
        index.add(e)

    started = time.process_time()
    streamed = index.links(lambda needed: ((i, examples[i]) for i in sorted(needed)))

    assert time.process_time() - started < 20
    assert earliest_originals(streamed) == earliest_originals(duplicate_links(examples))


def test_a_near_copy_at_the_threshold_is_found_far_apart_in_the_file():
    words = [f"item{i}" for i in range(40)]
    near = words[:-1] + ["other"]  # with the questions, 39 of 43 words shared: Jaccard 0.907
    examples = [chat("first", " ".join(words))] + [chat(f"filler {i}", f"unrelated text {i}") for i in range(BATCH + 5)]
    examples.append(chat("last", " ".join(near)))
    index = DuplicateIndex()
    for e in examples:
        index.add(e)
    [link] = index.links(lambda needed: ((i, examples[i]) for i in sorted(needed)))
    assert (link.earlier, link.later, link.kind) == (0, len(examples) - 1, "similar")


def test_a_file_gets_the_findings_its_examples_get_in_memory(tmp_path):
    path = tmp_path / "mixed.jsonl"
    rows = [line(f"Question {i} about the mill?", f"Answer {i}.") for i in range(12)]
    rows += [rows[3], line("QUESTION 5 about the mill", "Another answer."), line("Short?", "Yes.", system="Be brief."),
             '{"messages": "no"}']
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    checked = check_file(path)
    in_memory = validate_examples([p.example for p in parse_lines(path) if p.example is not None])

    assert [(f.code, f.line) for f in checked.findings if f.severity == "warning"] == \
        [(f.code, f.line or len(rows)) for f in in_memory]
    assert [(f.code, f.line) for f in checked.findings if f.severity == "error"] == [("missing_messages_list", 16)]
    assert {f.code for f in checked.findings} >= {"duplicate_example", "near_duplicate_example",
                                                  "inconsistent_system_prompt", "common_user_words"}
    assert checked.stats.examples == 15
    assert checked.stats.tokens_total == sum(example_tokens(p.example, "gpt-4o-mini")
                                             for p in parse_lines(path) if p.example is not None)


def test_export_file_writes_only_when_there_is_no_error(tmp_path):
    good, out = tmp_path / "good.jsonl", tmp_path / "out" / "train.jsonl"
    town_file(good, 30)

    result = export_file(good, out, "sharegpt")

    assert result.written == 30 and not [f for f in result.findings if f.severity == "error"]
    assert result.stats.examples == 30 and result.stats.tokens_total > 30 * 20
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert [turn["from"] for turn in first["conversations"]] == ["system", "human", "gpt"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text(encoding="utf-8") + "[1, 2]\n", encoding="utf-8")
    before = out.read_bytes()
    result = export_file(bad, out, "sharegpt")
    assert result.written == 0
    assert [(f.code, f.line) for f in result.findings if f.severity == "error"] == [("data_type", 31)]
    assert out.read_bytes() == before  # the earlier export is left as it was
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.jsonl"]  # no half-written file


def test_checking_a_file_keeps_memory_flat(tmp_path):
    peaks = {}
    for n in (2_000, 8_000):
        path = tmp_path / f"town-{n}.jsonl"
        town_file(path, n)
        check_file(path)  # warm up: caches and the punctuation table are not the file's
        tracemalloc.start()
        result = check_file(path)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert result.stats.examples == n
    size = (tmp_path / "town-8000.jsonl").stat().st_size - (tmp_path / "town-2000.jsonl").stat().st_size
    # A few hundred bytes more per example (fingerprints, a token count, new words), not the example itself.
    assert peaks[8_000] - peaks[2_000] < 400 * 6_000 < size, (peaks, size)
    assert peaks[8_000] < 1.5 * peaks[2_000], peaks


def test_user_words_are_counted_once_a_message_across_batches_of_any_span():
    messages = {3: "alpha beta alpha", 4: "beta", 300: "alpha gamma", 301: "alpha alpha", 700: "delta"}
    counts = UserWordCounts()
    texts = [word_bytes(messages[i]) for i in sorted(messages)]
    hashes, owners = word_hashes(texts)
    counts.add(hashes, np.array(sorted(messages))[owners])  # one call spanning more than 256 examples
    keys = {word: key for word, key in zip("alpha beta gamma delta".split(), word_keys(["alpha beta gamma delta"])[0])}
    assert {word: counts.counts[key] for word, key in keys.items()} == {"alpha": 3, "beta": 2, "gamma": 1, "delta": 1}
    assert (counts.texts, counts.first_text) == (5, 3)
    assert counts.common(0.6, known={"beta"}) == {keys["alpha"]: 3}
