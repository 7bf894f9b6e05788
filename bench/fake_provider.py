"""tests/openai_server.py's FakeOpenAI in its own process, stamping every chat request (for the benchmarks).

    python bench/fake_provider.py --delay 0.01 [--first-delay 0] [--port 0]

Prints ``READY <base_url>`` once serving, then one JSON line per finished /v1/chat/completions request:
``{"body": ..., "t_recv": ..., "t_first_sent": ..., "t_last_sent": ..., "t_end": ...}`` where the times are
``time.monotonic()`` seconds (CLOCK_MONOTONIC on Linux, so comparable with the parent process's clock):
when the request arrived, when the first and the last content chunk were written to the socket, and when
the response was complete. Stops on SIGTERM/SIGINT or when stdin closes.

It runs in a separate process so that the benchmark's client threads cannot delay the server's pacing
(in one process, a busy client thread holds the GIL and the server's 10 ms sleeps overrun).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tests.openai_server as fake_module  # noqa: E402
from tests.openai_server import FakeOpenAI  # noqa: E402

_local = threading.local()
_out_lock = threading.Lock()


def _instrument(server: FakeOpenAI) -> None:
    original_record = server._record

    def record(entry: dict) -> None:
        entry["t_recv"] = time.monotonic()
        _local.entry = entry
        original_record(entry)

    server._record = record  # this server instance only

    original_sse = fake_module._Handler._sse

    def sse(handler, obj):  # the handler's writes are unbuffered: after the call, the chunk is sent
        original_sse(handler, obj)
        entry = getattr(_local, "entry", None)
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if entry is not None and choices and (choices[0].get("delta") or {}).get("content"):
            now = time.monotonic()
            entry.setdefault("t_first_sent", now)
            entry["t_last_sent"] = now

    original_dispatch = fake_module._Handler._dispatch

    def dispatch(handler):
        _local.entry = None
        try:
            original_dispatch(handler)
        finally:
            entry = getattr(_local, "entry", None)
            if entry is not None and entry["path"].split("?")[0].rstrip("/").endswith("/chat/completions"):
                line = json.dumps({"body": entry.get("body"), "t_recv": entry.get("t_recv"),
                                   "t_first_sent": entry.get("t_first_sent"),
                                   "t_last_sent": entry.get("t_last_sent"), "t_end": time.monotonic()})
                with _out_lock:
                    sys.stdout.write(line + "\n")
                    sys.stdout.flush()
            with server._lock:  # keep memory flat over long runs
                server.requests.clear()

    fake_module._Handler._sse = sse
    fake_module._Handler._dispatch = dispatch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Instrumented FakeOpenAI for the benchmarks.")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between streamed chunks")
    parser.add_argument("--first-delay", type=float, default=0.0, help="seconds before the first chunk")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="sk-test")
    args = parser.parse_args(argv)

    server = FakeOpenAI(token_delay=args.delay, first_token_delay=args.first_delay, api_key=args.api_key or None,
                        port=args.port)
    _instrument(server)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # The parent holds our stdin open; when it goes away (even killed), stop.
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with server:
        print(f"READY {server.base_url}", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
