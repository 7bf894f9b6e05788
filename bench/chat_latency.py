"""Chat latency: a streamed reply through the app vs the raw openai SDK, on the same fake server.

    python bench/chat_latency.py [--replies 7] [--tokens 200] [--delay 0.01]

A FakeOpenAI server (tests/openai_server.py, wrapped by bench/fake_provider.py) runs in its own process
and streams a `--tokens`-word reply, one word per chunk, `--delay` seconds apart. The app runs as
`python app.py` in its own process (as a user runs it), with a temporary PLAYGROUND_HOME whose
providers.json points at the fake server.

Paths, run interleaved (the order rotates every repetition), medians over `--replies` runs each:

  (b) sdk     the `openai` SDK streaming the very request body the app sent (captured from the server)
  (a) client  the app's /send endpoint through gradio_client: Client(url).submit(..., api_name="/send")
  diagnostic paths that split the difference between (a) and (b) (skip them with --no-breakdown):
  (c) sse     the same /send call over raw HTTP (queue/join + queue/data SSE), no gradio_client
  (d) domain  playground.chat.ask.stream_reply() called in this process: the app's code without Gradio

Per reply: total = start of the call until the stream/job is finished (for the app this includes the
metrics line and the log written after the last token); TTFT = until the first update whose reply text
is non-empty (not the "…" placeholder). Targets: total(a)/total(b) <= 1.05, TTFT(a) - TTFT(b) <= +50 ms.

The fake server is instrumented (bench/fake_provider.py) to stamp when each request arrives and when it
sends its first and last content chunk, so each path's time is split into: call -> request at the
provider, first chunk sent -> seen by the caller, last chunk sent -> seen, last token seen -> done.
When a target is missed (or with --profile always) a second app instance runs with GRADIO_PROFILING=1
and Gradio's own per-phase timings for /send are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import httpx  # noqa: E402
import openai  # noqa: E402
from gradio_client import Client  # noqa: E402
from gradio_client.utils import apply_diff  # noqa: E402

from playground.ui.format import text_of  # noqa: E402

# One clock for this process, the app and the fake provider: CLOCK_MONOTONIC is system-wide on Linux.
now = time.monotonic

MODEL = "gpt-4o-mini"
MODEL_REF = f"local:{MODEL}"
API_KEY = "sk-test"
TOTAL_TARGET = 1.05  # total_app / total_sdk
TTFT_TARGET_MS = 50.0  # TTFT_app - TTFT_sdk
LABELS = {
    "sdk": "(b) openai SDK, direct",
    "client": "(a) app /send via gradio_client",
    "sse": "(c) app /send via raw SSE",
    "domain": "(d) stream_reply() in-process",
}


# --------------------------------------------------------------------------- the fake provider process


class Provider:
    """bench/fake_provider.py (FakeOpenAI + stamps) in a child process; collects its per-request stamps."""

    def __init__(self, delay: float, first_delay: float, log_path: Path):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("fake_provider.py")), "--delay", str(delay),
             "--first-delay", str(first_delay), "--api-key", API_KEY],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, start_new_session=True)
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("READY "):
            self.close()
            raise RuntimeError(f"the fake provider did not start: {line!r}; see {log_path}")
        self.base_url = line.split(" ", 1)[1]
        self.records: list[dict] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            record = json.loads(raw)
            with self._cond:
                self.records.append(record)
                self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return len(self.records)

    def record(self, index: int, timeout: float = 10.0) -> dict:
        """The index-th chat request's stamps, waiting for the line if the server has not written it yet."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.records) > index, timeout):
                raise RuntimeError(f"the fake provider reported no chat request #{index + 1}")
            return self.records[index]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.log.close()


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reply_text(chat: list, user_text: str) -> str | None:
    """Text of the assistant message(s) after our user turn; None while there is none."""
    if not isinstance(chat, list):
        return None
    idx = None
    for i, m in enumerate(chat):
        if isinstance(m, dict) and m.get("role") == "user" and text_of(m.get("content")) == user_text:
            idx = i
    if idx is None:
        return None
    parts = [text_of(m.get("content")) for m in chat[idx + 1:] if isinstance(m, dict) and m.get("role") == "assistant"]
    return "\n".join(parts) if parts else None


def has_text(reply: str | None) -> bool:
    return bool(reply and reply.replace("…", "").strip())


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def idle_cpu_rate(pid: int, seconds: float = 2.0) -> float | None:
    """CPU seconds per second the process uses while nobody calls it."""
    c0 = cpu_seconds(pid)
    time.sleep(seconds)
    c1 = cpu_seconds(pid)
    return None if c0 is None or c1 is None else (c1 - c0) / seconds


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class Run(dict):
    """One reply on one path: t0, t_first_seen, t_last_seen, t_done (now()), plus the provider's stamps."""

    def finish(self, stamps_entry: dict | None, last_word: str) -> Run:
        t0 = self["t0"]
        self["total"] = self["t_done"] - t0
        self["ttft"] = None if self.get("t_first_seen") is None else self["t_first_seen"] - t0
        if stamps_entry:
            self["body"] = stamps_entry.get("body")
            for k in ("t_recv", "t_first_sent", "t_last_sent"):
                self[k] = stamps_entry.get(k)
        if not self.get("final_text") or last_word not in self["final_text"].split():
            raise RuntimeError(f"{self['path']}: the reply did not arrive complete: {self.get('final_text')!r:.300}"
                               f" notice={self.get('notice')!r}")
        return self


# --------------------------------------------------------------------------- the app process


class App:
    def __init__(self, home: Path, env_extra: dict | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"app-{self.port}.log"
        env = dict(os.environ, LOCAL_KEY=API_KEY, PLAYGROUND_HOME=str(home), GRADIO_ANALYTICS_ENABLED="False",
                   TIKTOKEN_CACHE_DIR=str(home / "tiktoken"), **(env_extra or {}))
        env.pop("OPENAI_API_KEY", None)
        env.pop("OPENAI_BASE_URL", None)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(self.port), "--no-detect",
             "--home", str(home)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the app did not answer on {self.url} within {timeout:g} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self.log.close()


class RawSSE:
    """The browser's protocol: POST /gradio_api/queue/join, then read /gradio_api/queue/data as it arrives."""

    def __init__(self, url: str):
        self.url = url
        self.http = httpx.Client(timeout=60)
        config = self.http.get(url + "/config").json()
        self.prefix = config.get("api_prefix", "/gradio_api")
        self.deps = {d.get("api_name"): d for d in config["dependencies"]}
        self.session = uuid.uuid4().hex[:11]

    def call(self, api_name: str, data: list, on_update=None) -> list:
        dep = self.deps[api_name]
        body = {"data": data, "event_data": None, "fn_index": dep["id"], "trigger_id": dep["targets"][0][0],
                "session_hash": self.session}
        event_id = self.http.post(f"{self.url}{self.prefix}/queue/join", json=body).raise_for_status().json()["event_id"]
        values = None
        with self.http.stream("GET", f"{self.url}{self.prefix}/queue/data",
                              params={"session_hash": self.session}) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("event_id") not in (None, event_id):
                    continue
                kind = msg.get("msg")
                if kind == "process_generating":
                    data_out = msg["output"]["data"]
                    values = list(data_out) if values is None else [apply_diff(v, d) for v, d in zip(values, data_out)]
                    if on_update:
                        on_update(values)
                elif kind == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(f"{api_name} failed: {msg.get('output')}")
                    return msg["output"]["data"]
                elif kind == "close_stream":
                    break
        raise RuntimeError(f"{api_name}: the stream closed without a result")


# --------------------------------------------------------------------------- the paths


class Bench:
    def __init__(self, args, provider: Provider, app: App, persona):
        self.args = args
        self.provider = provider
        self.app = app
        self.persona = persona
        self.message = f"Look around the room. [tokens={args.tokens}]"
        self.last_word = f"w{args.tokens}"
        p = persona.params
        self.max_tokens = max(p.max_tokens, args.tokens)
        variables = {"headers": ["variable", "value"], "data": [["", ""]], "metadata": None}
        self.settings_values = [persona.name, MODEL_REF, persona.system_prompt, variables, p.temperature, p.top_p,
                                self.max_tokens, p.presence_penalty, p.frequency_penalty, p.seed, "[]"]
        self.client = Client(app.url, verbose=False)
        self.sse = RawSSE(app.url)
        self.sdk = openai.OpenAI(base_url=provider.base_url, api_key=API_KEY, max_retries=0)
        self.sdk_body: dict | None = None
        self.domain = None

    # (a)
    def run_client(self) -> Run:
        self.client.predict(self.persona.name, api_name="/new_chat")  # fresh conversation, not timed
        run = Run(path="client")
        n0 = self.provider.count()
        cpu0 = cpu_seconds(self.app.pid)
        run["caller_cpu"] = -time.process_time()
        run["t0"] = now()
        job = self.client.submit(self.message, *self.settings_values, api_name="/send")
        out = None
        for out in job:
            self._seen(run, out[0])
        run["t_done"] = now()
        run["caller_cpu"] += time.process_time()
        cpu1 = cpu_seconds(self.app.pid)
        run["app_cpu"] = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        final = job.result() if out is None else out
        run["final_text"] = reply_text(final[0], self.message)
        run["notice"] = final[2] if len(final) > 2 else None
        return run.finish(self.provider.record(n0), self.last_word)

    # (c)
    def run_sse(self) -> Run:
        self.sse.call("new_chat", [self.persona.name])
        run = Run(path="sse")
        n0 = self.provider.count()
        cpu0 = cpu_seconds(self.app.pid)
        run["caller_cpu"] = -time.process_time()
        run["t0"] = now()
        # Raw SSE sends every input: "Speaking as" and its owner state last (None: the persona's own speaker).
        final = self.sse.call("send", [self.message, None, *self.settings_values, None, None],
                              lambda v: self._seen(run, v[0]))
        run["t_done"] = now()
        run["caller_cpu"] += time.process_time()
        cpu1 = cpu_seconds(self.app.pid)
        run["app_cpu"] = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
        run["final_text"] = reply_text(final[0], self.message)
        run["notice"] = final[3] if len(final) > 3 else None
        return run.finish(self.provider.record(n0), self.last_word)

    def _seen(self, run: Run, chat) -> None:
        t = now()
        reply = reply_text(chat, self.message)
        if run.get("t_first_seen") is None and has_text(reply):
            run["t_first_seen"] = t
        if run.get("t_last_seen") is None and reply and self.last_word in reply.split():
            run["t_last_seen"] = t
        run["updates"] = run.get("updates", 0) + 1

    # (b)
    def run_sdk(self) -> Run:
        body = dict(self.sdk_body)
        run = Run(path="sdk")
        n0 = self.provider.count()
        parts = []
        run["caller_cpu"] = -time.process_time()
        run["t0"] = now()
        stream = self.sdk.chat.completions.create(**body)
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    t = now()
                    parts.append(choice.delta.content)
                    run.setdefault("t_first_seen", t)
                    run["t_last_seen"] = t
        run["t_done"] = now()
        run["caller_cpu"] += time.process_time()
        run["final_text"] = "".join(parts)
        return run.finish(self.provider.record(n0), self.last_word)

    # (d)
    def run_domain(self) -> Run:
        from playground.chat.ask import ChatSettings, stream_reply
        from playground.chat.conversation import Conversation
        from playground.core.params import SamplingParams

        if self.domain is None:
            from playground.services import build_services

            home = Path(self.args.home) / "domain"
            home.mkdir(parents=True, exist_ok=True)
            (home / "providers.json").write_text((Path(self.args.home) / "providers.json").read_text())
            self.domain = build_services(home=home, environ={"LOCAL_KEY": API_KEY}, detect_local=False)
        services = self.domain
        persona = services.personas[self.persona.name]
        params = SamplingParams(**{**persona.params.model_dump(), "max_tokens": self.max_tokens})
        settings = ChatSettings(persona=persona.name, model=MODEL_REF, system_prompt=persona.system_prompt,
                                params=params, variables={})
        conversation = Conversation.start(persona.greeting)
        conversation.add_user(self.message)
        run = Run(path="domain")
        n0 = self.provider.count()
        run["caller_cpu"] = -time.process_time()
        run["t0"] = now()
        for updated in stream_reply(services, persona, settings, conversation):
            t = now()
            reply = updated.turns[-1].content if updated.turns[-1].role == "assistant" else ""
            if run.get("t_first_seen") is None and has_text(reply):
                run["t_first_seen"] = t
            if run.get("t_last_seen") is None and self.last_word in reply.split():
                run["t_last_seen"] = t
        run["t_done"] = now()
        run["caller_cpu"] += time.process_time()
        run["final_text"] = conversation.turns[-1].content
        return run.finish(self.provider.record(n0), self.last_word)


# --------------------------------------------------------------------------- reporting


def fmt(value, scale=1.0, digits=1, sign=False):
    if value is None:
        return "-"
    return f"{value * scale:+.{digits}f}" if sign else f"{value * scale:.{digits}f}"


def summarize(runs: list[Run]) -> dict:
    def med(key_fn):
        return median([key_fn(r) for r in runs])

    def diff(a, b):
        return lambda r: None if r.get(a) is None or r.get(b) is None else r[a] - r[b]

    return {
        "n": len(runs),
        "total": med(lambda r: r["total"]),
        "ttft": med(lambda r: r["ttft"]),
        "total_min": min(r["total"] for r in runs),
        "total_max": max(r["total"] for r in runs),
        "ttft_min": min(r["ttft"] for r in runs),
        "ttft_max": max(r["ttft"] for r in runs),
        "to_request": med(diff("t_recv", "t0")),
        "first_delivery": med(diff("t_first_seen", "t_first_sent")),
        "last_delivery": med(diff("t_last_seen", "t_last_sent")),
        "after_last": med(diff("t_done", "t_last_seen")),
        "stream": med(diff("t_last_sent", "t_recv")),
        # What the path adds on top of the provider's own streaming time (removes the fake server's pacing jitter).
        "added": med(lambda r: None if r.get("t_last_sent") is None else r["total"] - (r["t_last_sent"] - r["t_recv"])),
        "app_cpu": med(lambda r: r.get("app_cpu")),
        "caller_cpu": med(lambda r: r.get("caller_cpu")),
        "updates": med(lambda r: r.get("updates")),
    }


def print_main_table(args, summary: dict[str, dict]) -> dict:
    a, b = summary["client"], summary["sdk"]
    print()
    print(f"Chat latency: {args.tokens} tokens, {args.delay * 1000:g} ms/token (first token delay "
          f"{args.first_delay * 1000:g} ms), FakeOpenAI; {args.replies} replies per path, interleaved; medians")
    print()
    head = f"{'path':<36} {'total (s)':>10} {'TTFT (ms)':>10}   {'total min-max (s)':>17}   {'TTFT min-max (ms)':>17}"
    print(head)
    print("-" * len(head))
    for key in ("sdk", "client"):
        s = summary[key]
        print(f"{LABELS[key]:<36} {s['total']:>10.3f} {s['ttft'] * 1000:>10.1f}   "
              f"{s['total_min']:>8.3f}-{s['total_max']:<8.3f}   {s['ttft_min'] * 1000:>8.1f}-{s['ttft_max'] * 1000:<8.1f}")
    ratio = a["total"] / b["total"]
    ttft_diff_ms = (a["ttft"] - b["ttft"]) * 1000
    ok_total = ratio <= TOTAL_TARGET
    ok_ttft = ttft_diff_ms <= TTFT_TARGET_MS
    print()
    print(f"{'total_app / total_sdk':<28} {ratio:>8.3f}x   target <= {TOTAL_TARGET:.2f}x    {'PASS' if ok_total else 'MISS'}")
    steady = (b["total"] + a["added"] - b["added"]) / b["total"]
    print(f"{'  same, free of pacing jitter':<28} {steady:>8.3f}x   (SDK median total + the app's median added time)")
    print(f"{'TTFT_app - TTFT_sdk':<28} {ttft_diff_ms:>+8.1f} ms  target <= +{TTFT_TARGET_MS:g} ms   "
          f"{'PASS' if ok_ttft else 'MISS'}")
    return {"ratio": ratio, "steady_ratio": steady, "ttft_diff_ms": ttft_diff_ms, "ok_total": ok_total, "ok_ttft": ok_ttft}


def print_breakdown(summary: dict[str, dict], idle_cpu_per_s: float | None) -> None:
    print()
    print("Where the time goes (medians). 'request' = the fake provider received the HTTP request, 'sent' = it wrote")
    print("a content chunk, 'seen' = the caller had it in hand; added = total - provider stream time (request received")
    print("-> last chunk sent), i.e. what the path itself costs, free of the fake server's pacing jitter. CPU = CPU")
    print("time used during the reply by the app process / by this (calling) process, all threads.")
    print()
    head = (f"{'path':<34} {'call->request':>13} {'1st sent->seen':>14} {'last sent->seen':>15} "
            f"{'last seen->done':>15} {'TTFT':>7} {'added':>7} {'stream':>7} {'total':>7} {'app CPU':>8} {'caller CPU':>10}")
    print(head)
    print(f"{'':<34} {'(ms)':>13} {'(ms)':>14} {'(ms)':>15} {'(ms)':>15} {'(ms)':>7} {'(ms)':>7} {'(s)':>7} {'(s)':>7} "
          f"{'(s)':>8} {'(s)':>10}")
    print("-" * len(head))
    for key in ("sdk", "domain", "sse", "client"):
        s = summary.get(key)
        if not s:
            continue
        print(f"{LABELS[key]:<34} {fmt(s['to_request'], 1000):>13} {fmt(s['first_delivery'], 1000):>14} "
              f"{fmt(s['last_delivery'], 1000):>15} {fmt(s['after_last'], 1000):>15} {fmt(s['ttft'], 1000):>7} "
              f"{fmt(s['added'], 1000):>7} {fmt(s['stream'], 1, 3):>7} {fmt(s['total'], 1, 3):>7} "
              f"{fmt(s['app_cpu'], 1, 2):>8} {fmt(s['caller_cpu'], 1, 2):>10}")

    sdk, domain, sse, client = (summary.get(k) for k in ("sdk", "domain", "sse", "client"))
    print()
    print("Attribution of the gap (differences of medians, ms):")
    print(f"  {'layer':<58} {'TTFT':>8} {'added':>8}")
    rows = [("the app's own code: stream_reply() - SDK (d - b)", domain, sdk),
            ("Gradio server: queue, pre/postprocess, SSE (c - d)", sse, domain),
            ("gradio_client itself (a - c)", client, sse),
            ("all: app via gradio_client - SDK (a - b)", client, sdk)]
    for label, x, y in rows:
        if x and y:
            print(f"  {label:<58} {fmt(x['ttft'] - y['ttft'], 1000, 1, True):>8} "
                  f"{fmt(x['added'] - y['added'], 1000, 1, True):>8}")
    if sse and sse.get("app_cpu") is not None and sse.get("updates"):
        idle = (idle_cpu_per_s or 0.0) * sse["total"]
        net = max(sse["app_cpu"] - idle, 0.0)
        print(f"  app process CPU per reply: {sse['app_cpu'] * 1000:.0f} ms, of which ~{idle * 1000:.0f} ms is what the idle "
              f"app burns anyway (Gradio's queue loop polls every 1 ms);")
        print(f"  the rest, {net * 1000:.0f} ms over {sse['updates']:.0f} streamed updates = {net * 1000 / sse['updates']:.2f} ms "
              f"per update")
        print("  (the SDK's chunk parsing, the handler, and Gradio's fixed per-update work: a worker-thread hop for the")
        print("  generator step and for each output's postprocess, state hashing, diffing, serialising the event)")


def gradio_profile(home: Path, bench_factory, n: int) -> None:
    """A second app instance with GRADIO_PROFILING=1: Gradio's own phase timings for /send."""
    print()
    print(f"Gradio's phase timings for /send (second app instance with GRADIO_PROFILING=1, {n} replies via raw SSE)")
    app = App(home, {"GRADIO_PROFILING": "1"})
    try:
        app.wait_ready()
        bench = bench_factory(app)
        bench.run_sse()  # warm-up
        httpx.post(app.url + "/gradio_api/profiling/clear")
        runs = [bench.run_sse() for _ in range(n)]
        traces = httpx.get(app.url + "/gradio_api/profiling/traces").json()
    finally:
        app.stop()
    if isinstance(traces, dict):
        traces = traces.get("traces", [])
    send = [t for t in traces if t.get("fn_name") == "send"]
    if not send:
        print("  (no traces for /send)")
        return
    main_phases = ["queue_wait_ms", "preprocess_ms", "fn_call_ms", "postprocess_ms", "streaming_diff_ms", "total_ms"]
    sub_phases = sorted(k for k in send[0] if k.endswith("_ms") and k not in main_phases
                        and (median([t.get(k) or 0 for t in send]) or 0) >= 0.05)
    phases = main_phases[:-1] + [f"  {k}" for k in sub_phases] + main_phases[-1:]
    iters = median([t["n_iterations"] for t in send])
    print(f"  {'phase':<40} {'median ms/reply':>16} {'ms/update':>10}")
    for ph in phases:
        v = median([t[ph.strip()] for t in send])
        print(f"  {ph[:-3]:<40} {v:>16.1f} {v / iters if iters else 0:>10.3f}")
    print(f"  {'updates per reply':<40} {iters:>16.0f}")
    wall = median([r["total"] for r in runs]) * 1000
    total = median([t["total_ms"] for t in send])
    fn = median([t["fn_call_ms"] for t in send])
    print(f"  wall time per reply {wall:.0f} ms; Gradio's process_api {total:.0f} ms, of which the handler (fn_call, "
          f"including the wait for tokens) {fn:.0f} ms and Gradio's own work around it {total - fn:.0f} ms;")
    print(f"  outside process_api (HTTP join, queue loop, SSE delivery) {wall - total:.0f} ms")


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replies", type=int, default=7, help="measured replies per path (default 7)")
    parser.add_argument("--tokens", type=int, default=200, help="words in each reply (default 200)")
    parser.add_argument("--delay", type=float, default=0.01, help="seconds between streamed chunks (default 0.01)")
    parser.add_argument("--first-delay", type=float, default=0.0, help="seconds before the first chunk (default 0)")
    parser.add_argument("--persona", default="Text Adventure: Gullstone Light", help="a chat persona without variables")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured replies per path first (default 1)")
    parser.add_argument("--no-breakdown", action="store_true", help="run only paths (a) and (b)")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="Gradio phase timings: when a target is missed (auto), always, never")
    parser.add_argument("--show-runs", action="store_true", help="print every run's numbers")
    args = parser.parse_args(argv)

    from playground.chat.personas import load_personas

    personas, _ = load_personas(ROOT / "personas")
    if args.persona not in personas:
        parser.error(f"no persona {args.persona!r}; have: {', '.join(sorted(personas))}")
    persona = personas[args.persona]
    if persona.mode != "chat" or persona.variable_names():
        parser.error("pick a chat persona without {{variables}}")

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="playground-bench-") as tmp:
        home = Path(tmp)
        args.home = str(home)
        os.environ["TIKTOKEN_CACHE_DIR"] = str(home / "tiktoken")  # never the user's cache
        provider = Provider(args.delay, args.first_delay, home / "provider.log")
        app = None
        try:
            (home / "providers.json").write_text(json.dumps({"providers": [{
                "name": "local", "base_url": provider.base_url, "api_key_env": "LOCAL_KEY",
                "models": [MODEL], "completion_models": ["davinci-002"]}]}), encoding="utf-8")
            app = App(home)
            t = time.monotonic()
            app.wait_ready()
            print(f"app up on {app.url} in {time.monotonic() - t:.1f} s (pid {app.pid}); "
                  f"fake provider {provider.base_url} (pid {provider.proc.pid})")
            bench = Bench(args, provider, app, persona)

            # Warm-up; the app's first request body becomes the SDK's request body.
            bench.sdk_body = dict(bench.run_client()["body"])
            idle_cpu = idle_cpu_rate(app.pid)
            paths = ["sdk", "client"] if args.no_breakdown else ["sdk", "client", "sse", "domain"]
            runners = {p: getattr(bench, f"run_{p}") for p in paths}
            for _ in range(args.warmup):
                for p in paths:
                    runners[p]()

            runs: dict[str, list[Run]] = {p: [] for p in paths}
            for rep in range(args.replies):
                order = paths[rep % len(paths):] + paths[:rep % len(paths)]
                for p in order:
                    runs[p].append(runners[p]())
                print(f"  repetition {rep + 1}/{args.replies}: " + "  ".join(
                    f"{p} {runs[p][-1]['total']:.3f}s/{runs[p][-1]['ttft'] * 1000:.0f}ms" for p in paths), flush=True)
            app.stop()
            app = None

            # Same request everywhere?
            ref = bench.sdk_body
            mismatched = [r["path"] for rs in runs.values() for r in rs if r.get("body") != ref]
            if mismatched:
                print(f"WARNING: {len(mismatched)} runs sent a different request body than the SDK's: {set(mismatched)}")
            else:
                print(f"all {sum(len(v) for v in runs.values())} measured requests had the same body "
                      f"({len(ref['messages'])} messages, max_tokens {ref.get('max_tokens')})")

            if args.show_runs:
                for p in paths:
                    for r in runs[p]:
                        print(f"    {p:<7} total {r['total']:.3f} s  TTFT {r['ttft'] * 1000:6.1f} ms  "
                              f"request +{(r['t_recv'] - r['t0']) * 1000:6.1f} ms  "
                              f"stream {(r['t_last_sent'] - r['t_recv']):.3f} s  updates {r.get('updates', '-')}")

            summary = {p: summarize(runs[p]) for p in paths}
            verdict = print_main_table(args, summary)
            if not args.no_breakdown:
                print_breakdown(summary, idle_cpu)

            missed = not (verdict["ok_total"] and verdict["ok_ttft"])
            if args.profile == "always" or (args.profile == "auto" and missed):
                gradio_profile(home, lambda new_app: Bench(args, provider, new_app, persona), n=3)
        finally:
            if app is not None:
                app.stop()
            provider.close()
    print()
    print(f"done in {time.monotonic() - started:.0f} s")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
