"""Coalesced streaming as an API client sees it: few updates for a fast stream, every word of a slow one,
nothing lost on Stop, and each A/B column's own final update."""

import re
import time

import pytest
from gradio_client import Client

from playground.core.coalesce import UPDATE_INTERVAL_S
from tests.test_ab_ui import column_args, replies
from tests.test_ui_api import METRICS, send_args, text

SLACK = 6  # the "…" placeholder, the first token, the last update, and room for a busy machine


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def words(reply: str) -> list[str]:
    return re.findall(r"\bw\d+\b", reply)


def assistant_texts(updates: list) -> list[str]:
    return [text(chat[-1]) for chat, *_ in updates if chat and chat[-1]["role"] == "assistant"]


def test_a_fast_stream_arrives_in_a_bounded_number_of_updates(client, services, fake_server):
    fake_server.token_delay = 0.001
    started = time.monotonic()
    job = client.submit(*send_args("Count [tokens=200]", max_tokens=1000), api_name="/send")
    updates = list(job)
    took = time.monotonic() - started

    texts = [t for t in assistant_texts(updates) if words(t)]
    assert len(updates) <= took / UPDATE_INTERVAL_S + SLACK, (len(updates), took)
    assert len(texts) < 200
    assert words(texts[0])[0] == "w1" and len(words(texts[0])) < 200  # the first update carries the first token
    assert words(texts[-1]) == [f"w{i}" for i in range(1, 201)]  # the last one the complete reply...
    assert METRICS.search(texts[-1])  # ...and its metrics
    [logged] = services.store.exchanges()
    assert words(logged["reply"]) == words(texts[-1])


def test_a_slow_stream_shows_every_word_as_it_comes(client, fake_server):
    fake_server.token_delay = 0.2
    job = client.submit(*send_args("Count [tokens=5]"), api_name="/send")
    seen = {len(words(t)) for t in assistant_texts(list(job))}
    assert {1, 2, 3, 4, 5} <= seen


def test_stop_during_a_coalesced_stream_keeps_every_word_received(client, services, fake_server):
    fake_server.token_delay = 0.005  # many words per update
    job = client.submit(*send_args("Count [tokens=3000]", max_tokens=5000), api_name="/send")
    deadline = time.monotonic() + 20
    while not any(len(words(t)) >= 20 for t in assistant_texts(job.outputs())):
        assert time.monotonic() < deadline, "no reply streamed"
        time.sleep(0.02)
    seen_before_stop = max(len(words(t)) for t in assistant_texts(job.outputs()))

    job.cancel()
    chat = client.predict(api_name="/stop")
    shown = words(text(chat[-1]))
    assert shown == [f"w{i}" for i in range(1, len(shown) + 1)]  # no gap: every word received is there
    assert seen_before_stop <= len(shown) < 3000
    [exchange] = services.store.exchanges()
    assert exchange["incomplete"] == 1 and words(exchange["reply"]) == shown


def test_ab_columns_finishing_at_different_times_each_get_their_final_update(client, services, fake_server):
    fake_server.token_delay = 0.02
    short, long = column_args("local:gpt-4o-mini", max_tokens=3), column_args("local:gpt-4o", max_tokens=100)
    args = ["Ferries [tokens=60]", False, 2, *short, *long, *column_args(), *column_args()]
    job = client.submit(*args, api_name="/ab_send")
    updates = list(job)

    def finished(panel) -> bool:
        shown = replies(panel)
        return bool(shown) and "tokens" in shown[-1]  # the metrics line comes with the final update

    # Blind mode is off, so slot A is column 1 (the short reply) and slot B column 2.
    short_done_first = [u for u in updates if finished(u[0]) and not finished(u[1])]
    assert short_done_first, "the short column's final update waited for the long one"
    assert words(replies(short_done_first[0][0])[-1]) == ["w1", "w2", "w3"]
    a, b, *_ = job.result()
    assert finished(a) and finished(b)
    assert words(replies(b)[-1]) == [f"w{i}" for i in range(1, 61)]
    assert len(services.store.exchanges()) == 2
