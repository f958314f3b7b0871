"""Replay protection at the edge: a bounded memory of recently accepted (source, event id).

A delivery replayed inside its source's tolerance window is answered as a duplicate
without producing again. Outside the window a timestamped scheme refuses it as stale,
and the worker's dedupe table catches the rest, so this cache may forget early (it is
per process and bounded) without breaking any promise; it only saves work.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

DEFAULT_CAPACITY = 100_000


def _key(source: str, event_id: str) -> bytes:
    # A fixed-size digest: entries cost the same however long a sender's ids are.
    raw = (
        source.encode("utf-8", "surrogatepass") + b"\0" + event_id.encode("utf-8", "surrogatepass")
    )
    return hashlib.blake2b(raw, digest_size=16).digest()


class ReplayCache:
    """At most `capacity` entries, each forgotten once its expiry time has passed."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._expiry: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def seen(self, source: str, event_id: str, now: float) -> bool:
        """True if this pair was accepted and its window has not passed at `now`."""
        key = _key(source, event_id)
        expiry = self._expiry.get(key)
        if expiry is None:
            return False
        if now >= expiry:
            del self._expiry[key]
            return False
        return True

    def remember(self, source: str, event_id: str, now: float, window: float) -> None:
        """Record an accepted pair for `window` seconds from `now` (nothing if window <= 0)."""
        if window <= 0:
            return
        key = _key(source, event_id)
        self._expiry[key] = now + window
        self._expiry.move_to_end(key)
        self._purge(now)

    def _purge(self, now: float) -> None:
        """Drop expired entries from the oldest end, then the oldest beyond capacity."""
        entries = self._expiry
        while entries:
            oldest, expiry = next(iter(entries.items()))
            if expiry > now and len(entries) <= self.capacity:
                break
            del entries[oldest]
