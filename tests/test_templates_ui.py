"""The Templates tab through gradio_client: edit, preview, save, version, restore, run, and generate data."""

import json
import re

import pytest
from gradio_client import Client

from playground.datasets.store import iter_examples

OUTPUTS = ["messages", "raw", "variables", "preview", "summary", "status", "file", "model", "versions", "version",
           "diff", "reply"]
MODEL = "local:gpt-4o-mini"
TRANSLATE = "templates/translate.json"


@pytest.fixture
def project(project_copy):
    return project_copy


@pytest.fixture
def personas_dir(project_copy):
    return project_copy / "personas"


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def table(rows, headers=("variable", "value")) -> dict:
    return {"headers": list(headers), "data": rows}


def call(client, api, *args) -> dict:
    return dict(zip(OUTPUTS, client.predict(*args, api_name=api)))


def open_file(client, key=TRANSLATE) -> dict:
    return call(client, "/template_open", key, MODEL)


def tokens(summary: str) -> int:
    return int(re.search(r"(\d+) prompt tokens", summary).group(1))


def test_opening_a_template_shows_its_messages_json_variables_and_preview(client):
    view = open_file(client)
    assert [row[0] for row in view["messages"]["data"]] == ["system", "user"]
    assert json.loads(view["raw"])["temperature"] == 0.2
    assert view["variables"]["data"] == [["language", "French"], ["text", "The library closes early on Fridays, so "
                                                                          "return your books by noon."]]
    assert "into French." in view["preview"] and "<b>2 · user</b>" in view["preview"]
    assert re.fullmatch(r"\*\*\d+ prompt tokens · \$0\.\d{6} to send to gpt-4o-mini, up to \$0\.\d{6} with a 400-token "
                        r"reply\*\*", view["summary"])
    assert view["model"] == MODEL and view["status"] == ""


def test_editing_a_message_updates_the_json_preview_and_token_count(client):
    before = open_file(client)
    rows = before["messages"]["data"]
    rows[1][1] = "{{text}} Please also explain every idiom you meet along the way, one by one."
    view = call(client, "/template_messages", table(rows, ("role", "content")), TRANSLATE, before["raw"],
                before["variables"], MODEL)
    assert json.loads(view["raw"])["messages"][1]["content"] == rows[1][1]
    assert "explain every idiom" in view["preview"]
    assert tokens(view["summary"]) > tokens(before["summary"])


def test_editing_the_json_updates_the_messages_table(client):
    before = open_file(client)
    data = json.loads(before["raw"])
    data["messages"].insert(1, {"role": "user", "content": "Bonjour"})
    data["messages"].insert(2, {"role": "assistant", "content": "Hello"})
    view = call(client, "/template_json", TRANSLATE, json.dumps(data), before["variables"], MODEL)
    assert [r[1] for r in view["messages"]["data"]][1:3] == ["Bonjour", "Hello"]
    assert view["status"] == ""


def test_malformed_json_says_where_and_changes_nothing_else(client):
    before = open_file(client)
    broken = before["raw"].replace('"temperature": 0.2,', '"temperature": 0.2')
    view = call(client, "/template_json", TRANSLATE, broken, before["variables"], MODEL)
    assert "line 4" in view["status"] and "column 3" in view["status"] and "not valid JSON" in view["status"]
    # The table and preview keep showing the last good version: each gets a bare "no change" update.
    assert all(view[name]["__type__"] == "update" and "value" not in view[name] for name in ("messages", "preview", "raw"))


def test_an_unknown_role_in_the_table_is_refused(client):
    before = open_file(client)
    rows = before["messages"]["data"] + [["robot", "beep"]]
    view = call(client, "/template_messages", table(rows, ("role", "content")), TRANSLATE, before["raw"],
                before["variables"], MODEL)
    assert "Messages row 3: 'robot' is not a role" in view["status"]
    assert view["raw"] == {"__type__": "update"}  # the JSON is left as it was


def test_variables_fill_the_preview_literally_and_unfilled_ones_are_flagged(client):
    before = open_file(client)
    view = call(client, "/template_variables", table([["language", "Welsh"], ["text", "say {{language}}"]]), TRANSLATE,
                before["raw"], MODEL)
    assert "into Welsh." in view["preview"] and "say {{language}}" in view["preview"]
    view = call(client, "/template_variables", table([["language", "Welsh"], ["text", ""]]), TRANSLATE,
                before["raw"], MODEL)
    assert "⚠️ Fill in {{text}}" in view["summary"]


def test_zero_one_few_shot_buttons(client):
    before = open_file(client, "templates/review_sentiment.json")
    args = ("templates/review_sentiment.json", before["raw"], before["variables"], MODEL)
    zero = call(client, "/template_zero", *args)
    assert [r[0] for r in zero["messages"]["data"]] == ["system", "user"]
    one = call(client, "/template_add", "templates/review_sentiment.json", zero["raw"], before["variables"], MODEL)
    assert [r[1] for r in one["messages"]["data"]][1:3] == ["Example input", "Example output"]
    assert tokens(one["summary"]) > tokens(zero["summary"])
    back = call(client, "/template_remove", "templates/review_sentiment.json", one["raw"], before["variables"], MODEL)
    assert back["messages"] == zero["messages"]
    refused = call(client, "/template_remove", "templates/review_sentiment.json", back["raw"], before["variables"], MODEL)
    assert "already zero-shot" in refused["status"]


def test_save_versions_diff_and_restore(client, project, services):
    first = open_file(client)
    edited = first["raw"].replace("careful translator", "meticulous translator")
    saved = call(client, "/template_save", TRANSLATE, edited, first["variables"], MODEL)
    # The shipped text is kept as version 1, the edit is version 2.
    assert "Saved templates/translate.json as version 2" in saved["status"]
    assert [row[0] for row in saved["versions"]["data"]] == [2, 1]
    assert "meticulous" in (project / TRANSLATE).read_text(encoding="utf-8")

    again = call(client, "/template_save", TRANSLATE, saved["raw"], first["variables"], MODEL)
    assert "No changes since version 2" in again["status"]

    diff = call(client, "/template_version", TRANSLATE, 2)["diff"]
    assert "-" in diff and "careful translator" in diff and "+" in diff and "meticulous translator" in diff

    restored = call(client, "/template_restore", TRANSLATE, 1, first["variables"], MODEL)
    assert "Restored version 1 as version 3" in restored["status"]
    assert "careful translator" in restored["raw"] and "careful translator" in restored["preview"]
    assert [row[0] for row in restored["versions"]["data"]] == [3, 2, 1]
    assert "careful translator" in (project / TRANSLATE).read_text(encoding="utf-8")

    reopened = open_file(client)  # a new visit sees the file as saved, and its versions
    assert reopened["raw"] == restored["raw"] and [row[0] for row in reopened["versions"]["data"]] == [3, 2, 1]


def test_a_bad_template_is_not_saved(client, project):
    before = open_file(client)
    original = (project / TRANSLATE).read_text(encoding="utf-8")
    bad = before["raw"].replace('"role": "user"', '"role": "robot"')
    view = call(client, "/template_save", TRANSLATE, bad, before["variables"], MODEL)
    assert "templates/translate.json, line 11, field 'messages.1.role'" in view["status"]
    assert (project / TRANSLATE).read_text(encoding="utf-8") == original
    assert open_file(client)["versions"]["data"] == [["", "", ""]]


def test_save_as_creates_a_new_file_and_refuses_to_overwrite(client, project):
    before = open_file(client)
    view = call(client, "/template_save_as", "templates", "welsh", before["raw"], before["variables"], MODEL)
    assert "Saved templates/welsh.json as version 1" in view["status"]
    assert (project / "templates" / "welsh.json").exists()
    again = call(client, "/template_save_as", "templates", "welsh.json", before["raw"], before["variables"], MODEL)
    assert "templates/welsh.json already exists" in again["status"]
    as_persona = call(client, "/template_save_as", "personas", "welsh", before["raw"], before["variables"], MODEL)
    assert "personas/welsh.json, line 1, field 'name': Field required" in as_persona["status"]
    assert not (project / "personas" / "welsh.json").exists()


def test_saving_a_persona_changes_what_chat_sends(client, services):
    key = "personas/qa_facts.json"
    before = open_file(client, key)
    edited = before["raw"].replace("Keep answers short", "Keep answers very short")
    view = call(client, "/template_save", key, edited, before["variables"], MODEL)
    assert view["status"] == "Saved personas/qa_facts.json as version 2."
    assert "Keep answers very short" in services.personas["Brindlecombe Facts Q&A"].system_prompt


def test_run_streams_the_reply_and_logs_it(client, services, fake_server):
    fake_server.token_delay = 0.01
    before = open_file(client)
    variables = table([["language", "Welsh"], ["text", "good morning to the whole harbour"]])
    job = client.submit(TRANSLATE, before["raw"], variables, MODEL, api_name="/template_run")
    updates = [u if isinstance(u, str) else u[0] for u in job]
    growing = [u for u in updates if u.startswith("Echo")]
    assert len(growing) >= 3
    final = job.result()
    assert final.startswith("Echo: good morning to the whole harbour") and "gpt-4o-mini ·" in final
    [exchange] = services.store.exchanges()
    assert exchange["persona"] == "template:templates/translate.json"
    assert exchange["request"]["messages"][0]["content"].endswith("Answer with the translation only.")
    assert "into Welsh." in exchange["request"]["messages"][0]["content"]
    assert exchange["request"]["temperature"] == 0.2


def test_run_with_an_unfilled_variable_sends_nothing(client, fake_server):
    before = open_file(client)
    reply = client.predict(TRANSLATE, before["raw"], table([["language", "Welsh"], ["text", " "]]), MODEL,
                           api_name="/template_run")
    assert "{{text}}" in reply
    assert not [r for r in fake_server.requests if r["path"].endswith("/chat/completions")]


def test_generate_review_and_add_to_a_dataset(client, services, tmp_path):
    facts = tmp_path / "facts"
    facts.mkdir()
    # The fake model echoes the user message: facts written as JSONL come back as a model's JSONL reply.
    (facts / "harbour.txt").write_text(
        '{"prompt": "When does the harbour open?", "completion": "At six."}\n'
        '{"prompt": "Who owns the harbour?", "completion": "I don\'t know."}\n'
        '{"prompt": "Broken', encoding="utf-8")
    chunks, note = client.predict(str(facts), 400, 0, MODEL, api_name="/generation_chunks")
    assert note.startswith("1 chunk from 1 file") and chunks["data"][0][:3] == ["harbour.txt", 1, 1]

    pairs, status, _ = client.predict(str(facts), 400, 0, "templates/generate_qa.json", MODEL, 3, 2,
                                      api_name="/generation_run")
    assert [row[1:4] for row in pairs["data"]] == [["When does the harbour open?", "At six.", False],
                                                    ["Who owns the harbour?", "I don't know.", True]]
    assert "**2 pairs** (1 \"I don't know\")" in status and "templates/generate_qa.json v1" in status
    assert "harbour.txt#1, reply line" in status and "broken JSON" in status

    pairs["data"][0][0] = False  # leave the first one out
    status, dataset = client.predict(pairs, "harbour-qa", "", api_name="/generation_add")
    assert "Added 1 example to the dataset 'harbour-qa'" in status
    status, _ = client.predict(pairs, "harbour-qa", "", api_name="/generation_add")  # pressed twice
    assert "Nothing added to the dataset 'harbour-qa': it is already in the dataset" in status
    [example] = iter_examples(services.store, "harbour-qa")
    assert example.messages[-1].content == "I don't know."
    assert "template:templates/generate_qa.json@v1" in example.tags and "i-dont-know" in example.tags


def test_generation_errors_are_shown(client, tmp_path):
    pairs, status, _ = client.predict(str(tmp_path / "nowhere"), 400, 0, "templates/generate_qa.json", MODEL, 3, 2,
                                      api_name="/generation_run")
    assert "is not a folder" in status
    status, _ = client.predict(table([], ["add", "prompt", "completion", "I don't know", "chunk"]), "x", "",
                               api_name="/generation_add")
    assert "Generate some pairs first" in status
