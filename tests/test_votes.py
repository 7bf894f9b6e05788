"""Stored A/B rounds and votes on a temp database: the schema, battles as Arena counts them, filters, DPO pairs."""

from datetime import date

import pytest
from sqlite_utils import Database

from playground.ab.rating import Vote, leaderboard
from playground.ab.votes import (
    AlreadyVoted,
    ReplyRecord,
    RoundRecord,
    VoteFilter,
    VoteRecord,
    for_rating,
    load_votes,
    pairwise,
    preference_pairs,
    round_record,
    save_round,
    save_vote,
)
from playground.core.errors import PlaygroundError
from playground.core.store import Exchange, Store


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "playground.db")


def test_the_ab_tables_on_a_blank_database(tmp_path):
    Store(tmp_path / "blank.db")
    db = Database(tmp_path / "blank.db")
    assert db["ab_rounds"].columns_dict == {
        "id": str, "comparison_id": str, "number": int, "prompt": str, "blind": int, "anonymous": int, "seed": int,
        "display_order": str, "created_at": str}
    assert db["ab_replies"].columns_dict == {
        "id": int, "round_id": str, "column_index": int, "slot": str, "contestant": str, "model": str,
        "persona": str, "settings": str, "conversation_id": str, "exchange_id": int, "error": str, "score": int}
    assert db["ab_votes"].columns_dict == {
        "id": int, "round_id": str, "outcome": str, "winner_column": int, "reason": str, "created_at": str}
    assert {fk.other_table for fk in db["ab_replies"].foreign_keys} == {"ab_rounds", "exchanges"}
    assert [i.columns for i in db["ab_votes"].indexes if i.unique] == [["round_id"]]


def add_round(store, round_id, contestants, *, anonymous=True, persona="Rude Support Agent", order=None,
              replies=None, created_at="2025-03-10T12:00:00.000+00:00", personas=None):
    order = order or list(range(len(contestants)))
    record = RoundRecord(
        id=round_id, comparison_id="c-" + round_id, number=1, prompt="Is it on?", blind=True, anonymous=anonymous,
        seed=1, display_order=order, created_at=created_at,
        replies=[ReplyRecord(column_index=i, slot="ABCD"[order.index(i)], contestant=name, model=name,
                             persona=(personas or [persona] * len(contestants))[i], conversation_id=f"{round_id}-{i}",
                             exchange_id=(replies or [None] * len(contestants))[i])
                 for i, name in enumerate(contestants)])
    save_round(store, record)
    return record


def add_vote(store, round_id, outcome="better", winner=None, created_at="2025-03-10T12:01:00.000+00:00", **extra):
    return save_vote(store, VoteRecord(round_id=round_id, outcome=outcome, winner_column=winner,
                                       created_at=created_at, **extra))


def battle(a, b, winner, anonymous=True):
    return Vote(model_a=a, model_b=b, winner=winner, anonymous=anonymous)


@pytest.mark.parametrize("contestants, outcome, winner, battles", [
    (["x", "y"], "better", 0, [battle("x", "y", "model_a")]),
    (["x", "y"], "better", 1, [battle("x", "y", "model_b")]),
    (["x", "y"], "tie", None, [battle("x", "y", "tie")]),
    (["x", "y"], "bothbad", None, [battle("x", "y", "tie (bothbad)")]),
    (["x", "y", "z"], "better", 1, [battle("x", "y", "model_b"), battle("y", "z", "model_a")]),
    (["x", "y", "z"], "tie", None, [battle("x", "y", "tie"), battle("x", "z", "tie"), battle("y", "z", "tie")]),
    (["w", "x", "y", "z"], "bothbad", None,
     [battle(a, b, "tie (bothbad)") for a, b in [("w", "x"), ("w", "y"), ("w", "z"), ("x", "y"), ("x", "z"),
                                                 ("y", "z")]]),
])
def test_a_vote_as_battles_the_way_arena_counts_them(contestants, outcome, winner, battles):
    assert pairwise(contestants, outcome, winner) == battles


def test_a_better_vote_without_a_winner_is_refused():
    with pytest.raises(PlaygroundError, match="winner"):
        pairwise(["x", "y"], "better", None)


def test_votes_read_back_in_slot_order(store):
    # Column 2 (y) was shown as A: "A is better" is a win for y, with y on the model_a side.
    add_round(store, "r1", ["x", "y"], order=[1, 0])
    add_vote(store, "r1", winner=1)

    assert load_votes(store) == [battle("y", "x", "model_a")]


def test_a_round_takes_one_vote(store):
    add_round(store, "r1", ["x", "y"])
    add_vote(store, "r1", winner=0)
    with pytest.raises(AlreadyVoted):
        add_vote(store, "r1", outcome="tie")
    assert load_votes(store) == [battle("x", "y", "model_a")]


def test_a_vote_needs_its_round(store):
    with pytest.raises(PlaygroundError, match="no round"):
        add_vote(store, "missing", outcome="tie")


def test_scores_are_stored_with_the_replies(store):
    add_round(store, "r1", ["x", "y"])
    add_vote(store, "r1", outcome="tie", scores={0: 4, 1: 2}, reason="both fine")

    stored = round_record(store, "r1")
    assert [r.score for r in stored.replies] == [4, 2]


def test_saving_a_round_again_replaces_it(store):
    add_round(store, "r1", ["x", "y"])
    add_round(store, "r1", ["x", "z"])
    assert [r.contestant for r in round_record(store, "r1").replies] == ["x", "z"]


@pytest.mark.parametrize("where, expected", [
    (VoteFilter(), ["blind-kettle", "blind-light"]),
    (VoteFilter(blind_only=False), ["blind-kettle", "blind-light", "sighted"]),
    (VoteFilter(persona="Rude Support Agent"), ["blind-kettle"]),
    (VoteFilter(persona="Text Adventure"), ["blind-light"]),
    (VoteFilter(since=date(2025, 3, 11)), ["blind-light"]),
    (VoteFilter(until=date(2025, 3, 10)), ["blind-kettle"]),
    (VoteFilter(since=date(2025, 3, 10), until=date(2025, 3, 10), blind_only=False), ["blind-kettle"]),
    (VoteFilter(since=date(2025, 4, 1)), []),
])
def test_votes_filtered_by_blindness_persona_and_date(store, where, expected):
    names = {"blind-kettle": ("2025-03-10", True, ["Rude Support Agent"] * 2),
             "blind-light": ("2025-03-12", True, ["Text Adventure", "Rude Support Agent x"]),
             "sighted": ("2025-03-12", False, ["Text Adventure"] * 2)}
    for name, (day, anonymous, personas) in names.items():
        add_round(store, name, [f"{name}-a", f"{name}-b"], anonymous=anonymous, personas=personas)
        add_vote(store, name, winner=0, created_at=f"{day}T23:59:59.000+00:00")

    assert [v.model_a.removesuffix("-a") for v in load_votes(store, where)] == expected


def test_sighted_votes_are_rated_only_when_asked(store):
    add_round(store, "seen", ["x", "y"], anonymous=False)
    add_vote(store, "seen", winner=0)
    votes = load_votes(store, VoteFilter(blind_only=False))

    assert leaderboard(for_rating(votes, blind_only=True)) == []
    assert [s.model for s in leaderboard(for_rating(votes, blind_only=False), rounds=5)] == ["x", "y"]


def log(store, conversation_id, user, reply, model="gpt-4o-mini"):
    request = {"model": model, "messages": [{"role": "system", "content": "Be terse."},
                                            {"role": "user", "content": user}]}
    return store.log_exchange(Exchange(conversation_id=conversation_id, model=model, provider="local",
                                       request=request, reply=reply))


def test_preference_pairs_pair_the_chosen_reply_with_each_rejected_one(store):
    ids = [log(store, f"r1-{i}", "Kettle?", reply) for i, reply in enumerate(["Descale it.", "No idea.", "Buy one."])]
    add_round(store, "r1", ["x", "y", "z"], order=[2, 0, 1], replies=ids)
    add_vote(store, "r1", winner=0, reason="practical")
    add_round(store, "r2", ["x", "y"], replies=ids[:2])
    add_vote(store, "r2", outcome="bothbad")

    pairs = preference_pairs(store)

    assert [(p.chosen, p.rejected, p.chosen_model, p.rejected_model) for p in pairs] == [
        ("Descale it.", "Buy one.", "x", "z"), ("Descale it.", "No idea.", "x", "y")]
    assert [m.model_dump() for m in pairs[0].prompt] == [
        {"role": "system", "content": "Be terse."}, {"role": "user", "content": "Kettle?"}]
    assert (pairs[0].chosen_exchange_id, pairs[0].rejected_exchange_id, pairs[0].reason) == (ids[0], ids[2],
                                                                                            "practical")
    example = pairs[1].example()
    assert (example.chosen, example.rejected, example.messages[-1].content) == ("Descale it.", "No idea.", "Kettle?")
