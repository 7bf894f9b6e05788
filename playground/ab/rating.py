"""Ratings from blind A/B votes: a Bradley-Terry fit with bootstrap intervals, as Chatbot Arena does it.

Online Elo depends on the order of the votes and keeps drifting; a model that does not change over time
is better served by the maximum-likelihood Bradley-Terry fit over all votes at once.

Model: P(a beats b) = 1 / (1 + exp(-(θa - θb))) with θ the natural-log strength. Every vote is a row
(+1 for one model, -1 for the other); a win counts 1 for the winner, a tie ("tie" and "tie (bothbad)")
counts 1/2 a win each way, which is Arena's "duplicate tie rows at half weight".

Scale: score = 1000 + 400 / ln(10) · θ, so a 400-point gap means 10:1 odds (P ≈ 0.909), as in Elo and
Arena (Arena's ×400 with base 10 and initial rating 1000). Scores average exactly 1000 (see the penalty).

Penalty: a light L2 term λ/2 · Σθ² (λ = 0.01, i.e. a Gaussian prior with sd 10 nats ≈ 1700 points).
Without it a model that never lost would have an infinite score; with it one vote, A beating B, puts A
about 680 points above B, and once each model has a few dozen votes the penalty hardly moves the scores.
It also pins the otherwise free offset: the optimum has Σθ = 0.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from ..core.errors import PlaygroundError

Winner = Literal["model_a", "model_b", "tie", "tie (bothbad)"]
BASE_SCORE = 1000.0
SCALE = 400.0 / math.log(10.0)
DEFAULT_L2 = 0.01
DEFAULT_ROUNDS = 100


class BadVote(PlaygroundError):
    pass


class Vote(BaseModel):
    """One battle. Only anonymous votes (names hidden until after the vote) are rated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_a: str
    model_b: str
    winner: Winner
    anonymous: bool = True

    @model_validator(mode="after")
    def _two_models(self) -> "Vote":
        if self.model_a == self.model_b:
            raise ValueError(f"a vote needs two different models, got '{self.model_a}' twice")
        return self


def votes_from_pick(models: list[str], chosen: str | None, anonymous: bool = True) -> list[Vote]:
    """A "pick the best of N" vote as pairwise votes: the chosen one beats each of the others.

    `chosen=None` means none was good: every pair is a "tie (bothbad)".
    """
    if len(set(models)) != len(models) or len(models) < 2:
        raise BadVote(f"Pick the best needs two or more different models, got {models}.")
    if chosen is None:
        return [Vote(model_a=a, model_b=b, winner="tie (bothbad)", anonymous=anonymous)
                for i, a in enumerate(models) for b in models[i + 1:]]
    if chosen not in models:
        raise BadVote(f"The chosen model '{chosen}' is not one of {models}.")
    return [Vote(model_a=chosen, model_b=other, winner="model_a", anonymous=anonymous)
            for other in models if other != chosen]


@dataclass
class Battles:
    """Votes as arrays: indexes of the two models and the first model's share of the win (1, 0.5 or 0)."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    a_share: np.ndarray

    @classmethod
    def from_votes(cls, votes: Iterable[Vote | dict]) -> "Battles":
        rated = [v for v in map(_as_vote, votes) if v.anonymous]
        models = sorted({m for v in rated for m in (v.model_a, v.model_b)})
        index = {m: i for i, m in enumerate(models)}
        share = {"model_a": 1.0, "model_b": 0.0, "tie": 0.5, "tie (bothbad)": 0.5}
        return cls(models,
                   np.array([index[v.model_a] for v in rated], dtype=int),
                   np.array([index[v.model_b] for v in rated], dtype=int),
                   np.array([share[v.winner] for v in rated], dtype=float))

    def __len__(self) -> int:
        return len(self.a)

    def wins(self, weights: np.ndarray | None = None) -> np.ndarray:
        """W[i, j]: how many times i beat j, ties counting one half each way."""
        n = len(self.models)
        w = np.ones(len(self)) if weights is None else weights
        matrix = np.zeros((n, n))
        np.add.at(matrix, (self.a, self.b), w * self.a_share)
        np.add.at(matrix, (self.b, self.a), w * (1.0 - self.a_share))
        return matrix


def _as_vote(vote: Vote | dict) -> Vote:
    try:
        return Vote.model_validate(vote)
    except ValidationError as e:
        raise BadVote(f"Cannot rate the vote {vote!r}: {e.errors()[0]['msg']}.") from None


def fit_strengths(wins: np.ndarray, l2: float = DEFAULT_L2) -> np.ndarray:
    """Natural-log Bradley-Terry strengths maximising Σ W[i,j]·log σ(θi - θj) - λ/2·Σθ²."""
    from scipy.optimize import minimize  # here, not at the top: scipy.optimize adds ~0.3 s to the app's start

    n = wins.shape[0]
    if n == 0:
        return np.zeros(0)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        diff = theta[:, None] - theta[None, :]
        # -log σ(d) = log(1 + e^-d), computed without overflow
        value = float(np.sum(wins * np.logaddexp(0.0, -diff))) + 0.5 * l2 * float(theta @ theta)
        pull = wins * _sigmoid(-diff)  # d/dθi of the loss of "i beat j" is -σ(-(θi-θj))
        grad = -pull.sum(axis=1) + pull.sum(axis=0) + l2 * theta
        return value, grad

    result = minimize(loss, np.zeros(n), jac=True, method="L-BFGS-B", options={"gtol": 1e-9, "maxiter": 1000})
    return result.x - result.x.mean()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def to_score(theta: np.ndarray) -> np.ndarray:
    return BASE_SCORE + SCALE * theta


def fit_scores(votes: Iterable[Vote | dict], l2: float = DEFAULT_L2) -> dict[str, float]:
    battles = Battles.from_votes(votes)
    return dict(zip(battles.models, to_score(fit_strengths(battles.wins(), l2)).tolist()))


def bootstrap_scores(battles: Battles, rounds: int = DEFAULT_ROUNDS, seed: int | None = 0,
                     l2: float = DEFAULT_L2) -> np.ndarray:
    """rounds × models scores, each fitted on the votes resampled with replacement.

    A model missing from a resample gets only the prior (1000), which widens its interval, as it should.
    """
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, len(battles.models)))
    for r in range(rounds):
        counts = np.bincount(rng.integers(0, len(battles), len(battles)), minlength=len(battles)).astype(float)
        samples[r] = to_score(fit_strengths(battles.wins(counts), l2))
    return samples


def intervals(votes: Iterable[Vote | dict], rounds: int = DEFAULT_ROUNDS, seed: int | None = 0,
              l2: float = DEFAULT_L2) -> dict[str, tuple[float, float]]:
    """95% bootstrap intervals (2.5th and 97.5th percentiles) by model."""
    battles = Battles.from_votes(votes)
    if not len(battles):
        return {}
    low, high = np.percentile(bootstrap_scores(battles, rounds, seed, l2), [2.5, 97.5], axis=0)
    return {m: (float(lo), float(hi)) for m, lo, hi in zip(battles.models, low, high)}


def win_rates(votes: Iterable[Vote | dict]) -> dict[str, dict[str, float | None]]:
    """rates[a][b]: the share of a's battles against b that a won, ties counting one half; None if they never met."""
    battles = Battles.from_votes(votes)
    wins = battles.wins()
    played = wins + wins.T
    return {a: {b: (float(wins[i, j] / played[i, j]) if played[i, j] else None)
                for j, b in enumerate(battles.models) if j != i}
            for i, a in enumerate(battles.models)}


@dataclass
class Standing:
    rank: int
    model: str
    score: float
    lower: float
    upper: float
    votes: int
    wins: int
    ties: int
    losses: int

    def as_row(self) -> dict:
        return {"rank": self.rank, "model": self.model, "score": round(self.score),
                "95% CI": f"{round(self.lower - self.score):+d} / {round(self.upper - self.score):+d}",
                "votes": self.votes, "wins": self.wins, "ties": self.ties, "losses": self.losses}


def leaderboard(votes: Iterable[Vote | dict], rounds: int = DEFAULT_ROUNDS, seed: int | None = 0,
                l2: float = DEFAULT_L2) -> list[Standing]:
    """Models by score, best first. Rank is 1 + the number of models whose interval lies wholly above
    this one's, as Arena ranks, so models that cannot be told apart share a rank."""
    battles = Battles.from_votes(votes)
    if not len(battles):
        return []
    scores = to_score(fit_strengths(battles.wins(), l2))
    low, high = np.percentile(bootstrap_scores(battles, rounds, seed, l2), [2.5, 97.5], axis=0)
    standings = []
    for i, model in enumerate(battles.models):
        mine = np.concatenate([battles.a_share[battles.a == i], 1.0 - battles.a_share[battles.b == i]])
        standings.append(Standing(
            rank=1 + int(np.sum(low > high[i])), model=model, score=float(scores[i]),
            lower=float(low[i]), upper=float(high[i]), votes=len(mine),
            wins=int(np.sum(mine == 1.0)), ties=int(np.sum(mine == 0.5)), losses=int(np.sum(mine == 0.0))))
    return sorted(standings, key=lambda s: (-s.score, s.model))


def vote_counts(votes: Iterable[Vote | dict]) -> dict[str, int]:
    """Rated battles each model took part in."""
    battles = Battles.from_votes(votes)
    counts = np.bincount(np.concatenate([battles.a, battles.b]), minlength=len(battles.models))
    return dict(zip(battles.models, counts.tolist()))


# --- significance and style control ---------------------------------------------------------------------


@dataclass
class NeighbourGap:
    """Two models next to each other on the leaderboard: how sure the order is, and what would settle it."""

    better: str
    worse: str
    gap: float
    probability: float  # share of bootstrap fits in which `better` scores above `worse`
    more_votes: int | None  # rough votes still needed for a 95% separation; 0 when already separated, None if tied

    def describe(self) -> str:
        more = ("separated" if self.more_votes == 0 else "no sign of a difference" if self.more_votes is None
                else f"~{self.more_votes} more votes to separate")
        return f"{self.better} > {self.worse}: {self.probability:.0%} sure, {more}"


def neighbour_gaps(votes: Iterable[Vote | dict], rounds: int = DEFAULT_ROUNDS, seed: int | None = 0,
                   l2: float = DEFAULT_L2) -> list[NeighbourGap]:
    """For each pair of neighbours by score, the bootstrap probability that the upper one is better, and how
    many more votes would separate them at 95%.

    The estimate assumes the spread of the score gap shrinks as 1/√votes (each vote tells as much as the ones
    so far): separation needs gap ≥ 1.96·sd, so votes × (1.96·sd/gap)² in all, minus the votes already cast."""
    battles = Battles.from_votes(votes)
    if len(battles.models) < 2:
        return []
    scores = to_score(fit_strengths(battles.wins(), l2))
    samples = bootstrap_scores(battles, rounds, seed, l2)
    order = sorted(range(len(battles.models)), key=lambda i: (-scores[i], battles.models[i]))
    gaps = []
    for upper, lower in zip(order, order[1:]):
        gap = float(scores[upper] - scores[lower])
        spread = float(np.std(samples[:, upper] - samples[:, lower]))
        gaps.append(NeighbourGap(battles.models[upper], battles.models[lower], gap,
                                 float(np.mean(samples[:, upper] > samples[:, lower])),
                                 _more_votes(gap, spread, len(battles))))
    return gaps


def _more_votes(gap: float, spread: float, votes: int) -> int | None:
    if gap <= 1e-9:
        return None
    needed = votes * (1.96 * spread / gap) ** 2
    return max(0, math.ceil(needed - votes))


@dataclass
class StyleControlled:
    scores: dict[str, float]
    length_effect: float  # log-odds per unit of normalised length difference; > 0: longer answers win more


def style_controlled_scores(votes: Iterable[Vote | dict], lengths: Iterable[tuple[int, int]],
                            l2: float = DEFAULT_L2) -> StyleControlled:
    """Bradley-Terry with answer length as a covariate, as Chatbot Arena's style control does: P(a beats b) =
    σ(θa - θb + β·(len_a - len_b)/(len_a + len_b)). θ is then each model's strength with the pull of longer
    answers taken out. `lengths` gives (len_a, len_b) for each rated vote, in order."""
    from scipy.optimize import minimize  # here, not at the top: scipy.optimize adds ~0.3 s to the app's start

    as_votes = [_as_vote(v) for v in votes]
    pairs = list(lengths)
    if len(pairs) != len(as_votes):
        raise BadVote(f"Style control needs one (length a, length b) per vote: {len(as_votes)} votes, {len(pairs)} "
                      "lengths.")
    kept = [(v, p) for v, p in zip(as_votes, pairs) if v.anonymous]
    battles = Battles.from_votes([v for v, _ in kept])
    n = len(battles.models)
    style = np.array([(a - b) / (a + b) if a + b else 0.0 for _, (a, b) in kept])

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        theta, beta = params[:n], params[n]
        d = theta[battles.a] - theta[battles.b] + beta * style
        y = battles.a_share
        value = float(np.sum(y * np.logaddexp(0.0, -d) + (1 - y) * np.logaddexp(0.0, d)))
        value += 0.5 * l2 * float(params @ params)
        residual = _sigmoid(d) - y  # d loss / d d
        grad = np.zeros(n + 1)
        np.add.at(grad, battles.a, residual)
        np.add.at(grad, battles.b, -residual)
        grad[n] = float(residual @ style)
        return value, grad + l2 * params

    if not n:
        return StyleControlled({}, 0.0)
    result = minimize(loss, np.zeros(n + 1), jac=True, method="L-BFGS-B", options={"gtol": 1e-9, "maxiter": 1000})
    theta = result.x[:n] - result.x[:n].mean()
    return StyleControlled(dict(zip(battles.models, to_score(theta).tolist())), float(result.x[n]))
