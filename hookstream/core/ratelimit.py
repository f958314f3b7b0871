"""A destination's rate limit: `50/s` parsed, and a token bucket that hands out slots (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|m|min|h)\s*$")
_PER = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_rate(value: object) -> float:
    """Requests per second from `N/s`, `N/m` or `N/h` (`N/min` and `N/ms` too)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    else:
        match = _RATE.match(str(value))
        if match is None:
            raise ValueError(f"{value!r} is not a rate: write it as N/s, N/m or N/h (e.g. 50/s)")
        rate = float(match.group(1)) / _PER[match.group(2)]
    if rate <= 0:
        raise ValueError("a rate limit must be above zero")
    return rate


def default_burst(rate: float) -> float:
    """A tenth of a second's worth of requests, at least one: a burst is smoothed out."""
    return max(1.0, rate / 10)


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second, up to `burst` saved. Callers reserve a slot: the bucket may go
    into debt, so the slots it hands out are spaced exactly 1/rate apart, first come first
    served, and nobody is starved by a luckier caller that polls at the right moment."""

    rate: float
    burst: float
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def reserve(self, now: float, max_wait: float) -> float | None:
        """Seconds to wait for a slot (0: go now), the slot taken; None (nothing taken) if
        the slot would be more than `max_wait` away."""
        self._refill(now)
        wait = 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate
        if wait > max_wait:
            return None
        self.tokens -= 1
        return wait

    def cancel(self) -> None:
        """Give back a reserved slot that was not used (its caller was cancelled)."""
        self.tokens = min(self.burst, self.tokens + 1)
