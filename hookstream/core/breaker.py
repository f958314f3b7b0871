"""A destination's circuit breaker: closed, open for a cool-down, half-open for one probe (pure).

It opens after `failures` failed attempts in a row, or when at least `ratio` of the attempts
in the last `window` seconds failed (and there were at least `min_attempts` of them). Open,
it lets nothing through until `cooldown` has passed; then one attempt, the probe, goes
through (half-open): its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum


class BreakerState(StrEnum):
    """Also the `state` label of hookstream_destination_state (with `paused`)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures: int = 10
    cooldown: float = 30.0
    ratio: float | None = None  # open when this share of the window's attempts failed
    window: float = 60.0
    min_attempts: int = 20

    def __post_init__(self) -> None:
        if self.failures < 1 or self.cooldown < 0 or self.window <= 0 or self.min_attempts < 1:
            raise ValueError("failures and min_attempts >= 1, cooldown >= 0, window > 0")
        if self.ratio is not None and not 0 < self.ratio <= 1:
            raise ValueError("ratio must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of state, for the log line and the metric."""

    before: BreakerState
    after: BreakerState
    reason: str


@dataclass(slots=True)
class Breaker:
    policy: BreakerPolicy
    state: BreakerState = BreakerState.CLOSED
    opened_at: float = 0.0
    run: int = 0  # failures in a row
    probing: bool = False
    recent: deque[tuple[float, bool]] = field(default_factory=deque)

    def allow(self, now: float) -> tuple[bool, Transition | None]:
        """May an attempt go now? Past the cool-down, the first caller becomes the probe."""
        if self.state is BreakerState.CLOSED:
            return True, None
        if self.state is BreakerState.OPEN:
            if now < self.opened_at + self.policy.cooldown:
                return False, None
            self.state, self.probing = BreakerState.HALF_OPEN, True
            return True, Transition(BreakerState.OPEN, BreakerState.HALF_OPEN, "cooldown over")
        if self.probing:
            return False, None
        self.probing = True
        return True, None

    def retry_in(self, now: float) -> float:
        """Seconds until an attempt may go (0 unless open)."""
        if self.state is BreakerState.OPEN:
            return max(0.0, self.opened_at + self.policy.cooldown - now)
        return 0.0

    def record(self, now: float, ok: bool) -> Transition | None:
        """The result of an attempt that `allow` let through."""
        self._remember(now, ok)
        if self.state is BreakerState.HALF_OPEN:
            self.probing = False
            if ok:
                self._close()
                return Transition(BreakerState.HALF_OPEN, BreakerState.CLOSED, "probe succeeded")
            self._open(now)
            return Transition(BreakerState.HALF_OPEN, BreakerState.OPEN, "probe failed")
        if self.state is BreakerState.OPEN:
            return None  # an attempt let through before it opened
        self.run = 0 if ok else self.run + 1
        reason = self._reason_to_open()
        if reason is None:
            return None
        self._open(now)
        return Transition(BreakerState.CLOSED, BreakerState.OPEN, reason)

    def abandon(self) -> None:
        """The probe was let through but never made (cancelled): the next caller probes."""
        self.probing = False

    def _reason_to_open(self) -> str | None:
        if self.run >= self.policy.failures:
            return f"{self.run} failures in a row"
        ratio = self.policy.ratio
        if ratio is not None and len(self.recent) >= self.policy.min_attempts:
            failed = sum(1 for _, ok in self.recent if not ok)
            if failed / len(self.recent) >= ratio:
                return f"{failed} of {len(self.recent)} attempts failed"
        return None

    def _remember(self, now: float, ok: bool) -> None:
        self.recent.append((now, ok))
        while self.recent and self.recent[0][0] < now - self.policy.window:
            self.recent.popleft()

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.probing = BreakerState.OPEN, now, False

    def _close(self) -> None:
        self.state, self.run = BreakerState.CLOSED, 0
        self.recent.clear()
