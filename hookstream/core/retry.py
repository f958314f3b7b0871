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

    def next_step(
        self, attempts: int, rng: random.Random, retry_after: float | None = None
    ) -> RetryTier | DeadLetter:
        """After `attempts` failed attempts, the tier to wait in, or the DLQ.

        The delay is the tier's delay ± jitter, and never shorter than the destination's
        Retry-After.
        """
        tier = attempts - 1
        if tier >= len(self.schedule):
            return DeadLetter(f"gave up after {attempts} attempts")
        base = self.schedule[tier]
        delay = base * (1 + self.jitter * (2 * rng.random() - 1))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return RetryTier(tier, delay)
