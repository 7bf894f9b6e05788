import json

import pytest
from sqlite_utils import Database

from playground.core.errors import FileProblem
from playground.core.store import Store
from playground.templates.store import (
    BadKey,
    TemplateExists,
    TemplateFiles,
    VersionNotFound,
    canonical,
    get_version,
    key_for,
    restore,
    save,
    snapshot,
    versions,
)

KEY = "templates/translate.json"


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "playground.db")


@pytest.fixture
def files(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "personas").mkdir()
    return TemplateFiles({"templates": tmp_path / "templates", "personas": tmp_path / "personas"})


def template_text(user: str = "Translate: {{text}}", **fields) -> str:
    return json.dumps({"temperature": 0, **fields, "messages": [{"role": "user", "content": user}]}, indent=2)


def test_the_versions_table_on_a_blank_database(tmp_path):
    Store(tmp_path / "blank.db")
    db = Database(tmp_path / "blank.db")
    assert db["template_versions"].columns_dict == {
        "id": int, "key": str, "version": int, "content": str, "diff": str, "created_at": str}
    assert {(tuple(i.columns), i.unique) for i in db["template_versions"].indexes} >= {(("key", "version"), 1)}


def test_save_twice_keeps_two_versions_with_a_diff(store, files):
    first = save(store, files, KEY, template_text("Translate: {{text}}"))
    second = save(store, files, KEY, template_text("Translate into Welsh: {{text}}"))
    assert (first.version.version, second.version.version) == (1, 2)
    assert first.changed and second.changed
    listed = versions(store, KEY)
    assert [v.version for v in listed] == [2, 1]
    diff = listed[0].diff
    assert f"--- {KEY} v1" in diff and f"+++ {KEY} v2" in diff
    assert '-      "content": "Translate: {{text}}"' in diff
    assert '+      "content": "Translate into Welsh: {{text}}"' in diff
    assert listed[0].changed_lines() == (1, 1)
    assert files.read(KEY) == canonical(template_text("Translate into Welsh: {{text}}"))


def test_restore_brings_back_an_earlier_version_as_the_newest(store, files):
    save(store, files, KEY, template_text("one {{text}}"))
    save(store, files, KEY, template_text("two {{text}}"))
    restored = restore(store, files, KEY, 1)
    assert restored.version.version == 3
    assert json.loads(files.read(KEY))["messages"][0]["content"] == "one {{text}}"
    assert get_version(store, KEY, 3).content == get_version(store, KEY, 1).content
    assert "-      \"content\": \"two {{text}}\"" in get_version(store, KEY, 3).diff


def test_saving_the_same_text_again_adds_no_version(store, files):
    save(store, files, KEY, template_text())
    again = save(store, files, KEY, template_text())
    assert not again.changed and again.version.version == 1
    assert len(versions(store, KEY)) == 1


def test_a_file_found_on_disk_is_kept_as_the_first_version(store, files, tmp_path):
    shipped = '{"messages": [{"role": "user", "content": "shipped {{text}}"}]}'
    (tmp_path / "templates" / "translate.json").write_text(shipped, encoding="utf-8")
    save(store, files, KEY, template_text("mine {{text}}"))
    assert [v.version for v in versions(store, KEY)] == [2, 1]
    assert get_version(store, KEY, 1).content == shipped
    restore(store, files, KEY, 1)
    assert files.read(KEY) == canonical(shipped)


def test_an_edit_made_outside_the_app_is_recorded_before_it_is_overwritten(store, files, tmp_path):
    save(store, files, KEY, template_text("app {{text}}"))
    (tmp_path / "templates" / "translate.json").write_text(template_text("by hand {{text}}"), encoding="utf-8")
    save(store, files, KEY, template_text("app again {{text}}"))
    assert [json.loads(v.content)["messages"][0]["content"] for v in versions(store, KEY)] == [
        "app again {{text}}", "by hand {{text}}", "app {{text}}"]


@pytest.mark.parametrize("text, expected", [
    ("", "is empty"),
    ('{"messages": []}', "has no messages"),
    ('{"messages": [{"role": "robot", "content": "x"}]}', "'system', 'user' or 'assistant'"),
    ('{"messages": [{"role": "user", "content": "x"}],\n "temprature": 1}', "unknown field"),
    ('{"messages": [\n{"role": "user" "content": "x"}]}', "line 2"),
])
def test_a_bad_template_saves_nothing(store, files, text, expected):
    save(store, files, KEY, template_text("good {{text}}"))
    before = files.read(KEY)
    with pytest.raises(FileProblem) as caught:
        save(store, files, KEY, text)
    assert expected in str(caught.value) and KEY in str(caught.value)
    assert files.read(KEY) == before
    assert len(versions(store, KEY)) == 1
    assert [p.name for p in files.folders["templates"].iterdir()] == ["translate.json"]  # no partial file left


def test_a_persona_file_is_checked_as_a_persona(store, files):
    persona = json.dumps({"name": "Sam", "greeting": "Hi!", "messages": [{"role": "system", "content": "Be Sam."}]})
    assert save(store, files, "personas/sam.json", persona).version.version == 1
    with pytest.raises(FileProblem, match="unknown field"):
        save(store, files, "templates/sam.json", persona)
    with pytest.raises(FileProblem, match="name"):
        save(store, files, "personas/nameless.json", template_text())


def test_save_as_refuses_to_overwrite(store, files):
    save(store, files, KEY, template_text())
    with pytest.raises(TemplateExists, match="already exists"):
        save(store, files, KEY, template_text("other {{text}}"), new=True)


@pytest.mark.parametrize("key", ["elsewhere/x.json", "templates/../x.json", "templates/x.txt", "templates/", "x.json",
                                 "templates/.hidden.json"])
def test_keys_outside_the_folders_are_refused(store, files, key):
    with pytest.raises(BadKey):
        save(store, files, key, template_text())


@pytest.mark.parametrize("folder, name, key", [
    ("templates", "mine", "templates/mine.json"),
    ("personas", " mine.json ", "personas/mine.json"),
])
def test_key_for(folder, name, key):
    assert key_for(folder, name) == key


def test_keys_list_both_folders(store, files):
    save(store, files, "personas/sam.json", json.dumps({"name": "Sam", "messages": [{"role": "user", "content": "x"}]}))
    save(store, files, KEY, template_text())
    assert files.keys() == ["templates/translate.json", "personas/sam.json"]


def test_a_missing_version_is_named(store, files):
    save(store, files, KEY, template_text())
    with pytest.raises(VersionNotFound, match="no saved version 7"):
        restore(store, files, KEY, 7)


def test_snapshot_records_the_file_once(store, files, tmp_path):
    (tmp_path / "templates" / "translate.json").write_text(canonical(template_text()), encoding="utf-8")
    first = snapshot(store, files, KEY)
    assert first.version == 1 and snapshot(store, files, KEY).version == 1
    assert len(versions(store, KEY)) == 1


def test_a_non_utf8_file_is_a_problem_naming_it(store, files, tmp_path):
    (tmp_path / "templates" / "latin.json").write_bytes('{"messages": [{"role": "user", "content": "caf\u00e9"}]}'.encode("latin-1"))
    with pytest.raises(FileProblem, match="not valid UTF-8") as caught:
        files.load("templates/latin.json")
    assert "latin.json" in str(caught.value)
