"""playground.core.coalesce: the first item at once, then at most one per interval, the last always; nothing lost."""

import threading
import time

import pytest

from playground.core.coalesce import coalesce


def growing(words: int, pace: float = 0.0, log: list | None = None):
    """A reply growing one word at a time, as stream_reply yields it: the same list, longer each time."""
    reply = []
    try:
        for i in range(1, words + 1):
            if pace:
                time.sleep(pace)  # the source's own pace, as a model's; the test waits on results, not on time
            reply.append(f"w{i}")
            yield reply
    finally:
        if log is not None:
            log.append(list(reply))  # what the source "logged" when it ended or was closed


def test_a_fast_stream_is_coalesced_into_few_updates():
    interval = 0.04
    started = time.monotonic()
    seen = [list(item) for item in coalesce(growing(200, pace=0.001), interval)]
    took = time.monotonic() - started

    assert seen[0] == ["w1"]  # the first word goes out at once
    assert seen[-1] == [f"w{i}" for i in range(1, 201)]  # the last update is the whole reply
    assert len(seen) <= took / interval + 3  # one per interval, plus the first and the last
    assert len(seen) < 200
    assert all(len(a) < len(b) for a, b in zip(seen, seen[1:]))


def test_a_source_faster_than_the_consumer_is_never_waited_for():
    seen = [list(item) for item in coalesce(growing(5000), 0.04)]
    assert seen[-1][-1] == "w5000" and len(seen) <= 10


def test_a_slow_stream_shows_every_word_as_it_comes():
    shown = []
    for item in coalesce(growing(6, pace=0.2), 0.04):
        shown.append(list(item))
    assert [len(s) for s in shown] == [1, 2, 3, 4, 5, 6]


def test_a_word_after_a_quick_one_is_not_held_until_the_next_word():
    # w2 comes right after w1 (inside the interval), then the source pauses: w2 must be shown during the pause.
    go, release = threading.Event(), threading.Event()

    def bursty():
        reply = ["w1"]
        yield reply
        go.wait(10)
        reply.append("w2")
        yield reply
        release.wait(10)
        reply.append("w3")
        yield reply

    updates = coalesce(bursty(), 0.04)
    assert list(next(updates)) == ["w1"]
    go.set()
    assert list(next(updates)) == ["w1", "w2"]  # shown while the source is still paused
    release.set()
    assert [list(item) for item in updates] == [["w1", "w2", "w3"]]


def test_closing_the_coalesced_stream_closes_the_source_and_keeps_what_it_read():
    log = []
    updates = coalesce(growing(10_000, pace=0.001, log=log), 0.04)
    first = list(next(updates))
    updates.close()
    deadline = time.monotonic() + 10
    while not log and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first == ["w1"]
    assert log and 1 <= len(log[0]) < 10_000  # the source ran its cleanup with every word it had read


def test_an_error_before_the_first_item_reaches_the_consumer():
    def refused():
        raise ValueError("unknown model")
        yield  # pragma: no cover

    with pytest.raises(ValueError, match="unknown model"):
        list(coalesce(refused(), 0.04))


def test_an_empty_source_yields_nothing():
    assert list(coalesce(iter([]), 0.04)) == []
