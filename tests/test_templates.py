import json
from pathlib import Path

import pytest

from playground.core.errors import FileProblem, MissingVariables
from playground.core.messages import Message
from playground.core.params import SamplingParams
from playground.core.prompts import (
    PromptFormat,
    Template,
    fill,
    fill_messages,
    load_template,
    parse_model_file,
    render_prompt,
    variables_in,
)


def write(tmp_path: Path, text: str | bytes, name: str = "template.json") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def problem_for(path: Path) -> FileProblem:
    with pytest.raises(FileProblem) as caught:
        parse_model_file(path, Template)
    return caught.value


def line_of(path: Path, line: int) -> str:
    return path.read_text(encoding="utf-8").splitlines()[line - 1]


# ---------------------------------------------------------------- fill


@pytest.mark.parametrize("text, values, expected", [
    ("Hello {{name}}", {"name": "Ada"}, "Hello Ada"),
    ("Hello {{ name }}!", {"name": "Ada"}, "Hello Ada!"),
    ("{{a}}{{b}}{{a}}", {"a": "1", "b": "2"}, "121"),
    ("no variables", {}, "no variables"),
    ("{{x}}", {"x": "{{y}}", "y": "SHOULD NOT APPEAR"}, "{{y}}"),
    ("{{x}} and {{y}}", {"x": "{{y}}", "y": "why"}, "{{y}} and why"),
    ("{{x}}", {"x": "  padded  "}, "  padded  "),
    ("path: {{p}}", {"p": r"C:\new\1 \g<0>"}, r"path: C:\new\1 \g<0>"),
    ("{{not a var}} {{x}}", {"x": "1"}, "{{not a var}} 1"),
])
def test_fill(text, values, expected):
    assert fill(text, values) == expected


@pytest.mark.parametrize("text, values, missing", [
    ("{{a}} {{b}} {{c}}", {"b": "2"}, ["a", "c"]),
    ("{{a}} {{b}}", {"a": "", "b": "   "}, ["a", "b"]),
    ("{{ a }} {{a}}", {}, ["a"]),
    ("{{b}} then {{a}}", {"a": "\n"}, ["b", "a"]),
])
def test_fill_lists_every_unfilled_variable(text, values, missing):
    with pytest.raises(MissingVariables) as caught:
        fill(text, values)
    assert caught.value.names == missing
    for name in missing:
        assert "{{" + name + "}}" in str(caught.value)


def test_fill_messages_reports_variables_across_all_messages_and_keeps_roles():
    messages = [Message(role="system", content="You work at {{company}}."),
                Message(role="user", content="Hi {{agent}}"),
                Message(role="assistant", content="Hello from {{company}}")]
    with pytest.raises(MissingVariables) as caught:
        fill_messages(messages, {})
    assert caught.value.names == ["company", "agent"]
    filled = fill_messages(messages, {"company": "Kettlebloom", "agent": "Sam"})
    assert [(m.role, m.content) for m in filled] == [
        ("system", "You work at Kettlebloom."), ("user", "Hi Sam"), ("assistant", "Hello from Kettlebloom")]


@pytest.mark.parametrize("texts, names", [
    (["{{b}} {{a}} {{b}}"], ["b", "a"]),
    (["{{ b }}", "{{a}}{{b}}"], ["b", "a"]),
    (["{{  spaced_1  }}"], ["spaced_1"]),
    (["{{1bad}} {{with-dash}} {x} {{}}"], []),
    ([], []),
])
def test_variables_in_order_of_first_appearance(texts, names):
    assert variables_in(*texts) == names


# ---------------------------------------------------------------- render_prompt

QA_MESSAGES = [
    Message(role="system", content="Answer briefly."),
    Message(role="user", content="When was it founded?"),
    Message(role="assistant", content="In 1794."),
    Message(role="user", content="Who is mayor?"),
]


def test_render_prompt_for_a_completion_model():
    prompt = render_prompt(QA_MESSAGES, PromptFormat())
    assert prompt == "Answer briefly.\nQ: When was it founded?\nA: In 1794.\nQ: Who is mayor?\nA:"


@pytest.mark.parametrize("fmt, expected", [
    (PromptFormat(assistant_prefix="A: "), "Q: hi\nA: hello\nA: "),
    (PromptFormat(user_prefix="User: ", assistant_prefix="Bot:", separator="\n\n"), "User: hi\n\nBot: hello\n\nBot:"),
    (PromptFormat(assistant_prefix="A:\n"), "Q: hi\nA:\nhello\nA:\n"),
])
def test_render_prompt_puts_one_space_after_the_assistant_prefix(fmt, expected):
    messages = [Message(role="user", content="hi"), Message(role="assistant", content="hello")]
    assert render_prompt(messages, fmt) == expected


# ---------------------------------------------------------------- Template properties


def test_template_params_system_prompt_and_seed_messages():
    template = Template(temperature=0, stop=["\n"], max_tokens=64, model="davinci-002", mode="completion",
                        messages=[m.model_dump() for m in QA_MESSAGES])
    assert template.params == SamplingParams(temperature=0, stop=["\n"], max_tokens=64)
    assert template.params.api_kwargs()["stop"] == ["\n"]
    assert template.system_prompt == "Answer briefly."
    assert template.seed_messages == QA_MESSAGES[1:]


@pytest.mark.parametrize("messages, system, seeds", [
    ([], "", []),
    ([{"role": "user", "content": "hi"}], "", [("user", "hi")]),
    ([{"role": "system", "content": ""}, {"role": "user", "content": "hi"}], "", [("user", "hi")]),
    ([{"role": "user", "content": "hi"}, {"role": "system", "content": "late"}], "", [("user", "hi"), ("system", "late")]),
])
def test_seed_messages_never_repeat_the_system_prompt(messages, system, seeds):
    template = Template(messages=messages)
    assert template.system_prompt == system
    assert [(m.role, m.content) for m in template.seed_messages] == seeds


def test_variable_names_of_a_template():
    template = Template(messages=[{"role": "system", "content": "At {{company}}"},
                                  {"role": "user", "content": "{{ who }} at {{company}}"}])
    assert template.variable_names() == ["company", "who"]


# ---------------------------------------------------------------- parse_model_file


def test_a_good_file_loads(tmp_path):
    path = write(tmp_path, json.dumps({"temperature": 0.2, "messages": [{"role": "user", "content": "hi {{x}}"}],
                                       "variables": {"x": "1"}}))
    template = load_template(path)
    assert template.temperature == 0.2
    assert template.variables == {"x": "1"}


def test_a_utf8_file_with_a_bom_loads(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + json.dumps({"messages": [{"role": "user", "content": "Caf\u00e9"}]}).encode())
    assert load_template(path).messages[0].content == "Caf\u00e9"


def test_bad_json_names_the_file_and_line(tmp_path):
    path = write(tmp_path, '{\n  "temperature": 0.5,\n  "max_tokens": 10,,\n  "mode": "chat"\n}')
    problem = problem_for(path)
    assert problem.path == str(path)
    assert problem.line == 3
    assert str(path) in str(problem) and "line 3" in str(problem) and "not valid JSON" in str(problem)


def test_an_unknown_field_is_named_with_its_line(tmp_path):
    path = write(tmp_path, json.dumps({"temperature": 0.5, "temprature": 0.9, "messages": []}, indent=2))
    problem = problem_for(path)
    assert problem.field == "temprature"
    assert '"temprature"' in line_of(path, problem.line)
    assert "'temprature'" in str(problem) and "unknown field" in str(problem) and str(path) in str(problem)


def test_an_unknown_field_in_a_later_message_points_at_that_message(tmp_path):
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                {"role": "user", "content": "c", "speaker": "Tobin"}]
    path = write(tmp_path, json.dumps({"messages": messages}, indent=2))
    problem = problem_for(path)
    assert problem.field == "messages.2.speaker"
    assert '"speaker": "Tobin"' in line_of(path, problem.line)


def test_a_wrong_type_is_named_with_its_line(tmp_path):
    path = write(tmp_path, json.dumps({"model": "gpt-4o-mini", "temperature": "warm", "max_tokens": 5}, indent=2))
    problem = problem_for(path)
    assert problem.field == "temperature"
    assert '"temperature": "warm"' in line_of(path, problem.line)
    assert "valid number" in problem.problem


def test_an_out_of_range_param_is_refused(tmp_path):
    problem = problem_for(write(tmp_path, json.dumps({"temperature": 3})))
    assert problem.field == "temperature" and "less than or equal to 2" in problem.problem


def test_an_unknown_role_points_at_the_message_that_has_it(tmp_path):
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b"}, {"role": "robot", "content": "c"}]
    path = write(tmp_path, json.dumps({"messages": messages}, indent=2))
    problem = problem_for(path)
    assert problem.field == "messages.3.role"
    assert '"role": "robot"' in line_of(path, problem.line)
    assert "'system', 'user' or 'assistant'" in problem.problem


def test_a_missing_field_points_at_its_message(tmp_path):
    path = write(tmp_path, '{"messages": [\n  {"role": "user", "content": "a"},\n  {"role": "assistant"}\n]}')
    problem = problem_for(path)
    assert problem.field == "messages.1.content"
    assert problem.line == 3


def test_a_non_utf8_file_is_a_problem_naming_the_file(tmp_path):
    path = write(tmp_path, '{"messages": [{"role": "user", "content": "caf\u00e9"}]}'.encode("latin-1"))
    problem = problem_for(path)
    assert problem.path == str(path)
    assert "UTF-8" in str(problem)


@pytest.mark.parametrize("text", ['[{"role": "user", "content": "hi"}]', '"just a string"', "42", "null"])
def test_top_level_must_be_an_object(tmp_path, text):
    path = write(tmp_path, text)
    problem = problem_for(path)
    assert problem.path == str(path)
    assert "JSON object" in problem.problem


def test_a_missing_file_is_a_problem(tmp_path):
    problem = problem_for(tmp_path / "nope.json")
    assert "cannot be read" in str(problem) and "nope.json" in str(problem)
