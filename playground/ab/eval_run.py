"""An evaluation run for CI: a prompt set through several columns, their checks, and the judge on every pair.

Built from batch: the answers are one run_batch over the columns, the judge's verdicts a second one over a
column of its own ("@judge") into the same results file, one row per pair of answers and order. So the
judge's calls take the same provider path, retries, concurrency and resume as any batch row: a run that was
killed is run again with the same file and pays for nothing that finished.

The report is the --json contract of `python -m playground eval` (see eval_cli.py).
"""

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.pricing import Price
from .batch import BatchOutcome, ColumnConfig, Resolve, RowResult, run_batch
from .judge import PairJudgement, Rubric, judge_column, pair_rows, parse_verdict
from .promptset import PromptRow

CI_RESAMPLES = 1000


@dataclass(frozen=True)
class JudgeSetup:
    model: str
    rubric: Rubric


@dataclass(frozen=True)
class JudgedPair:
    row_id: str
    column_a: str
    column_b: str
    judgement: PairJudgement
    replies: tuple[str, str]


@dataclass
class EvalOutcome:
    rows: list[PromptRow]
    columns: list[ColumnConfig]
    answers: BatchOutcome
    judged: list[JudgedPair] = field(default_factory=list)
    judge_results: list[RowResult] = field(default_factory=list)
    judge_model: str | None = None
    judge_asked: int = 0

    @property
    def asked(self) -> int:
        """Requests this run sent (a resumed run sends only what had not finished)."""
        return self.answers.asked + self.judge_asked

    def judge_usage(self) -> tuple[int, float | None]:
        """Tokens and cost of the judge's replies (None when its model has no price)."""
        costs = [r.cost_usd for r in self.judge_results]
        tokens = sum(r.prompt_tokens + r.completion_tokens for r in self.judge_results)
        return tokens, None if None in costs else float(sum(costs))


def reference_of(row: PromptRow) -> str | None:
    if row.expected is None:
        return None
    return row.expected if isinstance(row.expected, str) else json.dumps(row.expected, ensure_ascii=False)


def run_eval(rows: list[PromptRow], columns: list[ColumnConfig], results_path: Path, resolve: Resolve,
             prices: dict[str, Price], judge: JudgeSetup | None = None, workers: int = 4,
             progress: Callable[[int, int], None] | None = None) -> EvalOutcome:
    answers = run_batch(rows, columns, results_path, resolve, prices, workers=workers, progress=progress)
    outcome = EvalOutcome(rows, columns, answers, judge_model=judge.model if judge else None)
    if judge is None or len(columns) < 2:
        return outcome
    by_pair = {(r.row_id, r.column): r for r in answers.results}
    planned = []  # (row id, column a, column b, judge row a-first, judge row b-first)
    for row in rows:
        for a, b in itertools.combinations(columns, 2):
            first, second = by_pair.get((row.id, a.label)), by_pair.get((row.id, b.label))
            if first is None or second is None or not (first.ok and second.ok):
                continue  # an answer that failed is not judged: its column's error count says so
            ab, ba = pair_rows(f"{row.id}#{a.label}#{b.label}", row.chat_messages(), first.reply, second.reply,
                               judge.rubric, reference_of(row))
            planned.append((row.id, a.label, b.label, ab, ba))
    if not planned:
        return outcome
    judged = run_batch([r for p in planned for r in p[3:]], [judge_column(judge.model, judge.rubric)],
                       results_path, resolve, prices, workers=workers)
    verdicts = {r.row_id: r for r in judged.results}
    for row_id, label_a, label_b, ab, ba in planned:
        first, second = verdicts.get(ab.id), verdicts.get(ba.id)
        if first is None or second is None:
            continue
        outcome.judged.append(JudgedPair(row_id, label_a, label_b, PairJudgement(_verdict(first), _verdict(second)),
                                         (first.reply, second.reply)))
    outcome.judge_results, outcome.judge_asked = judged.results, judged.asked
    return outcome


def _verdict(result: RowResult):
    return parse_verdict(result.reply) if result.ok else None


def check_rates(outcome: EvalOutcome, column: str) -> dict[str, float]:
    """Pass rate of each check kind over the rows that use it; an answer that failed counts as not passed."""
    results = {r.row_id: r for r in outcome.answers.results if r.column == column}
    counts: dict[str, list[int]] = {}
    for row in outcome.rows:
        if row.check is None:
            continue
        result = results.get(row.id)
        passed = result is not None and result.ok and result.check is not None and result.check.passed
        counts.setdefault(row.check.kind, []).append(int(passed))
    return {kind: sum(marks) / len(marks) for kind, marks in counts.items()}


def judge_scores(outcome: EvalOutcome, column: str) -> tuple[list[float], int, int]:
    """The column's score in each readable judged pair (win 1, tie 0.5, loss 0), its bias events, unparsable pairs."""
    scores, bias, unparsable = [], 0, 0
    for pair in outcome.judged:
        if column not in (pair.column_a, pair.column_b):
            continue
        if pair.judgement.unparsable:
            unparsable += 1
            continue
        bias += pair.judgement.position_bias
        mine = "a" if column == pair.column_a else "b"
        scores.append(1.0 if pair.judgement.winner == mine else 0.5 if pair.judgement.winner == "tie" else 0.0)
    return scores, bias, unparsable


def win_rate_interval(scores: list[float], seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean score."""
    data = np.asarray(scores)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (CI_RESAMPLES, len(data)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def judge_summary(outcome: EvalOutcome, column: str) -> dict | None:
    if outcome.judge_model is None:
        return None
    scores, bias, unparsable = judge_scores(outcome, column)
    return {"win_rate": float(np.mean(scores)) if scores else None,
            "ci": list(win_rate_interval(scores)) if scores else None,
            "position_bias": bias / len(scores) if scores else None, "unparsable": unparsable}


def report(outcome: EvalOutcome) -> dict:
    """The --json contract: {"rows": N, "columns": {NAME: {"checks", "judge", "tokens", "cost_usd", "latency_ms"}}}."""
    columns = {}
    for summary in outcome.answers.summaries:
        columns[summary.column] = {
            "checks": check_rates(outcome, summary.column),
            "judge": judge_summary(outcome, summary.column),
            "tokens": summary.prompt_tokens + summary.completion_tokens,
            "cost_usd": summary.cost_usd,
            "latency_ms": {"p50": summary.p50_latency_ms, "p95": summary.p95_latency_ms},
        }
    return {"rows": len(outcome.rows), "columns": columns}


def never_judged(outcome: EvalOutcome) -> bool:
    """The judge was asked and not one of its replies held a verdict: its numbers would mean nothing."""
    return bool(outcome.judged) and all(p.judgement.first is None and p.judgement.second is None
                                        for p in outcome.judged)
