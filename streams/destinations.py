"""Per-destination gates: concurrency and rate limits, the circuit breaker, operator pause,
and one pooled HTTP session per destination (keep-alive).

An attempt passes its destination's gate before it runs. A paused destination, an open
breaker, or an event of the same entity deferred earlier at this destination (its order
must hold) defers the event at once; full limits make it wait in its lane at most the
destination's `max_wait`, then defer it. A deferred event goes to a retry tier without
spending an attempt (`Verdict.DEFERRED`, hookstream.core.outcome.settle), so a sick,
limited or paused destination never holds more of the worker's in-flight room than its
own `max_in_flight` plus what arrives within `max_wait`. See docs/architecture.md,
"Destinations".
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from hookstream.config import DestinationSettings
from hookstream.core.breaker import Breaker, BreakerPolicy, BreakerState, Transition
from hookstream.core.deferral import DeferredQueues
from hookstream.core.ratelimit import TokenBucket, default_burst
from hookstream.core.routing import AttemptResult, Verdict
from hookstream.metrics import (
    DELIVERY_SECONDS,
    DESTINATION_DEFERRED,
    DESTINATION_IN_FLIGHT,
    DESTINATION_STATE,
)

log = structlog.get_logger("hookstream.worker")

PAUSED = "paused"
STATES = (*(s.value for s in BreakerState), PAUSED)
RATE_WINDOW = 10.0  # seconds over which the request rate shown by `destinations list` is taken

Attempt = Callable[[aiohttp.ClientSession | None], Awaitable[AttemptResult]]


@dataclass
class Gate:
    """One destination's limits, breaker, pause flag and session."""

    name: str
    settings: DestinationSettings
    slots: asyncio.Semaphore
    bucket: TokenBucket | None
    breaker: Breaker | None
    paused: bool = False
    in_flight: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    session: aiohttp.ClientSession | None = None
    started: deque[float] = field(default_factory=deque)  # attempt start times, RATE_WINDOW
    # This destination's metric children, looked up once rather than per attempt.
    in_flight_gauge: Any = field(init=False, repr=False)
    delivery_seconds: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.in_flight_gauge = DESTINATION_IN_FLIGHT.labels(self.name)
        self.delivery_seconds = DELIVERY_SECONDS.labels(self.name)

    @property
    def state(self) -> str:
        if self.paused:
            return PAUSED
        return (self.breaker.state if self.breaker else BreakerState.CLOSED).value

    def rate(self, now: float) -> float:
        while self.started and self.started[0] < now - RATE_WINDOW:
            self.started.popleft()
        return len(self.started) / RATE_WINDOW

    def status(self, now: float) -> dict[str, Any]:
        """What `hookstream destinations list` shows of this destination on this worker."""
        breaker = self.breaker
        return {
            "state": self.state,
            "paused": self.paused,
            "in_flight": self.in_flight,
            "max_in_flight": self.settings.max_in_flight,
            "rate": round(self.rate(now), 2),
            "rate_limit": self.settings.rate_limit,
            "breaker": None
            if breaker is None
            else {
                "state": breaker.state.value,
                "failures_in_a_row": breaker.run,
                "opened_at": breaker.opened_at
                if breaker.state is not BreakerState.CLOSED
                else None,
                "retry_in": round(breaker.retry_in(now), 3),
            },
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }


class DestinationGates:
    """Every destination's gate, for one worker."""

    def __init__(
        self,
        destinations: Mapping[str, DestinationSettings],
        *,
        stale_after: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self._gates = {name: _gate(name, d) for name, d in destinations.items()}
        self._order = DeferredQueues(stale_after)
        for gate in self._gates.values():
            self._show(gate)

    def names(self) -> list[str]:
        return list(self._gates)

    def set_paused(self, name: str, paused: bool) -> None:
        """An operator's pause or resume (from the control topic); unknown names are ignored."""
        gate = self._gates.get(name)
        if gate is None or gate.paused == paused:
            return
        gate.paused = paused
        log.warning("destination_paused" if paused else "destination_resumed", destination=name)
        self._show(gate)

    def status(self) -> dict[str, dict[str, Any]]:
        now = self._clock()
        return {name: gate.status(now) for name, gate in self._gates.items()}

    async def attempt(
        self, name: str, lane: tuple[str, str], event_id: str, run: Attempt
    ) -> AttemptResult:
        """Run `run` through the gate of `name`, or defer the event without running it."""
        gate = self._gates[name]
        now = self._clock()
        if gate.paused:
            return self._defer(gate, "paused")
        if self._order.must_wait((*lane, name), event_id, now):
            return self._defer(gate, "behind_deferred")
        probe = False
        if gate.breaker is not None:
            allowed, transition = gate.breaker.allow(now)
            self._changed(gate, transition)
            if not allowed:
                return self._defer(gate, "breaker_open", gate.breaker.retry_in(now))
            probe = gate.breaker.state is BreakerState.HALF_OPEN
        try:
            result = await self._within_limits(gate, run)
        except BaseException:
            if probe and gate.breaker is not None:
                gate.breaker.abandon()
            raise
        if result.verdict is Verdict.DEFERRED:
            if probe and gate.breaker is not None:
                gate.breaker.abandon()
            return result
        self._record(gate, result)
        return result

    def settled(
        self, lane: tuple[str, str], event_id: str, results: list[AttemptResult], waits: bool
    ) -> None:
        """After the round: a deferred event keeps (or takes) its place in its entity's queue
        at that destination while it `waits` in a retry tier; otherwise it leaves it."""
        now = self._clock()
        for result in results:
            key = (*lane, result.destination)
            if waits and result.verdict is Verdict.DEFERRED:
                self._order.deferred(key, event_id, now)
            else:
                self._order.settled(key, event_id)

    async def _within_limits(self, gate: Gate, run: Attempt) -> AttemptResult:
        max_wait = gate.settings.max_wait
        deadline = time.monotonic() + max_wait
        if gate.slots.locked():
            try:
                await asyncio.wait_for(gate.slots.acquire(), timeout=max_wait)
            except TimeoutError:
                return self._defer(gate, "max_in_flight")
        else:  # a free slot: taken at once, without a timer
            await gate.slots.acquire()
        try:
            if gate.bucket is not None:
                wait = gate.bucket.reserve(time.monotonic(), max(0.0, deadline - time.monotonic()))
                if wait is None:
                    return self._defer(gate, "rate_limit")
                if wait > 0:
                    try:
                        await asyncio.sleep(wait)
                    except asyncio.CancelledError:
                        gate.bucket.cancel()
                        raise
            gate.in_flight += 1
            gate.in_flight_gauge.set(gate.in_flight)
            gate.started.append(self._clock())
            try:
                if gate.settings.url is not None and gate.session is None:
                    gate.session = _session(gate.settings)
                result = await run(gate.session)
            finally:
                gate.in_flight -= 1
                gate.in_flight_gauge.set(gate.in_flight)
            gate.delivery_seconds.observe(result.duration)
            return result
        finally:
            gate.slots.release()

    def _record(self, gate: Gate, result: AttemptResult) -> None:
        if result.verdict is not Verdict.DELIVERED:
            gate.last_error, gate.last_error_at = result.error, self._clock()
        if gate.breaker is not None:
            # A permanent failure (a 4xx) is the destination answering: it is alive.
            ok = result.verdict is not Verdict.RETRYABLE
            self._changed(gate, gate.breaker.record(self._clock(), ok))

    def _changed(self, gate: Gate, transition: Transition | None) -> None:
        if transition is None:
            return
        (log.warning if transition.after is BreakerState.OPEN else log.info)(
            "destination_breaker",
            destination=gate.name,
            before=transition.before.value,
            after=transition.after.value,
            reason=transition.reason,
            last_error=gate.last_error,
        )
        self._show(gate)

    def _defer(self, gate: Gate, reason: str, wait: float | None = None) -> AttemptResult:
        DESTINATION_DEFERRED.labels(gate.name, reason).inc()
        return AttemptResult(gate.name, Verdict.DEFERRED, f"deferred: {reason}", retry_after=wait)

    @staticmethod
    def _show(gate: Gate) -> None:
        for state in STATES:
            DESTINATION_STATE.labels(gate.name, state).set(1 if state == gate.state else 0)

    async def close(self) -> None:
        for gate in self._gates.values():
            if gate.session is not None:
                await gate.session.close()
                gate.session = None


def _gate(name: str, settings: DestinationSettings) -> Gate:
    rate = settings.rate_limit
    breaker = settings.breaker
    return Gate(
        name,
        settings,
        asyncio.Semaphore(settings.max_in_flight),
        TokenBucket(rate, default_burst(rate)) if rate is not None else None,
        None
        if breaker is None
        else Breaker(
            BreakerPolicy(
                breaker.failures,
                breaker.cooldown,
                breaker.ratio,
                breaker.window,
                breaker.min_attempts,
            )
        ),
    )


def _session(settings: DestinationSettings) -> aiohttp.ClientSession:
    """Pooled connections to one destination, kept alive between requests: as many as its
    `max_in_flight`, so one destination never waits for another's connections."""
    connector = aiohttp.TCPConnector(limit=settings.max_in_flight, keepalive_timeout=30)
    return aiohttp.ClientSession(connector=connector)
