"""The LLM judge: rubric, verdicts in both orders, verdicts on stored A/B rounds, agreement with blind votes,
significance of the leaderboard and judge-labelled DPO pairs. Judges are models of the loopback server."""

import json
import math
from pathlib import Path

import pytest
from sqlite_utils import Database

from playground.ab import arena as ab
from playground.ab.agreement import JudgedVote, agreement, agreement_with_votes, cohen_kappa, longer_share
from playground.ab.arena import Arena, ArenaColumn, Ballot
from playground.ab.judge import (
    DEFAULT_RUBRIC,
    BadRubric,
    PairJudgement,
    judge_messages,
    load_rubric,
    pair_rows,
    parse_rating,
    parse_verdict,
)
from playground.ab.judge_datasets import JudgeNotTrusted, add_judge_pairs
from playground.ab.judge_rounds import judge_round, load_verdicts
from playground.ab.rating import Vote, neighbour_gaps, style_controlled_scores
from playground.chat.ask import ChatSettings
from playground.core.messages import Message
from playground.datasets.store import iter_examples

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "templates" / DEFAULT_RUBRIC
BRACK = "Professor Ignatia Brack"


# ---------------------------------------------------------------- reading verdicts


@pytest.mark.parametrize("reply, verdict", [
    ("A is right. [[A]]", "A"),
    ("Reasons...\n[[B]]", "B"),
    ("Equally good: [[C]]", "C"),
    ("[[ A ]]", "A"),
    ("I pick [[A]]. Final verdict: [[A]]", "A"),  # the same verdict twice is still one verdict
    ("First [[A]], no wait, [[B]]", None),  # two different verdicts: ambiguous, not guessed
    ("A is clearly better.", None),  # no marker: unparsable, even though the text leans to A
    ("[A]", None),
    ("[[D]]", None),
    ("", None),
])
def test_a_verdict_is_read_only_from_its_marker_and_never_guessed(reply, verdict):
    assert parse_verdict(reply) == verdict


@pytest.mark.parametrize("reply, rating", [
    ("Solid answer. Rating: [[8]]", 8.0), ("rating: [[ 7.5 ]]", 7.5), ("Rating: [[3]] ... Rating: [[4]]", 4.0),
    ("Rating: 8", None), ("[[8]]", None),
])
def test_single_answer_ratings(reply, rating):
    assert parse_rating(reply) == rating


@pytest.mark.parametrize("first, second, winner, bias", [
    ("A", "B", "a", False),  # a first: A; b first: B (= a) -> a in both orders
    ("B", "A", "b", False),
    ("C", "C", "tie", False),
    ("A", "A", "tie", True),  # always the first shown: the orders disagree -> a tie and a bias event
    ("B", "B", "tie", True),
    ("A", "C", "tie", True),
    ("A", None, None, False),  # an unparsable reply: no winner at all
    (None, None, None, False),
])
def test_both_orders_combine_agreeing_verdicts_and_make_disagreement_a_biased_tie(first, second, winner, bias):
    judgement = PairJudgement(first, second)
    assert (judgement.winner, judgement.position_bias, judgement.unparsable) == (winner, bias, first is None
                                                                                  or second is None)


# ---------------------------------------------------------------- rubric


def test_the_default_rubric_renders_the_answers_in_the_order_asked():
    rubric = load_rubric(RUBRIC)
    assert len(rubric.version) == 12 and rubric.template.temperature == 0
    conversation = [Message(role="user", content="Capital of France?")]
    ab_row, ba_row = pair_rows("q1", conversation, "Paris", "Lyon", rubric, reference="Paris")
    ab_text, ba_text = ab_row.messages[-1].content, ba_row.messages[-1].content
    assert ab_text.index("Paris\n</answer_a>") < ab_text.index("Lyon\n</answer_b>")
    assert "<answer_a>\nLyon" in ba_text and "<answer_b>\nParis" in ba_text
    assert "User: Capital of France?" in ab_text and "<reference>\nParis\n</reference>" in ab_text
    assert "[[A]]" in ab_row.messages[0].content
    # Without a reference the rubric says so, rather than showing the example value.
    no_reference = judge_messages(rubric, "User: hi", "a", "b")[-1].content
    assert "(no reference answer)" in no_reference and "100 °C" not in no_reference


def test_a_rubric_without_the_answers_is_refused_naming_what_is_missing(tmp_path):
    template = json.loads(RUBRIC.read_text())
    template["messages"][1]["content"] = "Conversation: {{conversation}}\nFirst: {{answer_a}}"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(template))
    with pytest.raises(BadRubric, match=r"bad.json: a pairwise judge rubric must use \{\{answer_b\}\}"):
        load_rubric(bad)
    template["messages"][1]["content"] += " {{answer_b}} {{tone}}"
    bad.write_text(json.dumps(template))
    with pytest.raises(BadRubric, match=r"cannot fill \{\{tone\}\}"):
        load_rubric(bad)


# ---------------------------------------------------------------- the judge on stored A/B rounds


def two_column_arena(services) -> Arena:
    """gpt-4o-mini answers "Echo: Tobin: ..."; gpt-4o is cut to one token and answers "Echo:"."""
    columns = [ArenaColumn(settings=ChatSettings.for_persona(services.personas[BRACK], m))
               for m in ("local:gpt-4o-mini", "local:gpt-4o")]
    arena = ab.prepare(services, None, columns)
    arena.columns[1].settings.params.max_tokens = 1
    return arena


def play(services, arena, text, vote_for: int | None = None) -> str:
    """One round; each in an arena of its own, so every vote is blind (names are shown after a vote)."""
    arena = arena or two_column_arena(services)
    for _ in ab.stream_round(services, arena, text):
        pass
    if vote_for is not None:
        ab.cast_vote(services, arena, Ballot(outcome="better", winner="ABCD"[arena.current.order.index(vote_for)]))
    return arena.current.id


def ask(services, round_id, judge):
    return judge_round(services.store, round_id, f"local:{judge}", load_rubric(RUBRIC), services.registry.resolve,
                       services.prices())


def test_a_judge_that_always_says_A_is_fully_position_biased_and_gives_ties_not_wins(services, fake_server):
    rounds = [play(services, None, f"Question {i}?", vote_for=0) for i in range(3)]

    verdicts = [v for r in rounds for v in ask(services, r, "judge-always-a")]

    assert [v.judgement.winner for v in verdicts] == ["tie"] * 3
    assert all(v.judgement.position_bias for v in verdicts)
    found = agreement_with_votes(services.store, "local:judge-always-a")
    assert (found.rounds, found.position_bias, found.percent) == (3, 1.0, 0.0)
    # Both orders were asked: two judge requests per round, the answers swapped between them.
    asked = [r["body"]["messages"][-1]["content"] for r in fake_server.requests
             if r["body"] and r["body"].get("model") == "judge-always-a"]
    assert len(asked) == 6
    # The two orders go out at once, so either may arrive first: one shows the reply as A, the other as B.
    round_0 = [a for a in asked if "Echo: Tobin: Question 0?" in a]
    assert sorted(("<answer_a>\nEcho: Tobin: Question 0?" in a, "<answer_b>\nEcho: Tobin: Question 0?" in a)
                  for a in round_0) == [(False, True), (True, False)]


def test_a_judge_that_picks_the_right_text_names_the_same_winner_in_both_orders(services, fake_server):
    arena = two_column_arena(services)
    round_id = play(services, arena, "What's that smell?", vote_for=0)

    verdict, = ask(services, round_id, "judge-pick-Tobin")

    assert (verdict.first, verdict.second) == ("A", "B")  # the right reply, wherever it was shown
    assert (verdict.judgement.winner, verdict.judgement.position_bias) == ("a", False)
    assert (verdict.column_a, verdict.column_b) == (0, 1) and verdict.contestant_a.startswith("local:gpt-4o-mini")
    assert verdict.prompt_tokens > 0 and "Looking for Tobin" in verdict.first_reply
    stored, = load_verdicts(services.store, "local:judge-pick-Tobin")
    assert (stored.first, stored.second, stored.rubric_version) == ("A", "B", load_rubric(RUBRIC).version)
    row, = Database(services.store.path).query("select winner, position_bias, unparsable from judge_verdicts")
    assert row == {"winner": "a", "position_bias": 0, "unparsable": 0}


def test_a_reply_without_a_verdict_is_stored_as_unparsable(services, fake_server):
    arena = two_column_arena(services)
    round_id = play(services, arena, "Hello?", vote_for=1)

    verdict, = ask(services, round_id, "judge-silent")

    assert (verdict.first, verdict.second, verdict.judgement.winner) == (None, None, None)
    assert "merits" in verdict.first_reply
    row, = Database(services.store.path).query("select winner, unparsable, first from judge_verdicts")
    assert row == {"winner": None, "unparsable": 1, "first": None}
    found = agreement_with_votes(services.store, "local:judge-silent")
    assert (found.rounds, found.unparsable, found.kappa) == (0, 1, None)


def test_the_verdicts_table_has_its_columns(tmp_path):
    from playground.core.store import Store

    store = Store(tmp_path / "p.db")
    assert set(Database(store.path)["judge_verdicts"].columns_dict) == {
        "id", "round_id", "column_a", "column_b", "contestant_a", "contestant_b", "judge_model", "rubric",
        "rubric_version", "first", "second", "first_reply", "second_reply", "winner", "position_bias", "unparsable",
        "answer_a_chars", "answer_b_chars", "prompt_tokens", "completion_tokens", "cost_usd", "error", "created_at"}


# ---------------------------------------------------------------- agreement


def judged(human: str, first: str, second: str, a_chars: int = 10, b_chars: int = 10) -> JudgedVote:
    return JudgedVote(human, PairJudgement(first, second), a_chars, b_chars)


def test_agreement_and_kappa_on_a_hand_checked_set():
    # human:  a a a a b b b b tie tie ; judge: a a a b b b b a tie a
    votes = ([judged("a", "A", "B")] * 3 + [judged("a", "B", "A")] + [judged("b", "B", "A")] * 3
             + [judged("b", "A", "B")] + [judged("tie", "C", "C"), judged("tie", "A", "B")])
    found = agreement(votes)
    assert found.rounds == 10 and found.percent == pytest.approx(0.7)
    # p_o = 0.7; human marginals a .4 b .4 tie .2, judge a .5 b .4 tie .1; p_e = .2 + .16 + .02 = .38
    assert found.kappa == pytest.approx((0.7 - 0.38) / (1 - 0.38))
    assert found.confusion == {"a": {"a": 3, "b": 1, "tie": 0}, "b": {"a": 1, "b": 3, "tie": 0},
                               "tie": {"a": 1, "b": 0, "tie": 1}}
    assert found.position_bias == 0.0
    assert found.trusted(0.5, 10) and not found.trusted(0.6, 10) and not found.trusted(0.5, 11)


def test_a_position_biased_judge_agrees_by_chance_only_and_unparsable_rounds_stay_apart():
    votes = [judged("a", "A", "A"), judged("b", "A", "A"), judged("tie", "A", "A"), judged("a", None, "A")]
    found = agreement(votes)
    assert (found.rounds, found.unparsable, found.position_bias) == (3, 1, 1.0)
    assert found.percent == pytest.approx(1 / 3) and found.kappa == pytest.approx(0.0)


@pytest.mark.parametrize("human, judge, kappa", [
    (["a", "b", "a", "b"], ["a", "b", "a", "b"], 1.0),
    (["a", "b", "a", "b"], ["b", "a", "b", "a"], -1.0),
    (["a", "a"], ["a", "a"], 1.0),  # one label throughout, in full agreement
    ([], [], None),
])
def test_kappa_extremes(human, judge, kappa):
    assert cohen_kappa(human, judge) == kappa


def test_the_preference_for_longer_answers_counts_decided_verdicts_between_unequal_answers():
    assert longer_share([("a", 100, 10), ("a", 10, 100), ("b", 10, 100), ("tie", 100, 10), ("a", 5, 5)]) == 2 / 3
    found = agreement([judged("a", "A", "B", 300, 20), judged("a", "B", "A", 300, 20)])
    assert (found.judge_prefers_longer, found.human_prefers_longer) == (0.5, 1.0)


# ---------------------------------------------------------------- significance


def battles(a: str, b: str, wins: int, losses: int) -> list[Vote]:
    return ([Vote(model_a=a, model_b=b, winner="model_a")] * wins + [Vote(model_a=a, model_b=b, winner="model_b")]
            * losses)


def test_neighbours_clearly_apart_are_separated_and_close_ones_need_more_votes():
    votes = battles("x", "y", 40, 5) + battles("y", "z", 11, 9)
    first, second = neighbour_gaps(votes, rounds=200)
    assert (first.better, first.worse, first.more_votes) == ("x", "y", 0)
    assert first.probability > 0.99
    assert (second.better, second.worse) == ("y", "z")
    assert 0.5 < second.probability < 0.95 and second.more_votes > 50
    even = neighbour_gaps(battles("p", "q", 10, 10), rounds=50)[0]
    assert even.more_votes is None and "no sign of a difference" in even.describe()


def test_style_control_takes_the_pull_of_longer_answers_out_of_the_scores():
    # x wins only when its answer is the longer one; with length as a covariate the models come out even.
    votes = battles("x", "y", 30, 0) + battles("x", "y", 0, 30)
    lengths = [(300, 100)] * 30 + [(100, 300)] * 30
    controlled = style_controlled_scores(votes, lengths)
    assert controlled.length_effect > 1
    assert controlled.scores["x"] == pytest.approx(controlled.scores["y"], abs=1)
    # Lengths that do not vary leave plain Bradley-Terry scores.
    skewed = style_controlled_scores(battles("x", "y", 30, 10), [(100, 100)] * 40)
    assert skewed.length_effect == 0 and skewed.scores["x"] > skewed.scores["y"] + 100
    assert math.isclose(sum(skewed.scores.values()) / 2, 1000)


# ---------------------------------------------------------------- judge-labelled DPO pairs


def test_judge_pairs_are_refused_below_the_agreement_bar_and_added_tagged_above_it(services, fake_server):
    voted = [play(services, None, f"Voted {i}?", vote_for=0) for i in range(3)]
    unvoted = play(services, None, "Not voted?")
    for round_id in voted + [unvoted]:
        ask(services, round_id, "judge-pick-Tobin")
    version = load_rubric(RUBRIC).version

    with pytest.raises(JudgeNotTrusted, match=r"kappa 1.00 on 3 shared rounds; .* kappa >= 0.6 on at least 20"):
        add_judge_pairs(services.store, "judged", services.personas, "local:judge-pick-Tobin", version)
    added = add_judge_pairs(services.store, "judged", services.personas, "local:judge-pick-Tobin", version,
                            min_kappa=0.6, min_rounds=3)

    assert len(added.added) == 4 and added.agreement.kappa == 1.0  # the unvoted round is labelled by the judge
    examples = list(iter_examples(services.store, "judged"))
    assert {e.chosen for e in examples} == {f"Echo: Tobin: {q}" for q in ("Voted 0?", "Voted 1?", "Voted 2?",
                                                                         "Not voted?")}
    assert all(e.rejected == "Echo:" for e in examples)
    assert examples[0].tags == ["ab-judge", "judge:local:judge-pick-Tobin", f"rubric:{version}"]
    again = add_judge_pairs(services.store, "judged", services.personas, "local:judge-pick-Tobin", version,
                            min_kappa=0.6, min_rounds=3)
    assert (again.added, again.already) == ([], 4)
