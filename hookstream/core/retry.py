"""Where the retry delay is decided: retry rules as data, and a pure next step."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryTier:
    """Wait `delay` seconds, then try again from retry topic number `index`."""

    index: int
    delay: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """No tier left (or retrying cannot help): the event goes to the DLQ."""

    reason: str


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The delay before each retry (one tier per delay), with relative jitter."""

    schedule: tuple[float, ...]
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if any(delay < 0 for delay in self.schedule):
            raise ValueError("retry delays cannot be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    @property
    def longest(self) -> float:
        """The cap on any wait: a Retry-After longer than the longest tier's delay waits that
        delay, in that tier (a sender asking for a day is retried after the longest tier)."""
        return max(self.schedule, default=0.0)

    def next_step(
        self, attempts: int, rng: random.Random, retry_after: float | None = None
    ) -> RetryTier | DeadLetter:
        """After `attempts` failed attempts, the tier to wait in, or the DLQ.

        The delay is the tier's delay ± jitter. A destination's Retry-After longer than that
        moves the event to the first later tier whose delay covers it, capped by the longest
        tier: a tier's records are due at most its own delay (± jitter) after they were
        written, so a long wait never holds up the records behind it in its tier.
        """
        tier = attempts - 1
        if tier >= len(self.schedule):
            return DeadLetter(f"gave up after {attempts} attempts")
        delay = self._jittered(tier, rng)
        if retry_after is None or retry_after <= delay:
            return RetryTier(tier, delay)
        return self._covering(tier, retry_after)

    def defer_step(self, wait: float, rng: random.Random) -> RetryTier:
        """Where an event waits that was not attempted (its destination paused, its breaker
        open, its limits full): the first tier, or the first one covering `wait` (capped)."""
        if not self.schedule:
            raise ValueError("deferring needs at least one retry tier")
        delay = self._jittered(0, rng)
        return RetryTier(0, delay) if wait <= delay else self._covering(0, wait)

    def _jittered(self, tier: int, rng: random.Random) -> float:
        return self.schedule[tier] * (1 + self.jitter * (2 * rng.random() - 1))

    def _covering(self, first: int, wait: float) -> RetryTier:
        wait = min(wait, self.longest)
        for index in range(first, len(self.schedule)):
            if self.schedule[index] >= wait:
                return RetryTier(index, wait)
        return RetryTier(len(self.schedule) - 1, wait)
