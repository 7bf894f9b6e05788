"""Batch speed: a prompt set run with bounded concurrency vs one row at a time, on a server with fixed latency.

    python bench/batch_speed.py [--rows 200] [--latency 0.2] [--workers 16]

A FakeOpenAI server in its own process (bench/fake_provider.py) waits `--latency` seconds before the first
token of every reply (a short reply follows at once). The same `--rows`-row prompt set runs through one column
with playground.ab.batch.run_batch twice, each time into a fresh results file: with `--workers` threads, and with
one (sequential). Each run is checked for rows lost or done twice, three ways: the results it returns, the lines
of its results file and the requests the server received (it logs one line per request).

Targets: sequential time / concurrent time >= 12x; zero rows lost or duplicated in either run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.chat_latency import API_KEY, Provider  # noqa: E402
from playground.ab.batch import ColumnConfig, run_batch  # noqa: E402
from playground.ab.promptset import PromptRow  # noqa: E402
from playground.core.params import SamplingParams  # noqa: E402
from playground.services import build_services  # noqa: E402

TARGET = 12.0
MODEL = "gpt-4o-mini"


def rows(n: int) -> list[PromptRow]:
    return [PromptRow(id=f"row-{i:04d}", prompt=f"Question {i}", expected=f"Echo: Question {i}") for i in range(n)]


def run(services, provider: Provider, prompts: list[PromptRow], workers: int, path: Path) -> dict:
    column = ColumnConfig(label="base", model=f"local:{MODEL}", params=SamplingParams(max_tokens=16))
    before = provider.count()
    started = time.monotonic()
    outcome = run_batch(prompts, [column], path, services.registry.resolve, services.prices(), workers=workers)
    took = time.monotonic() - started
    time.sleep(0.2)  # the server logs a request as it ends; let the last lines arrive
    asked = Counter(record["body"]["messages"][-1]["content"] for record in provider.records[before:])
    lines = Counter(json.loads(line)["row_id"] for line in path.read_text(encoding="utf-8").splitlines())
    returned = Counter(r.row_id for r in outcome.results)
    wanted = {p.id for p in prompts}
    questions = {p.prompt for p in prompts}
    return {
        "seconds": took, "workers": workers, "results": len(outcome.results), "passed": outcome.summaries[0].passed,
        "errors": outcome.summaries[0].errors,
        "lost": len(wanted - set(returned)) + len(wanted - set(lines)) + len(questions - set(asked)),
        "duplicated": sum(c - 1 for counter in (returned, lines, asked) for c in counter.values() if c > 1),
        "requests": sum(asked.values()), "lines": sum(lines.values()),
    }


def show(result: dict) -> None:
    print(f"workers {result['workers']:>2}: {result['seconds']:7.2f} s  results {result['results']}  file lines "
          f"{result['lines']}  server requests {result['requests']}  passed checks {result['passed']}  errors "
          f"{result['errors']}  lost {result['lost']}  duplicated {result['duplicated']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each reply's first token")
    parser.add_argument("--workers", type=int, default=16)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(work / "tiktoken")
    provider = Provider(0.0, args.latency, work / "provider.log")
    try:
        home = work / "home"
        home.mkdir()
        endpoint = {"name": "local", "base_url": provider.base_url, "api_key_env": "LOCAL_KEY", "models": [MODEL]}
        (home / "providers.json").write_text(json.dumps({"providers": [endpoint]}), encoding="utf-8")
        services = build_services(home=home, environ={"LOCAL_KEY": API_KEY}, detect_local=False, discover=False)
        prompts = rows(args.rows)
        print(f"{args.rows} rows, {args.latency * 1000:g} ms server latency, one column")
        run(services, provider, rows(8), args.workers, work / "warmup.jsonl")  # connections, imports: not counted
        concurrent = run(services, provider, prompts, args.workers, work / "concurrent.jsonl")
        show(concurrent)
        sequential = run(services, provider, prompts, 1, work / "sequential.jsonl")
        show(sequential)
        speedup = sequential["seconds"] / concurrent["seconds"]
        exact = all(r["lost"] == r["duplicated"] == 0 and r["results"] == r["lines"] == r["requests"] == args.rows
                    for r in (concurrent, sequential))
        print(f"speed-up {speedup:.1f}x  target >= {TARGET:g}x  {'PASS' if speedup >= TARGET else 'MISS'}")
        print(f"rows lost or duplicated: {'none  PASS' if exact else 'some  MISS'}")
        return 0 if speedup >= TARGET and exact else 1
    finally:
        provider.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
