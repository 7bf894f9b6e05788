import json
from pathlib import Path

import pytest

from playground.chat.ask import build_request
from playground.chat.personas import Persona
from playground.core.errors import FileProblem, MissingVariables
from playground.core.messages import Message
from playground.core.pricing import DEFAULT_PRICES
from playground.core.prompts import Template, load_template
from playground.core.tokens import count_messages, count_text
from playground.templates.render import (
    NotPairs,
    add_pair,
    fill_known,
    first_row_of_pair,
    move_pair,
    pair_of,
    parse_template,
    preview,
    remove_last_pair,
    run_inputs,
    shots,
    values_for,
    with_messages,
    zero_shot,
)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def m(role: str, content: str) -> Message:
    return Message(role=role, content=content)


FEW_SHOT = [m("system", "Rate it."), m("user", "great"), m("assistant", "5"), m("user", "awful"), m("assistant", "1"),
            m("user", "{{review}}")]


def template(*messages: Message, **fields) -> Template:
    return Template(messages=[x.model_dump() for x in messages], **fields)


# ---------------------------------------------------------------- shipped examples


SHIPPED = {
    "translate.json": ("chat", 0, ["language", "text"]),
    "rewrite_style.json": ("chat", 1, ["style", "text"]),
    "facts_xml.json": ("chat", 1, ["text"]),
    "review_sentiment.json": ("chat", 4, ["review"]),
    "text_adventure.json": ("chat", 3, ["setting", "command"]),
    "qa_completion.json": ("completion", 1, ["question"]),
    "generate_qa.json": ("chat", 1, ["facts", "n"]),
}


@pytest.mark.parametrize("name, expected", SHIPPED.items())
def test_shipped_templates_load_with_their_shots_and_variables(name, expected):
    loaded = load_template(TEMPLATES / name)
    mode, pairs, variables = expected
    assert (loaded.mode, len(shots(loaded.messages).pairs), loaded.variable_names()) == (mode, pairs, variables)
    assert loaded.messages[-1].role == "user"


def test_the_completion_example_stops_at_a_newline_at_temperature_zero():
    loaded = load_template(TEMPLATES / "qa_completion.json")
    assert (loaded.stop, loaded.temperature) == (["\n"], 0)
    shown = preview(loaded, values_for(loaded), "davinci-002", DEFAULT_PRICES)
    assert shown.prompt.endswith("Q: How big is the main telescope?\nA:")
    assert shown.total == count_text(shown.prompt, "davinci-002")


def test_the_generation_template_asks_for_i_dont_know_pairs():
    loaded = load_template(TEMPLATES / "generate_qa.json")
    assert "I don't know." in loaded.system_prompt
    example_reply = shots(loaded.messages).pairs[0][1].content
    assert [json.loads(line)["completion"] for line in example_reply.splitlines()][-1] == "I don't know."


# ---------------------------------------------------------------- parse_template


@pytest.mark.parametrize("text, expected", [
    ("", "is empty"),
    ("   \n", "is empty"),
    ('{"messages": []}', "has no messages"),
    ("{}", "has no messages"),
    ('{"messages": [{"role": "robot", "content": "hi"}]}', "'system', 'user' or 'assistant'"),
    ('{"messages": [\n  {"role": "user", "content": "hi"\n]}', "not valid JSON"),
])
def test_bad_editor_text_is_a_problem_saying_where(text, expected):
    with pytest.raises(FileProblem) as caught:
        parse_template(text, "templates/t.json")
    assert expected in str(caught.value) and "templates/t.json" in str(caught.value)


def test_malformed_json_gives_line_and_column():
    with pytest.raises(FileProblem) as caught:
        parse_template('{"messages": [\n  {"role": "user", "content": "hi"\n]}', "t.json")
    assert caught.value.line == 3 and "column 1" in str(caught.value)


def test_with_messages_keeps_the_other_fields_in_their_order():
    text = json.dumps({"temperature": 0, "model": "gpt-4o", "messages": [{"role": "user", "content": "a"}],
                       "variables": {"x": "1"}}, indent=2)
    updated = json.loads(with_messages(text, [m("user", "b {{x}}")], "t.json"))
    assert list(updated) == ["temperature", "model", "messages", "variables"]
    assert updated["messages"] == [{"role": "user", "content": "b {{x}}"}]


# ---------------------------------------------------------------- preview


def test_preview_counts_each_message_and_the_total_and_prices_it():
    t = template(m("system", "Translate into {{language}}."), m("user", "{{text}}"), max_tokens=100)
    shown = preview(t, {"language": "French", "text": "Good morning"}, "gpt-4o-mini", DEFAULT_PRICES)
    assert [x.content for x in shown.messages] == ["Translate into French.", "Good morning"]
    assert shown.total == count_messages(shown.messages, "gpt-4o-mini") == sum(shown.tokens) + 3
    assert shown.input_cost == pytest.approx(shown.total * 0.15 / 1e6)
    assert shown.max_cost == pytest.approx((shown.total * 0.15 + 100 * 0.60) / 1e6)
    assert shown.missing == [] and shown.exact
    assert f"{shown.total} prompt tokens" in shown.summary()


def test_preview_leaves_unfilled_variables_showing_and_lists_them():
    shown = preview(template(m("user", "{{a}} and {{b}}")), {"a": "x", "b": "  "}, "gpt-4o-mini", DEFAULT_PRICES)
    assert shown.messages[0].content == "x and {{b}}"
    assert shown.missing == ["b"]


def test_preview_of_an_unknown_model_is_an_estimate_without_a_price():
    shown = preview(template(m("user", "hi")), {}, "llama3.2", DEFAULT_PRICES)
    assert not shown.exact and shown.input_cost is None
    assert "no price set for llama3.2" in shown.summary()


@pytest.mark.parametrize("values, expected", [
    ({"x": "{{y}}", "y": "never"}, "{{y}}"),
    ({"x": "{{ x }}"}, "{{ x }}"),
    ({"x": r"\1 \g<0>"}, r"\1 \g<0>"),
])
def test_values_are_inserted_literally(values, expected):
    assert fill_known("{{x}}", values) == expected
    assert preview(template(m("user", "{{x}}")), values, "gpt-4o-mini", DEFAULT_PRICES).messages[0].content == expected


def test_entered_values_override_defaults_and_an_emptied_one_is_unfilled():
    t = template(m("user", "{{a}} {{b}}"), variables={"a": "A", "b": "B"})
    assert values_for(t, {"b": "bee"}) == {"a": "A", "b": "bee"}
    assert preview(t, values_for(t, {"a": ""}), "gpt-4o-mini", DEFAULT_PRICES).missing == ["a"]


# ---------------------------------------------------------------- Run


def test_run_sends_exactly_the_previewed_messages():
    t = template(*FEW_SHOT, temperature=0, max_tokens=3)
    values = {"review": "fine {{not_a_value}}"}
    persona, settings, conversation = run_inputs(t, "template:templates/s.json", values, "local:gpt-4o-mini")
    request = build_request(persona, settings, conversation)
    assert request.messages == preview(t, values, "gpt-4o-mini", DEFAULT_PRICES).messages
    assert (settings.params.temperature, settings.params.max_tokens) == (0, 3)
    assert persona.name == "template:templates/s.json"


def test_run_of_a_persona_keeps_its_name_and_drops_the_speaker_prefix():
    persona_file = Persona(name="Brack", speaker="Tobin", messages=[{"role": "user", "content": "hello"}])
    persona, _, conversation = run_inputs(persona_file, "ignored", {}, "x")
    assert persona.name == "Brack" and persona.speaker is None
    assert conversation.turns[0].content == "hello"


def test_run_names_every_unfilled_variable():
    with pytest.raises(MissingVariables) as caught:
        run_inputs(template(m("system", "{{a}}"), m("user", "{{b}}")), "t", {}, "x")
    assert caught.value.names == ["a", "b"]


def test_run_needs_a_final_user_message():
    with pytest.raises(Exception, match="last message must be a user message"):
        run_inputs(template(m("user", "a"), m("assistant", "b")), "t", {}, "x")


# ---------------------------------------------------------------- example pairs


def contents(messages):
    return [x.content for x in messages]


def test_zero_shot_keeps_the_system_prompt_and_the_final_message():
    assert contents(zero_shot(FEW_SHOT)) == ["Rate it.", "{{review}}"]


def test_add_pair_goes_before_the_final_message_and_remove_takes_the_last():
    added = add_pair(FEW_SHOT)
    assert [x.role for x in added[-3:]] == ["user", "assistant", "user"]
    assert contents(added[-3:]) == ["Example input", "Example output", "{{review}}"]
    assert remove_last_pair(added) == FEW_SHOT
    assert contents(remove_last_pair(FEW_SHOT)) == ["Rate it.", "great", "5", "{{review}}"]


def test_zero_one_few_shot_in_clicks():
    zero = zero_shot(FEW_SHOT)
    one = add_pair(zero)
    few = add_pair(add_pair(one))
    assert [len(shots(x).pairs) for x in (zero, one, few)] == [0, 1, 3]


def test_remove_from_a_zero_shot_template_is_refused():
    with pytest.raises(NotPairs, match="already zero-shot"):
        remove_last_pair(zero_shot(FEW_SHOT))


@pytest.mark.parametrize("row, offset, order, new_pair", [
    (3, -1, ["awful", "1", "great", "5"], 0),
    (4, -1, ["awful", "1", "great", "5"], 0),
    (1, +1, ["awful", "1", "great", "5"], 1),
    (1, -1, ["great", "5", "awful", "1"], 0),  # already first: stays
    (3, +1, ["great", "5", "awful", "1"], 1),  # already last: stays
])
def test_move_pair(row, offset, order, new_pair):
    moved, target = move_pair(FEW_SHOT, pair_of(FEW_SHOT, row), offset)
    assert contents(moved[1:5]) == order and target == new_pair
    assert first_row_of_pair(moved, target) == 1 + 2 * new_pair


@pytest.mark.parametrize("row, pair", [(0, None), (1, 0), (2, 0), (3, 1), (5, None)])
def test_pair_of_a_row(row, pair):
    assert pair_of(FEW_SHOT, row) == pair


def test_messages_that_are_not_pairs_are_named():
    with pytest.raises(NotPairs, match="Message 2"):
        shots([m("system", "s"), m("assistant", "hello"), m("user", "hi")])
