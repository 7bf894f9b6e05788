"""Bradley-Terry ratings from blind votes, on cases small enough to check by hand."""

import math

import pytest

from playground.ab.rating import (
    BASE_SCORE,
    BadVote,
    Vote,
    fit_scores,
    intervals,
    leaderboard,
    vote_counts,
    votes_from_pick,
    win_rates,
)


def vote(a, b, winner="model_a", anonymous=True):
    return {"model_a": a, "model_b": b, "winner": winner, "anonymous": anonymous}


def test_a_model_that_wins_every_battle_ranks_first_with_a_finite_score():
    votes = [vote("A", "B"), vote("C", "A", "model_b"), vote("A", "C"), vote("B", "C"), vote("C", "B", "tie")]

    board = leaderboard(votes, rounds=20)

    assert [s.model for s in board][0] == "A"
    assert board[0].rank == 1
    assert (board[0].wins, board[0].ties, board[0].losses, board[0].votes) == (3, 0, 0, 3)
    assert all(math.isfinite(s.score) and math.isfinite(s.lower) and math.isfinite(s.upper) for s in board)


def test_a_single_vote_gives_a_finite_gap_and_scores_average_the_base():
    scores = fit_scores([vote("A", "B")])

    assert scores["A"] > scores["B"]
    assert 300 < scores["A"] - scores["B"] < 1000
    assert (scores["A"] + scores["B"]) / 2 == pytest.approx(BASE_SCORE)


def test_scores_follow_the_elo_scale_400_points_is_ten_to_one():
    # 100 wins to 10 with a negligible penalty: the fitted gap is 400 · log10(100 / 10) = 400.
    votes = [vote("A", "B")] * 100 + [vote("A", "B", "model_b")] * 10

    scores = fit_scores(votes, l2=1e-9)

    assert scores["A"] - scores["B"] == pytest.approx(400, abs=0.5)


@pytest.mark.parametrize("votes", [
    [vote("A", "B"), vote("A", "B", "model_b")],
    [vote("A", "B"), vote("B", "C"), vote("C", "A")],
    [vote("A", "B", "tie"), vote("B", "C", "tie (bothbad)")],
    [vote("A", "B")] * 5 + [vote("B", "A")] * 5,
])
def test_symmetric_results_give_equal_scores(votes):
    scores = fit_scores(votes)

    assert list(scores.values()) == pytest.approx([BASE_SCORE] * len(scores), abs=1e-3)


def test_sides_do_not_matter_only_who_won():
    left = fit_scores([vote("A", "B")] * 3 + [vote("B", "A")])
    right = fit_scores([vote("B", "A", "model_b")] * 3 + [vote("A", "B", "model_b")])

    assert left == pytest.approx(right)


def test_ties_pull_scores_together():
    wins = [vote("A", "B")] * 3 + [vote("A", "B", "model_b")]

    apart = fit_scores(wins)
    together = fit_scores(wins + [vote("A", "B", "tie")] * 6)

    assert 0 < together["A"] - together["B"] < apart["A"] - apart["B"]


def test_both_bad_counts_as_a_tie():
    wins = [vote("A", "B")] * 3 + [vote("B", "C")] * 2

    tie = fit_scores(wins + [vote("A", "C", "tie")] * 2)
    both_bad = fit_scores(wins + [vote("A", "C", "tie (bothbad)")] * 2)

    assert tie == pytest.approx(both_bad)
    assert win_rates([vote("A", "C", "tie (bothbad)")])["A"]["C"] == 0.5


def test_intervals_narrow_with_more_votes():
    few = [vote("A", "B")] * 6 + [vote("A", "B", "model_b")] * 4
    many = few * 10

    narrow, wide = intervals(many, rounds=100, seed=1), intervals(few, rounds=100, seed=1)

    for model in ("A", "B"):
        assert narrow[model][1] - narrow[model][0] < (wide[model][1] - wide[model][0]) / 2
        low, high = narrow[model]
        assert low <= fit_scores(many)[model] <= high


def test_bootstrap_is_deterministic_with_a_seed():
    votes = [vote("A", "B"), vote("B", "C"), vote("A", "C", "tie"), vote("C", "A"), vote("B", "A")] * 3

    first = leaderboard(votes, rounds=50, seed=7)

    assert leaderboard(votes, rounds=50, seed=7) == first
    assert [(s.lower, s.upper) for s in leaderboard(votes, rounds=50, seed=8)] != [(s.lower, s.upper) for s in first]


def test_leaderboard_is_sorted_by_score_and_ranks_by_overlapping_intervals():
    votes = ([vote("strong", "weak")] * 30 + [vote("strong", "mid")] * 20 + [vote("mid", "strong")] * 10
             + [vote("mid", "weak")] * 20 + [vote("weak", "mid")] * 10 + [vote("twin", "mid", "tie")] * 2)

    board = leaderboard(votes)

    assert [s.model for s in board][0] == "strong"
    assert [s.score for s in board] == sorted((s.score for s in board), reverse=True)
    assert board[-1].model == "weak" and board[-1].rank > 1
    twin, mid = next(s for s in board if s.model == "twin"), next(s for s in board if s.model == "mid")
    assert twin.rank == mid.rank  # two votes cannot tell them apart
    assert board[0].as_row()["score"] == round(board[0].score)


def test_win_rate_matrix_counts_ties_as_half_and_leaves_unmet_pairs_empty():
    votes = [vote("A", "B"), vote("A", "B"), vote("B", "A"), vote("A", "B", "tie"), vote("B", "C", "model_b")]

    rates = win_rates(votes)

    assert rates["A"]["B"] == pytest.approx(2.5 / 4)
    assert rates["B"]["A"] == pytest.approx(1.5 / 4)
    assert rates["C"]["B"] == 1.0
    assert rates["A"]["C"] is None and rates["C"]["A"] is None
    assert "A" not in rates["A"]


def test_only_anonymous_votes_count():
    votes = [vote("A", "B")] + [vote("B", "A", anonymous=False)] * 5 + [vote("A", "C", anonymous=False)]

    assert vote_counts(votes) == {"A": 1, "B": 1}
    assert fit_scores(votes)["A"] > fit_scores(votes)["B"]


def test_pick_the_best_of_three_beats_each_of_the_others():
    votes = votes_from_pick(["x", "y", "z"], "y")

    assert votes == [Vote(model_a="y", model_b="x", winner="model_a"), Vote(model_a="y", model_b="z", winner="model_a")]
    scores = fit_scores(votes)
    assert scores["y"] > scores["x"] == pytest.approx(scores["z"])
    assert vote_counts(votes) == {"x": 1, "y": 2, "z": 1}


def test_pick_none_of_three_is_a_both_bad_tie_between_every_pair():
    votes = votes_from_pick(["x", "y", "z"], None)

    assert {(v.model_a, v.model_b, v.winner) for v in votes} == {
        ("x", "y", "tie (bothbad)"), ("x", "z", "tie (bothbad)"), ("y", "z", "tie (bothbad)")}


@pytest.mark.parametrize("models, chosen", [(["x"], "x"), (["x", "x"], "x"), (["x", "y"], "w")])
def test_pick_the_best_refuses_bad_choices(models, chosen):
    with pytest.raises(BadVote):
        votes_from_pick(models, chosen)


@pytest.mark.parametrize("bad", [vote("A", "A"), {"model_a": "A", "model_b": "B", "winner": "left"}])
def test_bad_votes_are_domain_errors(bad):
    with pytest.raises(BadVote, match="Cannot rate"):
        fit_scores([bad])


def test_no_votes_no_ratings():
    assert leaderboard([]) == [] and fit_scores([]) == {} and intervals([]) == {} and win_rates([]) == {}
