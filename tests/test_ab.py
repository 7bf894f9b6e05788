"""A/B rounds end to end: real Providers against the loopback server, every reply logged in a real store."""

import time

import pytest

from playground.ab import arena as ab
from playground.ab import rating
from playground.ab.arena import Arena, ArenaColumn, Ballot, ColumnProblem
from playground.ab.batch import ColumnConfig, run_batch
from playground.ab.checks import Check
from playground.ab.sources import dataset_split_rows, example_row, results_path
from playground.ab.votes import VoteFilter, load_votes, preference_pairs, round_record
from playground.chat.ask import ChatSettings, Metrics, stream_reply
from playground.chat.conversation import Conversation
from playground.core.errors import PlaygroundError
from playground.datasets.examples import Example
from playground.datasets.splits import split_examples
from playground.datasets.store import add_examples, create_dataset

LOC = "Location Extractor"
MODELS = ["local:gpt-4o-mini", "local:gpt-4o", "local:echo", "local:ft:gpt-4o-mini-2024-07-18:acme::abc123"]


def column(services, model, persona=LOC, system_prompt=None, **params):
    settings = ChatSettings.for_persona(services.personas[persona], model)
    settings.params = settings.params.model_copy(update=params)
    if system_prompt is not None:
        settings.system_prompt = system_prompt
    return ArenaColumn(settings=settings)


def arena_of(services, *models) -> Arena:
    return ab.prepare(services, None, [column(services, m) for m in models])


def play(services, arena, text, **kwargs) -> list[list[str]]:
    """Run a round to the end; the reply text of every column at every update, by column."""
    return [[c.conversation.turns[-1].content for c in a.columns] for a in ab.stream_round(services, arena, text, **kwargs)]


def vote(services, arena, outcome="better", winner="A", **extra):
    return ab.cast_vote(services, arena, Ballot(outcome=outcome, winner=winner if outcome == "better" else None, **extra))


def chat_requests(server):
    return [r for r in server.requests if r["path"] == "/v1/chat/completions"]


# --- parallel streaming --------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", [2, 3])
def test_columns_stream_in_parallel_in_about_the_time_of_one(services, fake_server, columns):
    fake_server.token_delay = 0.02
    text = "Count please [tokens=40]"  # 40 chunks 20 ms apart: ~0.8 s a reply
    persona = services.personas[LOC]
    single = Conversation()
    single.add_user(text)
    started = time.perf_counter()
    for _ in stream_reply(services, persona, ChatSettings.for_persona(persona, MODELS[0]), single):
        pass
    one = time.perf_counter() - started

    arena = arena_of(services, *MODELS[:columns])
    started = time.perf_counter()
    seen = play(services, arena, text)
    together = time.perf_counter() - started

    assert together < 1.6 * one, (together, one)
    assert [c.conversation.turns[-1].content for c in arena.columns] == [single.turns[-1].content] * columns
    # The replies grew side by side: some update shows every column part-way through.
    final = seen[-1]
    assert any(all(0 < len(t) < len(f) for t, f in zip(update, final)) for update in seen), seen
    # Every reply is logged as Chat logs it, each column in its own conversation.
    exchanges = services.store.exchanges()
    assert len(exchanges) == columns + 1
    ids = [c.conversation.id for c in arena.columns]
    assert len(set(ids)) == columns
    assert {e["conversation_id"] for e in exchanges} >= set(ids)
    assert all(c.conversation.turns[-1].metrics and c.conversation.turns[-1].exchange_id for c in arena.columns)


def test_a_failing_column_shows_its_error_and_the_others_finish(services, fake_server):
    fake_server.token_delay = 0.01
    arena = arena_of(services, "local:gpt-4o-mini", "local:fault-500", "local:gpt-4o")

    play(services, arena, "Trains from Porto to Lisbon [tokens=30]")

    good, bad, other = (c.conversation.turns[-1] for c in arena.columns)
    assert good.content == other.content == " ".join(f"w{i}" for i in range(1, 31))
    assert good.error is None and other.error is None
    assert "server error (500)" in bad.error and bad.content == ""
    current = arena.current
    assert current.done and [r.column for r in current.failed] == [1]
    logged = {e["model"]: e for e in services.store.exchanges()}
    assert set(logged) == {"gpt-4o-mini", "fault-500", "gpt-4o"}
    assert logged["fault-500"]["error"] and logged["gpt-4o"]["error"] is None
    with pytest.raises(PlaygroundError, match="cannot be judged"):
        vote(services, arena)


def test_stop_ends_every_stream_and_logs_the_partial_replies(services, fake_server):
    fake_server.token_delay = 0.05
    arena = arena_of(services, *MODELS[:2])
    run = ab.run_round(services, arena, "Long one [tokens=200]")
    updates = run.updates()
    while not all(len(c.conversation.turns[-1].content) > 6 for c in next(updates).columns):
        pass

    assert run.stop(timeout=3)

    replies = [c.conversation.turns[-1] for c in arena.columns]
    assert all(r.incomplete and r.error == "Stopped before the reply was finished." for r in replies)
    assert all(0 < len(r.content.split()) < 200 for r in replies)
    logged = services.store.exchanges()
    assert len(logged) == 2 and all(e["incomplete"] == 1 for e in logged)
    assert round_record(services.store, arena.current.id) is not None
    with pytest.raises(PlaygroundError, match="cannot be judged"):
        vote(services, arena)


def test_each_column_keeps_its_own_history(services, fake_server):
    arena = arena_of(services, "local:gpt-4o-mini", "local:gpt-4o")
    arena.columns[0].settings.params.max_tokens = 2  # column 1 answers "Echo: Lisbon" only
    play(services, arena, "Lisbon and Porto")
    play(services, arena, "And Faro?")

    second = chat_requests(fake_server)[-2:]
    by_model = {r["body"]["model"]: r["body"]["messages"] for r in second}
    assert by_model["gpt-4o-mini"][-3:] == [
        {"role": "user", "content": "Lisbon and Porto"}, {"role": "assistant", "content": "Echo: Lisbon"},
        {"role": "user", "content": "And Faro?"}]
    assert by_model["gpt-4o"][-2] == {"role": "assistant", "content": "Echo: Lisbon and Porto"}
    assert [len(c.conversation.turns) for c in arena.columns] == [4, 4]
    assert arena.current.number == 2


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("changes, problem", [
    ({1: {"model": ""}}, "Column 2: pick a model"),
    ({0: {"persona": ""}}, "Column 1: pick a persona"),
    ({0: {"persona": "Nobody"}}, "Column 1: the persona 'Nobody' does not exist"),
    ({1: {"model": ""}, 0: {"persona": ""}}, "Column 1: pick a persona; Column 2: pick a model"),
    ({1: {"model": "local:gpt-4o-mini"}}, "Columns 1 and 2 are set up the same way"),
])
def test_a_column_that_cannot_be_sent_says_what_is_missing_and_nothing_is_sent(services, fake_server, changes,
                                                                               problem):
    columns = [column(services, "local:gpt-4o-mini"), column(services, "local:gpt-4o")]
    for index, update in changes.items():
        columns[index].settings = columns[index].settings.model_copy(update=update)
    arena = Arena(columns=columns)

    with pytest.raises(ColumnProblem, match=problem):
        ab.run_round(services, arena, "Anyone there?")
    assert chat_requests(fake_server) == [] and arena.rounds == []
    assert all(c.conversation.turns == [] for c in arena.columns)


def test_labels_tell_apart_columns_that_share_a_setup(services):
    columns = [column(services, "local:gpt-4o-mini"), column(services, "local:gpt-4o-mini")]
    columns[0].label, columns[1].label = "first try", "second try"
    assert ab.check_columns(services, columns) == ["first try", "second try"]


def test_contestant_names_show_what_differs_from_the_persona(services):
    plain = column(services, "local:gpt-4o-mini")
    warm = column(services, "gpt-4o-mini", temperature=1.0, system_prompt="Be brief.")
    assert ab.contestant_name(services, plain) == f"local:gpt-4o-mini · {LOC}"
    name = ab.contestant_name(services, warm)
    assert name.startswith(f"local:gpt-4o-mini · {LOC} · prompt ") and name.endswith("temperature 1.0")


@pytest.mark.parametrize("prepare_round, problem", [
    (lambda s, a: None, "nothing to vote on"),
    (lambda s, a: ab.new_round(s, a, "Is it done?"), "still coming"),
])
def test_a_vote_on_an_unfinished_round_is_refused(services, prepare_round, problem):
    arena = arena_of(services, *MODELS[:2])
    prepare_round(services, arena)

    with pytest.raises(PlaygroundError, match=problem):
        vote(services, arena)
    assert load_votes(services.store, VoteFilter(blind_only=False)) == []


def test_a_round_takes_one_vote_and_a_missing_column_or_bad_score_is_refused(services):
    arena = arena_of(services, *MODELS[:2])
    play(services, arena, "Madrid")

    with pytest.raises(PlaygroundError, match="no reply C"):
        vote(services, arena, winner="C")
    with pytest.raises(PlaygroundError, match="1 to 5"):
        vote(services, arena, scores={"A": 6})
    vote(services, arena, outcome="tie", scores={"A": 4, "B": 4})
    with pytest.raises(PlaygroundError, match="already has a vote"):
        vote(services, arena, winner="B")
    assert len(load_votes(services.store)) == 1


# --- blind mode ----------------------------------------------------------------------------------------


def test_blind_rounds_are_shuffled_with_a_stored_seed_and_names_hidden_until_the_vote(services):
    arena = arena_of(services, *MODELS[:3])
    orders = []
    for seed in (1, 2, 3, 4):
        play(services, arena, f"Round with seed {seed}", seed=seed)
        current = arena.current
        orders.append(current.order)
        stored = round_record(services.store, current.id)
        assert (stored.display_order, stored.seed, stored.blind) == (current.order, seed, True)
        assert [r.slot for r in stored.replies] == [current.slot(c) for c in range(3)]
        assert sorted(current.order) == [0, 1, 2]
        if seed < 4:
            vote(services, arena, outcome="tie")
    assert len({tuple(o) for o in orders}) > 1, orders

    current = arena.current
    assert current.names_hidden
    for slot in range(3):
        shown, column_index = ab.shown_conversation(arena, slot)
        assert column_index == current.order[slot]
        metrics = shown.turns[-1].metrics
        assert metrics.startswith(f"{'ABC'[slot]} · ") and "gpt-4o" not in metrics and "echo" not in metrics
        assert "$" not in metrics and "tokens" in metrics

    vote(services, arena, winner="B")
    assert not current.names_hidden
    shown, column_index = ab.shown_conversation(arena, 1)
    assert shown.turns[-1].metrics.startswith(MODELS[column_index].partition(":")[2])


def test_only_rounds_before_any_names_are_shown_count_as_blind(services):
    arena = arena_of(services, *MODELS[:2])
    play(services, arena, "First")
    assert arena.current.anonymous
    vote(services, arena, winner="A")
    play(services, arena, "Second")  # the histories now give the columns away
    assert arena.current.blind and not arena.current.anonymous

    sighted = arena_of(services, *MODELS[:2])
    play(services, sighted, "Names shown", blind=False)
    assert (sighted.current.order, sighted.current.seed, sighted.current.names_hidden) == ([0, 1], None, False)
    vote(services, sighted, winner="B")

    assert len(load_votes(services.store, VoteFilter(blind_only=True))) == 1
    assert len(load_votes(services.store, VoteFilter(blind_only=False))) == 2


def test_blind_metrics_hide_the_model_and_the_price_of_chats_metrics_line():
    line = Metrics(model="ft:gpt-4o-mini:acme::x1", provider="local", prompt_tokens=12, completion_tokens=5,
                   counted=False, cost_usd=0.0000123, ttft_ms=210, duration_ms=1300).line()

    assert ab.blind_metrics(line, "B") == "B · 12 + 5 tokens · first token 0.21 s · 1.30 s"


# --- votes, ratings and preference pairs ----------------------------------------------------------------


def test_votes_become_a_leaderboard_with_the_winner_first(services):
    strong, weak = MODELS[:2]
    for i in range(6):
        arena = arena_of(services, strong, weak)
        play(services, arena, f"Question {i}")
        winner = "ABCD"[arena.current.order.index(0)] if i < 5 else "ABCD"[arena.current.order.index(1)]
        vote(services, arena, winner=winner)

    votes = load_votes(services.store)
    board = rating.leaderboard(votes, rounds=30)

    names = [r.contestant for r in arena.current.replies]
    assert [s.model for s in board] == names
    assert (board[0].wins, board[0].losses, board[0].votes) == (5, 1, 6)
    assert rating.win_rates(votes)[names[0]][names[1]] == pytest.approx(5 / 6)


def test_a_best_of_three_vote_is_a_win_over_each_other_column(services):
    arena = arena_of(services, *MODELS[:3])
    play(services, arena, "Three ways", seed=7)
    vote(services, arena, winner="C")

    winner = arena.current.replies[arena.current.column_at("C")].contestant
    votes = load_votes(services.store)
    assert len(votes) == 2
    assert all(winner in (v.model_a, v.model_b) and v.winner == ("model_a" if v.model_a == winner else "model_b")
               for v in votes)


def test_a_vote_is_a_preference_pair_with_the_chosen_replys_prompt(services):
    arena = arena_of(services, "local:gpt-4o-mini", "local:gpt-4o")
    arena.columns[1].settings.params.max_tokens = 1  # B's reply is cut short: "Echo:"
    play(services, arena, "Flights to Galway", seed=5)
    winner = "ABCD"[arena.current.order.index(0)]
    vote(services, arena, winner=winner, reason="complete answer")

    [pair] = preference_pairs(services.store)
    assert (pair.chosen, pair.rejected) == ("Echo: Flights to Galway", "Echo:")
    assert pair.prompt[0].role == "system" and pair.prompt[-1].content == "Flights to Galway"
    assert pair.chosen_exchange_id == arena.columns[0].conversation.turns[-1].exchange_id
    assert pair.rejected_exchange_id == arena.columns[1].conversation.turns[-1].exchange_id
    assert pair.reason == "complete answer" and pair.persona == LOC
    example = pair.example()
    assert example.is_preference and example.source.exchange_ids == [pair.chosen_exchange_id,
                                                                       pair.rejected_exchange_id]


def test_ties_and_both_bad_give_no_preference_pairs(services):
    for outcome in ("tie", "bothbad"):
        arena = arena_of(services, *MODELS[:2])
        play(services, arena, outcome)
        vote(services, arena, outcome=outcome)
    assert preference_pairs(services.store) == []
    assert [v.winner for v in load_votes(services.store)] == ["tie", "tie (bothbad)"]


# --- batch over a dataset split ----------------------------------------------------------------------


def example(i, reply=None):
    user = f"Ferry times to island {i}"
    return Example(messages=[{"role": "system", "content": "Answer in one line."}, {"role": "user", "content": user},
                             {"role": "assistant", "content": reply or f"Echo: {user}"}])


def test_a_dataset_validation_split_runs_through_every_column_once(services, fake_server, tmp_path):
    create_dataset(services.store, "ferries")
    # Every third example expects another reply than the echo the server gives.
    add_examples(services.store, "ferries", [example(i, "Ask the harbour." if i % 3 == 0 else None) for i in range(20)])

    rows = dataset_split_rows(services.store, "ferries", "validation", "80/20")
    columns = [ColumnConfig(label="base", model="local:gpt-4o-mini"),
               ColumnConfig(label="tuned", model="local:ft:gpt-4o-mini-2024-07-18:acme::abc123")]
    path = results_path(services.home, "ferries-validation", rows, columns)
    outcome = run_batch(rows, columns, path, services.registry.resolve, services.prices(), workers=4)

    from playground.datasets.store import load_dataset
    validation = split_examples(load_dataset(services.store, "ferries").examples, "80/20")["validation"]
    assert [r.id for r in rows] == [f"example-{e.id}" for e in validation] and len(rows) == 4
    assert sorted((r.row_id, r.column) for r in outcome.results) == sorted(
        (row.id, c.label) for row in rows for c in columns)
    sent = chat_requests(fake_server)
    assert len(sent) == 8
    assert {tuple(m["content"] for m in r["body"]["messages"]) for r in sent} == {
        ("Answer in one line.", e.messages[1].content) for e in validation}
    expected_passes = sum(not e.messages[2].content.startswith("Ask") for e in validation)
    assert [s.passed for s in outcome.summaries] == [expected_passes] * 2
    assert path.parent == services.home / "batches"

    again = run_batch(rows, columns, path, services.registry.resolve, services.prices(), workers=4)
    assert again.resumed == 8 and again.asked == 0 and len(chat_requests(fake_server)) == 8


@pytest.mark.parametrize("messages, chosen, expected_prompt, expected", [
    ([("user", "Hi"), ("assistant", "Hello"), ("user", "Bye"), ("assistant", "Ciao")], None, ["Hi", "Hello", "Bye"],
     "Ciao"),
    ([("system", "Be kind."), ("user", "Hi")], "Hello!", ["Be kind.", "Hi"], "Hello!"),
])
def test_an_example_becomes_a_prompt_and_its_last_reply_the_expected_answer(messages, chosen, expected_prompt,
                                                                          expected):
    data = Example(id=9, messages=[{"role": r, "content": c} for r, c in messages], chosen=chosen,
                   rejected="Go away." if chosen else None)
    row = example_row(data, Check(kind="contains"))
    assert row.id == "example-9" and [m.content for m in row.messages] == expected_prompt
    assert row.expected == expected and row.check.kind == "contains"
