import json

import pytest

from playground.core.store import Store
from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.stats import example_tokens
from playground.datasets.store import (
    DatasetExists,
    DatasetNotFound,
    ExampleNotFound,
    InvalidExample,
    InvalidName,
    add_examples,
    add_new_examples,
    create_dataset,
    delete_dataset,
    delete_examples,
    get_dataset,
    get_example,
    import_file,
    iter_examples,
    list_datasets,
    load_dataset,
    rename_dataset,
    undo_delete,
    update_example,
)


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "playground.db")


def chat(user: str, answer: str, **fields) -> Example:
    return Example(messages=[TrainingMessage(role="system", content="Be brief."),
                             TrainingMessage(role="user", content=user),
                             TrainingMessage(role="assistant", content=answer)], **fields)


def filled(store: Store, name: str = "brindlecombe", n: int = 3) -> list[int]:
    create_dataset(store, name, "Questions about a town")
    return add_examples(store, name, [chat(f"Question {i}?", f"Answer {i}.") for i in range(n)])


def test_migration_creates_the_dataset_tables_with_these_columns(store):
    with store.db() as db:
        assert {c.name: c.type for c in db["datasets"].columns} == {
            "id": "INTEGER", "name": "TEXT", "description": "TEXT", "created_at": "TEXT"}
        assert {c.name: c.type for c in db["examples"].columns} == {
            "id": "INTEGER", "dataset_id": "INTEGER", "messages": "TEXT", "chosen": "TEXT", "rejected": "TEXT",
            "tags": "TEXT", "excluded": "INTEGER", "source": "TEXT", "tokens": "INTEGER", "created_at": "TEXT",
            "updated_at": "TEXT", "deleted_at": "TEXT"}
        assert [fk.other_table for fk in db["examples"].foreign_keys] == ["datasets"]
        assert "m002_datasets" in {row["name"] for row in db["_sqlite_migrations"].rows}


def test_opening_the_store_again_keeps_the_data(store, tmp_path):
    filled(store)
    assert get_dataset(Store(tmp_path / "playground.db"), "brindlecombe").examples == 3


def test_list_shows_counts_and_token_totals(store):
    ids = filled(store, n=3)
    create_dataset(store, "empty")
    update_example(store, ids[0], excluded=True)
    first, second = list_datasets(store)
    assert (first.name, first.examples, first.excluded, first.description) == ("brindlecombe", 2, 1, "Questions about a town")
    assert first.tokens == sum(example_tokens(chat(f"Question {i}?", f"Answer {i}."), "gpt-4o-mini") for i in (1, 2))
    assert (second.name, second.examples, second.tokens) == ("empty", 0, 0)


@pytest.mark.parametrize("name", ["", "   ", "two\nlines", "x" * 101])
def test_a_bad_dataset_name_is_refused(store, name):
    with pytest.raises(InvalidName):
        create_dataset(store, name)


def test_names_are_unique(store):
    create_dataset(store, "brindlecombe")
    with pytest.raises(DatasetExists):
        create_dataset(store, " brindlecombe ")
    create_dataset(store, "other")
    with pytest.raises(DatasetExists):
        rename_dataset(store, "other", "brindlecombe")


def test_rename_and_delete_a_dataset(store):
    filled(store)
    assert rename_dataset(store, "brindlecombe", "town").examples == 3
    with pytest.raises(DatasetNotFound):
        get_dataset(store, "brindlecombe")
    assert delete_dataset(store, "town") == 3
    assert list_datasets(store) == []
    with store.db() as db:
        assert db["examples"].count == 0


def test_examples_come_back_as_they_went_in(store):
    create_dataset(store, "prefs")
    example = Example(
        messages=[TrainingMessage(role="user", content="Colour of the sea? 🌊")], chosen="Teal.", rejected="Wet.",
        tags=["colour", "short"], source={"exchange_ids": [4, 5], "persona": "Brack", "model": "gpt-4o-mini"},
        created_at="2025-01-02T03:04:05.000+00:00")
    [example_id] = add_examples(store, "prefs", [example])
    assert get_example(store, example_id) == example.model_copy(update={"id": example_id})
    with store.db() as db:
        row = db["examples"].get(example_id)
    assert json.loads(row["source"]) == {"exchange_ids": [4, 5], "persona": "Brack", "model": "gpt-4o-mini"}


def test_adding_examples_is_all_or_nothing(store):
    create_dataset(store, "town")

    def examples():
        yield chat("One?", "1.")
        yield chat("Two?", "2.")
        raise RuntimeError("the source broke off")

    with pytest.raises(RuntimeError):
        add_examples(store, "town", examples())
    assert get_dataset(store, "town").examples == 0


def test_adding_what_the_dataset_already_holds_adds_nothing_and_says_so(store):
    create_dataset(store, "town")
    first = add_new_examples(store, "town", [chat("One?", "1."), chat("Two?", "2.")])
    assert (len(first.added), first.already) == (2, 0)
    assert first.summary() == "Added 2 examples to 'town'"

    # The same content with other tags, source and time is the same example; a copy within one add counts once.
    again = add_new_examples(store, "town", [
        chat("One?", "1.", tags=["again"], source={"persona": "Brack"}, created_at="2020-01-01T00:00:00.000+00:00"),
        chat("Three?", "3."), chat("Three?", "3.")])
    assert (len(again.added), again.already) == (1, 2)
    assert again.summary("**town**") == "Added 1 example to **town**; 2 examples already in the dataset"
    assert [e.messages[1].content for e in iter_examples(store, "town")] == ["One?", "Two?", "Three?"]

    nothing = add_new_examples(store, "town", [chat("Two?", "2.")])
    assert nothing.added == [] and nothing.summary() == "Nothing added to 'town': it is already in the dataset"
    assert get_dataset(store, "town").examples == 3


def test_content_decides_sameness_and_deleted_examples_do_not_count(store):
    create_dataset(store, "prefs")
    prompt = [TrainingMessage(role="user", content="Colour of the sea?")]
    [pair_id] = add_new_examples(store, "prefs", [Example(messages=prompt, chosen="Teal.", rejected="Wet.")]).added
    swapped = add_new_examples(store, "prefs", [Example(messages=prompt, chosen="Wet.", rejected="Teal.")])
    assert len(swapped.added) == 1  # another preference, not a copy
    excluded = add_new_examples(store, "prefs", [chat("A?", "a.", excluded=True)])
    assert add_new_examples(store, "prefs", [chat("A?", "a.")]).already == 1  # excluded is still held
    delete_examples(store, [pair_id, *excluded.added])
    back = add_new_examples(store, "prefs", [Example(messages=prompt, chosen="Teal.", rejected="Wet."), chat("A?", "a.")])
    assert len(back.added) == 2


def test_update_edits_messages_tags_and_the_excluded_flag(store):
    first, *_ = filled(store)
    updated = update_example(store, first, messages=[
        TrainingMessage(role="user", content="Who founded the town?"),
        {"role": "assistant", "content": "Adelaide Crouch.", "weight": 1}], tags=["founding"])
    assert get_example(store, first) == updated
    assert [m.content for m in updated.messages] == ["Who founded the town?", "Adelaide Crouch."]
    update_example(store, first, excluded=True)
    assert first not in [e.id for e in iter_examples(store, "brindlecombe", include_excluded=False)]
    assert get_example(store, first).tags == ["founding"]


@pytest.mark.parametrize("changes,fragment", [
    ({"messages": [{"role": "user", "content": "No reply?"}]}, "assistant turn"),
    ({"messages": [{"role": "user", "content": "Hi", "weight": 0}, {"role": "assistant", "content": "x"}]}, "weight"),
    ({"chosen": "Only one side."}, "both"),
    ({"colour": "blue"}, "colour"),
    ({"id": 5}, "id"),
])
def test_an_invalid_update_changes_nothing(store, changes, fragment):
    first, *_ = filled(store)
    before = get_example(store, first)
    with pytest.raises(InvalidExample, match=fragment):
        update_example(store, first, **changes)
    assert get_example(store, first) == before


def test_delete_can_be_undone(store):
    ids = filled(store, n=4)
    deleted = delete_examples(store, [ids[1], ids[2], 999])
    assert deleted == [ids[1], ids[2]]
    assert [e.id for e in iter_examples(store, "brindlecombe")] == [ids[0], ids[3]]
    assert get_dataset(store, "brindlecombe").examples == 2
    with pytest.raises(ExampleNotFound):
        get_example(store, ids[1])
    assert undo_delete(store, deleted) == 2
    assert [e.id for e in iter_examples(store, "brindlecombe")] == ids
    assert undo_delete(store, deleted) == 0


def test_examples_are_streamed_in_the_order_they_were_added(store):
    ids = filled(store, n=5)
    stream = iter_examples(store, "brindlecombe")
    assert next(stream).id == ids[0]
    assert [e.id for e in stream] == ids[1:]
    assert [e.id for e in load_dataset(store, "brindlecombe").examples] == ids


def test_an_unknown_dataset_is_a_domain_error(store):
    with pytest.raises(DatasetNotFound, match="no dataset named 'nope'"):
        list(iter_examples(store, "nope"))
    with pytest.raises(DatasetNotFound):
        add_examples(store, "nope", [chat("a", "b")])


def test_import_records_where_each_example_came_from(store, tmp_path):
    path = tmp_path / "town.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"Q{i}", "completion": f"A{i}"}) for i in range(3)) + "\n")
    report = import_file(store, path, "town", description="legacy")
    assert (report.imported, report.formats) == (3, {"openai-completion": 3})
    assert [(e.source.file, e.source.line) for e in iter_examples(store, "town")] == [(str(path), n) for n in (1, 2, 3)]
    assert get_dataset(store, "town").description == "legacy"


def test_importing_into_an_existing_name_is_refused_and_changes_nothing(store, tmp_path):
    filled(store)
    path = tmp_path / "town.jsonl"
    path.write_text(json.dumps({"prompt": "Q", "completion": "A"}) + "\n")
    with pytest.raises(DatasetExists):
        import_file(store, path, "brindlecombe")
    assert get_dataset(store, "brindlecombe").examples == 3
