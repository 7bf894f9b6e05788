"""Coalesced updates: show the first token at once, then at most one update every `interval` seconds.

A streamed reply arrives one token at a time; redrawing the UI for each of them costs the app a few
milliseconds of CPU (Gradio's postprocess, diffing, serialising) and, with many visitors at once, that CPU
is what makes every stream stall. The eye needs no more than ~25 updates a second.

`coalesce()` reads the source on a thread of its own, as fast as the source gives, and yields the newest
item when the consumer is due one: the first at once, then whatever is newest once `interval` has passed
since the last yield, and always the source's very last item. Items are snapshots of a growing whole (the
conversation with the reply so far), so yielding the newest one drops nothing. Closing the coalesced
iterator (Stop) closes the source on its thread, so its own cleanup (logging a stopped reply) still runs.

A `Pace` shares one update budget between all the streams of the app: one process serves about as many UI
updates a second as one core can postprocess and serialise, so with many visitors each stream updates a little
less often (up to `MAX_INTERVAL_S`) rather than all of them stalling together.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

UPDATE_INTERVAL_S = 0.04  # at most 25 updates a second: faster is invisible and costs the app CPU per update
# Measured with bench/concurrency.py on 2 cores: one update costs the app ~2-3 ms of CPU, so ~250 updates a second
# is about half a core, leaving the rest for reading the model's streams and serving pages.
UPDATES_PER_S = 250
MAX_INTERVAL_S = 0.12  # slower than this reads as stalling; beyond it a host runs more processes (docs/scaling.md)


class Pace:
    """The update interval for each stream, given how many stream at once in this process (thread-safe)."""

    def __init__(self, base: float = UPDATE_INTERVAL_S, updates_per_s: float = UPDATES_PER_S,
                 ceiling: float = MAX_INTERVAL_S):
        self.base, self.updates_per_s, self.ceiling = base, updates_per_s, ceiling
        self._lock = threading.Lock()
        self._active = 0

    @property
    def active(self) -> int:
        with self._lock:
            return self._active

    def interval(self) -> float:
        """`base` while few stream; then each stream's share of the budget, never slower than `ceiling`."""
        return min(self.ceiling, max(self.base, self.active / self.updates_per_s))

    @contextmanager
    def streaming(self) -> Iterator[None]:
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1


class _Feed:
    """The source read on a thread: the newest item, whether it was shown yet, and how the source ended."""

    def __init__(self, source: Iterator):
        self.source = source
        self.cond = threading.Condition()
        self.latest = None
        self.fresh = False  # an item arrived that has not been yielded yet
        self.done = False
        self.error: BaseException | None = None
        self.stopping = False
        self.wanted = False  # the consumer waits for a fresh item; otherwise it sleeps until due, or the end
        threading.Thread(target=self._read, name="coalesce", daemon=True).start()

    def _read(self) -> None:
        try:
            for item in self.source:
                with self.cond:
                    self.latest, self.fresh = item, True
                    if self.wanted:  # waking the consumer for every token would cost as much as the token
                        self.cond.notify_all()
                    if self.stopping:
                        break
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it in its own thread
            with self.cond:
                self.error = e
        finally:
            self._close_source()
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def _close_source(self) -> None:
        close = getattr(self.source, "close", None)
        try:
            if close is not None:
                close()  # runs the source's own cleanup (a stopped reply is logged) here, on its thread
        except Exception as e:  # noqa: BLE001 - the consumer must still learn that the source has ended
            with self.cond:
                self.error = self.error or e

    def take(self, until: float | None, clock: Callable[[], float]):
        """Wait for a fresh item (or the end), then until `until` unless the source ends first; the newest item."""
        with self.cond:
            self.wanted = True
            self.cond.wait_for(lambda: self.fresh or self.done)
            self.wanted = False
            while until is not None and not self.done and (left := until - clock()) > 0:
                self.cond.wait(left)
            if self.error is not None:
                raise self.error
            item, fresh = self.latest, self.fresh
            self.fresh = False
            return item, fresh

    def stop(self) -> None:
        with self.cond:
            self.stopping = True


def coalesce(source: Iterator[T], interval: float | Pace = UPDATE_INTERVAL_S,
             clock: Callable[[], float] = time.monotonic) -> Iterator[T]:
    """The source's items, at most one every `interval` s after the first; the last item always comes through.

    Given a `Pace` instead of a number, the stream counts itself in while it runs and asks the pace for its
    interval before each wait, so the interval follows the number of streams as visitors come and go.
    """
    pace = interval if isinstance(interval, Pace) else Pace(base=interval, ceiling=interval)
    with pace.streaming():
        yield from _coalesced(_Feed(iter(source)), pace, clock)


def _coalesced(feed: _Feed, pace: Pace, clock: Callable[[], float]) -> Iterator:
    shown_at = None
    try:
        while True:
            item, fresh = feed.take(None if shown_at is None else shown_at + pace.interval(), clock)
            if not fresh:  # the source ended and its last item was already shown
                return
            yield item
            shown_at = clock()
    finally:
        # Never wait here: Gradio closes the iterator from its event loop. The source is closed on its thread.
        feed.stop()
