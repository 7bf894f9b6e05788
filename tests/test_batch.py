"""Batch runs against a real OpenAI-compatible server on loopback, through real Providers."""

import csv
import json
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from playground.ab.batch import (
    BatchOutcome,
    ColumnConfig,
    ResultsFile,
    ResultsFileProblem,
    RetryPolicy,
    export_csv,
    export_jsonl,
    read_results,
    run_batch,
)
from playground.ab.promptset import PromptRow
from playground.core.errors import PlaygroundError, UnknownModel
from playground.core.messages import Message
from playground.core.params import SamplingParams
from playground.core.pricing import DEFAULT_PRICES, cost_usd
from playground.providers import EndpointConfig, ProviderError
from playground.providers.openai import make_provider

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_wait=0.01)


@pytest.fixture
def provider(fake_server):
    return make_provider(EndpointConfig(name="local", base_url=fake_server.base_url, api_key_env="K", timeout=5),
                         {"K": "sk-test"})


@pytest.fixture
def resolve(provider):
    def resolve(ref):
        if not ref.startswith("local:"):
            raise UnknownModel(f"No provider serves '{ref}'.")
        return provider, ref.removeprefix("local:")
    return resolve


def echo_rows(n):
    return [PromptRow(id=f"r{i}", prompt=f"q{i}", expected=f"Echo: q{i}") for i in range(n)]


def column(label, model, **params):
    return ColumnConfig(label=label, model=f"local:{model}", params=SamplingParams(**params))


def model_requests(server, model=None):
    return [r for r in server.requests if r["path"].endswith("completions")
            and (model is None or r["body"]["model"] == model)]


def asked_pairs(server):
    """(prompt, model) of every chat request the server got."""
    return [(r["body"]["messages"][-1]["content"], r["body"]["model"]) for r in model_requests(server)]


def file_pairs(path):
    return [(d["row_id"], d["column"]) for d in map(json.loads, path.read_text().splitlines())]


def run(rows, columns, path, resolve, **kwargs) -> BatchOutcome:
    kwargs.setdefault("retry", FAST_RETRY)
    return run_batch(rows, columns, path, resolve, DEFAULT_PRICES, **kwargs)


class InFlight:
    """Wraps a provider to count how many requests run at once."""

    def __init__(self, provider):
        self.provider, self.now, self.most, self.lock = provider, 0, 0, threading.Lock()

    def is_completion_model(self, model):
        return self.provider.is_completion_model(model)

    def stream_chat(self, *args, **kwargs):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        try:
            stream = self.provider.stream_chat(*args, **kwargs)
            stream.chunks = list(stream.chunks)
            return stream
        finally:
            with self.lock:
                self.now -= 1


def test_forty_rows_through_two_columns_each_finish_exactly_once(fake_server, provider, tmp_path):
    fake_server.first_token_delay = 0.02
    counter = InFlight(provider)
    progress = []
    columns = [column("mini", "gpt-4o-mini"), column("short", "gpt-4o", max_tokens=1)]

    outcome = run(echo_rows(40), columns, tmp_path / "results.jsonl",
                  lambda ref: (counter, ref.removeprefix("local:")), workers=8,
                  progress=lambda done, total: progress.append((done, total)))

    pairs = [(f"r{i}", c) for i in range(40) for c in ("mini", "short")]
    assert [(r.row_id, r.column) for r in outcome.results] == pairs
    assert sorted(file_pairs(tmp_path / "results.jsonl")) == sorted(pairs)
    models = ("gpt-4o-mini", "gpt-4o")
    assert sorted(asked_pairs(fake_server)) == sorted((f"q{i}", m) for i in range(40) for m in models)
    assert 1 < counter.most <= 8
    assert progress[0] == (0, 80) and progress[-1] == (80, 80)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)
    assert (outcome.cancelled, outcome.resumed, outcome.asked) == (False, 0, 80)

    mini, short = outcome.summaries
    assert (mini.replies, mini.errors, mini.checked, mini.passed, mini.score) == (40, 0, 40, 40, 1.0)
    assert (short.passed, short.score) == (0, 0.0)
    assert outcome.results[1].reply == "Echo:" and outcome.results[1].check.detail == "Expected 'Echo: q0'."
    assert (mini.prompt_tokens, mini.completion_tokens) == (40 * 4, 40 * 2)
    assert mini.cost_usd == pytest.approx(cost_usd("gpt-4o-mini", 160, 80, DEFAULT_PRICES))
    assert 20 <= mini.p50_latency_ms <= mini.p95_latency_ms
    assert all(r.ttft_ms >= 20 and r.latency_ms >= r.ttft_ms and r.attempts == 1 for r in outcome.results)


@pytest.mark.parametrize("model, kind, requests_per_row, reply", [
    ("fault-429", "rate_limit", 3, ""),
    ("fault-500", "server", 3, ""),
    ("fault-break", "broken_stream", 3, "Partial one two"),
    ("fault-401", "auth", 1, ""),
])
def test_failing_rows_are_retried_then_reported_as_failed_not_lost(fake_server, resolve, tmp_path, model, kind,
                                                                  requests_per_row, reply):
    columns = [column("good", "gpt-4o-mini"), column("bad", model)]

    outcome = run(echo_rows(5), columns, tmp_path / "results.jsonl", resolve, workers=4)

    failed = [r for r in outcome.results if r.column == "bad"]
    assert [r.row_id for r in failed] == [f"r{i}" for i in range(5)]
    assert all((r.error_kind, r.attempts, r.reply, r.check) == (kind, requests_per_row, reply, None) for r in failed)
    assert all(r.error for r in failed)
    assert len(model_requests(fake_server, model)) == 5 * requests_per_row
    good, bad = outcome.summaries
    assert (good.passed, bad.replies, bad.errors, bad.score) == (5, 0, 5, None)
    pairs = sorted((f"r{i}", c) for i in range(5) for c in ("good", "bad"))
    assert sorted(file_pairs(tmp_path / "results.jsonl")) == pairs
    assert not outcome.cancelled


def test_rate_limits_wait_for_retry_after_capped_and_other_errors_back_off_exponentially():
    rng = random.Random(0)
    limited = ProviderError("rate_limit", "slow down", 429, retry_after=7)
    broken = ProviderError("server", "oops", 500)

    assert 7 <= RetryPolicy(max_wait=30).wait(1, limited, rng) <= 7.7
    assert RetryPolicy(max_wait=2).wait(1, limited, rng) == 2
    waits = [RetryPolicy(base_delay=1, max_wait=30).wait(n, broken, rng) for n in (1, 2, 3, 4)]
    assert [lo <= w <= hi for w, lo, hi in zip(waits, (0.5, 1, 2, 4), (1, 2, 4, 8))] == [True] * 4
    assert RetryPolicy(base_delay=1, max_wait=3).wait(10, broken, rng) <= 3


def test_the_runner_waits_out_retry_after_up_to_the_cap_and_a_cancel_ends_the_wait(fake_server, resolve,
                                                                                  tmp_path):
    path, rows, columns = tmp_path / "results.jsonl", echo_rows(1), [column("limited", "fault-429")]

    started = time.perf_counter()
    capped = run(rows, columns, path, resolve, retry=RetryPolicy(max_attempts=2, max_wait=0.3))
    assert time.perf_counter() - started >= 0.3  # Retry-After says 7 s; the cap says 0.3 s
    assert capped.results[0].attempts == 2

    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.perf_counter()
    stopped = run(rows, columns, path, resolve, retry=RetryPolicy(max_attempts=5, max_wait=60), cancel=cancel)
    assert time.perf_counter() - started < 5
    assert stopped.cancelled and stopped.asked == 0
    assert len(model_requests(fake_server, "fault-429")) == 3
    assert len(file_pairs(path)) == 1  # the row waiting to be retried is left for the next run


def test_a_cancelled_run_resumes_without_asking_finished_rows_again(fake_server, resolve, tmp_path):
    fake_server.first_token_delay = 0.01
    path = tmp_path / "results.jsonl"
    rows, columns = echo_rows(40), [column("a", "gpt-4o-mini"), column("b", "gpt-4o")]
    cancel = threading.Event()

    def stop_at_twenty(done, total):
        if done >= 20:
            cancel.set()

    first = run(rows, columns, path, resolve, workers=4, progress=stop_at_twenty, cancel=cancel)

    assert first.cancelled and 20 <= len(first.results) < 80
    assert len(model_requests(fake_server)) == len(first.results) == len(file_pairs(path))
    asked_first = set(asked_pairs(fake_server))
    fake_server.clear_requests()

    second = run(rows, columns, path, resolve, workers=4)

    assert (second.cancelled, second.resumed, second.asked) == (False, len(first.results), 80 - len(first.results))
    assert len(model_requests(fake_server)) == 80 - len(first.results)
    assert not asked_first & set(asked_pairs(fake_server))
    pairs = file_pairs(path)
    assert len(pairs) == len(set(pairs)) == 80
    assert len(second.results) == 80 and all(r.check.passed for r in second.results)


def test_a_results_file_cut_off_mid_line_is_resumed_and_the_cut_row_redone(fake_server, resolve, tmp_path):
    path = tmp_path / "results.jsonl"
    rows, columns = echo_rows(6), [column("a", "gpt-4o-mini")]
    run(rows, columns, path, resolve, workers=1)
    lines = path.read_text().splitlines()
    last = json.loads(lines[-1])
    path.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])  # died while writing
    fake_server.clear_requests()

    outcome = run(rows, columns, path, resolve, workers=2)

    assert asked_pairs(fake_server) == [(f"q{last['row_id'][1:]}", "gpt-4o-mini")]
    assert (outcome.resumed, outcome.asked, outcome.problems) == (5, 1, [])
    assert sorted(file_pairs(path)) == sorted((f"r{i}", "a") for i in range(6))
    assert [r.row_id for r in outcome.results] == [f"r{i}" for i in range(6)]


def test_an_unreadable_line_inside_the_file_is_reported_and_its_row_redone(fake_server, resolve, tmp_path):
    path = tmp_path / "results.jsonl"
    rows, columns = echo_rows(3), [column("a", "gpt-4o-mini")]
    run(rows, columns, path, resolve)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{garbage", lines[2]]) + "\n")
    fake_server.clear_requests()

    outcome = run(rows, columns, path, resolve)

    assert len(model_requests(fake_server)) == 1
    assert outcome.problems == [f"{path}, line 2: unreadable, so its row is run again."]
    assert [r.row_id for r in outcome.results] == ["r0", "r1", "r2"]


def test_rows_that_failed_are_asked_again_on_the_next_run(fake_server, resolve, tmp_path):
    path = tmp_path / "results.jsonl"
    rows, columns = echo_rows(3), [column("new", "my-fine-tune")]
    first = run(rows, columns, path, resolve)
    assert [r.error_kind for r in first.results] == ["not_found"] * 3

    kept = run(rows, columns, path, resolve, redo_errors=False)
    assert len(model_requests(fake_server)) == 3 and kept.asked == 0
    fake_server.models.append("my-fine-tune")  # the fine-tune finished meanwhile
    second = run(rows, columns, path, resolve)

    assert len(model_requests(fake_server)) == 6
    assert [(r.row_id, r.ok) for r in second.results] == [("r0", True), ("r1", True), ("r2", True)]
    assert sorted((r.row_id, r.ok) for r in read_results(path)) == [("r0", True), ("r1", True), ("r2", True)]


def test_resuming_with_another_setup_under_the_same_label_is_refused(fake_server, resolve, tmp_path):
    path = tmp_path / "results.jsonl"
    run(echo_rows(2), [column("a", "gpt-4o-mini")], path, resolve)
    fake_server.clear_requests()

    with pytest.raises(ResultsFileProblem, match="column 'a' made with another setup"):
        run(echo_rows(2), [column("a", "gpt-4o-mini", temperature=0)], path, resolve)
    assert model_requests(fake_server) == []


def test_a_results_file_in_use_by_another_run_is_refused(fake_server, resolve, tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsFile(path):
        with pytest.raises(ResultsFileProblem, match="in use by another batch run"):
            run(echo_rows(1), [column("a", "gpt-4o-mini")], path, resolve)
    assert model_requests(fake_server) == []


@pytest.mark.parametrize("columns, problem", [
    ([column("a", "gpt-4o-mini"), ColumnConfig(label="b", model="elsewhere:gpt-4o")], UnknownModel),
    ([column("a", "gpt-4o-mini"), column("a", "gpt-4o")], PlaygroundError),
])
def test_bad_columns_fail_before_anything_is_sent(fake_server, resolve, tmp_path, columns, problem):
    with pytest.raises(problem):
        run(echo_rows(2), columns, tmp_path / "results.jsonl", resolve)
    assert model_requests(fake_server) == []
    assert not (tmp_path / "results.jsonl").exists()


def test_each_column_sends_its_own_system_prompt_and_parameters(fake_server, resolve, tmp_path):
    rows = [PromptRow(id="chat", messages=[Message(role="system", content="row system"),
                                           Message(role="user", content="hi")]),
            PromptRow(id="base", prompt="Q: capital?\nA:")]
    columns = [ColumnConfig(label="deploy", model="local:gpt-4o-mini", system_prompt="Be brief.",
                            params=SamplingParams(temperature=0, max_tokens=50, stop=["\n"])),
               ColumnConfig(label="row", model="local:gpt-4o-mini"),
               ColumnConfig(label="base", model="local:davinci-002")]

    outcome = run(rows, columns, tmp_path / "results.jsonl", resolve, workers=1)

    bodies = [r["body"] for r in model_requests(fake_server)]
    chats = [(b["messages"], b["temperature"], b["max_tokens"], b.get("stop")) for b in bodies if "messages" in b]
    assert sorted(chats, key=json.dumps) == sorted([
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}], 0, 50, ["\n"]),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: capital?\nA:"}], 0, 50, ["\n"]),
        ([{"role": "system", "content": "row system"}, {"role": "user", "content": "hi"}], 1.0, 512, None),
        ([{"role": "user", "content": "Q: capital?\nA:"}], 1.0, 512, None),
    ], key=json.dumps)
    assert sorted(b["prompt"] for b in bodies if "prompt" in b) == ["Q: capital?\nA:", "row system\nQ: hi\nA:"]
    replies = {(r.row_id, r.column): r.reply for r in outcome.results}
    assert replies[("base", "base")] == "Echo: capital?" and replies[("chat", "row")] == "Echo: hi"


def test_tokens_are_counted_when_the_api_reports_no_usage_and_unpriced_models_have_no_cost(fake_server, resolve,
                                                                                          tmp_path):
    outcome = run([PromptRow(id="1", prompt="hello there")], [column("x", "fault-notext")],
                  tmp_path / "results.jsonl", resolve)

    result = outcome.results[0]
    assert result.ok and result.reply == "Echo: hello there"
    assert result.tokens_counted and result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost_usd is None and outcome.summaries[0].cost_usd is None
    assert result.check is None and outcome.summaries[0].score is None


def test_results_export_to_csv_and_jsonl(fake_server, resolve, tmp_path):
    rows = [PromptRow(id="1", prompt='a "quoted", comma\nand line', check={"kind": "contains", "arg": "Echo"}),
            PromptRow(id="2", prompt="b", expected="nope")]
    outcome = run(rows, [column("a", "gpt-4o-mini"), column("down", "fault-401")], tmp_path / "results.jsonl", resolve)

    csv_path = export_csv(outcome.results, tmp_path / "out.csv")
    jsonl_path = export_jsonl(outcome.results, tmp_path / "out.jsonl")

    with csv_path.open(newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert [(r["row_id"], r["column"], r["passed"]) for r in table] == [
        ("1", "a", "True"), ("1", "down", ""), ("2", "a", "False"), ("2", "down", "")]
    assert table[0]["reply"] == 'Echo: a "quoted", comma\nand line'
    assert table[1]["error_kind"] == "auth" and table[1]["error"]
    assert table[2]["check_detail"] == "Expected 'nope'." and table[2]["score"] == "0.0"
    lines = [json.loads(line) for line in jsonl_path.read_text(encoding="utf-8").splitlines()]
    assert [(d["row_id"], d["column"]) for d in lines] == [(r["row_id"], r["column"]) for r in table]
    assert lines[0]["check"] == {"passed": True, "score": 1.0, "detail": "Contains 'Echo'."}
    assert lines[0]["reply"] == table[0]["reply"] and "config" not in lines[0]


KILLED_RUN = """
import os, sys
from playground.ab.batch import ColumnConfig, run_batch
from playground.core.pricing import DEFAULT_PRICES
from playground.ab.promptset import PromptRow
from playground.providers import EndpointConfig
from playground.providers.openai import make_provider

provider = make_provider(EndpointConfig(name="local", base_url=sys.argv[1], api_key_env="K"), {"K": "sk-test"})
rows = [PromptRow(id=f"r{i}", prompt=f"q{i}") for i in range(30)]
columns = [ColumnConfig(label="a", model="gpt-4o-mini"), ColumnConfig(label="b", model="gpt-4o")]

def die(done, total):
    if done >= 15:
        os._exit(9)  # no cleanup, no flush of anything not already on disk, workers mid-request

run_batch(rows, columns, sys.argv[2], lambda ref: (provider, ref), DEFAULT_PRICES, workers=6, progress=die)
"""


def test_a_run_killed_midway_resumes_with_every_pair_exactly_once(fake_server, provider, tmp_path):
    fake_server.first_token_delay = 0.01
    path = tmp_path / "results.jsonl"
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, fake_server.base_url, str(path)],
                            cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60)
    assert killed.returncode == 9, killed.stderr
    survived = len(path.read_bytes().split(b"\n")) - 1
    assert 15 <= survived < 60
    fake_server.clear_requests()

    rows = [PromptRow(id=f"r{i}", prompt=f"q{i}") for i in range(30)]
    columns = [ColumnConfig(label="a", model="gpt-4o-mini"), ColumnConfig(label="b", model="gpt-4o")]
    outcome = run_batch(rows, columns, path, lambda ref: (provider, ref), DEFAULT_PRICES, workers=6)

    assert (outcome.resumed, outcome.asked) == (survived, 60 - survived)
    assert len(model_requests(fake_server)) == 60 - survived
    pairs = file_pairs(path)
    assert len(pairs) == len(set(pairs)) == 60
