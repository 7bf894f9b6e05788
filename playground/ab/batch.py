"""Batch runs: every row of a prompt set through several columns (model + system prompt + parameters).

Each finished (row, column) is appended to a results JSONL file at once, flushed and fsynced, so a run that
is cancelled, crashes or loses power is resumed by running again with the same file: finished pairs are
not asked again, a line cut off by a crash is dropped and its pair redone. Pairs that ended in an error
are redone on the next run too (unless `redo_errors=False`); the newest line for a pair is the one read.

The runner knows nothing of Gradio or the store: it gets a `resolve(model_ref) -> (provider, model)`
callable (Registry.resolve) and a price table. The openai SDK is synchronous, so rows run on a thread
pool; transient provider errors are retried with exponential backoff and jitter.
"""

import csv
import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..core.errors import PlaygroundError
from ..core.messages import Message
from ..core.params import SamplingParams
from ..core.pricing import Price, cost_usd
from ..core.prompts import PromptFormat, render_prompt
from ..core.tokens import count_messages, count_text
from ..providers import ProviderError, Stream
from .checks import CheckResult, run_check
from .promptset import PromptRow

try:
    import fcntl
except ImportError:  # Windows: no advisory lock, one run per results file is then up to the user
    fcntl = None

RETRIED_KINDS = frozenset({"rate_limit", "server", "broken_stream", "connection", "timeout"})
Resolve = Callable[[str], tuple[Any, str]]


class ColumnConfig(BaseModel):
    """One column of the comparison. The label names the column in the results file."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(min_length=1)
    model: str = Field(min_length=1, description="A model reference, provider:model.")
    system_prompt: str = Field("", description="Replaces a row's own leading system message when set.")
    params: SamplingParams = Field(default_factory=SamplingParams)

    def fingerprint(self) -> str:
        setup = self.model_dump(mode="json", exclude={"label"})
        return hashlib.sha1(json.dumps(setup, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 1.0
    max_wait: float = 30.0
    kinds: frozenset[str] = RETRIED_KINDS

    def wait(self, attempt: int, error: ProviderError, rng: random.Random) -> float:
        """Seconds before the next attempt: the server's Retry-After when it sends one, else exponential;
        jittered so that many workers hit by the same limit do not come back all at once; capped."""
        if error.retry_after:
            return min(self.max_wait, error.retry_after * (1 + 0.1 * rng.random()))
        return min(self.max_wait, self.base_delay * 2 ** (attempt - 1)) * (0.5 + 0.5 * rng.random())


class RowResult(BaseModel):
    row_id: str
    column: str
    model: str
    config: str = Field(description="The column's fingerprint: a resumed run must use the same setup.")
    reply: str = ""
    error: str | None = None
    error_kind: str | None = None
    attempts: int = 1
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_counted: bool = False
    cost_usd: float | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    check: CheckResult | None = None
    finished_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    @property
    def ok(self) -> bool:
        return self.error is None


class ColumnSummary(BaseModel):
    column: str
    model: str
    rows: int
    replies: int
    errors: int
    checked: int
    passed: int
    score: float | None = Field(description="Mean check score over replies that have a check; errors excluded.")
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None


@dataclass
class BatchOutcome:
    results: list[RowResult]
    summaries: list[ColumnSummary]
    cancelled: bool
    resumed: int
    asked: int
    problems: list[str] = field(default_factory=list)


class ResultsFileProblem(PlaygroundError):
    pass


class ResultsFile:
    """The append-only results JSONL of one run, locked against a second run writing to it at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None

    def __enter__(self) -> "ResultsFile":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a+b")
        if fcntl is not None:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self._file.close()
                raise ResultsFileProblem(f"{self.path} is in use by another batch run. Wait for it to finish "
                                         "or pick another results file.") from None
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def read(self) -> tuple[dict[tuple[str, str], RowResult], list[str]]:
        """The latest result per (row, column), preferring a reply to an error; cuts off a partial last line."""
        self._file.seek(0)
        data = self._file.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self._file.truncate(end)
        return parse_results(data[:end].decode("utf-8", errors="replace").splitlines(), str(self.path))

    def append(self, result: RowResult) -> None:
        line = (result.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())


def parse_results(lines: list[str], source: str) -> tuple[dict[tuple[str, str], RowResult], list[str]]:
    results: dict[tuple[str, str], RowResult] = {}
    problems = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result = RowResult.model_validate_json(line)
        except ValidationError:
            problems.append(f"{source}, line {number}: unreadable, so its row is run again.")
            continue
        key = (result.row_id, result.column)
        if key not in results or not results[key].ok or result.ok:
            results[key] = result
    return results, problems


def read_results(path: Path) -> list[RowResult]:
    """Results of an earlier run, for showing or exporting without running anything."""
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    complete = text[: text.rfind("\n") + 1]
    return list(parse_results(complete.splitlines(), str(path))[0].values())


def build_messages(row: PromptRow, column: ColumnConfig) -> list[Message]:
    messages = row.chat_messages()
    if column.system_prompt.strip():
        rest = messages[1:] if messages[0].role == "system" else messages
        messages = [Message(role="system", content=column.system_prompt)] + rest
    return messages


def build_prompt(row: PromptRow, column: ColumnConfig) -> str:
    """Prompt text for a base (completion) model."""
    if row.prompt is None:
        return render_prompt(build_messages(row, column), PromptFormat())
    return (column.system_prompt.strip() + "\n" if column.system_prompt.strip() else "") + row.prompt


@dataclass
class _Job:
    """What one run shares between its worker threads."""

    targets: dict[str, tuple[Any, str]]
    prices: dict[str, Price]
    retry: RetryPolicy
    results: ResultsFile | None  # None for a single ask (ask_row): nothing is appended
    cancel: threading.Event
    rng: random.Random

    def run(self, row: PromptRow, column: ColumnConfig) -> RowResult | None:
        """Ask until a reply or a final error; None when cancelled before the row finished."""
        attempt = 0
        while not self.cancel.is_set():
            attempt += 1
            result, error = self.ask(row, column)
            result.attempts = attempt
            if error is None or error.kind not in self.retry.kinds or attempt >= self.retry.max_attempts:
                self.results.append(result)
                return result
            if self.cancel.wait(self.retry.wait(attempt, error, self.rng)):
                break
        return None

    def ask(self, row: PromptRow, column: ColumnConfig) -> tuple[RowResult, ProviderError | None]:
        provider, model = self.targets[column.label]
        completion = provider.is_completion_model(model)
        request = build_prompt(row, column) if completion else build_messages(row, column)
        started = time.perf_counter()
        stream: Stream | None = None
        pieces: list[str] = []
        error = None
        try:
            if completion:
                stream = provider.stream_completion(model, request, column.params)
            else:
                stream = provider.stream_chat(model, request, column.params)
            for piece in stream:
                pieces.append(piece)  # kept piece by piece: a broken stream leaves its partial reply
        except ProviderError as e:
            error = e
        latency_ms = (time.perf_counter() - started) * 1000
        reply = "".join(pieces)
        result = RowResult(
            row_id=row.id, column=column.label, model=column.model, config=column.fingerprint(), reply=reply,
            error=str(error) if error else None, error_kind=error.kind if error else None,
            finish_reason=stream.finish_reason if stream else None, latency_ms=latency_ms,
            ttft_ms=(stream.first_token_at - started) * 1000 if stream and stream.first_token_at else None)
        if stream is not None:
            self.measure(result, model, stream, request, reply)
        if error is None and row.check is not None:
            result.check = run_check(row.check, reply, row.expected)
        return result, error

    def measure(self, result: RowResult, model: str, stream: Stream, request, reply: str) -> None:
        if stream.usage:
            result.prompt_tokens, result.completion_tokens = stream.usage.prompt_tokens, stream.usage.completion_tokens
        else:
            result.tokens_counted = True
            counted = count_text(request, model) if isinstance(request, str) else count_messages(request, model)
            result.prompt_tokens = counted
            result.completion_tokens = count_text(reply, model)
        result.cost_usd = cost_usd(model, result.prompt_tokens, result.completion_tokens, self.prices)


def run_batch(rows: list[PromptRow], columns: list[ColumnConfig], results_path: Path, resolve: Resolve,
              prices: dict[str, Price], *, workers: int = 4, retry: RetryPolicy = RetryPolicy(),
              progress: Callable[[int, int], None] | None = None, cancel: threading.Event | None = None,
              redo_errors: bool = True, seed: int | None = None) -> BatchOutcome:
    """Run every row through every column, resuming from `results_path`; progress(done, total) counts pairs.

    Unknown models and a results file made with another setup for a column raise before anything is sent.
    Setting `cancel` stops starting new rows (and ends backoff waits); rows in flight finish and are kept.
    If the run fails with an exception (a bug, or `progress` raising), `cancel` is set to stop the workers.
    """
    _check_unique([c.label for c in columns], "column label")
    _check_unique([r.id for r in rows], "row id")
    targets = {c.label: resolve(c.model) for c in columns}
    cancel = cancel or threading.Event()
    with ResultsFile(results_path) as results_file:
        done, problems = results_file.read()
        _check_same_setup(done, columns, results_path)
        keep = {k: r for k, r in done.items() if r.ok or not redo_errors}
        todo = [(row, c) for row in rows for c in columns if (row.id, c.label) not in keep]
        total = len(rows) * len(columns)
        finished = {(row.id, c.label): keep[(row.id, c.label)] for row in rows for c in columns
                    if (row.id, c.label) in keep}
        resumed = len(finished)
        job = _Job(targets, prices, retry, results_file, cancel, random.Random(seed))
        _run_pool(job, todo, finished, total, workers, progress)
    asked = len(finished) - resumed
    # An earlier error whose retry was cancelled is still the latest word on that pair.
    latest = {**done, **finished}
    ordered = [latest[(row.id, c.label)] for row in rows for c in columns if (row.id, c.label) in latest]
    return BatchOutcome(ordered, summarize(ordered, columns, len(rows)), cancelled=asked < len(todo),
                        resumed=resumed, asked=asked, problems=problems)


def ask_row(row: PromptRow, column: ColumnConfig, resolve: Resolve, prices: dict[str, Price]) -> RowResult:
    """One row through one column outside a run: no results file, no retries (a judge asked about one A/B
    round, say). The call, its measurement and its check are those of every batch row."""
    job = _Job({column.label: resolve(column.model)}, prices, RetryPolicy(max_attempts=1), None,
               threading.Event(), random.Random())
    return job.ask(row, column)[0]


def _run_pool(job: _Job, todo, finished: dict, total: int, workers: int, progress) -> None:
    if progress:
        progress(len(finished), total)
    if not todo:
        return
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="batch") as pool:
        futures = [pool.submit(job.run, row, column) for row, column in todo]
        try:
            for future in as_completed(futures):
                result = future.result()
                if result is not None:
                    finished[(result.row_id, result.column)] = result
                    if progress:
                        progress(len(finished), total)
        except BaseException:
            job.cancel.set()  # stop the other workers: whatever they finished is already on disk
            raise


def _check_unique(names: list[str], what: str) -> None:
    seen = set()
    for name in names:
        if name in seen:
            raise PlaygroundError(f"The {what} '{name}' is used twice; each must be unique.")
        seen.add(name)


def _check_same_setup(done: dict, columns: list[ColumnConfig], path: Path) -> None:
    for column in columns:
        other = next((r for (_, label), r in done.items() if label == column.label
                      and r.config != column.fingerprint()), None)
        if other is not None:
            raise ResultsFileProblem(
                f"{path} holds results for column '{column.label}' made with another setup (model "
                f"{other.model}). Resuming would mix the two: use a new results file or another column label.")


def summarize(results: list[RowResult], columns: list[ColumnConfig], rows: int) -> list[ColumnSummary]:
    summaries = []
    for column in columns:
        mine = [r for r in results if r.column == column.label]
        replies = [r for r in mine if r.ok]
        checked = [r.check for r in replies if r.check is not None]
        latencies = [r.latency_ms for r in replies if r.latency_ms is not None]
        costs = [r.cost_usd for r in mine if r.prompt_tokens or r.completion_tokens]
        p50, p95 = np.percentile(latencies, [50, 95]).tolist() if latencies else (None, None)
        summaries.append(ColumnSummary(
            column=column.label, model=column.model, rows=rows, replies=len(replies), errors=len(mine) - len(replies),
            checked=len(checked), passed=sum(c.passed for c in checked),
            score=float(np.mean([c.score for c in checked])) if checked else None,
            prompt_tokens=sum(r.prompt_tokens for r in mine), completion_tokens=sum(r.completion_tokens for r in mine),
            cost_usd=None if None in costs else float(sum(costs)), p50_latency_ms=p50, p95_latency_ms=p95))
    return summaries


CSV_FIELDS = ["row_id", "column", "model", "reply", "error", "error_kind", "attempts", "finish_reason",
              "prompt_tokens", "completion_tokens", "tokens_counted", "cost_usd", "latency_ms", "ttft_ms",
              "passed", "score", "check_detail"]


def export_csv(results: list[RowResult], path: Path) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in results:
            row = r.model_dump(include=set(CSV_FIELDS))
            row.update(passed=r.check.passed if r.check else "", score=r.check.score if r.check else "",
                       check_detail=r.check.detail if r.check else "")
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return path


def export_jsonl(results: list[RowResult], path: Path) -> Path:
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for r in results:
            f.write(r.model_dump_json(exclude={"config"}) + "\n")
    return path
