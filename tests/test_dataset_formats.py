import json
import tracemalloc
from pathlib import Path

import pytest

from playground.core.errors import FileProblem
from playground.core.store import Store
from playground.core.tokens import count_text
from playground.datasets.examples import Example, Source, TrainingMessage
from playground.datasets.formats import FORMATS, BadLines, UnfitExamples, detect_format
from playground.datasets.formats.readers import parse_lines, read_examples
from playground.datasets.formats.writers import to_record, unfit_reason, write_examples
from playground.datasets.store import import_file, iter_examples, list_datasets

SYSTEM = {"role": "system", "content": "Answer in one short sentence."}
GOOD = {"messages": [SYSTEM, {"role": "user", "content": "Where is Brindlecombe?"},
                     {"role": "assistant", "content": "On the east bank of the River Askel."}]}


def chat(*turns, system: str | None = None, **fields) -> Example:
    roles = ["user", "assistant"] * len(turns)
    messages = ([TrainingMessage(role="system", content=system)] if system else []) + [
        TrainingMessage(role=role, content=text) for role, text in zip(roles, turns)]
    return Example(messages=messages, **fields)


def lines_file(tmp_path: Path, *lines: str | bytes, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines))
    return path


def content(examples: list[Example]) -> list[dict]:
    return [e.model_dump(include={"messages", "chosen", "rejected"}) for e in examples]


# ---------------------------------------------------------------- bad lines, each reported with its number

BAD_LINES = [
    (b"\xff\xfe{\"messages\": []}", "not_utf8", "not UTF-8"),
    (b'[{"role": "user", "content": "hi"}]', "data_type", "JSON array"),
    (b'{"messages": "hello"}', "missing_messages_list", "must be a list"),
    (b'{"messages": {"role": "user", "content": "hi"}}', "missing_messages_list", "not an object"),
    (b'{"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "yo"}]}',
     "unrecognized_role", '"bot"'),
    (b'{"messages": [{"role": "user", "content": null}, {"role": "assistant", "content": "yo"}]}',
     "missing_content", "null content"),
    (b'{"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "yo"}]}',
     "missing_content", "number as content"),
    (b'{"messages": [{"role": "user", "content": "hi"}]}', "example_missing_assistant_message", "no assistant"),
    (b'{"messages": [{"role": "user", "content": "hi", "mood": "sunny"}, {"role": "assistant", "content": "yo"}]}',
     "message_unrecognized_key", "'mood'"),
    (b'{"messages": [{"content": "hi"}, {"role": "assistant", "content": "yo"}]}', "message_missing_key", "'role'"),
    (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}', "invalid_json", "not valid JSON"),
    (b'{"messages": [{"role": "user", "content": "hi", "weight": 1}, {"role": "assistant", "content": "yo"}]}',
     "invalid_weight", "weight"),
    (b'{"title": "no known keys"}', "missing_messages_list", "no 'messages'"),
]


@pytest.mark.parametrize("raw,code,fragment", BAD_LINES)
def test_a_bad_line_is_reported_with_its_number_and_problem(tmp_path, raw, code, fragment):
    path = lines_file(tmp_path, json.dumps(GOOD), json.dumps(GOOD), raw, json.dumps(GOOD))
    with pytest.raises(BadLines) as caught:
        read_examples(path)
    [problem] = caught.value.problems
    assert (problem.line, problem.code) == (3, code)
    assert fragment in problem.message
    assert str(problem).startswith("line 3: ")


@pytest.mark.parametrize("raw,code,fragment", BAD_LINES)
def test_a_bad_line_imports_nothing(tmp_path, raw, code, fragment):
    store = Store(tmp_path / "db.sqlite")
    path = lines_file(tmp_path, json.dumps(GOOD), raw, json.dumps(GOOD))
    with pytest.raises(BadLines) as caught:
        import_file(store, path, "puzzles")
    assert [p.line for p in caught.value.problems] == [2]
    assert list_datasets(store) == []


def test_every_bad_line_is_reported_not_just_the_first(tmp_path):
    path = lines_file(tmp_path, json.dumps(GOOD), b"[1]", json.dumps(GOOD), b"{nope", b'{"messages": 3}')
    with pytest.raises(BadLines) as caught:
        read_examples(path)
    assert [(p.line, p.code) for p in caught.value.problems] == [
        (2, "data_type"), (4, "invalid_json"), (5, "missing_messages_list")]


def test_skip_bad_keeps_the_good_lines_and_lists_the_bad(tmp_path):
    store = Store(tmp_path / "db.sqlite")
    path = lines_file(tmp_path, json.dumps(GOOD), b"[1]", json.dumps(GOOD))
    report = import_file(store, path, "puzzles", skip_bad=True)
    assert report.imported == 2
    assert [p.line for p in report.skipped] == [2]
    assert [e.source.line for e in iter_examples(store, "puzzles")] == [1, 3]


def test_a_missing_file_is_a_domain_error(tmp_path):
    with pytest.raises(FileProblem, match="no such file"):
        read_examples(tmp_path / "absent.jsonl")


def test_bom_crlf_and_blank_lines_are_accepted_and_lines_keep_their_numbers(tmp_path):
    body = (b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\r\n\r\n" + json.dumps(GOOD).encode()
            + b"\r\n   \n" + json.dumps(GOOD).encode() + b"\r\n\r\n\n")
    path = tmp_path / "windows.jsonl"
    path.write_bytes(body)
    examples, problems = read_examples(path)
    assert problems == []
    assert [e.source.line for e in examples] == [1, 3, 5]
    assert content(examples)[0] == content([Example(**GOOD)])[0]


def test_a_bom_on_a_later_line_is_not_silently_accepted(tmp_path):
    path = lines_file(tmp_path, json.dumps(GOOD), b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    with pytest.raises(BadLines) as caught:
        read_examples(path)
    assert caught.value.problems[0].line == 2


# ---------------------------------------------------------------- detection

@pytest.mark.parametrize("record,expected", [
    ({"messages": []}, "openai-chat"),
    ({"prompt": "Q", "completion": "A"}, "openai-completion"),
    ({"input": {"messages": []}, "preferred_output": [], "non_preferred_output": []}, "openai-dpo"),
    ({"prompt": [], "completion": []}, "trl-prompt-completion"),
    ({"prompt": [], "chosen": [], "rejected": []}, "trl-preference"),
    ({"chosen": [], "rejected": []}, "trl-preference"),
    ({"conversations": []}, "sharegpt"),
    ({"text": "plain"}, None),
])
def test_format_is_detected_from_the_keys(record, expected):
    assert detect_format(record) == expected


# ---------------------------------------------------------------- round trips

PREFERENCE = [
    chat("Name a colour of the sea.", system="Answer briefly.", chosen="Teal.", rejected="The sea is a liquid.")
    .model_copy(update={"messages": [TrainingMessage(role="system", content="Answer briefly."),
                                     TrainingMessage(role="user", content="Name a colour of the sea.")]}),
    Example(messages=[TrainingMessage(role="user", content="Say hello in Welsh."),
                      TrainingMessage(role="assistant", content="Helo."),
                      TrainingMessage(role="user", content="And goodbye? «»")],
            chosen="Hwyl fawr.", rejected="Goodbye."),
]
MULTI_TURN = [
    chat("look around", "You are in a damp kitchen.", "open the drawer", "A tin lamp and some matches.",
         system="You narrate a text adventure."),
    chat("hi", "Hello! Ça va? 你好"),
]
ROUND_TRIPS = {
    "openai-chat": MULTI_TURN + [Example(messages=[
        TrainingMessage(role="user", content="2+2?"), TrainingMessage(role="assistant", content="5", weight=0),
        TrainingMessage(role="user", content="Really?"), TrainingMessage(role="assistant", content="4", weight=1)])],
    "trl-messages": MULTI_TURN,
    "openai-completion": [chat("Q: Who founded Brindlecombe?\nA:", " Adelaide Crouch.\n"), chat("x", "y")],
    "openai-dpo": PREFERENCE,
    "trl-prompt-completion": MULTI_TURN,
    "trl-preference": PREFERENCE,
    "sharegpt": MULTI_TURN,
}


@pytest.mark.parametrize("format", FORMATS)
def test_export_then_import_gives_the_same_examples(tmp_path, format):
    examples = ROUND_TRIPS[format]
    path = tmp_path / f"{format}.jsonl"
    assert write_examples(examples, path, format) == (len(examples), [])
    again, problems = read_examples(path)
    assert problems == []
    assert content(again) == content(examples)
    forced, _ = read_examples(path, format=format)
    assert content(forced) == content(examples)


@pytest.mark.parametrize("format", FORMATS)
def test_export_is_deterministic_utf8_with_newline_endings(tmp_path, format):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_examples(ROUND_TRIPS[format], first, format)
    write_examples(ROUND_TRIPS[format], second, format)
    data = first.read_bytes()
    assert data == second.read_bytes()
    assert b"\r" not in data and data.endswith(b"\n") and data.count(b"\n") == len(ROUND_TRIPS[format])


def test_export_keeps_non_ascii_text_as_is_and_keys_in_format_order(tmp_path):
    path = tmp_path / "out.jsonl"
    write_examples([chat("hi", "Hello! Ça va? 你好", system="Be kind.")], path, "sharegpt")
    assert path.read_text(encoding="utf-8") == (
        '{"conversations": [{"from": "system", "value": "Be kind."}, {"from": "human", "value": "hi"}, '
        '{"from": "gpt", "value": "Hello! Ça va? 你好"}]}\n')


def test_a_preference_example_exports_as_prompt_plus_chosen_to_chat_formats(tmp_path):
    path = tmp_path / "out.jsonl"
    write_examples(PREFERENCE[:1], path, "openai-chat")
    assert json.loads(path.read_text())["messages"][-1] == {"role": "assistant", "content": "Teal."}


@pytest.mark.parametrize("record,expected", [
    ({"prompt": "Capital of Wales?", "chosen": "Cardiff.", "rejected": "London."},
     {"messages": [{"role": "user", "content": "Capital of Wales?", "weight": None}], "chosen": "Cardiff.", "rejected": "London."}),
    ({"chosen": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
      "rejected": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Go away."}]},
     {"messages": [{"role": "user", "content": "Hi", "weight": None}], "chosen": "Hello.", "rejected": "Go away."}),
    ({"system": "Be terse.", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo."}]},
     {"messages": [{"role": "system", "content": "Be terse.", "weight": None}, {"role": "user", "content": "Hi", "weight": None},
                   {"role": "assistant", "content": "Yo.", "weight": None}], "chosen": None, "rejected": None}),
])
def test_other_common_spellings_of_the_formats_are_read(tmp_path, record, expected):
    examples, _ = read_examples(lines_file(tmp_path, json.dumps(record)))
    assert content(examples) == [expected]


# ---------------------------------------------------------------- the quick ways give what the general ones give

TRICKY_TEXTS = ["plain text", 'a "quoted" word', "back\\slash", "tab\there", "two\nlines", "bell\x07", "del\x7f",
                "Ça va? 你好 🙂", "line\u2028separator", "<|endoftext|>", " padded "]


@pytest.mark.parametrize("format", ["openai-chat", "trl-messages"])
@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_a_chat_line_is_what_json_dumps_writes_for_its_record(tmp_path, format, text):
    weighted = Example(messages=[TrainingMessage(role="user", content=text),
                                 TrainingMessage(role="assistant", content=text, weight=1)])
    examples = [chat(text, text, system=text), chat("Where?", text), weighted, PREFERENCE[0]]
    path = tmp_path / "out.jsonl"
    write_examples(examples, path, format)
    assert path.read_text(encoding="utf-8") == "".join(
        json.dumps(to_record(e, format), ensure_ascii=False) + "\n" for e in examples)


@pytest.mark.parametrize("record", [
    GOOD,
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo.", "weight": 1}]},
    {"system": "Be terse.", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo."}]},
    {"prompt": "Capital of Wales?", "completion": "Cardiff."},
    {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello."}]},
])
def test_an_example_read_without_validating_it_again_is_the_validated_one(tmp_path, record):
    path = lines_file(tmp_path, json.dumps(record))
    [example], _ = read_examples(path)
    validated = Example(messages=[TrainingMessage(**m.model_dump(exclude_unset=True)) for m in example.messages],
                        source=Source(file=str(path), line=1))
    assert example.model_dump() == validated.model_dump() | {"created_at": example.created_at}
    assert repr(example).replace(example.created_at, "") == repr(validated).replace(validated.created_at, "")
    assert example.model_fields_set == validated.model_fields_set
    assert example.source.model_fields_set == validated.source.model_fields_set
    assert [m.model_fields_set for m in example.messages] == [m.model_fields_set for m in validated.messages]
    assert example.messages == validated.messages and hash(example.messages[0]) == hash(validated.messages[0])
    assert all(type(m) is TrainingMessage for m in example.messages)


# ---------------------------------------------------------------- examples a format cannot hold

UNFIT = [
    (chat("a", "b", "c", "d"), "openai-completion", "one user turn"),
    (chat("a", "b", system="Be brief."), "openai-completion", "no system prompt"),
    (chat("a", "b"), "openai-dpo", "no preference pair"),
    (chat("a", "b"), "trl-preference", "no preference pair"),
    (Example(messages=[TrainingMessage(role="user", content="a"), TrainingMessage(role="assistant", content="b", weight=0),
                       TrainingMessage(role="user", content="c"), TrainingMessage(role="assistant", content="d")]),
     "trl-messages", "weight 0"),
    (Example(messages=[TrainingMessage(role="user", content="a"), TrainingMessage(role="assistant", content="b", weight=0),
                       TrainingMessage(role="user", content="c"), TrainingMessage(role="assistant", content="d")]),
     "sharegpt", "weight 0"),
    (Example(messages=[TrainingMessage(role="user", content="a"), TrainingMessage(role="user", content="b"),
                       TrainingMessage(role="assistant", content="c")]), "sharegpt", "alternating"),
    (Example(messages=[TrainingMessage(role="user", content="a"), TrainingMessage(role="assistant", content="b"),
                       TrainingMessage(role="user", content="c")]), "trl-prompt-completion", "last turn"),
]


def fitting(format: str) -> Example:
    return PREFERENCE[0] if format in ("openai-dpo", "trl-preference") else chat("fine", "ok")


@pytest.mark.parametrize("example,format,fragment", UNFIT)
def test_an_example_the_format_cannot_hold_is_reported_not_dropped(tmp_path, example, format, fragment):
    assert fragment in unfit_reason(example, format)
    example = example.model_copy(update={"id": 7})
    path = tmp_path / "out.jsonl"
    with pytest.raises(UnfitExamples) as caught:
        write_examples([fitting(format), example], path, format)
    assert [str(u).split(":")[0] for u in caught.value.unfit] == ["example 7"]
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_skip_unfit_writes_the_rest_and_lists_what_it_left_out(tmp_path):
    path = tmp_path / "out.jsonl"
    written, unfit = write_examples([chat("a", "b"), chat("a", "b", "c", "d")], path, "openai-completion", skip_unfit=True)
    assert written == 1 and len(unfit) == 1
    assert path.read_text() == '{"prompt": "a", "completion": "b"}\n'


# ---------------------------------------------------------------- streaming

def test_a_large_file_is_imported_in_bounded_memory(tmp_path):
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for i in range(20_000):
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "Rate the review from 1 to 5."},
                {"role": "user", "content": f"Review {i}: the soup was cold and the waiter rude, table {i * 7}."},
                {"role": "assistant", "content": f"{i % 5 + 1}: cold soup, rude waiter"}]}) + "\n")
    store = Store(tmp_path / "db.sqlite")
    count_text("load the tokenizer before measuring", "gpt-4o-mini")
    tracemalloc.start()
    try:
        report = import_file(store, path, "big")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.imported == 20_000
    # Holding the parsed examples would take several times the file's size; streaming holds one batch.
    assert peak < path.stat().st_size / 4


def test_lines_are_parsed_lazily(tmp_path):
    path = lines_file(tmp_path, json.dumps(GOOD), b"[1]")
    lines = parse_lines(path)
    assert next(lines).example is not None
    assert next(lines).problems[0].code == "data_type"
