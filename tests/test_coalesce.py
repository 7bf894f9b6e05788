"""playground.core.coalesce: the first item at once, then at most one per interval, the last always; nothing lost."""

import statistics
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


def test_the_pace_widens_the_interval_as_streams_join_and_narrows_it_as_they_leave():
    from playground.core.coalesce import Pace

    pace = Pace(base=0.04, updates_per_s=250, ceiling=0.12)
    assert pace.interval() == 0.04
    with pace.streaming():
        assert pace.active == 1 and pace.interval() == 0.04  # one visitor: every update it can use
        with pace.streaming(), pace.streaming():
            assert pace.interval() == 0.04
    streams = [pace.streaming() for _ in range(20)]
    for s in streams:
        s.__enter__()
    assert pace.interval() == pytest.approx(20 / 250)  # 20 streams share 250 updates a second
    more = [pace.streaming() for _ in range(40)]
    for s in more:
        s.__enter__()
    assert pace.interval() == 0.12  # never slower than the ceiling: past it, a host adds processes
    for s in streams + more:
        s.__exit__(None, None, None)
    assert pace.active == 0 and pace.interval() == 0.04


def test_streams_coalesced_under_one_pace_count_themselves_while_they_run_and_update_less_often():
    from playground.core.coalesce import Pace

    pace = Pace(base=0.01, updates_per_s=100, ceiling=0.05)
    seen_active, counts = [], {}

    def run(name):
        items = 0
        for _ in coalesce(growing(300, pace=0.001), pace):
            items += 1
            seen_active.append(pace.active)
        counts[name] = items

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    alone = sum(1 for _ in coalesce(growing(300, pace=0.001), Pace(base=0.01, updates_per_s=100, ceiling=0.05)))
    assert max(seen_active) >= 2  # the streams overlapped and each was counted
    assert pace.active == 0  # and each left when it ended
    # Five at once: 5/100 = 50 ms apart instead of 10 ms, so each got clearly fewer updates than one alone.
    assert statistics.median(counts.values()) < alone * 0.6
