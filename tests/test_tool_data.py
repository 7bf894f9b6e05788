"""Tool calls in training data: read, checked, counted, stored and written in every format that can hold them.

The fixture tests/fixtures/booking_tools.jsonl is an original booking desk (the Saltmarsh Inn): tools, a
single call, parallel calls, a speaker name with weights, parallel_tool_calls false, a refusal and a plain line.
"""

import json
from pathlib import Path

import pytest

from playground.cli import main
from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.formats import BadLines
from playground.datasets.formats.readers import parse_lines, read_examples
from playground.datasets.formats.writers import to_record, unfit_reason, write_examples
from playground.datasets.stats import example_tokens
from playground.datasets.validation import validate_file

FIXTURE = Path(__file__).parent / "fixtures" / "booking_tools.jsonl"
RECORDS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
TOOLS = RECORDS[0]["tools"]
SYSTEM = RECORDS[0]["messages"][0]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_lines(tmp_path: Path, records: list[dict], name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def call(call_id: str, name: str, arguments) -> dict:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


def booking(*turns: dict, **fields) -> dict:
    """A line: the desk's system prompt and a question, then the given turns."""
    return {"messages": [SYSTEM, {"role": "user", "content": "Is the loft free on 2027-08-01 for two nights?"}, *turns],
            "tools": TOOLS, **fields}


def asked(call_id: str = "call_1", name: str = "check_availability", arguments=None) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [call(call_id, name, arguments or {"check_in": "2027-08-01", "nights": 2})]}


def result(call_id: str = "call_1", text: str = '{"free": ["loft"]}') -> dict:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


ANSWER = {"role": "assistant", "content": "Yes, the loft is free for those two nights."}
GOOD = booking(asked(), result(), ANSWER)


# ---------------------------------------------------------------- round trips


def test_the_openai_fixture_imports_and_exports_json_equal(tmp_path):
    examples, problems = read_examples(FIXTURE)
    assert not problems and len(examples) == len(RECORDS)
    out = tmp_path / "out.jsonl"
    write_examples(examples, out, "openai-chat")
    assert jsonl(out) == RECORDS


def test_the_fixture_round_trips_through_the_database_and_the_cli(tmp_path, capsys):
    home = tmp_path / "home"
    assert main(["dataset", "import", str(FIXTURE), "--name", "desk", "--home", str(home)]) == 0
    assert main(["dataset", "export", "desk", "--format", "openai-chat", "--out", str(tmp_path / "out"),
                 "--home", str(home)]) == 0
    assert jsonl(tmp_path / "out" / "desk.jsonl") == RECORDS
    snippet = (tmp_path / "out" / "axolotl.yml").read_text(encoding="utf-8")
    for line in ("type: chat_template", "field_messages: messages", "field_tools: tools",
                 "message_field_training: weight", "role: role", "content: content"):
        assert line in snippet
    assert str((tmp_path / "out" / "desk.jsonl").resolve()) in snippet


def test_the_model_keeps_calls_results_names_and_weights():
    examples, _ = read_examples(FIXTURE)
    parallel = examples[1].messages[2]
    assert [c.function.name for c in parallel.tool_calls] == ["check_availability", "ferry_times"]
    assert parallel.content is None and parallel.text == ""
    assert [m.tool_call_id for m in examples[1].messages if m.role == "tool"] == ["call_p1", "call_p2"]
    named = examples[2].messages[1]
    assert (named.name, named.role) == ("Ilse", "user")
    assert [m.weight for m in examples[2].messages if m.role == "assistant"] == [0, None, 1, 1]
    assert examples[3].parallel_tool_calls is False and examples[0].parallel_tool_calls is None
    assert examples[0].tools == TOOLS and examples[5].tools is None


def load_offline(path: Path, tmp_path: Path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return datasets.load_dataset("json", data_files=str(path), cache_dir=str(tmp_path / "hf-cache"))["train"]


def test_a_trl_messages_export_loads_with_the_datasets_library(tmp_path, monkeypatch):
    examples, _ = read_examples(FIXTURE)
    out = tmp_path / "trl.jsonl"
    written, unfit = write_examples(examples, out, "trl-messages", skip_unfit=True)
    # Weight 0 (line 3) and parallel_tool_calls (line 4) are OpenAI's alone: refused with the reason, not dropped.
    assert [(u.example.source.line, "weight 0" in u.reason or "parallel_tool_calls" in u.reason) for u in unfit] == [
        (3, True), (4, True)]
    table = load_offline(out, tmp_path, monkeypatch)
    assert set(table.column_names) == {"messages", "tools"} and len(table) == written == 4
    calls = table[1]["messages"][2]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["check_availability", "ferry_times"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"check_in": "2027-06-02", "nights": 2}
    assert [t["function"]["name"] for t in table[0]["tools"]] == ["check_availability", "book_room", "ferry_times"]
    assert table[3]["tools"] is None  # the plain line has no tools


def test_a_sharegpt_export_follows_llama_factory_and_loads_with_the_datasets_library(tmp_path, monkeypatch):
    home = tmp_path / "home"
    assert main(["dataset", "import", str(FIXTURE), "--name", "desk", "--home", str(home)]) == 0
    out = tmp_path / "sg"
    assert main(["dataset", "export", "desk", "--format", "sharegpt", "--out", str(out), "--skip-bad",
                 "--home", str(home)]) == 0
    lines = jsonl(out / "desk.jsonl")
    assert [t["from"] for t in lines[1]["conversations"]] == ["system", "human", "function_call", "observation", "gpt"]
    calls = json.loads(lines[1]["conversations"][2]["value"])
    assert calls == [{"name": "check_availability", "arguments": {"check_in": "2027-06-02", "nights": 2}},
                     {"name": "ferry_times", "arguments": {"date": "2027-06-02"}}]
    assert json.loads(lines[1]["conversations"][3]["value"]) == [RECORDS[1]["messages"][3]["content"],
                                                                 RECORDS[1]["messages"][4]["content"]]
    assert json.loads(lines[0]["tools"]) == [t["function"] for t in TOOLS]  # a string, as LLaMA-Factory reads it
    info = json.loads((out / "dataset_info.json").read_text(encoding="utf-8"))
    assert info["desk"]["file_name"] == "desk.jsonl" and info["desk"]["formatting"] == "sharegpt"
    assert info["desk"]["columns"] == {"messages": "conversations", "tools": "tools"}
    assert info["desk"]["tags"]["function_tag"] == "function_call"
    assert info["desk"]["tags"]["observation_tag"] == "observation"
    table = load_offline(out / "desk.jsonl", tmp_path, monkeypatch)
    assert set(table.column_names) == {"conversations", "tools"} and len(table) == 4


def test_a_sharegpt_export_reads_back_to_the_same_calls_and_results(tmp_path):
    examples, _ = read_examples(FIXTURE)
    out = tmp_path / "sg.jsonl"
    write_examples(examples, out, "sharegpt", skip_unfit=True)
    again, problems = read_examples(out)
    assert not problems
    back = tmp_path / "back.jsonl"
    write_examples(again, back, "openai-chat")
    expected = [r for i, r in enumerate(RECORDS) if i not in (2, 3)]  # the two sharegpt cannot carry
    for got, want in zip(jsonl(back), expected, strict=True):
        assert got["tools"] if "tools" in want else "tools" not in got
        assert [m["role"] for m in got["messages"]] == [m["role"] for m in want["messages"]]
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for m in got["messages"]
                for c in m.get("tool_calls", [])] == [(c["function"]["name"], json.loads(c["function"]["arguments"]))
                                                       for m in want["messages"] for c in m.get("tool_calls", [])]
        assert [m["content"] for m in got["messages"]] == [m["content"] for m in want["messages"]]


@pytest.mark.parametrize("format,where", [("openai-dpo", "input"), ("trl-preference", None)])
def test_preference_formats_keep_tools_on_the_prompt_side(tmp_path, format, where):
    prompt = [TrainingMessage(**m) for m in GOOD["messages"][:-1]]  # ends with the tool result
    example = Example(messages=prompt, chosen="Yes, the loft is free.", rejected="No idea.", tools=TOOLS,
                      parallel_tool_calls=False if format == "openai-dpo" else None)
    record = to_record(example, format)
    side = record[where] if where else record
    assert side["tools"] == TOOLS
    assert any("tool_calls" in m for m in (side["messages"] if where else record["prompt"]))
    out = tmp_path / "pref.jsonl"
    write_examples([example], out, format)
    again, problems = read_examples(out, format)
    assert not problems
    assert again[0].tools == TOOLS and again[0].messages == example.messages
    assert again[0].parallel_tool_calls == example.parallel_tool_calls


def test_legacy_functions_and_function_call_are_read_as_tools_and_tool_calls(tmp_path):
    legacy = {"messages": [SYSTEM, {"role": "user", "content": "Ferries on 2027-08-01?"},
                           {"role": "assistant", "content": None,
                            "function_call": {"name": "ferry_times", "arguments": '{"date": "2027-08-01"}'}},
                           {"role": "function", "name": "ferry_times", "content": '{"crossings": ["09:00"]}'},
                           {"role": "assistant", "content": "One crossing, at 09:00."}],
              "functions": [t["function"] for t in TOOLS]}
    examples, problems = read_examples(write_lines(tmp_path, [legacy]))
    assert not problems
    record = to_record(examples[0], "openai-chat")
    assert record["tools"] == TOOLS
    assert record["messages"][2]["tool_calls"] == [call("call_1", "ferry_times", '{"date": "2027-08-01"}')]
    assert record["messages"][3] == {"role": "tool", "content": '{"crossings": ["09:00"]}', "tool_call_id": "call_1"}
    assert not [f for f in validate_file(write_lines(tmp_path, [record], "new.jsonl")) if f.severity == "error"]


@pytest.mark.parametrize("format,reason", [
    ("sharegpt", "speaker 'name'"), ("openai-completion", "speaker 'name'"),
])
def test_a_format_that_cannot_carry_a_name_refuses_the_example_with_the_reason(format, reason):
    examples, _ = read_examples(FIXTURE)
    assert reason in unfit_reason(examples[2], format)


def test_a_format_without_tools_refuses_tool_examples_with_the_reason():
    examples, _ = read_examples(FIXTURE)
    assert "tools or tool calls" in unfit_reason(examples[0], "openai-completion")
    assert "both text and tool calls" in unfit_reason(Example(messages=[
        TrainingMessage(role="user", content="Book it."),
        TrainingMessage(**{"role": "assistant", "content": "Booking now.", "tool_calls": [call("c", "book_room", {})]}),
        TrainingMessage(role="tool", tool_call_id="c", content="ok"),
        TrainingMessage(role="assistant", content="Booked.")], tools=TOOLS), "sharegpt")


# ---------------------------------------------------------------- validation, per line


def errors_of(path: Path) -> list[tuple[str, int, str]]:
    return [(f.code, f.line, f.message) for f in validate_file(path) if f.severity == "error"]


TOOL_ERRORS = [
    ("unanswered_tool_result", booking(result("call_9"), ANSWER), "answers tool call id \"call_9\""),
    ("arguments_not_json_object", booking(asked(arguments="{check_in: tomorrow"), result(), ANSWER),
     "not a JSON object"),
    ("arguments_not_json_object", booking(asked(arguments='["2027-08-01", 2]'), result(), ANSWER), "not a JSON object"),
    ("unknown_function", booking(asked(name="cancel_booking"), result(), ANSWER), "not in the example's tools"),
    ("duplicate_tool_call_id", booking(asked(), result(), asked(), result(), ANSWER), "reuses the id \"call_1\""),
    ("invalid_tool_schema", {**GOOD, "tools": [{"type": "function", "function": {
        "name": "check_availability", "parameters": {"type": "object", "properties": {"nights": {"type": "number-ish"}}}}}]},
     "not a valid JSON schema"),
    ("invalid_tool", {**GOOD, "tools": [*TOOLS, {"name": "cancel_booking"}]}, "tool 4 is not"),
]


@pytest.mark.parametrize("code,bad,words", TOOL_ERRORS, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(TOOL_ERRORS)])
def test_each_broken_tool_call_is_an_error_at_its_line_saying_what_is_wrong(tmp_path, code, bad, words):
    path = write_lines(tmp_path, [GOOD] * 4 + [bad] + [GOOD])
    assert [(c, line) for c, line, _ in errors_of(path)] == [(code, 5)]
    assert words in errors_of(path)[0][2]


def test_an_assistant_turn_with_neither_content_nor_tool_calls_is_an_error_at_its_line(tmp_path):
    bad = booking({"role": "assistant", "content": None})
    path = write_lines(tmp_path, [GOOD, bad])
    assert [(c, line) for c, line, _ in errors_of(path)] == [("missing_content", 2)]
    assert "no tool calls" in errors_of(path)[0][2]


def test_a_name_on_a_message_is_valid(tmp_path):
    named = {"messages": [SYSTEM, {"role": "user", "name": "Ilse", "content": "Any rooms tonight?"},
                          {"role": "assistant", "name": "desk", "content": "One double is free tonight."}]}
    assert errors_of(write_lines(tmp_path, [named])) == []


def test_calls_without_tools_are_not_checked_against_a_tool_list(tmp_path):
    no_tools = {k: v for k, v in GOOD.items() if k != "tools"}
    assert errors_of(write_lines(tmp_path, [no_tools])) == []


@pytest.mark.parametrize("turn,words", [
    ({"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                            "function": {"name": "book_room", "arguments": {"nights": 2}}}]},
     "arguments that are not a string"),
    ({"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "x", "arguments": "{}"}}]},
     "has no 'id'"),
    ({"role": "tool", "content": "ok"}, "no 'tool_call_id'"),
    ({"role": "user", "content": "hi", "tool_calls": [call("c1", "book_room", {})]}, "only assistant turns make them"),
])
def test_a_tool_call_that_cannot_be_read_refuses_the_import_naming_its_line(tmp_path, turn, words):
    path = write_lines(tmp_path, [GOOD, GOOD, booking(turn, ANSWER)])
    with pytest.raises(BadLines) as raised:
        read_examples(path)
    assert {p.line for p in raised.value.problems} == {3}
    assert any(words in str(p) for p in raised.value.problems), [str(p) for p in raised.value.problems]
    assert [p.line for p in parse_lines(path) if p.example is not None] == [1, 2]


# ---------------------------------------------------------------- tokens and cost


def test_token_counts_include_the_tool_definitions_and_the_calls():
    examples, _ = read_examples(FIXTURE)
    with_tools = examples[0]
    bare = with_tools.model_copy(update={"tools": None})
    assert example_tokens(with_tools, "gpt-4o-mini") > example_tokens(bare, "gpt-4o-mini") + 100
    longer = Example(messages=[*bare.messages[:2], TrainingMessage(**{
        "role": "assistant", "content": None, "tool_calls": [call("call_av1", "check_availability", {
            "check_in": "2027-05-14", "nights": 3, "room": "double", "note": "a quiet room facing the harbour"})]}),
        *bare.messages[3:]])
    assert example_tokens(longer, "gpt-4o-mini") > example_tokens(bare, "gpt-4o-mini") + 5


def test_stats_of_a_dataset_count_its_tools(tmp_path, capsys):
    home = tmp_path / "home"
    plain = write_lines(tmp_path, [{k: v for k, v in r.items() if k != "tools"} for r in RECORDS], "plain.jsonl")
    for name, path in (("desk", FIXTURE), ("plain", plain)):
        assert main(["dataset", "import", str(path), "--name", name, "--home", str(home)]) == 0
    capsys.readouterr()
    totals = {}
    for name in ("desk", "plain"):
        assert main(["dataset", "stats", name, "--json", "--home", str(home)]) == 0
        totals[name] = json.loads(capsys.readouterr().out)["tokens_total"]
    assert totals["desk"] > totals["plain"] + 5 * 200  # five examples carry three function schemas each


# ---------------------------------------------------------------- the CLI


def test_cli_validate_names_the_line_of_a_broken_tool_call(tmp_path, capsys):
    path = write_lines(tmp_path, [GOOD, GOOD, booking(asked(arguments="not json"), result(), ANSWER)])
    assert main(["dataset", "validate", str(path), "--home", str(tmp_path / "home")]) == 1
    out = capsys.readouterr().out
    assert "line 3: error arguments_not_json_object: message 3 (assistant), tool call 1 (check_availability)" in out


def test_cli_validate_passes_the_fixture_and_a_stored_copy(tmp_path, capsys):
    home = str(tmp_path / "home")
    assert main(["dataset", "validate", str(FIXTURE), "--home", home]) == 0
    assert main(["dataset", "import", str(FIXTURE), "--name", "desk", "--home", home]) == 0
    assert main(["dataset", "validate", "desk", "--home", home]) == 0
    assert "error" not in capsys.readouterr().out


def test_cli_import_refuses_a_file_with_an_unreadable_tool_call_naming_the_line(tmp_path, capsys):
    bad = booking({"role": "tool", "content": "ok"}, ANSWER)
    path = write_lines(tmp_path, [GOOD, bad])
    assert main(["dataset", "import", str(path), "--name", "d", "--home", str(tmp_path / "home")]) == 1
    assert "line 2: message 3 is a tool result with no 'tool_call_id'" in capsys.readouterr().err


def test_cli_export_refuses_a_stored_example_whose_call_names_an_unknown_function(tmp_path, capsys):
    home = str(tmp_path / "home")
    path = write_lines(tmp_path, [GOOD, booking(asked(name="cancel_booking"), result(), ANSWER)])
    assert main(["dataset", "import", str(path), "--name", "d", "--home", home]) == 0
    assert main(["dataset", "export", "d", "--format", "openai-chat", "--out", str(tmp_path / "out"), "--home", home]) == 1
    assert "unknown_function" in capsys.readouterr().err
    assert not (tmp_path / "out" / "d.jsonl").exists()


# ---------------------------------------------------------------- the Datasets tab's helpers


def test_the_example_editor_shows_tool_calls_and_saves_them_back(tmp_path):
    from playground.core.store import Store
    from playground.datasets.store import add_examples, create_dataset, iter_examples, update_example
    from playground.ui.datasets_tab import edited_fields, matches, messages_json

    store = Store(tmp_path / "playground.db")
    examples, _ = read_examples(FIXTURE)
    create_dataset(store, "desk")
    [example_id] = add_examples(store, "desk", examples[1:2])
    stored = next(iter_examples(store, "desk"))
    shown = messages_json(stored)
    assert json.loads(shown) == RECORDS[1]["messages"]  # null content and the calls, as in the file
    assert matches(stored, ["ferries"])  # a turn without text does not break the search
    updated = update_example(store, example_id, **edited_fields(shown))
    assert updated.messages == stored.messages and updated.tools == TOOLS


@pytest.mark.parametrize("turns,words", [
    ([{"from": "human", "value": "Ferries?"}, {"from": "observation", "value": "{}"}, {"from": "gpt", "value": "No."}],
     "follows no function_call turn"),
    ([{"from": "human", "value": "Ferries?"}, {"from": "function_call", "value": "ferry_times(today)"},
      {"from": "observation", "value": "{}"}, {"from": "gpt", "value": "No."}], "must hold the call as JSON text"),
    ([{"from": "human", "value": "Ferries?"}, {"from": "function_call", "value": json.dumps(
        [{"name": "ferry_times", "arguments": {}}, {"name": "ferry_times", "arguments": {"date": "2027-08-02"}}])},
      {"from": "observation", "value": "one result"}, {"from": "gpt", "value": "No."}], "answers 2 parallel calls"),
])
def test_a_broken_sharegpt_tool_turn_is_a_bad_line_saying_what_is_wrong(tmp_path, turns, words):
    path = write_lines(tmp_path, [{"conversations": turns, "tools": json.dumps([t["function"] for t in TOOLS])}])
    with pytest.raises(BadLines) as raised:
        read_examples(path)
    assert any(words in str(p) and p.line == 1 for p in raised.value.problems), [str(p) for p in raised.value.problems]
