"""'Add to dataset', the Datasets tab and log review through the app's API, as gradio_client sees them."""

import json
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from playground.datasets.examples import Example, TrainingMessage
from playground.datasets.store import add_examples, create_dataset, get_dataset, iter_examples
from tests.test_ui_api import send_args

BRACK = "Professor Ignatia Brack"
LAB = {"headers": ["variable", "value"], "data": [["lab_name", "the Silo on Gorse Lane"]]}
MODEL = "local:gpt-4o-mini"
# persona, model, system prompt (left as the persona's), variables, speaker: the chat settings the panel reads
OPTIONS = {"upto": -1, "system": "deploy", "custom": "", "seeds": False, "speaker": True, "weight": True,
           "greeting": True, "turn": None, "text": ""}


def chat_with_brack(client: Client, services, *texts: str) -> None:
    persona = services.personas[BRACK]
    for text in texts:
        client.predict(*send_args(text, persona=BRACK, system_prompt=persona.system_prompt, variables=LAB),
                       api_name="/send")


def panel_args(services, **changes) -> list:
    o = {**OPTIONS, **changes}
    # "Speaking as" left empty: an API session never filled it for this persona, so Brack's own speaker stands.
    return [BRACK, MODEL, services.personas[BRACK].system_prompt, LAB, "", o["upto"], o["system"], o["custom"], o["seeds"],
            o["speaker"], o["weight"], o["greeting"], o["turn"], o["text"]]


def add(client, services, dataset="", new="", **changes) -> str:
    notice, *_ = client.predict(dataset, new, *panel_args(services, **changes), api_name="/add_to_dataset")
    return notice


def rows(table: dict) -> list[list]:
    return [r for r in table["data"] if r and r[0] not in ("", None)]


def example_line(user: str, answer: str, system: str = "Answer about Brindlecombe in a few words.") -> str:
    return json.dumps({"messages": [{"role": "system", "content": system}, {"role": "user", "content": user},
                                    {"role": "assistant", "content": answer}]})


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def test_add_to_dataset_replaces_the_system_prompt_with_the_deploy_prompt(client, services):
    persona = services.personas[BRACK]
    chat_with_brack(client, services, "What's that smell?", "And that bang?")

    preview, summary = client.predict(*panel_args(services), api_name="/preview_example")
    shown = json.loads(preview)
    assert shown["messages"][0] == {"role": "system", "content": persona.deploy_prompt}
    # An API session's chat starts without the greeting a browser shows when the persona is picked.
    assert shown["messages"][1] == {"role": "user", "content": "Tobin: What's that smell?"}
    assert "5 messages" in summary

    notice = add(client, services, new="brack lines")
    assert "Saved as example" in notice and "brack lines" in notice
    notice = add(client, services, dataset="brack lines")  # Save pressed again
    assert "Not saved: this example is already in the dataset **brack lines**" in notice

    [example] = iter_examples(services.store, "brack lines")
    assert example.messages[0].content == persona.deploy_prompt
    assert [m.role for m in example.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert example.messages[-1].content == "Echo: Tobin: And that bang?"
    logged = [e["id"] for e in reversed(services.store.exchanges())]
    assert (example.source.exchange_ids, example.source.persona, example.source.model) == (logged, BRACK, MODEL)


def test_add_up_to_a_reply_with_a_correction_and_no_system_prompt(client, services):
    chat_with_brack(client, services, "What's that smell?", "And that bang?")

    add(client, services, new="fixed", upto=1, system="none", turn=1, text="Progress, Tobin. Open a window.")

    [example] = iter_examples(services.store, "fixed")
    assert [(m.role, m.content) for m in example.messages] == [
        ("user", "Tobin: What's that smell?"), ("assistant", "Progress, Tobin. Open a window.")]


def test_add_to_dataset_says_what_is_missing(client, services):
    assert "no reply to add yet" in add(client, services, new="empty")
    chat_with_brack(client, services, "Hello?")
    assert "Choose a dataset, or type a name" in add(client, services)
    assert "Write the custom system prompt" in add(client, services, new="x", system="custom")
    assert [d for d in ("empty", "x") if _exists(services, d)] == []


def _exists(services, name) -> bool:
    try:
        get_dataset(services.store, name)
    except Exception:
        return False
    return True


def test_the_datasets_tab_lists_the_dataset_with_counts_and_tokens(client, services):
    chat_with_brack(client, services, "What's that smell?")
    add(client, services, new="brack")
    add(client, services, dataset="brack", upto=1, system="none")  # a second, different example (same one: not added)

    dataset, datasets, examples = client.predict("brack", "", api_name="/datasets_list")
    [row] = rows(datasets)
    info = get_dataset(services.store, "brack")
    assert row[:4] == ["brack", 2, 0, info.tokens] and info.tokens > 0
    assert [r[1] for r in rows_with_ids(examples)] == [e.id for e in iter_examples(services.store, "brack")]
    assert rows_with_ids(examples)[0][6] == "Tobin: What's that smell?"


def rows_with_ids(table: dict) -> list[list]:
    return [r for r in table["data"] if r[1] not in ("", None)]


def test_exported_file_imports_back_as_the_same_examples(client, services, tmp_path):
    chat_with_brack(client, services, "What's that smell?", "And that bang?")
    add(client, services, new="brack")
    add(client, services, dataset="brack", upto=1, system="persona")

    notice, files, findings = client.predict("brack", "gpt-4o-mini", services.personas[BRACK].deploy_prompt,
                                             "openai-chat", "", 0, False, api_name="/dataset_export")
    assert "Exported brack.jsonl (2 examples)" in notice
    assert {r[2] for r in rows(findings)} >= {"system_prompt_not_deploy_prompt", "too_few_examples"}  # warnings only
    [exported] = files
    assert Path(exported).name == "brack.jsonl"

    notice, problems, dataset, _ = client.predict(handle_file(exported), "brack again", "detect", False,
                                                  api_name="/dataset_import")
    assert "Imported 2 examples into **brack again** (detected: 2 openai-chat)" in notice
    assert dataset["value"] == "brack again"
    before = [e.messages for e in iter_examples(services.store, "brack")]
    assert [e.messages for e in iter_examples(services.store, "brack again")] == before


def test_export_split_writes_one_file_per_part(client, services):
    create_dataset(services.store, "town")
    add_examples(services.store, "town", [Example.model_validate_json(example_line(f"Question {i}?", f"Answer {i}."))
                                          for i in range(10)])

    notice, files, _ = client.predict("town", "gpt-4o-mini", "", "trl-messages", "60/20/20", 7, False,
                                      api_name="/dataset_export")

    assert [Path(f).name for f in files] == ["train.jsonl", "validation.jsonl", "test.jsonl"]
    assert [len(Path(f).read_text().splitlines()) for f in files] == [6, 2, 2]
    assert "train.jsonl (6 examples), validation.jsonl (2 examples), test.jsonl (2 examples) as trl-messages" in notice


def test_a_split_that_would_leave_a_part_empty_is_refused_with_what_to_do(client, services):
    create_dataset(services.store, "ferry")  # six answers to one question: copies that must stay together
    add_examples(services.store, "ferry", [Example.model_validate_json(example_line("Where is the ferry?", f"Pier {i}."))
                                           for i in range(6)])

    notice, files, _ = client.predict("ferry", "gpt-4o-mini", "", "trl-messages", "60/20/20", 7, False,
                                      api_name="/dataset_export")

    assert "60/20/20 split of 6 examples would leave the validation part and the test part empty" in notice
    assert "different ratio" in notice and "fewer parts" in notice and not files


def test_errors_block_an_export_and_are_listed_by_example(client, services):
    create_dataset(services.store, "broken")
    [good, empty] = add_examples(services.store, "broken", [
        Example.model_validate_json(example_line("Who?", "Ada.")),
        Example(messages=[TrainingMessage(role="user", content=" "), TrainingMessage(role="assistant", content="Hm.")])])

    notice, files, findings = client.predict("broken", "gpt-4o-mini", "", "openai-chat", "", 0, False,
                                             api_name="/dataset_export")
    assert "Not exported: 1 error" in notice and files is None
    assert [(r[0], r[1], r[2]) for r in rows(findings)] == [(f"example {empty}", "error", "missing_content")]

    summary, table = client.predict("broken", "gpt-4o-mini", "", api_name="/dataset_validate")
    assert "1 error" in summary
    assert (f"example {empty}", "error", "missing_content") in [tuple(r[:3]) for r in rows(table)]


def test_import_lists_bad_lines_and_imports_nothing_unless_told_to_skip_them(client, services, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([example_line("Who?", "Ada."), "[1, 2]", example_line("Where?", "Here."),
                               '{"messages": [{"role": "user"}]}']) + "\n", encoding="utf-8")

    notice, problems, _, _ = client.predict(handle_file(str(path)), "mixed", "detect", False, api_name="/dataset_import")
    assert "2 bad lines: nothing was imported" in notice
    assert [(r[0], r[1]) for r in rows(problems)] == [(2, "data_type"), (4, "message_missing_key"),
                                                      (4, "example_missing_assistant_message")][:len(rows(problems))]
    assert {r[0] for r in rows(problems)} == {2, 4}
    assert not _exists(services, "mixed")

    notice, problems, dataset, _ = client.predict(handle_file(str(path)), "mixed", "detect", True,
                                                  api_name="/dataset_import")
    assert "Imported 2 examples" in notice and "Skipped 2 bad lines" in notice
    assert dataset["value"] == "mixed" and get_dataset(services.store, "mixed").examples == 2


def test_examples_are_tagged_excluded_deleted_and_restored(client, services):
    create_dataset(services.store, "town")
    ids = add_examples(services.store, "town", [Example.model_validate_json(example_line(f"Q{i}?", f"A{i}."))
                                                for i in range(3)])
    _, _, table = client.predict("town", "", api_name="/datasets_list")
    ticked = {"headers": table["headers"], "data": [[r[1] in ids[:2], *r[1:]] for r in table["data"]]}

    table, notice, _ = client.predict("town", "", ticked, "reviewed", api_name="/examples_tag")
    assert "Tagged 2 examples" in notice
    assert [e.tags for e in iter_examples(services.store, "town")] == [["reviewed"], ["reviewed"], []]

    client.predict("town", "", ticked, "", api_name="/examples_exclude")
    assert get_dataset(services.store, "town").excluded == 2

    table, notice, datasets = client.predict("town", "", ticked, "", api_name="/examples_delete")
    assert "Deleted 2 examples" in notice
    assert [r[1] for r in rows_with_ids(table)] == [ids[2]]
    assert rows(datasets)[0][1:3] == [1, 0]

    table, notice, datasets = client.predict("town", "", api_name="/examples_undo_delete")
    assert "Restored 2 examples" in notice
    assert [r[1] for r in rows_with_ids(table)] == ids


def test_an_example_is_edited_as_json(client, services):
    create_dataset(services.store, "town")
    [eid] = add_examples(services.store, "town", [Example.model_validate_json(example_line("Who?", "Ada."))])
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who?"},
                {"role": "assistant", "content": "Ada Lovelace.", "weight": 1}]

    table, notice, _ = client.predict("town", "", str(eid), "people, checked", False, json.dumps(messages),
                                      api_name="/example_save")
    assert f"Example {eid} saved" in notice
    example = next(iter_examples(services.store, "town"))
    assert (example.messages[-1].content, example.tags) == ("Ada Lovelace.", ["people", "checked"])

    _, notice, _ = client.predict("town", "", str(eid), "", False, "[{\"role\": \"user\"", api_name="/example_save")
    assert "not valid JSON" in notice
    _, notice, _ = client.predict("town", "", str(eid), "", False, json.dumps(messages[:2]), api_name="/example_save")
    assert "assistant" in notice


def test_a_preference_pair_is_edited_with_its_chosen_and_rejected_replies(client, services):
    create_dataset(services.store, "prefs")
    prompt = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who built the mill?"}]
    [eid] = add_examples(services.store, "prefs", [Example(messages=prompt, chosen="Ada.", rejected="No idea.")])
    edited = {"messages": prompt, "chosen": "Ada Quarrie, in 1802.", "rejected": "It was always there."}

    _, notice, _ = client.predict("prefs", "", str(eid), "", False, json.dumps(edited), api_name="/example_save")

    assert f"Example {eid} saved" in notice
    example = next(iter_examples(services.store, "prefs"))
    assert (example.chosen, example.rejected) == ("Ada Quarrie, in 1802.", "It was always there.")
    table, _, _ = client.predict("prefs", "always there", api_name="/dataset_examples")
    assert [r[1] for r in rows(table)] == [eid]  # the filter searches the rejected reply too
    _, notice, _ = client.predict("prefs", "", str(eid), "", False, json.dumps({**edited, "score": 1}),
                                  api_name="/example_save")
    assert "Unknown key 'score'" in notice
    _, notice, _ = client.predict("prefs", "", str(eid), "", False, json.dumps({**edited, "rejected": None}),
                                  api_name="/example_save")
    assert "needs both 'chosen' and 'rejected'" in notice
    assert next(iter_examples(services.store, "prefs")).rejected == "It was always there."


def test_stats_use_the_edited_price_table(client, services):
    create_dataset(services.store, "town")
    add_examples(services.store, "town", [Example.model_validate_json(example_line(f"Q{i}?", f"A{i}."))
                                          for i in range(10)])
    prices = {"headers": ["base model", "$ per 1M training tokens"], "data": [["gpt-4o-mini", 10_000.0]]}

    summary, costs = client.predict("town", "gpt-4o-mini", 2, prices, api_name="/dataset_stats")

    assert "10 examples" in summary and "Epochs: 2" in summary
    billed = 2 * get_dataset(services.store, "town").tokens
    assert rows(costs) == [["gpt-4o-mini", 2, f"{billed:,}", f"${billed * 10_000 / 1_000_000:,.2f}"]]
    assert billed * 10_000 / 1_000_000 > 1


def test_log_review_filters_and_adds_ticked_exchanges_in_bulk(client, services):
    chat_with_brack(client, services, "What's that smell?", "And that bang?")
    client.predict(BRACK, api_name="/new_chat")
    chat_with_brack(client, services, "Is Euclid laying?")
    client.predict(*send_args("Kettle broke", persona="Review Sentiment Rater"), api_name="/send")
    first_reply = services.store.exchanges()[-1]["id"]
    services.store.rate(first_reply, -1)

    table, _ = client.predict(BRACK, "any", "any", "", api_name="/log_search")
    assert [r[7] for r in rows_with_ids(table)] == [
        "Echo: Tobin: Is Euclid laying?", "Echo: Tobin: And that bang?", "Echo: Tobin: What's that smell?"]
    table, _ = client.predict("any", "any", "disliked", "", api_name="/log_search")
    assert [r[1] for r in rows_with_ids(table)] == [first_reply]
    table, _ = client.predict("any", "any", "any", "euclid", api_name="/log_search")
    assert [r[7] for r in rows_with_ids(table)] == ["Echo: Tobin: Is Euclid laying?"]

    table, _ = client.predict(BRACK, "any", "any", "", api_name="/log_search")
    all_ticked = {"headers": table["headers"], "data": [[True, *r[1:]] for r in table["data"]]}
    notice, target, *_ = client.predict(all_ticked, None, "from the log", "deploy", "", False, True, True, True,
                                        api_name="/log_add")

    assert "Added 2 examples to **from the log**" in notice and target["value"] == "from the log"
    first, second = iter_examples(services.store, "from the log")
    deploy = services.personas[BRACK].deploy_prompt
    assert [(m.role, m.content) for m in first.messages] == [  # New chat started it with the greeting
        ("system", deploy), ("assistant", services.personas[BRACK].greeting),
        ("user", "Tobin: Is Euclid laying?"), ("assistant", "Echo: Tobin: Is Euclid laying?")]
    assert second.messages[0].content == deploy and first.messages[0].content == deploy
    assert [m.content for m in second.messages if m.role == "user"] == ["Tobin: What's that smell?", "Tobin: And that bang?"]
    assert second.messages[2].weight == 0  # the disliked first reply


def test_stats_and_validation_count_with_an_open_models_local_tokenizer(client, services, tmp_path):
    from tests.test_tokens import tiny_tokenizer

    folder = tmp_path / "hub" / "models--acme--tiny"
    tiny_tokenizer(folder / "snapshots" / "r1" / "tokenizer.json")
    create_dataset(services.store, "open")
    add_examples(services.store, "open", [Example.model_validate_json(example_line(f"Q{i}?", f"A{i}."))
                                          for i in range(10)])
    prices = {"headers": ["base model", "$ per 1M training tokens"], "data": [["gpt-4o-mini", 3.0]]}

    summary, costs = client.predict("open", "gpt-4o-mini", 2, prices, str(folder), 12, api_name="/dataset_stats")
    assert "Tokens per example (the acme/tiny tokenizer)" in summary and "Over the 12-token training context" in summary
    assert [r[0] for r in rows(costs)] == ["the acme/tiny tokenizer"] and rows(costs)[0][3] == "no price known"

    summary, table = client.predict("open", "gpt-4o-mini", "", str(folder), 12, api_name="/dataset_validate")
    assert "12-token training context of the acme/tiny tokenizer" in " ".join(r[3] for r in rows(table))

    summary, _ = client.predict("open", "gpt-4o-mini", 2, prices, str(tmp_path / "none"), 0, api_name="/dataset_stats")
    assert "no such file or folder" in summary
