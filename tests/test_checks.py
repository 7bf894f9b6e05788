"""Automatic checks of replies, and prompt-set files that carry them."""

import json

import pytest
from pydantic import ValidationError

from playground.ab.checks import Check, parse_groups, run_check
from playground.ab.promptset import BadPromptSet, iter_prompt_rows, load_prompt_set, parse_prompt_set
from playground.core.errors import FileProblem

PUZZLE = [["bass", "flounder", "salmon", "trout"], ["ant", "drill", "island", "opal"],
          ["are", "why", "you", "queue"], ["beam", "fire", "ring", "well"]]


@pytest.mark.parametrize("kind, arg, expected, reply, passed", [
    ("exact", None, "Paris", "  Paris\n", True),
    ("exact", None, "Paris", "paris", False),
    ("exact", None, "Paris", "Paris, France", False),
    ("exact", "Lyon", "Paris", "Lyon", True),
    ("contains", None, "Paris", "It is Paris, of course.", True),
    ("contains", None, "Paris", "It is Lyon.", False),
    ("contains", "Paris", None, "The capital is Paris.", True),
    ("regex", r"\b\d{4}\b", None, "It was built in 1889.", True),
    ("regex", r"\b\d{4}\b", None, "It was built long ago.", False),
    ("regex", None, r"(?i)^yes\b", "YES, it is.", True),
    ("json_valid", None, None, ' {"city": "Paris"} ', True),
    ("json_valid", None, None, '{"city": "Paris",}', False),
    ("json_valid", None, None, '```json\n{"city": "Paris"}\n```', False),
    ("json_equal", None, {"city": "Paris", "country": "FR"}, '{"country": "FR", "city": "Paris"}', True),
    ("json_equal", None, '{"city": "Paris", "country": "FR"}', '{"country":"FR","city":"Paris"}', True),
    ("json_equal", None, {"city": "Paris"}, '{"city": "paris"}', False),
    ("json_equal", None, {"city": "Paris"}, '{"city": "Paris", "extra": 1}', False),
    ("json_equal", None, {"ok": True}, '{"ok": 1}', False),
    ("json_equal", None, {"n": 1}, '{"n": 1.0}', True),
    ("json_equal", None, [1, 2], "[2, 1]", False),
    ("json_equal", None, {"city": "Paris"}, "city: Paris", False),
])
def test_each_check_kind_passes_and_fails(kind, arg, expected, reply, passed):
    result = run_check(Check(kind=kind, arg=arg), reply, expected)

    assert result.passed is passed
    assert result.score == (1.0 if passed else 0.0)
    assert result.detail


@pytest.mark.parametrize("kind, expected, reply, passed, detail", [
    ("contains", "paris", "The capital is Paris.", True, "ignoring case"),
    ("contains", "PARIS", "The capital is Paris.", True, "ignoring case"),
    ("contains", "lyon", "The capital is Paris.", False, "Does not contain"),
    ("exact", "paris", "  Paris\n", True, "ignoring case"),
    ("exact", "Straße", "STRASSE", True, "ignoring case"),  # casefold, not lower
    ("exact", "paris", "Paris, France", False, "Expected"),
])
def test_exact_and_contains_can_ignore_case(kind, expected, reply, passed, detail):
    result = run_check(Check(kind=kind, ignore_case=True), reply, expected)
    assert result.passed is passed and detail in result.detail


def test_a_case_sensitive_contains_says_the_case_is_all_that_differs():
    result = run_check(Check(kind="contains"), "The capital is Paris.", "paris")
    assert not result.passed and "other upper/lower case" in result.detail and "ignore case" in result.detail


def test_ignore_case_is_read_from_a_prompt_set_line_and_refused_where_it_means_nothing():
    rows = parse_prompt_set([json.dumps({"prompt": "Capital of France?", "expected": "paris",
                                         "check": {"kind": "contains", "ignore_case": True}})]).rows
    assert run_check(rows[0].check, "It is Paris.", rows[0].expected).passed
    with pytest.raises(BadPromptSet, match=r"ignore_case applies to the exact and contains checks.*\(\?i\)"):
        parse_prompt_set([json.dumps({"prompt": "Yes?", "expected": "yes", "check": {"kind": "regex", "ignore_case": True}})])


@pytest.mark.parametrize("reply, expected_detail", [
    ('{"city": "paris"}', "$.city: expected \"Paris\", got \"paris\"."),
    ('{"country": "FR"}', "$: missing key 'city'."),
    ('```json\n{"city": "Paris"}\n```', "code fence"),
])
def test_json_failures_say_where(reply, expected_detail):
    assert expected_detail in run_check(Check(kind="json_equal"), reply, {"city": "Paris"}).detail


def test_a_check_without_anything_to_compare_with_fails_saying_so():
    result = run_check(Check(kind="exact"), "Paris", None)

    assert not result.passed and "no expected value" in result.detail


@pytest.mark.parametrize("check", [
    {"kind": "regex", "arg": "(unclosed"},
    {"kind": "contains", "arg": 3},
    {"kind": "json_equal", "arg": "not json"},
    {"kind": "groups", "arg": "no groups here"},
    {"kind": "spelling"},
    {"kind": "exact", "argument": "x"},
])
def test_unusable_checks_are_refused_when_built(check):
    with pytest.raises(ValidationError):
        Check.model_validate(check)


def shuffled_lines():
    return ("Here are my groups:\n"
            "Homophones of letters: Queue, you, ARE, why\n"
            "- Fish: trout, bass, salmon, flounder\n"
            "1. ___ + word: well, ring, fire, beam\n"
            "Ant, Opal, Island, Drill\n")


@pytest.mark.parametrize("reply", [
    json.dumps(PUZZLE),
    json.dumps([list(reversed(g)) for g in reversed(PUZZLE)]),
    json.dumps({"Fish": PUZZLE[0], "Anagrams": PUZZLE[1], "Letters": PUZZLE[2], "___ + word": PUZZLE[3]}),
    "```json\n" + json.dumps([[w.upper() for w in g] for g in PUZZLE[::-1]]) + "\n```",
    shuffled_lines(),
])
def test_groups_in_any_order_and_case_solve_the_puzzle(reply):
    result = run_check(Check(kind="groups"), reply, PUZZLE)

    assert (result.passed, result.score) == (True, 1.0)
    assert "all 4 groups right" in result.detail


def test_groups_counts_the_groups_right_when_the_puzzle_is_not_solved():
    reply = [PUZZLE[1][::-1], PUZZLE[0], ["are", "why", "you", "beam"], ["queue", "fire", "ring", "well"]]

    result = run_check(Check(kind="groups"), json.dumps(reply), PUZZLE)

    assert (result.passed, result.score) == (False, 0.5)
    assert result.detail == "2 of 4 groups right."


def test_extra_or_missing_groups_cost_score_and_the_whole_puzzle():
    extra = run_check(Check(kind="groups"), json.dumps(PUZZLE + [["spare", "words"]]), PUZZLE)
    missing = run_check(Check(kind="groups"), json.dumps(PUZZLE[:3]), PUZZLE)

    assert (extra.passed, extra.score) == (False, 0.8)
    assert "5 groups given" in extra.detail
    assert (missing.passed, missing.score) == (False, 0.75)


def test_expected_groups_may_be_written_as_text():
    expected = "\n".join(", ".join(g) for g in PUZZLE)

    assert run_check(Check(kind="groups"), shuffled_lines(), expected).passed
    assert parse_groups(expected) == {frozenset(g) for g in PUZZLE}


# -- prompt sets -----------------------------------------------------------------------------------------

def write_lines(path, lines):
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
                    encoding="utf-8")
    return path


def test_a_prompt_set_is_read_with_ids_checks_and_defaults(tmp_path):
    path = write_lines(tmp_path / "set.jsonl", [
        {"id": "capital", "messages": [{"role": "user", "content": "Capital of France?"}], "expected": "Paris",
         "check": {"kind": "contains"}},
        "",
        {"prompt": "Q: 2+2?\nA:", "expected": "4"},
        {"id": 7, "prompt": "Give JSON", "expected": {"a": 1}},
        {"prompt": "Say anything"},
        {"prompt": "Solve", "expected": PUZZLE, "check": {"kind": "groups"}},
    ])

    rows = load_prompt_set(path).rows

    assert [r.id for r in rows] == ["capital", "3", "7", "5", "6"]
    assert [r.check.kind if r.check else None for r in rows] == ["contains", "exact", "json_equal", None, "groups"]
    assert rows[1].chat_messages()[0].content == "Q: 2+2?\nA:"


def test_bad_lines_are_all_reported_by_number_and_nothing_is_returned(tmp_path):
    path = write_lines(tmp_path / "set.jsonl", [
        {"prompt": "fine"},
        '{"prompt": "cut off',
        {"messages": [{"role": "robot", "content": "hi"}]},
        {"prompt": "a", "messages": [{"role": "user", "content": "b"}]},
        {"prompt": "x", "check": {"kind": "exact"}},
        {"prompt": "x", "check": {"kind": "regex", "arg": "("}},
        {"prompt": "x", "colour": "red"},
        '["not", "an", "object"]',
        {"id": "1", "prompt": "same id as line 1"},
        {"prompt": "also fine"},
    ])

    with pytest.raises(BadPromptSet) as caught:
        load_prompt_set(path)

    problems = caught.value.problems
    assert [p.line for p in problems] == [2, 3, 4, 5, 6, 7, 8, 9]
    assert all(isinstance(p, FileProblem) and p.path == str(path) for p in problems)
    messages = [p.problem for p in problems]
    assert "not valid JSON" in messages[0]
    assert 'exactly one of "messages" or "prompt"' in messages[2]
    assert "needs an \"expected\" value" in messages[3]
    assert "regular expression" in messages[4]
    assert (problems[5].field, messages[5]) == ("colour", "unknown field: remove it or check its spelling.")
    assert "already used on line 1" in messages[7]
    assert "8 bad lines; nothing was run" in str(caught.value)
    assert f"{path}, line 3, field 'messages.0.role'" in str(caught.value)


def test_skip_bad_returns_the_good_rows_and_the_problems(tmp_path):
    path = write_lines(tmp_path / "set.jsonl", [{"prompt": "one"}, "{oops", {"prompt": "three"}])

    prompt_set = load_prompt_set(path, skip_bad=True)

    assert [r.id for r in prompt_set.rows] == ["1", "3"]
    assert [(p.line, p.problem.split(":")[0]) for p in prompt_set.problems] == [(2, "is not valid JSON")]


def test_prompt_sets_are_read_line_by_line():
    def lines():
        yield json.dumps({"prompt": "first"})
        raise AssertionError("read past the first line")

    with pytest.raises(AssertionError):
        parse_prompt_set(lines())
    assert next(iter_prompt_rows(lines())).prompt == "first"


def test_an_unreadable_prompt_set_is_a_file_problem(tmp_path):
    with pytest.raises(FileProblem, match="cannot be read"):
        load_prompt_set(tmp_path / "missing.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(FileProblem, match="not valid UTF-8"):
        load_prompt_set(tmp_path / "latin1.jsonl")
