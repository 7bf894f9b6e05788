"""A/B parallel streaming: a round with two columns vs one column, on the same pace-limited fake server.

    python bench/ab_parallel.py [--runs 5] [--tokens 200] [--delay 0.01]

A FakeOpenAI server in its own process (bench/fake_provider.py) streams a `--tokens`-word reply one word per
chunk, `--delay` seconds apart (200 x 10 ms: ~2 s a reply). Measured interleaved, medians over `--runs`:

  app     the app as users run it (`python app.py`, its own process), through gradio_client:
          one column = the Chat tab's /send; two columns = the A/B tab's /ab_send (one event, both streams)
  domain  in this process, without Gradio: one column = chat.stream_reply(); two = ab.stream_round()

A run is the time from the call until the last update (both replies complete and logged). Each run starts a
fresh conversation (/new_chat, /ab_new), so every request is the same size. Target: two / one <= 1.15 on both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from gradio_client import Client  # noqa: E402

from bench.chat_latency import API_KEY, App, Provider  # noqa: E402

TARGET = 1.15
PERSONA = "Location Extractor"  # a chat persona with no greeting and no variables
MODELS = ("local:gpt-4o-mini", "local:gpt-4o")


def write_home(home: Path, base_url: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    endpoint = {"name": "local", "base_url": base_url, "api_key_env": "LOCAL_KEY", "models": list(MODELS)}
    (home / "providers.json").write_text(json.dumps({"providers": [endpoint]}), encoding="utf-8")


def text_of(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(text_of(p) for p in content)
    if isinstance(content, dict):
        return text_of(content.get("text", content.get("content", "")))
    return ""


def last_reply(panel) -> str:
    messages = panel["value"] if isinstance(panel, dict) else panel
    return text_of(messages[-1]["content"]) if messages else ""


class AppPaths:
    """/send (one column) and /ab_send (two) through gradio_client against the app process."""

    def __init__(self, url: str, persona, tokens: int):
        self.client = Client(url, verbose=False)
        self.message = f"Where is everyone? [tokens={tokens}]"
        self.last_word = f"w{tokens}"
        p = persona.params
        self.params = [p.temperature, p.top_p, max(p.max_tokens, tokens), p.presence_penalty, p.frequency_penalty,
                       p.seed, "[]"]
        self.system_prompt = persona.system_prompt
        self.name = persona.name

    def one(self) -> float:
        self.client.predict(self.name, api_name="/new_chat")
        variables = {"headers": ["variable", "value"], "data": [["", ""]], "metadata": None}
        started = time.monotonic()
        chat, _, notice = self.client.predict(self.message, self.name, MODELS[0], self.system_prompt, variables,
                                              *self.params, api_name="/send")
        took = time.monotonic() - started
        self._check([chat], notice)
        return took

    def two(self) -> float:
        self.client.predict(api_name="/ab_new")
        columns = [["", self.name, model, self.system_prompt, *self.params] for model in MODELS]
        columns += [["", self.name, "", "", *self.params]] * 2
        started = time.monotonic()
        a, b, _, _, _, _, notice = self.client.predict(self.message, True, 2, *(v for c in columns for v in c),
                                                       api_name="/ab_send")
        took = time.monotonic() - started
        self._check([a, b], notice)
        return took

    def _check(self, panels, notice) -> None:
        for panel in panels:
            if self.last_word not in last_reply(panel).split("\n\n")[0].split():
                raise RuntimeError(f"a reply did not arrive complete: {last_reply(panel)[-200:]!r} {notice!r}")


class DomainPaths:
    """chat.stream_reply (one column) and ab.stream_round (two) in this process."""

    def __init__(self, home: Path, tokens: int):
        from playground.services import build_services

        self.services = build_services(home=home, environ={"LOCAL_KEY": API_KEY}, detect_local=False, discover=False)
        self.persona = self.services.personas[PERSONA]
        self.message = f"Where is everyone? [tokens={tokens}]"
        self.tokens = tokens

    def _settings(self, model):
        from playground.chat.ask import ChatSettings

        settings = ChatSettings.for_persona(self.persona, model)
        settings.params.max_tokens = max(settings.params.max_tokens, self.tokens)
        return settings

    def one(self) -> float:
        from playground.chat.ask import stream_reply
        from playground.chat.conversation import Conversation

        conversation = Conversation()
        conversation.add_user(self.message)
        started = time.monotonic()
        for _ in stream_reply(self.services, self.persona, self._settings(MODELS[0]), conversation):
            pass
        return time.monotonic() - started

    def two(self) -> float:
        from playground.ab import arena as ab

        arena = ab.prepare(self.services, None, [ab.ArenaColumn(settings=self._settings(m)) for m in MODELS])
        started = time.monotonic()
        for _ in ab.stream_round(self.services, arena, self.message):
            pass
        took = time.monotonic() - started
        if arena.current.failed:
            raise RuntimeError(f"a column failed: {[r.error for r in arena.current.failed]}")
        return took


def measure(paths, runs: int) -> tuple[list[float], list[float]]:
    ones, twos = [], []
    paths.one(), paths.two()  # warm-up, not counted
    for i in range(runs):
        order = (paths.one, paths.two) if i % 2 == 0 else (paths.two, paths.one)
        for path in order:
            (ones if path == paths.one else twos).append(path())
    return ones, twos


def report(name: str, ones: list[float], twos: list[float]) -> bool:
    one, two = statistics.median(ones), statistics.median(twos)
    ratio = two / one
    ok = ratio <= TARGET
    print(f"{name:<7} one column {one:6.3f} s (min {min(ones):.3f}, max {max(ones):.3f})   "
          f"two columns {two:6.3f} s (min {min(twos):.3f}, max {max(twos):.3f})   "
          f"ratio {ratio:.3f}x  target <= {TARGET}x  {'PASS' if ok else 'MISS'}")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.01)
    parser.add_argument("--no-app", action="store_true", help="measure the domain path only")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    os.environ["TIKTOKEN_CACHE_DIR"] = str(work / "tiktoken")
    provider = Provider(args.delay, 0.0, work / "provider.log")
    app = None
    try:
        home = work / "home"
        write_home(home, provider.base_url)
        print(f"{args.tokens} tokens at {args.delay * 1000:g} ms each (~{args.tokens * args.delay:.1f} s a reply), "
              f"{args.runs} runs per path, interleaved")
        write_home(work / "domain-home", provider.base_url)
        domain = DomainPaths(work / "domain-home", args.tokens)
        domain.services.registry.refresh()
        results = [report("domain", *measure(domain, args.runs))]
        if not args.no_app:
            app = App(home)
            app.wait_ready()
            results.append(report("app", *measure(AppPaths(app.url, domain.persona, args.tokens), args.runs)))
        return 0 if all(results) else 1
    finally:
        if app is not None:
            app.stop()
        provider.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
