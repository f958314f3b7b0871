"""Which destinations an event goes to, and what an attempt's result means."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Protocol


class Selector(Protocol):
    """What a destination selects: `None` means every source, or every event type."""

    @property
    def sources(self) -> Sequence[str] | None: ...

    @property
    def event_types(self) -> Sequence[str] | None: ...


def matching_destinations(
    destinations: Mapping[str, Selector], source: str, event_type: str | None
) -> list[str]:
    """Names of the destinations whose `sources` and `event_types` select this event."""
    chosen = []
    for name, destination in destinations.items():
        if destination.sources is not None and source not in destination.sources:
            continue
        if destination.event_types is not None and not any(
            fnmatchcase(event_type or "", pattern) for pattern in destination.event_types
        ):
            continue
        chosen.append(name)
    return chosen


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    PERMANENT = "permanent"
    # Not attempted: the destination was paused, its breaker open or its limits full past
    # the wait allowed. Retried like a retryable failure, without spending an attempt.
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt at one destination came to."""

    destination: str
    verdict: Verdict
    error: str | None = None
    status: int | None = None
    retry_after: float | None = None
    duration: float = 0.0

    @property
    def is_delivered(self) -> bool:
        return self.verdict is Verdict.DELIVERED


def classify_status(status: int) -> Verdict:
    """2xx delivered; 408, 429 and 5xx worth retrying; any other answer is permanent."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status in (408, 429) or status >= 500:
        return Verdict.RETRYABLE
    return Verdict.PERMANENT


# The longest Retry-After honoured: a destination's answer (400 digits, say) must not
# push an event's not-before past what a header, or a float, can hold.
MAX_RETRY_AFTER = 7 * 24 * 3600.0


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), at most
    MAX_RETRY_AFTER."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return MAX_RETRY_AFTER if len(value) > 9 else min(float(value), MAX_RETRY_AFTER)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - now), MAX_RETRY_AFTER)


def overall(results: Sequence[AttemptResult]) -> Verdict:
    """One event's verdict from its destinations': a permanent failure sends it to the
    DLQ at once (a redrive later retries every destination still owed)."""
    if any(r.verdict is Verdict.PERMANENT for r in results):
        return Verdict.PERMANENT
    if any(r.verdict is Verdict.RETRYABLE for r in results):
        return Verdict.RETRYABLE
    if any(r.verdict is Verdict.DEFERRED for r in results):
        return Verdict.DEFERRED
    return Verdict.DELIVERED
