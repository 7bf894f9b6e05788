"""A sliding-window request limit per key (a browser session, or everyone at once), with the clock passed in."""

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from ..core.errors import PlaygroundError


class RateLimited(PlaygroundError):
    def __init__(self, message: str, retry_after: float):
        self.retry_after = retry_after
        super().__init__(message)


class RateLimiter:
    """At most `limit` hits per key in any `window` seconds. Safe across Gradio's worker threads."""

    SWEEP_EVERY = 1000  # hits between sweeps of keys that went quiet, so memory stays bounded

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._since_sweep = 0

    def wait(self, key: str) -> float:
        """Seconds until `key` may make another request; 0 when it may now."""
        with self._lock:
            return self._wait(key, self.clock())

    def record(self, key: str) -> None:
        with self._lock:
            self._record(key, self.clock())

    def hit(self, key: str) -> float:
        """Count a request when it is allowed and return 0; otherwise count nothing and return the wait."""
        with self._lock:
            current = self.clock()
            wait = self._wait(key, current)
            if not wait:
                self._record(key, current)
            return wait

    def remaining(self, key: str) -> int:
        with self._lock:
            self._prune(key, self.clock())
            return self.limit - len(self._hits.get(key, ()))

    def _wait(self, key: str, current: float) -> float:
        self._prune(key, current)
        hits = self._hits.get(key)
        if not hits or len(hits) < self.limit:
            return 0.0
        return max(hits[0] + self.window - current, 0.001)

    def _record(self, key: str, current: float) -> None:
        self._hits.setdefault(key, deque()).append(current)
        self._since_sweep += 1
        if self._since_sweep >= self.SWEEP_EVERY:
            self._since_sweep = 0
            for other in list(self._hits):
                self._prune(other, current)

    def _prune(self, key: str, current: float) -> None:
        hits = self._hits.get(key)
        if hits is None:
            return
        while hits and hits[0] <= current - self.window:
            hits.popleft()
        if not hits:
            del self._hits[key]


def seconds(wait: float) -> int:
    """A wait as the whole seconds to tell a person (never 0 while they must still wait)."""
    return max(1, math.ceil(wait))
