"""Many visitors at once: N browser-like clients, each in its own session, each streaming one reply.

    python bench/concurrency.py [--clients 1,4,8,16,32,64] [--ab-rounds 1,2,4,8] [--tokens 200] [--delay 0.01]

The fake provider (bench/fake_provider.py) streams a `--tokens`-word reply at one word per `--delay` s
(200 words at 100 words/s: ~2 s). The app runs as `python app.py` with a temporary home. For each N, N
threads start together; each opens its own session and calls /send over raw SSE as a browser does
(queue/join, then the queue/data event stream, read as it arrives), on a fresh conversation.

Per N it prints: the median and max reply time (call -> finished), the median and max of each client's worst
pause between two updates once its reply has begun, the app's CPU seconds per reply and its CPU use in cores
over the round, and the rows logged in `exchanges` vs the replies that came back complete. Then the same for
A/B rounds of 4 columns (each round is 4 streams in one event). Targets (issue 15): at 32 streams the median
reply time <= 1.2x one stream and the median worst pause <= 150 ms; app CPU per 200-word reply <= 0.1 s;
nothing lost. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from chat_latency import MODEL, MODEL_REF, App, Provider, RawSSE, cpu_seconds, reply_text  # noqa: E402

PERSONA = "Location Extractor"  # a chat persona with no greeting and no variables
NO_VARIABLES = {"headers": ["variable", "value"], "data": [["", ""]], "metadata": None}
SPEED_TARGET, PAUSE_TARGET_S, CPU_TARGET_S = 1.2, 0.150, 0.1


def chat_args(message: str, tokens: int) -> list:
    # Every input of /send: "Speaking as" and its owner state last (None: the persona's own speaker).
    return [message, None, PERSONA, MODEL_REF, "Be brief.", NO_VARIABLES, 0.0, 1.0, tokens + 50, 0.0, 0.0, None, "[]",
            None, None]


def ab_args(message: str, tokens: int) -> list:
    # Columns set up alike are refused, so each gets its own label: the same model and persona four times.
    columns = [[f"column {i}", PERSONA, MODEL_REF, "Be brief.", 0.0, 1.0, tokens + 50, 0.0, 0.0, None, "[]"]
               for i in range(1, 5)]
    return [message, None, False, 4, *(value for column in columns for value in column)]


class Client:
    """One browser: its own session; records when each update arrived and when the reply was finished."""

    def __init__(self, url: str, tokens: int, ab: bool):
        self.sse = RawSSE(url)
        self.tokens, self.ab = tokens, ab
        self.last_word = f"w{tokens}"
        self.message = f"Tell me [tokens={tokens}]"
        self.update_times: list[float] = []
        self.result: dict = {}

    def _seen(self, values) -> None:
        panels = values[:4] if self.ab else values[:1]
        if any(reply_text(p if isinstance(p, list) else (p or {}).get("value"), self.message) for p in panels):
            self.update_times.append(time.monotonic())

    def run(self, start: threading.Barrier) -> None:
        start.wait()
        t0 = time.monotonic()
        try:
            args = ab_args(self.message, self.tokens) if self.ab else chat_args(self.message, self.tokens)
            final = self.sse.call("ab_send" if self.ab else "send", args, self._seen)
            panels = final[:4] if self.ab else final[:1]
            texts = [reply_text(p if isinstance(p, list) else (p or {}).get("value"), self.message) or ""
                     for p in panels]
            complete = sum(self.last_word in t.split() for t in texts)
        except Exception as e:  # noqa: BLE001 - counted as a lost reply
            print(f"    a client failed: {type(e).__name__}: {e}", flush=True)
            complete = 0
        gaps = [b - a for a, b in zip(self.update_times, self.update_times[1:])]
        self.result = {"time": time.monotonic() - t0, "worst_pause": max(gaps, default=0.0),
                       "complete": complete, "updates": len(self.update_times)}


def exchange_rows(home: Path) -> int:
    with sqlite3.connect(home / "playground.db") as db:
        return db.execute("select count(*) from exchanges").fetchone()[0]


def run_level(app: App, home: Path, n: int, tokens: int, ab: bool) -> dict:
    clients = [Client(app.url, tokens, ab) for _ in range(n)]
    start = threading.Barrier(n + 1)
    threads = [threading.Thread(target=c.run, args=(start,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    rows0, cpu0, wall0 = exchange_rows(home), cpu_seconds(app.pid), time.monotonic()
    start.wait()
    for t in threads:
        t.join(timeout=600)
    wall, cpu = time.monotonic() - wall0, cpu_seconds(app.pid) - cpu0
    time.sleep(0.3)  # the last log writes follow the last update by a moment
    streams = n * (4 if ab else 1)
    results = [c.result for c in clients]
    return {
        "n": n, "streams": streams,
        "time_med": statistics.median(r["time"] for r in results), "time_max": max(r["time"] for r in results),
        "pause_med": statistics.median(r["worst_pause"] for r in results),
        "pause_max": max(r["worst_pause"] for r in results),
        "updates_med": statistics.median(r["updates"] for r in results),
        "cpu_per_reply": cpu / streams, "cores": cpu / wall,
        "complete": sum(r["complete"] for r in results), "rows": exchange_rows(home) - rows0,
    }


def print_table(title: str, rows: list[dict], ab: bool) -> None:
    print(f"\n{title}")
    head = f"{'rounds' if ab else 'clients':>7} {'streams':>7} {'reply med':>9} {'max':>6} {'worst pause med':>15} " \
           f"{'max':>6} {'updates':>7} {'CPU/reply':>9} {'cores':>5} {'complete/rows/streams':>22}"
    print(head)
    for r in rows:
        print(f"{r['n']:>7} {r['streams']:>7} {r['time_med']:>8.2f}s {r['time_max']:>5.2f}s "
              f"{r['pause_med'] * 1000:>13.0f}ms {r['pause_max'] * 1000:>4.0f}ms {r['updates_med']:>7.0f} "
              f"{r['cpu_per_reply']:>8.3f}s {r['cores']:>5.2f} {r['complete']:>9}/{r['rows']}/{r['streams']}")


def verdict(chat: list[dict], ab: list[dict]) -> bool:
    by_n = {r["n"]: r for r in chat}
    ok = True
    lost = [r for r in chat + ab if not r["complete"] == r["rows"] == r["streams"]]
    print(f"\nnothing lost (complete replies == rows logged == streams at every N): {'PASS' if not lost else 'MISS'}")
    ok &= not lost
    if 1 in by_n and 32 in by_n:
        ratio = by_n[32]["time_med"] / by_n[1]["time_med"]
        print(f"32 streams: median reply time {ratio:.2f}x one stream (target <= {SPEED_TARGET}x): "
              f"{'PASS' if ratio <= SPEED_TARGET else 'MISS'}")
        pause = by_n[32]["pause_med"]
        print(f"32 streams: median worst pause {pause * 1000:.0f} ms (target <= {PAUSE_TARGET_S * 1000:.0f} ms): "
              f"{'PASS' if pause <= PAUSE_TARGET_S else 'MISS'}")
        ok &= ratio <= SPEED_TARGET and pause <= PAUSE_TARGET_S
    cpu = statistics.median(r["cpu_per_reply"] for r in chat)
    print(f"app CPU per reply, median over N: {cpu:.3f} s (target <= {CPU_TARGET_S} s): "
          f"{'PASS' if cpu <= CPU_TARGET_S else 'MISS'}")
    return ok and cpu <= CPU_TARGET_S


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,8,16,32,64", help="chat clients at once, per level")
    parser.add_argument("--ab-rounds", default="1,2,4,8", help="A/B rounds of 4 columns at once, per level")
    parser.add_argument("--tokens", type=int, default=200, help="words in each reply (default 200)")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between words (default 0.01)")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.clients.split(",") if n]
    ab_levels = [int(n) for n in args.ab_rounds.split(",") if n]

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="playground-bench-") as tmp:
        home = Path(tmp)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(home / "tiktoken")  # never the user's cache
        provider = Provider(args.delay, 0.0, home / "provider.log")
        app = None
        try:
            (home / "providers.json").write_text(json.dumps({"providers": [{
                "name": "local", "base_url": provider.base_url, "api_key_env": "LOCAL_KEY", "models": [MODEL]}]}),
                encoding="utf-8")
            app = App(home)
            app.wait_ready()
            print(f"app up on {app.url} (pid {app.pid}); {args.tokens} words at {1 / args.delay:.0f} words/s",
                  flush=True)
            run_level(app, home, 2, args.tokens, ab=False)  # warm-up: first-call costs are not the app's pace
            chat = []
            for n in levels:
                chat.append(run_level(app, home, n, args.tokens, ab=False))
                print(f"  {n} clients: {chat[-1]['time_med']:.2f} s", flush=True)
            ab = []
            for n in ab_levels:
                ab.append(run_level(app, home, n, args.tokens, ab=True))
                print(f"  {n} A/B rounds: {ab[-1]['time_med']:.2f} s", flush=True)
        finally:
            if app is not None:
                app.stop()
            provider.close()
    print_table("Chat: one reply per client", chat, ab=False)
    print_table("A/B: rounds of 4 columns", ab, ab=True)
    ok = verdict(chat, ab)
    print(f"\ndone in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
