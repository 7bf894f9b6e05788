import json
import re
from pathlib import Path

import pytest

from playground.chat.personas import Persona, load_persona, load_personas

ROOT = Path(__file__).resolve().parent.parent
PERSONAS_DIR = ROOT / "personas"
DATASETS_DIR = ROOT / "datasets"
PERSONA_FILES = sorted(PERSONAS_DIR.glob("*.json"))


def shipped() -> dict[str, Persona]:
    personas, problems = load_personas(PERSONAS_DIR)
    assert problems == []
    return personas


def examples(persona: Persona) -> list[list[dict]]:
    lines = (DATASETS_DIR / persona.dataset).read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["messages"] for line in lines if line.strip()]


def replies(persona: Persona) -> list[str]:
    return [m["content"] for example in examples(persona) for m in example if m["role"] == "assistant"]


def the_one(predicate) -> Persona:
    matching = [p for p in shipped().values() if predicate(p)]
    assert len(matching) == 1, [p.name for p in matching]
    return matching[0]


# ---------------------------------------------------------------- the shipped personas


def test_every_shipped_persona_loads_without_problems():
    personas, problems = load_personas(PERSONAS_DIR)
    assert problems == []
    assert len(personas) == len(PERSONA_FILES) >= 6


@pytest.mark.parametrize("path", PERSONA_FILES, ids=lambda p: p.stem)
def test_each_persona_has_a_dataset_of_at_least_30_examples_ending_with_the_assistant(path):
    persona = load_persona(path)
    assert persona.name.strip() and persona.description.strip()
    assert persona.dataset and (DATASETS_DIR / persona.dataset).is_file()
    dialogues = examples(persona)
    assert len(dialogues) >= 30
    for messages in dialogues:
        assert messages[-1]["role"] == "assistant" and messages[-1]["content"].strip()
        assert any(m["role"] == "user" for m in messages)


@pytest.mark.parametrize("path", PERSONA_FILES, ids=lambda p: p.stem)
def test_each_persona_fills_its_own_variables(path):
    persona = load_persona(path)
    assert set(persona.variable_names()) <= set(persona.variables)


def test_persona_names_are_unique():
    names = [load_persona(p).name for p in PERSONA_FILES]
    assert len(names) == len(set(names))


def test_a_persona_with_a_speaker():
    persona = the_one(lambda p: p.speaker)
    assert persona.greeting
    assert all(re.match(r"^[\w .'-]+: ", m.content) for m in persona.seed_messages if m.role == "user")


def test_a_completion_persona_for_a_base_model():
    persona = the_one(lambda p: p.mode == "completion")
    assert persona.stop == ["\n"]
    assert persona.temperature == 0
    assert persona.params.api_kwargs()["stop"] == ["\n"]


def test_a_text_adventure_whose_seed_starts_by_looking_around():
    persona = the_one(lambda p: p.seed_messages and p.seed_messages[0].content == "Look around")
    first, reply = persona.seed_messages[:2]
    assert first.role == "user"
    assert (reply.role, reply.content) == ("assistant", "You are in a room with a table and a door.")


def test_a_json_location_extractor_whose_replies_all_parse():
    persona = the_one(lambda p: "json" in p.tags)
    for reply in replies(persona) + [m.content for m in persona.seed_messages if m.role == "assistant"]:
        assert "locations" in json.loads(reply), reply


def test_a_sentiment_rater_whose_replies_are_a_score_and_a_reason():
    persona = the_one(lambda p: "classification" in p.tags)
    for reply in replies(persona) + [m.content for m in persona.seed_messages if m.role == "assistant"]:
        assert re.match(r"^[1-5]: ", reply), reply
    scores = {reply[0] for reply in replies(persona)}
    assert scores == set("12345")


def test_a_rude_support_agent():
    persona = the_one(lambda p: "customer-support" in p.tags)
    assert "rude" in persona.system_prompt.lower()
    assert persona.greeting


# ---------------------------------------------------------------- loading a folder


def good(name: str, **extra) -> str:
    return json.dumps({"name": name, "messages": [{"role": "system", "content": "Be nice."}], **extra})


def test_one_bad_file_leaves_the_good_ones_and_names_itself(tmp_path):
    (tmp_path / "a.json").write_text(good("Alpha"))
    (tmp_path / "b.json").write_text('{"name": "Broken",')
    (tmp_path / "c.json").write_text(good("Gamma"))
    (tmp_path / "notes.txt").write_text("not a persona")
    personas, problems = load_personas(tmp_path)
    assert sorted(personas) == ["Alpha", "Gamma"]
    assert len(problems) == 1
    assert problems[0].path == str(tmp_path / "b.json")
    assert "b.json" in str(problems[0])


def test_a_duplicate_name_is_reported_and_the_first_kept(tmp_path):
    (tmp_path / "a.json").write_text(good("Same", description="first"))
    (tmp_path / "b.json").write_text(good("Same", description="second"))
    personas, problems = load_personas(tmp_path)
    assert personas["Same"].description == "first"
    assert len(problems) == 1
    assert problems[0].path == str(tmp_path / "b.json") and problems[0].field == "name"
    assert "Same" in str(problems[0])


@pytest.mark.parametrize("content, field", [
    ('{"messages": []}', "name"),
    ('{"name": ""}', "name"),
    ('{"name": "X", "speaker": 3}', "speaker"),
    ('{"name": "X", "greting": "hi"}', "greting"),
])
def test_persona_field_problems(tmp_path, content, field):
    (tmp_path / "p.json").write_text(content)
    personas, problems = load_personas(tmp_path)
    assert personas == {}
    assert [p.field for p in problems] == [field]


# ---------------------------------------------------------------- speaker_prefixed


@pytest.mark.parametrize("speaker, text, expected", [
    ("Tobin", "what's that smell?", "Tobin: what's that smell?"),
    ("Tobin", "Tobin: already prefixed", "Tobin: already prefixed"),
    ("Tobin", "Tobinator here", "Tobin: Tobinator here"),
    ("Tobin", "Dez: is it safe?", "Dez: is it safe?"),                       # another named speaker talks
    ("Tobin", "Mrs. Halvorsen: the hedge!", "Mrs. Halvorsen: the hedge!"),
    ("Tobin", "Quick question: is it safe?", "Tobin: Quick question: is it safe?"),
    ("Tobin", "what: no capital", "Tobin: what: no capital"),
    (None, "hello", "hello"),
    ("", "hello", "hello"),
])
def test_speaker_prefixed(speaker, text, expected):
    assert Persona(name="P", speaker=speaker).speaker_prefixed(text) == expected
