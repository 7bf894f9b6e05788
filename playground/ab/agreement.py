"""How far to trust the judge: its verdicts against your blind votes on the rounds that have both.

Outcomes are a (the lower column won), b, or tie ("Tie" and "Both bad" votes are ties). Cohen's kappa is
scikit-learn's cohen_kappa_score: agreement corrected for what two raters with these label frequencies would
agree on by chance (1 perfect, 0 chance, below 0 worse than chance). Rounds the judge could not read
(an unparsable reply) are counted apart, never as agreement or disagreement.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from ..core.store import Store
from .judge import PairJudgement, Winner
from .judge_rounds import load_verdicts
from .votes import VoteFilter, voted_rounds

LABELS: tuple[Winner, ...] = ("a", "b", "tie")


@dataclass(frozen=True)
class JudgedVote:
    """One round with a human vote and a judge verdict on the same two replies."""

    human: Winner
    judge: PairJudgement
    answer_a_chars: int = 0
    answer_b_chars: int = 0


@dataclass(frozen=True)
class Agreement:
    rounds: int  # rounds with a vote and a readable verdict
    unparsable: int
    percent: float | None
    kappa: float | None
    confusion: dict[str, dict[str, int]]  # confusion[human][judge]
    position_bias: float | None  # share of readable verdicts whose two orders disagreed
    judge_prefers_longer: float | None  # share of the judge's decided verdicts (answers of unequal length) for the longer
    human_prefers_longer: float | None  # the same for your votes, to compare with

    def trusted(self, min_kappa: float, min_rounds: int) -> bool:
        return self.rounds >= min_rounds and self.kappa is not None and self.kappa >= min_kappa


def cohen_kappa(human: Sequence[str], judge: Sequence[str]) -> float | None:
    """Cohen's kappa; None with no rounds, 1.0 when both raters used one and the same label throughout
    (scikit-learn returns nan there: the chance correction divides by zero, but the raters agree fully)."""
    if not human:
        return None
    if len(set(human) | set(judge)) == 1:
        return 1.0
    from sklearn.metrics import cohen_kappa_score  # here: importing scikit-learn takes about a second

    return float(cohen_kappa_score(list(human), list(judge), labels=list(LABELS)))


def agreement(judged: Sequence[JudgedVote]) -> Agreement:
    readable = [j for j in judged if not j.judge.unparsable]
    human = [j.human for j in readable]
    judge = [j.judge.winner for j in readable]
    confusion: dict[str, dict[str, int]] = {h: {k: 0 for k in LABELS} for h in LABELS}
    for h, k in zip(human, judge):
        confusion[h][k] += 1
    return Agreement(
        rounds=len(readable), unparsable=len(judged) - len(readable),
        percent=sum(h == k for h, k in zip(human, judge)) / len(readable) if readable else None,
        kappa=cohen_kappa(human, judge), confusion=confusion,
        position_bias=sum(j.judge.position_bias for j in readable) / len(readable) if readable else None,
        judge_prefers_longer=longer_share([(j.judge.winner, j.answer_a_chars, j.answer_b_chars) for j in readable]),
        human_prefers_longer=longer_share([(j.human, j.answer_a_chars, j.answer_b_chars) for j in readable]))


def longer_share(outcomes: Sequence[tuple[str, int, int]]) -> float | None:
    """Of the decided outcomes (a or b) between answers of different length, the share won by the longer one."""
    decided = [(w, a, b) for w, a, b in outcomes if w in ("a", "b") and a != b]
    if not decided:
        return None
    return sum((w == "a") == (a > b) for w, a, b in decided) / len(decided)


def human_outcome(outcome: str, winner_column: int | None, column_a: int, column_b: int) -> Winner | None:
    """A stored vote seen from one pair of columns; None when the vote decided nothing between these two
    (with three or more columns, "X is best" says nothing about the two others)."""
    if outcome != "better":
        return "tie"
    return "a" if winner_column == column_a else "b" if winner_column == column_b else None


def judged_votes(store: Store, judge_model: str, rubric_version: str | None = None,
                 where: VoteFilter = VoteFilter()) -> list[JudgedVote]:
    """Blind-voted rounds (by default) that this judge also judged, one per judged pair of columns."""
    votes = {v.round_id: v for v in voted_rounds(store, where)}
    judged = []
    for verdict in load_verdicts(store, judge_model, rubric_version):
        vote = votes.get(verdict.round_id)
        if vote is None:
            continue
        human = human_outcome(vote.outcome, vote.winner_column, verdict.column_a, verdict.column_b)
        if human is not None:
            judged.append(JudgedVote(human, verdict.judgement, verdict.answer_a_chars, verdict.answer_b_chars))
    return judged


def agreement_with_votes(store: Store, judge_model: str, rubric_version: str | None = None,
                         where: VoteFilter = VoteFilter()) -> Agreement:
    return agreement(judged_votes(store, judge_model, rubric_version, where))
