import json
import time

import pytest

from playground.core.errors import MissingVariables, PlaygroundError
from playground.core.prompts import Template
from playground.core.tokens import count_text
from playground.datasets.store import iter_examples, list_datasets
from playground.templates.generation import (
    DECLINE_TAG,
    QA,
    Chunk,
    Pair,
    Provenance,
    add_to_dataset,
    chunk_folder,
    chunk_text,
    generate,
    parse_pairs,
    to_example,
)

MODEL = "gpt-4o-mini"


# ---------------------------------------------------------------- chunking


FACTS = "\n".join(f"Fact {i}: the lighthouse on island {i} was painted {['red', 'white', 'green'][i % 3]} in {1900 + i}."
                  for i in range(1, 41))


@pytest.mark.parametrize("size, overlap", [(60, 0), (60, 20), (120, 30), (25, 10)])
def test_chunks_stay_within_the_size_and_overlap_the_one_before(size, overlap):
    chunks = chunk_text(FACTS, size, overlap, MODEL)
    assert len(chunks) > 1
    for (_, text) in chunks:
        assert count_text(text, MODEL) <= size
    lines = FACTS.splitlines()
    for (line, text) in chunks:
        assert text.splitlines()[0] == lines[line - 1]  # every chunk starts on a whole line, numbered right
    for (_, before), (_, after) in zip(chunks, chunks[1:]):
        shared = [x for x in after.splitlines() if x in before.splitlines()]
        assert shared == after.splitlines()[:len(shared)]  # the overlap is the start of the next chunk
        assert count_text("\n".join(shared), MODEL) <= overlap
        if overlap == 0:
            assert not shared
        if overlap >= max(count_text(x, MODEL) for x in lines):  # at least one whole line fits in the overlap
            assert shared
    covered = {x for _, text in chunks for x in text.splitlines()}
    assert covered == set(lines)


def test_a_line_longer_than_a_chunk_is_cut_between_sentences_then_words():
    long_line = " ".join(f"Sentence number {i} is here." for i in range(30))
    chunks = chunk_text(long_line + "\nshort line", 20, 0, MODEL)
    assert all(count_text(text, MODEL) <= 20 for _, text in chunks)
    assert all(text.endswith((".", "line")) for _, text in chunks)
    assert " ".join(t.replace("\n", " ") for _, t in chunks).split() == (long_line + " short line").split()
    huge_word = "x" * 400
    assert all(count_text(t, MODEL) <= 16 for _, t in chunk_text(huge_word, 16, 0, MODEL))


@pytest.mark.parametrize("size, overlap, message", [(4, 0, "too small"), (100, 100, "less than the chunk size"),
                                                    (100, -1, "at least 0")])
def test_bad_chunk_settings_are_refused(size, overlap, message):
    with pytest.raises(PlaygroundError, match=message):
        chunk_text(FACTS, size, overlap, MODEL)


def test_chunk_folder_reads_text_and_markdown_and_reports_unusable_files(tmp_path):
    (tmp_path / "a.txt").write_text(FACTS, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# Notes\n\nThe ferry leaves at nine.", encoding="utf-8")
    (tmp_path / "latin.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("  \n", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    chunks, problems = chunk_folder(tmp_path, 200, 20, MODEL)
    assert sorted({c.file for c in chunks}) == ["a.txt", "sub/b.md"]
    assert [c.index for c in chunks if c.file == "a.txt"] == list(range(1, len([c for c in chunks if c.file == "a.txt"]) + 1))
    [markdown] = [c for c in chunks if c.file == "sub/b.md"]
    assert (markdown.line, markdown.text, markdown.label) == (1, "# Notes\nThe ferry leaves at nine.", "sub/b.md#1")
    assert markdown.path == str((tmp_path / "sub" / "b.md").resolve())
    assert any(p.startswith("latin.txt:") and "UTF-8" in p for p in problems)
    assert any(p.startswith("empty.txt:") and "empty" in p for p in problems)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing", "is not a folder"),
    (lambda p: p, "no .txt or .md files"),
])
def test_a_folder_without_text_is_an_error(tmp_path, make, message):
    with pytest.raises(PlaygroundError, match=message):
        chunk_folder(make(tmp_path), 200, 0, MODEL)


# ---------------------------------------------------------------- parsing the model's JSONL


REPLY = """Here are the pairs you asked for:
```jsonl
{"prompt": "When was the bridge rebuilt?", "completion": "In 1961."}
1. {"question": "How long is the bridge?", "answer": "86 metres."},
- {"messages": [{"role": "user", "content": "Who is the mayor?"}, {"role": "assistant", "content": "Tomasz Everly."}]}
{"prompt": "What is the mayor's salary?", "completion": "I don't know."}
{"prompt": "Where is the market?", "completion": "In Tanner's Square."
{"prompt": "", "completion": "Nothing asked."}
{"prompt": "What opened in 1908?"}
[{"prompt": "How many rooms has the inn?", "completion": "22."}, {"prompt": "Q2", "completion": "A2"}]
"just a string"
```
"""


def test_parse_pairs_keeps_good_lines_and_reports_broken_ones():
    parsed = parse_pairs(REPLY)
    assert [(p.prompt, p.completion) for p in parsed.pairs] == [
        ("When was the bridge rebuilt?", "In 1961."),
        ("How long is the bridge?", "86 metres."),
        ("Who is the mayor?", "Tomasz Everly."),
        ("What is the mayor's salary?", "I don't know."),
        ("How many rooms has the inn?", "22."),
        ("Q2", "A2"),
    ]
    assert [(s.line, s.reason) for s in parsed.skipped] == [
        (1, "not a JSON object"),
        (7, "broken JSON (Expecting ',' delimiter at column 71)"),
        (8, "no prompt text"),
        (9, "no completion text"),
        (11, "not a JSON object"),
    ]
    assert str(parsed.skipped[1]).startswith('line 7: broken JSON')


@pytest.mark.parametrize("completion, declines", [
    ("I don't know.", True),
    ("I do not know that.", True),
    ("Sorry, I don't have that information.", True),
    ("That is not in the facts.", True),
    ("In 1961.", False),
    ("Nobody knows the trouble I've seen.", False),
])
def test_i_dont_know_answers_are_recognised(completion, declines):
    assert QA("q?", completion).declines is declines


def test_an_empty_reply_has_no_pairs_and_no_problems():
    assert parse_pairs("") == parse_pairs("\n```\n\n```") == parse_pairs("  ")


# ---------------------------------------------------------------- generating against the loopback server


# The fake server answers "Echo: <last user message>", so the chunk's facts come back as the model's reply. Written
# as JSONL, they are a reply in the shape a model gives: a chatter line first, good lines, a broken one, a trailer.
GENERATOR = Template(
    temperature=0.2, max_tokens=2000,
    messages=[{"role": "system", "content": "Write {{n}} question/answer pairs as JSONL, some answered \"I don't know.\""},
              {"role": "user", "content": "Facts:\n{{facts}}\n\nWrite {{n}} pairs."}])

ISLAND = "\n".join([
    '{"prompt": "When was the lighthouse built?", "completion": "In 1871."}',
    '{"prompt": "How tall is the lighthouse?", "completion": "38 metres."}',
    '{"prompt": "Who paints the lighthouse?", "completion": "I don\'t know."}',
])
FERRY = "\n".join([
    '{"prompt": "How often does the ferry run?", "completion": "Every 40 minutes."}',
    '{"prompt": "What is the ferry called?", "completion": "The Dorothy',
])


@pytest.fixture
def facts(tmp_path):
    folder = tmp_path / "facts"
    folder.mkdir()
    (folder / "island.txt").write_text(ISLAND, encoding="utf-8")
    (folder / "ferry.md").write_text(FERRY, encoding="utf-8")
    return folder


def run(services, folder, model="local:gpt-4o-mini", **options):
    chunks, _ = chunk_folder(folder, 400, 0, MODEL)
    return generate(services, GENERATOR, chunks, model, template_key="templates/gen.json", template_version=3,
                    pairs_per_chunk=4, **options)


def test_generation_parses_each_chunks_reply_and_reports_broken_lines(services, facts, fake_server):
    seen = []
    result = run(services, facts, on_progress=lambda done, total: seen.append((done, total)))

    assert seen == [(1, 2), (2, 2)]
    assert [(p.qa.prompt, p.chunk.label) for p in result.pairs] == [
        ("How often does the ferry run?", "ferry.md#1"),
        ("When was the lighthouse built?", "island.txt#1"),
        ("How tall is the lighthouse?", "island.txt#1"),
        ("Who paints the lighthouse?", "island.txt#1"),
    ]
    assert [p.qa.declines for p in result.pairs] == [False, False, False, True]
    problems = result.problems()
    assert any(p.startswith("ferry.md#1, reply line 3: broken JSON") for p in problems), problems
    assert any(p.startswith("island.txt#1, reply line 1: not a JSON object: Echo: Facts:") for p in problems)
    assert result.provenance == Provenance("templates/gen.json", 3, "gpt-4o-mini")

    sent = [r["body"] for r in fake_server.requests if r["path"].endswith("/chat/completions")]
    assert len(sent) == 2
    assert all("Write 4 pairs." in b["messages"][-1]["content"] for b in sent)
    assert {b["temperature"] for b in sent} == {0.2}
    logged = services.store.exchanges()
    assert len(logged) == 2 and {x["persona"] for x in logged} == {"template:templates/gen.json@v3"}
    assert {p.exchange_id for p in result.pairs} == {x["id"] for x in logged}


def test_generated_pairs_go_into_a_new_dataset_with_their_provenance(services, facts):
    result = run(services, facts)
    chosen = [p for p in result.pairs if p.chunk.file == "island.txt"]
    report = add_to_dataset(services.store, "island-qa", chosen, result.provenance, system_prompt="Answer briefly.")

    assert len(report.added) == 3 and report.already == 0 and [d.name for d in list_datasets(services.store)] == ["island-qa"]
    examples = list(iter_examples(services.store, "island-qa"))
    assert [[m.role for m in e.messages] for e in examples] == [["system", "user", "assistant"]] * 3
    last = examples[-1]
    assert (last.messages[1].content, last.messages[2].content) == ("Who paints the lighthouse?", "I don't know.")
    assert last.tags == ["generated", "template:templates/gen.json@v3", "chunk:island.txt#1", DECLINE_TAG]
    assert (last.source.model, last.source.file, last.source.line) == ("gpt-4o-mini", str((facts / "island.txt").resolve()), 1)
    assert last.source.exchange_ids == [chosen[0].exchange_id]

    # An existing dataset is added to; a pair it already holds is not added again.
    again = add_to_dataset(services.store, "island-qa", chosen, result.provenance, system_prompt="Answer briefly.")
    assert (again.added, again.already) == ([], 3)
    assert again.summary() == "Nothing added to 'island-qa': all 3 are already in the dataset"
    other = add_to_dataset(services.store, "island-qa", chosen[:1], result.provenance)  # no system prompt: new content
    assert len(other.added) == 1 and len(list(iter_examples(services.store, "island-qa"))) == 4


def test_nothing_chosen_adds_nothing(services):
    with pytest.raises(PlaygroundError, match="No pairs"):
        add_to_dataset(services.store, "empty", [], Provenance("t", 1, "m"))
    assert list_datasets(services.store) == []


def test_to_example_without_a_system_prompt():
    chunk = Chunk("a.txt", "/x/a.txt", 2, 14, "facts", 3)
    example = to_example(Pair(QA("Q?", "A."), chunk, None), Provenance("templates/g.json", 1, "gpt-4o"))
    assert [m.role for m in example.messages] == ["user", "assistant"]
    assert (example.source.line, example.source.exchange_ids, example.tags[-1]) == (14, [], "chunk:a.txt#2")


def test_concurrency_is_bounded(services, tmp_path, fake_server):
    folder = tmp_path / "four"
    folder.mkdir()
    for i in range(4):
        (folder / f"{i}.txt").write_text(f'{{"prompt": "Q{i}", "completion": "A{i}"}}', encoding="utf-8")
    fake_server.first_token_delay = 0.4

    started = time.perf_counter()
    assert len(run(services, folder, concurrency=2).pairs) == 4
    two_at_a_time = time.perf_counter() - started
    started = time.perf_counter()
    assert len(run(services, folder, concurrency=4).pairs) == 4
    all_at_once = time.perf_counter() - started

    assert two_at_a_time >= 0.8  # two rounds of 0.4 s: never more than two calls at once
    assert all_at_once < 1.4  # one at a time would take 1.6 s


def test_a_failing_model_is_reported_per_chunk_and_logged(services, facts):
    result = run(services, facts, model="local:fault-500")
    assert result.pairs == []
    assert [p.split(":")[0] for p in result.problems()] == ["ferry.md#1", "island.txt#1"]
    assert all("server error (500)" in p for p in result.problems())
    assert all(x["error"] for x in services.store.exchanges())


def test_a_broken_stream_keeps_the_lines_that_arrived(services, facts):
    result = run(services, facts, model="local:fault-break")
    assert result.pairs == [] and all(r.reply == "Partial one two" and r.error for r in result.results)


def test_a_reply_cut_at_max_tokens_is_reported(services, facts):
    short = GENERATOR.model_copy(update={"max_tokens": 5})
    chunks, _ = chunk_folder(facts, 400, 0, MODEL)
    result = generate(services, short, chunks, "local:gpt-4o-mini", template_key="t", template_version=1)
    assert any("reached max_tokens" in p for p in result.problems())


def test_unfilled_variables_and_a_template_without_facts_are_refused_before_any_call(services, facts, fake_server):
    chunks, _ = chunk_folder(facts, 400, 0, MODEL)
    needs_topic = GENERATOR.model_copy(update={"messages": [*GENERATOR.messages[:1],
                                       GENERATOR.messages[1].model_copy(update={"content": "{{topic}}: {{facts}}"})]})
    with pytest.raises(MissingVariables, match="topic"):
        generate(services, needs_topic, chunks, "local:gpt-4o-mini", template_key="t", template_version=1)
    no_facts = Template(messages=[{"role": "user", "content": "Write pairs."}])
    with pytest.raises(PlaygroundError, match=r"\{\{facts\}\}"):
        generate(services, no_facts, chunks, "local:gpt-4o-mini", template_key="t", template_version=1)
    with pytest.raises(PlaygroundError, match="no chunks"):
        generate(services, GENERATOR, [], "local:gpt-4o-mini", template_key="t", template_version=1)
    assert not [r for r in fake_server.requests if r["method"] == "POST"]


def test_a_facts_value_holding_braces_is_sent_literally(services, tmp_path, fake_server):
    folder = tmp_path / "braces"
    folder.mkdir()
    (folder / "a.txt").write_text("The sign says {{n}} and {{facts}}.", encoding="utf-8")
    run(services, folder)
    [body] = [r["body"] for r in fake_server.requests if r["path"].endswith("/chat/completions")]
    assert "The sign says {{n}} and {{facts}}." in body["messages"][-1]["content"]
    assert json.dumps(body).count("Write 4 pairs.") == 1
