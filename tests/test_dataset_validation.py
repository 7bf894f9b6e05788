import json
import random

import pytest

from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.validation import Finding, has_errors, validate_examples, validate_file, validate_splits
from playground.datasets.validation.answer_order import answer_items, input_order_share

SYSTEM = "Group the 16 words into 4 groups of 4 and name each group."

# Invented words in invented categories: a tiny stand-in for a word-grouping puzzle.
GROUPS = {
    "KETTLE PARTS": ["frindle", "quaspor", "meltisk", "brogant"],
    "SKY SPIRITS": ["olvane", "trisket", "zephrin", "cauldry"],
    "MARSH BIRDS": ["plimmet", "gorrow", "snaith", "vellick"],
    "OLD COINS": ["dubbet", "shillow", "pennard", "grotch"],
    "DANCES": ["whirrel", "stompet", "jiggin", "lurrow"],
    "CHEESES": ["brindow", "caskel", "morvane", "tupple"],
    "BOATS": ["skellop", "dravvit", "pontle", "yawlish"],
    "HATS": ["cobbet", "firrow", "glimber", "toquin"],
}


def chat(*turns: str, system: str | None = SYSTEM, id: int | None = None, line: int | None = None) -> Example:
    roles = ["user", "assistant"] * len(turns)
    messages = ([TrainingMessage(role="system", content=system)] if system is not None else []) + [
        TrainingMessage(role=role, content=text) for role, text in zip(roles, turns)]
    return Example(id=id, messages=messages, source={"line": line} if line else {})


def numbered(examples: list[Example]) -> list[Example]:
    return [e.model_copy(update={"id": i}) for i, e in enumerate(examples, start=1)]


def puzzles(shuffled: bool, leak: str = "", count: int = 10, style: str = "lines") -> list[Example]:
    names = list(GROUPS)
    examples = []
    for k in range(count):
        chosen = [names[(k + j) % len(names)] for j in range(4)]
        words = [w for name in chosen for w in GROUPS[name]]
        if shuffled:
            random.Random(k).shuffle(words)
        answer = "\n".join(f"{name}: {', '.join(GROUPS[name])}" for name in chosen)
        if style == "json":
            answer = json.dumps({name: GROUPS[name] for name in chosen})
        examples.append(chat(f"Words: {', '.join(words)}{leak}", answer))
    return numbered(examples)


def distinct(n: int, system: str | None = SYSTEM) -> list[Example]:
    questions = ["Who built the mill?", "When did the bridge open?", "Where is the chapel?", "How deep is the harbour?",
                 "What grows in the orchard?", "Why did the tannery close?", "Which teacher ran the school?",
                 "Is the forge still lit?", "How tall is the lighthouse?", "Who owns the granary?",
                 "On what day is market held?", "Does a ferry cross at night?"]
    return numbered([chat(questions[i], f"Answer number {i}.", system=system) for i in range(n)])


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


# ---------------------------------------------------------------- the reference format checks, on a file

GOOD_LINE = json.dumps({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "hello"}]})


@pytest.mark.parametrize("bad,code", [
    ('["a list"]', "data_type"),
    ('{"messages": {"role": "user"}}', "missing_messages_list"),
    ('{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}', "message_missing_key"),
    ('{"messages": [{"role": "user", "content": "a", "name": "Tobin"}, {"role": "assistant", "content": "x"}]}',
     "message_unrecognized_key"),
    ('{"messages": [{"role": "narrator", "content": "a"}, {"role": "assistant", "content": "x"}]}', "unrecognized_role"),
    ('{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "x"}]}', "missing_content"),
    ('{"messages": [{"role": "system", "content": "a"}, {"role": "user", "content": "b"}]}',
     "example_missing_assistant_message"),
])
def test_a_format_error_in_a_file_is_an_error_at_its_line(tmp_path, bad, code):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join([GOOD_LINE] * 11 + [bad, GOOD_LINE + " "]) + "\n", encoding="utf-8")
    findings = validate_file(path)
    errors = [f for f in findings if f.severity == "error"]
    assert [(f.code, f.line) for f in errors] == [(code, 12)]
    assert str(errors[0]).startswith("line 12: error " + code)


def test_a_clean_file_has_no_errors_and_every_finding_names_a_line(tmp_path):
    path = tmp_path / "train.jsonl"
    lines = [json.dumps({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"q{i}"},
                                      {"role": "assistant", "content": f"a{i}"}]}) for i in range(12)]
    path.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    small = validate_file(path)
    assert codes(small) == ["too_few_examples"] and small[0].line == 3
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert validate_file(path) == []


def test_an_empty_file_is_an_error(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    [finding] = validate_file(path)
    assert (finding.severity, finding.code, finding.line) == ("error", "no_examples", 1)


# ---------------------------------------------------------------- each dataset rule: failing, then passing

def with_user(examples: list[Example], index: int, user: str, answer: str | None = None) -> list[Example]:
    changed = list(examples)
    old = changed[index]
    messages = [m if m.role != "user" else TrainingMessage(role="user", content=user) for m in old.messages]
    if answer is not None:
        messages = [m if m.role != "assistant" else TrainingMessage(role="assistant", content=answer) for m in messages]
    changed[index] = old.model_copy(update={"messages": messages})
    return changed


LONG_ANSWER = ("The old mill on the east bank was raised by Adelaide Crouch in the spring after the flood, with stones "
               "hauled from the quarry above the village and oak beams floated down the river by her three brothers")

RULES = [
    ("duplicate_example", lambda: distinct(10) + [distinct(10)[3].model_copy(update={"id": 11})], lambda: distinct(11)),
    ("near_duplicate_example", lambda: with_user(distinct(11), 10, "WHO built  the mill??", "Someone else."),
     lambda: with_user(distinct(11), 10, "Who built the windmill?", "Someone else.")),
    ("near_duplicate_example",
     lambda: with_user(with_user(distinct(11), 9, "Tell me about the mill.", LONG_ANSWER), 10,
                       "Tell me about the mill, please.", LONG_ANSWER.replace("spring", "summer")),
     lambda: with_user(with_user(distinct(11), 9, "Tell me about the mill.", LONG_ANSWER), 10,
                       "Tell me about the ferry.", "It crosses at dawn and dusk, weather permitting.")),
    ("too_few_examples", lambda: distinct(9), lambda: distinct(10)),
    ("missing_system_message", lambda: distinct(9) + numbered([chat("x?", "y.", system=None)])[:1],
     lambda: distinct(10)),
    ("missing_user_message",
     lambda: distinct(10) + [Example(id=99, messages=[TrainingMessage(role="system", content=SYSTEM),
                                                      TrainingMessage(role="assistant", content="Hello.")])],
     lambda: distinct(11)),
    ("inconsistent_system_prompt", lambda: distinct(10) + [chat("Who built the moat?", "Ada.", system="Be brief.", id=50)],
     lambda: distinct(11)),
    ("answer_order_follows_input", lambda: puzzles(shuffled=False), lambda: puzzles(shuffled=True)),
    ("common_user_words", lambda: puzzles(shuffled=True, leak=", level members"), lambda: puzzles(shuffled=True)),
]


@pytest.mark.parametrize("code,failing,passing", RULES)
def test_each_rule_fires_on_the_bug_and_not_on_the_fix(code, failing, passing):
    found = validate_examples(failing())
    assert code in codes(found)
    assert not has_errors(found)  # dataset rules warn; a person judges
    assert code not in codes(validate_examples(passing()))


def greeting_first(id: int) -> Example:
    return Example(id=id, messages=[TrainingMessage(role="system", content=SYSTEM),
                                    TrainingMessage(role="assistant", content="Now then, now then!"),
                                    TrainingMessage(role="user", content="Who built the mill?"),
                                    TrainingMessage(role="assistant", content="Adelaide Crouch.")])


def test_an_example_that_opens_with_the_assistant_is_warned_naming_the_option_that_kept_the_greeting():
    found = [f for f in validate_examples(distinct(10) + [greeting_first(31)]) if f.code == "assistant_speaks_first"]
    assert [f.example_id for f in found] == [31] and found[0].severity == "warning"
    assert '"Keep the greeting"' in found[0].message and "speak first" in found[0].message
    no_greeting = greeting_first(32).model_copy(update={"messages": greeting_first(32).messages[:1] + greeting_first(32).messages[2:]})
    assert "assistant_speaks_first" not in codes(validate_examples(distinct(10) + [no_greeting]))


def test_a_near_copy_with_a_word_or_two_changed_is_found_by_similarity():
    examples = with_user(with_user(distinct(11), 9, "Tell me about the mill.", LONG_ANSWER), 10,
                         "Tell me about the mill, please.", LONG_ANSWER.replace("spring", "summer"))
    [finding] = [f for f in validate_examples(examples) if f.code == "near_duplicate_example"]
    assert finding.example_id == 11 and "near copy" in finding.message and "example 10" in finding.message


def test_a_duplicate_names_the_earlier_example():
    found = [f for f in validate_examples(distinct(10) + [distinct(10)[3].model_copy(update={"id": 42})])
             if f.code == "duplicate_example"]
    assert [str(f) for f in found] == [
        "example 42: warning duplicate_example: has an exact copy at example 4: remove one: a copy counts double "
        "and can land in both train and test."]


def test_an_example_over_the_models_training_context_is_flagged():
    long = distinct(10) + [chat("Summarise this: " + "word " * 5000, "Words.", id=77)]
    over = [f for f in validate_examples(long, model="gpt-3.5-turbo-0613") if f.code == "over_context_limit"]
    assert [f.example_id for f in over] == [77] and "4,096-token" in over[0].message
    assert "over_context_limit" not in codes(validate_examples(long, model="gpt-4o-mini"))


def test_a_system_prompt_that_is_not_the_deploy_prompt_is_flagged():
    generation_prompt = SYSTEM + " Think step by step about every word's meanings, list candidates, then answer."
    examples = [e.model_copy(update={"messages": [TrainingMessage(role="system", content=generation_prompt),
                                                  *e.messages[1:]]}) for e in distinct(10)]
    flagged = [f for f in validate_examples(examples, deploy_prompt=SYSTEM) if f.code == "system_prompt_not_deploy_prompt"]
    assert len(flagged) == 10 and "deploy" in flagged[0].message
    assert validate_examples(distinct(10), deploy_prompt=SYSTEM + "\n") == []


def test_an_empty_stored_message_is_an_error_naming_the_example():
    examples = distinct(10)
    examples[2] = examples[2].model_copy(update={"messages": [
        *examples[2].messages[:2], TrainingMessage(role="assistant", content="  ")]})
    found = validate_examples(examples)
    assert [(f.severity, f.code, f.example_id) for f in found] == [("error", "missing_content", 3)]
    assert has_errors(found)


def test_excluded_examples_are_not_validated():
    examples = distinct(10) + [chat("Who built the mill?", "Answer number 0.", id=11)
                               .model_copy(update={"excluded": True})]
    assert validate_examples(examples) == []


def test_a_phrase_every_user_message_really_has_can_be_declared():
    examples = numbered([chat(f"Tobin: what is {n}?", f"{n} is a thing.") for n in
                         ["soup", "rain", "glue", "wind", "salt", "moss", "wool", "clay", "rope", "tide"]])
    assert "common_user_words" in codes(validate_examples(examples))
    assert "common_user_words" not in codes(validate_examples(examples, expected_phrases=["Tobin"]))


def test_the_leaked_phrase_is_named():
    [finding] = [f for f in validate_examples(puzzles(shuffled=True, leak=", level members"))
                 if f.code == "common_user_words"]
    assert "'level members'" in finding.message and "10 of 10" in finding.message


# ---------------------------------------------------------------- answer order

@pytest.mark.parametrize("answer,items", [
    ('["frindle", "quaspor", "meltisk"]', ["frindle", "quaspor", "meltisk"]),
    ('{"KETTLE": ["frindle", "quaspor"], "SKY": ["olvane"]}', ["frindle", "quaspor", "olvane"]),
    ('{"locations": [{"city": "Lisbon", "country": "Portugal"}, {"city": "Porto", "country": "Portugal"}]}',
     ["Lisbon", "Portugal", "Porto"]),
    ("KETTLE: frindle, quaspor\nSKY: olvane; trisket", ["frindle", "quaspor", "olvane", "trisket"]),
    ("1. frindle\n2. quaspor\n- olvane", ["frindle", "quaspor", "olvane"]),
    ("It was a long day, and the soup, which was cold, never came back with anything near what we asked for.",
     ["It was a long day", "and the soup", "which was cold"]),
])
def test_answer_items(answer, items):
    assert answer_items(answer) == items


@pytest.mark.parametrize("user,answer,share", [
    ("Words: frindle, quaspor, meltisk, olvane", "A: frindle, quaspor\nB: meltisk, olvane", 1.0),
    ("Words: olvane, meltisk, quaspor, frindle", "A: frindle, quaspor\nB: meltisk, olvane", 0.0),
    ("Words: quaspor, frindle, meltisk", "A: frindle, quaspor, meltisk", 2 / 3),
    ("Words: frindle, quaspor", "A: frindle, quaspor", None),
    ("Tell me a story", "Once, upon, a time", None),
])
def test_input_order_share(user, answer, share):
    assert input_order_share(user, answer) == share


@pytest.mark.parametrize("style", ["lines", "json"])
def test_the_order_leak_is_found_whatever_the_answer_looks_like(style):
    [finding] = [f for f in validate_examples(puzzles(shuffled=False, style=style))
                 if f.code == "answer_order_follows_input"]
    assert "10 of 10" in finding.message and "Shuffle" in finding.message
    assert "answer_order_follows_input" not in codes(validate_examples(puzzles(shuffled=True, style=style)))


def test_the_order_leak_needs_enough_list_shaped_examples():
    assert "answer_order_follows_input" not in codes(validate_examples(puzzles(shuffled=False, count=4)))


# ---------------------------------------------------------------- splits

def test_the_same_example_in_two_splits_is_an_error():
    examples = distinct(12)
    copy = examples[0].model_copy(update={"id": 100})
    found = validate_splits({"train": examples[:10], "test": examples[10:] + [copy]})
    assert [(f.severity, f.code, f.example_id) for f in found] == [("error", "duplicate_across_splits", 100)]
    assert "in test" in found[0].message and "example 1 is in train" in found[0].message
    assert validate_splits({"train": examples[:10], "test": examples[10:]}) == []


def test_a_near_copy_across_splits_is_an_error_too():
    examples = distinct(12)
    near = with_user([examples[0]], 0, "who BUILT the mill")[0].model_copy(update={"id": 100})
    assert codes(validate_splits({"train": examples[:10], "validation": [near]})) == ["duplicate_across_splits"]


def test_findings_from_a_file_name_lines_and_from_the_store_name_ids(tmp_path):
    path = tmp_path / "train.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    path.write_text(line + "\n" + line + "\n", encoding="utf-8")
    assert all(str(f).startswith("line ") for f in validate_file(path))
    assert {f.line for f in validate_file(path) if f.code == "duplicate_example"} == {2}
    stored = validate_examples(numbered([chat("hi", "hello", system=None)] * 2))
    assert {f.where for f in stored} == {"example 1", "example 2", "dataset"}
