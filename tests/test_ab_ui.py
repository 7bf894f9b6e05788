"""The A/B tab's API as gradio_client sees it: blind rounds, votes and the reveal, the leaderboard, batches."""

import hashlib
import json
import re
import time

import pytest
from gradio_client import Client

from playground.ab.votes import load_votes, round_record
from playground.datasets.store import iter_examples, list_datasets
from tests.gradio_outputs import last_set

PERSONA = "Location Extractor"
SETUP_FIELDS = 11  # label, persona, model, system prompt and the seven parameters


def column_args(model="", label="", persona=PERSONA, system_prompt="Be brief.", max_tokens=100):
    return [label, persona, model, system_prompt, 0.0, 1.0, max_tokens, 0.0, 0.0, None, "[]"]


def send_args(message, *models, blind=True):
    columns = [column_args(m) for m in models] + [column_args() for _ in range(4 - len(models))]
    return [message, blind, len(models), *(value for c in columns for value in c)]


def batch_args(path, *models, source="Prompt-set file", skip_bad=False, dataset=None, check="exact"):
    columns = [column_args(m) for m in models] + [column_args() for _ in range(4 - len(models))]
    return [source, None, str(path), skip_bad, dataset, "validation", "80/20", check, 4, len(models),
            *(value for c in columns for value in c)]


def text(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def messages(panel) -> list[dict]:
    """A panel's messages: the panels come as updates that carry their label (names are shown there after a vote)."""
    return panel["value"] if isinstance(panel, dict) else panel


def replies(panel) -> list[str]:
    return [text(m) for m in messages(panel) if m["role"] == "assistant"]


def revealed(round_md: str) -> dict[str, str]:
    """Slot letter -> setup name, from the round's reveal line."""
    return dict(re.findall(r"([A-D]) was \*\*(.+?)\*\*", round_md))


def chat_requests(server):
    return [r for r in server.requests if r["path"].endswith("/completions")]


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def test_a_blind_round_hides_the_names_until_the_vote_then_shows_them_and_the_leaderboard_counts_it(
        client, services, fake_server):
    fake_server.token_delay = 0.01
    job = client.submit(*send_args("Ferries from Oban [tokens=25]", "local:gpt-4o-mini", "local:gpt-4o"),
                        api_name="/ab_send")
    updates = list(job)
    a, b, _, _, round_md, _, notice = job.result()
    box = last_set(job.outputs(), 5)  # emptied when the message is taken; streaming leaves it alone

    full = " ".join(f"w{i}" for i in range(1, 26))
    assert [replies(a)[-1].split("\n\n")[0], replies(b)[-1].split("\n\n")[0]] == [full, full]
    # Both replies grew side by side, in one stream of updates.
    partial = [u for u in updates if replies(u[0]) and replies(u[1]) and
               0 < len(replies(u[0])[-1]) < len(full) and 0 < len(replies(u[1])[-1]) < len(full)]
    assert partial, "no update showed both replies part-way"
    assert (box, notice) == ("", "")
    assert "blind" in round_md
    shown = json.dumps([a, b, round_md])
    assert "gpt-4o" not in shown and "$" not in replies(a)[-1]
    assert re.search(r"A · \d+ \+ 25 tokens · first token", replies(a)[-1])

    a, b, _, _, round_md, notice, reason, *scores = client.predict("more complete", 5, 2, None, None,
                                                                   api_name="/ab_vote_a")
    names = revealed(round_md)
    assert "you voted **A is better**" in round_md
    # Named after what differs from the persona: the system prompt (by a hash of it) and max_tokens.
    prompt = hashlib.sha1(b"Be brief.").hexdigest()[:6]
    setups = {1: f"local:gpt-4o-mini · {PERSONA} · prompt {prompt} · max_tokens 100",
              2: f"local:gpt-4o · {PERSONA} · prompt {prompt} · max_tokens 100"}
    assert sorted(names.values()) == sorted(setups.values()), round_md
    column_a = 1 if names["A"] == setups[1] else 2
    assert f"(Column {column_a})" in round_md.split("B was")[0]
    assert a["label"] == f"A · Column {column_a} · {names['A']}"
    assert names["A"].split(" · ")[0].partition(":")[2] in replies(a)[-1]  # the metrics line names the model now
    assert (notice, reason, scores) == ("", "", [None] * 4)

    [vote] = load_votes(services.store)
    assert (vote.model_a, vote.model_b, vote.winner, vote.anonymous) == (names["A"], names["B"], "model_a", True)
    [stored] = [round_record(services.store, r["round_id"]) for r in _rows(services, "select round_id from ab_votes")]
    assert {r.slot: r.score for r in stored.replies} == {"A": 5, "B": 2}

    summary, table, _, matrix = client.predict(True, "All personas", "", "", api_name="/ab_leaderboard")
    assert [row[1] for row in table["data"]] == [names["A"], names["B"]]
    assert [row[4:8] for row in table["data"]] == [[1, 1, 0, 0], [1, 0, 0, 1]]
    assert "**1** battle between **2** setups" in summary
    assert matrix["headers"] == ["model", names["A"], names["B"]]
    assert matrix["data"][0][2] == "100%"


def _rows(services, sql):
    with services.store.db() as db:
        return list(db.query(sql))


def test_votes_before_a_round_or_while_it_streams_are_refused(client, fake_server):
    *_, notice, _, _, _, _, _ = client.predict("", None, None, None, None, api_name="/ab_vote_tie")
    assert "nothing to vote on" in notice

    fake_server.token_delay = 0.05
    job = client.submit(*send_args("Slowly [tokens=60]", "local:gpt-4o-mini", "local:gpt-4o"), api_name="/ab_send")
    for update in job:
        if replies(update[0]) and len(replies(update[0])[-1]) > 3:
            break
    *_, notice, _, _, _, _, _ = client.predict("", None, None, None, None, api_name="/ab_vote_b")
    assert "still coming" in notice
    job.result()
    *_, round_md, notice, _, _, _, _, _ = client.predict("", None, None, None, None, api_name="/ab_vote_b")
    assert notice == "" and "you voted **B is better**" in round_md


def test_a_column_with_no_model_says_so_and_nothing_is_sent(client, fake_server):
    a, b, _, _, round_md, box, notice = client.predict(
        *send_args("Anyone?", "local:gpt-4o-mini", ""), api_name="/ab_send")

    assert "Column 2: pick a model" in notice
    assert box == "Anyone?" and messages(a) == [] and messages(b) == []
    assert chat_requests(fake_server) == []


def test_three_columns_take_a_best_of_vote(client, services):
    client.predict(*send_args("Three ways", "local:gpt-4o-mini", "local:gpt-4o", "local:echo"), api_name="/ab_send")
    *_, round_md, notice, _, _, _, _, _ = client.predict("", None, None, None, None, api_name="/ab_vote_c")

    assert "you voted **C is best**" in round_md
    names = revealed(round_md)
    votes = load_votes(services.store)
    assert len(votes) == 2 and all(names["C"] in (v.model_a, v.model_b) for v in votes)


def test_a_failing_column_shows_its_error_beside_the_finished_one(client, services):
    a, b, _, _, round_md, box, notice = client.predict(
        *send_args("Is the bridge open?", "local:gpt-4o-mini", "local:fault-500"), api_name="/ab_send")

    texts = replies(a)[-1] + replies(b)[-1]
    assert "Echo: Is the bridge open?" in texts and "server error (500)" in texts
    assert "server error (500)" in notice and "cannot be judged" in round_md
    assert len(services.store.exchanges()) == 2


def test_stop_ends_both_streams_and_keeps_the_partial_replies(client, services, fake_server):
    fake_server.token_delay = 0.05
    job = client.submit(*send_args("Count [tokens=200]", "local:gpt-4o-mini", "local:gpt-4o"), api_name="/ab_send")
    for update in job:
        if all(replies(p) and len(replies(p)[-1]) > 6 for p in update[:2]):
            break
    a, b, _, _, round_md = client.predict(api_name="/ab_stop")

    assert all("Stopped before the reply was finished" in replies(p)[-1] for p in (a, b))
    assert "cannot be judged" in round_md
    assert [e["incomplete"] for e in services.store.exchanges()] == [1, 1]


def test_a_prompt_set_with_bad_lines_runs_nothing_unless_told_to_skip_them(client, fake_server, tmp_path):
    prompts = tmp_path / "capitals.jsonl"
    prompts.write_text("\n".join([
        json.dumps({"id": "fr", "prompt": "France", "expected": "Echo: France"}),
        "{not json",
        json.dumps({"id": "pt", "prompt": "Portugal", "expected": "Lisbon", "check": {"kind": "contains"}}),
        json.dumps({"id": "x", "messages": []}),
    ]) + "\n", encoding="utf-8")

    status, *_ = client.predict(*batch_args(prompts, "local:gpt-4o-mini", "local:gpt-4o"), api_name="/ab_batch")
    assert "2 bad lines; nothing was run" in status and "line 2" in status and "line 4" in status
    assert chat_requests(fake_server) == []

    status, summary, per_row, downloads = client.predict(
        *batch_args(prompts, "local:gpt-4o-mini", "local:gpt-4o", skip_bad=True), api_name="/ab_batch")
    assert "**Done**: 4 of 4 replies" in status and "skipped" in status
    assert len(chat_requests(fake_server)) == 4
    assert [row[2:5] for row in summary["data"]] == [["2/2", 0, "1/2"]] * 2
    assert [row[0] for row in per_row["data"]] == ["fr", "pt"]
    assert per_row["data"][0][3].startswith("✓ Echo: France") and per_row["data"][1][3].startswith("✗ ")
    assert sorted(p.rsplit(".", 1)[1] for p in downloads) == ["csv", "jsonl"]

    status, *_ = client.predict(*batch_args(prompts, "local:gpt-4o-mini", "local:gpt-4o", skip_bad=True),
                                api_name="/ab_batch")
    assert "0 asked now, 4 taken from the earlier run" in status
    assert len(chat_requests(fake_server)) == 4


def test_a_refused_run_clears_the_previous_runs_tables(client, fake_server, tmp_path):
    prompts = tmp_path / "capitals.jsonl"
    prompts.write_text(json.dumps({"id": "fr", "prompt": "France", "expected": "echo: FRANCE",
                                   "check": {"kind": "contains", "ignore_case": True}}) + "\n", encoding="utf-8")
    status, summary, per_row, downloads = client.predict(
        *batch_args(prompts, "local:gpt-4o-mini", "local:gpt-4o"), api_name="/ab_batch")
    assert "**Done**" in status and per_row["data"][0][3].startswith("✓ Echo: France")  # case ignored
    assert downloads

    status, summary, per_row, downloads = client.predict(
        *batch_args(tmp_path / "missing.jsonl", "local:gpt-4o-mini", "local:gpt-4o"), api_name="/ab_batch")
    assert "cannot be read" in status
    assert summary["data"] == [[""] * 10] and per_row["data"] == [["", "", ""]] and not downloads


def test_a_dataset_validation_split_runs_through_both_columns(client, services, fake_server):
    from playground.datasets.examples import Example
    from playground.datasets.store import add_examples, create_dataset

    create_dataset(services.store, "harbour")
    add_examples(services.store, "harbour", [Example(messages=[
        {"role": "system", "content": "One line."}, {"role": "user", "content": f"Tide at pier {i}?"},
        {"role": "assistant", "content": f"Echo: Tide at pier {i}?"}]) for i in range(10)])

    status, summary, per_row, downloads = client.predict(
        *batch_args("", "local:gpt-4o-mini", "local:ft:gpt-4o-mini-2024-07-18:acme::abc123",
                    source="Dataset split", dataset="harbour"), api_name="/ab_batch")

    assert "**Done**: 4 of 4 replies" in status
    assert [row[4] for row in summary["data"]] == ["2/2", "2/2"]  # every reply equals the example's own
    assert len(per_row["data"]) == 2 and all(cell.startswith("✓ ") for row in per_row["data"] for cell in row[3:])
    sent = [r["body"]["messages"] for r in chat_requests(fake_server)]
    assert len(sent) == 4 and all(m[0] == {"role": "system", "content": "Be brief."} for m in sent)


def test_base_vs_fine_tuned_fills_two_columns_from_the_shortcut(client):
    filled = client.predict("local:gpt-4o-mini", "local:ft:gpt-4o-mini-2024-07-18:acme::abc123", "harbour",
                            api_name="/ab_base_vs_ft")
    count, source, split, dataset, model_1, label_1, prompt_1, model_2, label_2, prompt_2 = filled
    assert (count, source, split, dataset) == (2, "Dataset split", "validation", "harbour")
    assert (model_1, label_1, prompt_1) == ("local:gpt-4o-mini", "base · local:gpt-4o-mini", "")
    assert model_2.startswith("local:ft:") and label_2.startswith("fine-tuned · ") and prompt_2 == ""


def test_a_cancelled_batch_keeps_its_finished_rows_and_resumes(client, fake_server, tmp_path):
    prompts = tmp_path / "slow.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Question {i}"}) + "\n" for i in range(12)),
                       encoding="utf-8")
    fake_server.first_token_delay = 0.3
    args = batch_args(prompts, "local:gpt-4o-mini", "local:gpt-4o")
    args[8] = 1  # one request at a time, so the cancel lands midway
    job = client.submit(*args, api_name="/ab_batch")
    while len(chat_requests(fake_server)) < 3:
        time.sleep(0.05)
    cancelling = client.predict(api_name="/ab_batch_cancel")
    status, *_ = job.result()

    assert "Cancelling" in cancelling
    assert "**Cancelled**" in status and "run again to resume" in status
    asked = len(chat_requests(fake_server))
    assert 3 <= asked < 24
    fake_server.first_token_delay = 0.0
    status, summary, _, _ = client.predict(*args, api_name="/ab_batch")
    assert "**Done**: 24 of 24 replies" in status
    assert len(chat_requests(fake_server)) == 24  # the finished rows were not asked again


# --- to datasets ---------------------------------------------------------------------------------------------

# slot, up to, system prompt, custom, seeds, speaker, weight 0 on disliked, greeting, corrected turn and text
PANEL = ["A", -1, "deploy", "", False, True, True, True, None, ""]


def test_a_column_is_added_to_a_dataset_with_the_deploy_prompt_once_the_vote_reveals_it(client, services):
    loc = services.personas[PERSONA]
    client.predict(*send_args("Ferries from Oban to Mull", "local:gpt-4o-mini", "local:gpt-4o"), api_name="/ab_send")

    notice, *_ = client.predict("", "ferries", *PANEL, api_name="/ab_add_to_dataset")
    assert "Vote first" in notice and list_datasets(services.store) == []

    *_, round_md, _, _, _, _, _, _ = client.predict("", None, None, None, None, api_name="/ab_vote_b")
    preview, summary = client.predict(*PANEL[:-2], None, "", api_name="/ab_preview_example")
    assert json.loads(preview)["messages"][0] == {"role": "system", "content": loc.deploy_prompt}
    notice, *_ = client.predict("", "ferries", "B", *PANEL[1:], api_name="/ab_add_to_dataset")

    assert "Saved as example" in notice and "ferries" in notice
    [example] = iter_examples(services.store, "ferries")
    assert [(m.role, m.content) for m in example.messages] == [
        ("system", loc.deploy_prompt), ("user", "Ferries from Oban to Mull"),
        ("assistant", "Echo: Ferries from Oban to Mull")]  # "Be brief." was sent; the deploy prompt is kept
    shown_at_b = revealed(round_md)["B"]
    assert example.source.model == shown_at_b.split(" · ")[0]
    [reply_b] = [r for r in round_record(services.store, _rows(services, "select round_id from ab_votes")[0]
                                         ["round_id"]).replies if r.slot == "B"]
    assert example.source.exchange_ids == [reply_b.exchange_id]


def test_votes_are_saved_as_preference_pairs_from_the_leaderboard(client, services):
    def send(text):  # column 2 answers with one token: "Echo:"
        columns = [column_args("local:gpt-4o-mini"), column_args("local:gpt-4o", max_tokens=1)]
        client.predict(text, False, 2, *(v for c in columns + [column_args()] * 2 for v in c),
                                            api_name="/ab_send")

    for text in ("Trains from Lyon", "Buses to Cork"):
        send(text)
        client.predict("", None, None, None, None, api_name="/ab_vote_a")  # not blind: A is column 1
    send("Boats to Malta")
    client.predict("", None, None, None, None, api_name="/ab_vote_tie")

    options = ["deploy", "", False, True, True]  # then the leaderboard's filters: blind only, persona, from, to
    notice, *_ = client.predict(None, "trip prefs", *options, True, "All personas", "", "",
                                api_name="/ab_votes_to_dataset")
    assert "No votes match" in notice  # blind mode was off, so every vote is sighted
    args = [*options, False, "All personas", "", ""]
    notice, *_ = client.predict(None, "trip prefs", *args, api_name="/ab_votes_to_dataset")
    assert notice == "Added 2 preference pairs to **trip prefs** from 3 votes (1 tie or “both bad” give no pair)."
    again, *_ = client.predict("trip prefs", "", *args, api_name="/ab_votes_to_dataset")
    assert "Added 0 preference pairs" in again and "2 pairs already in it" in again

    examples = list(iter_examples(services.store, "trip prefs"))
    assert [e.messages[-1].content for e in examples] == ["Trains from Lyon", "Buses to Cork"]
    assert all(e.messages[0].content == services.personas[PERSONA].deploy_prompt for e in examples)
    assert [(e.chosen, e.rejected) for e in examples] == [("Echo: Trains from Lyon", "Echo:"),
                                                          ("Echo: Buses to Cork", "Echo:")]

    bad, *_ = client.predict(None, "x", *args[:-2], "2025-02-30", "", api_name="/ab_votes_to_dataset")
    assert "'2025-02-30' is not a date" in bad
