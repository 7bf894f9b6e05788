"""Eval speed: `python -m playground eval` with two columns and a judge, concurrency 16 vs 1, fixed server latency.

    python bench/eval_speed.py [--rows 200] [--latency 0.2] [--workers 16]

A FakeOpenAI server in its own process (bench/fake_provider.py) waits `--latency` seconds before the first
token of every reply. The eval command (playground.cli.main, in this process) runs a `--rows`-row prompt set
through two columns (gpt-4o-mini, which echoes, and terse, which answers "OK.") with the loopback judge
`judge-pick-Echo` asked about every row in both orders: rows × 4 requests. It runs twice, each time into a
fresh results file: with `--concurrency` `--workers` (`--repeat` times, the median counts: the machine is
shared and noisy), and with 1. Each run is checked for requests lost or
made twice, three ways: the results file (one line per answer and per judge reply), the requests the server
received, and the --json report (every row judged, echo winning every one).

Targets: sequential time / concurrent time >= 12x; nothing lost or duplicated in either run.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from playground.cli import main as cli  # noqa: E402

TARGET = 12.0
JUDGE = "judge-pick-Echo"


def prompt_set(path: Path, n: int) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"row-{i:04d}", "prompt": f"Question {i}", "expected": f"Echo: Question {i}"})
                    + "\n")
    return path


def run(home: Path, provider: Provider, prompts: Path, rows: int, workers: int, out: Path) -> dict:
    before = provider.count()
    stdout = io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(stdout):
        code = cli(["eval", str(prompts), "--column", "echo=local:gpt-4o-mini", "--column", "terse=local:terse",
                    "--judge", f"local:{JUDGE}", "--concurrency", str(workers), "--out", str(out), "--json",
                    "--home", str(home)])
    took = time.monotonic() - started
    time.sleep(0.2)  # the server logs a request as it ends; let the last lines arrive
    asked = Counter((r["body"]["model"], r["body"]["messages"][-1]["content"]) for r in provider.records[before:])
    lines = Counter((d["row_id"], d["column"]) for d in map(json.loads, out.read_text(encoding="utf-8").splitlines()))
    report = json.loads(stdout.getvalue()) if code == 0 else {}
    expected = rows * 4
    echo = report.get("columns", {}).get("echo", {})
    return {
        "seconds": took, "workers": workers, "code": code, "lines": sum(lines.values()),
        "requests": sum(asked.values()),
        "lost": (expected - len(lines)) + (expected - len(asked)),
        "duplicated": sum(c - 1 for counter in (lines, asked) for c in counter.values() if c > 1),
        "judge_win_rate": (echo.get("judge") or {}).get("win_rate"), "exact": echo.get("checks", {}).get("exact"),
    }


def show(result: dict) -> None:
    print(f"concurrency {result['workers']:>2}: {result['seconds']:7.2f} s  exit {result['code']}  file lines "
          f"{result['lines']}  server requests {result['requests']}  echo exact {result['exact']}  echo judge win "
          f"rate {result['judge_win_rate']}  lost {result['lost']}  duplicated {result['duplicated']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each reply's first token")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="concurrent runs; the median time counts")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(work / "tiktoken")
    os.environ["LOCAL_KEY"] = API_KEY
    provider = Provider(0.0, args.latency, work / "provider.log")
    try:
        home = work / "home"
        home.mkdir()
        endpoint = {"name": "local", "base_url": provider.base_url, "api_key_env": "LOCAL_KEY",
                    "models": ["gpt-4o-mini", "terse", JUDGE]}
        (home / "providers.json").write_text(json.dumps({"providers": [endpoint]}), encoding="utf-8")
        print(f"{args.rows} rows, two columns and a judge in both orders ({args.rows * 4} requests), "
              f"{args.latency * 1000:g} ms server latency")
        run(home, provider, prompt_set(work / "warm.jsonl", 8), 8, args.workers, work / "warmup.jsonl")
        prompts = prompt_set(work / "prompts.jsonl", args.rows)
        runs = []
        for i in range(args.repeat):
            runs.append(run(home, provider, prompts, args.rows, args.workers, work / f"concurrent-{i}.jsonl"))
            show(runs[-1])
        concurrent = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
        sequential = run(home, provider, prompts, args.rows, 1, work / "sequential.jsonl")
        show(sequential)
        speedup = sequential["seconds"] / concurrent["seconds"]
        exact = all(r["code"] == 0 and r["lost"] == r["duplicated"] == 0 and r["judge_win_rate"] == 1.0
                    and r["exact"] == 1.0 for r in (*runs, sequential))
        print(f"median concurrent {concurrent['seconds']:.2f} s (of {args.repeat})")
        print(f"speed-up {speedup:.1f}x  target >= {TARGET:g}x  {'PASS' if speedup >= TARGET else 'MISS'}")
        print(f"requests lost or duplicated: {'none  PASS' if exact else 'some  MISS'}")
        return 0 if speedup >= TARGET and exact else 1
    finally:
        provider.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
