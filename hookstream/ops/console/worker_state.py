"""Destination and lane state for the console, read from Kafka as the CLI reads it.

`hookstream destinations list` and `hookstream lanes list` read the control topic (the
operators' pauses, each worker's status every few seconds) and the lane table's
changelog; the console keeps one reader of each (`ControlReader`, `LaneReader`) and asks
them again at each page, so a page costs only what the topics gained since the last one.
Everything lives in Kafka: any number of workers and console replicas see the same state.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from hookstream.config import Settings
from hookstream.errors import HookstreamError
from hookstream.ops.destinations import ControlReader, destination_status
from hookstream.ops.lanes import Lane, LaneReader, blocked_lanes

log = structlog.get_logger("hookstream.console")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Shown:
    """What a page shows: its rows, or why there are none."""

    rows: list[dict[str, Any]]
    error: str | None = None


@dataclass
class WorkerState:
    """The readers the destinations and lanes pages share, one thread at a time."""

    settings: Settings
    control: ControlReader = field(init=False)
    lanes_reader: LaneReader = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self.control = ControlReader(self.settings)
        self.lanes_reader = LaneReader(self.settings)

    async def run(self, work: Callable[[], T]) -> T:
        """Run `work` (a Kafka read or write) off the event loop, under the readers' lock."""

        def locked() -> T:
            with self._lock:
                return work()

        return await asyncio.to_thread(locked)

    async def destinations(self) -> Shown:
        """Every configured destination with what the live workers report of it."""
        try:
            live = await self.run(
                lambda: destination_status(self.settings, timeout=5.0, reader=self.control)
            )
        except HookstreamError as exc:
            log.warning("destination_state_unavailable", error=str(exc))
            return Shown(destination_rows(self.settings, []), str(exc))
        return Shown(destination_rows(self.settings, live))

    async def lanes(self) -> Shown:
        """Every blocked lane, longest-blocked first."""
        try:
            found = await self.run(lambda: blocked_lanes(self.settings, self.lanes_reader))
        except HookstreamError as exc:
            log.warning("lane_state_unavailable", error=str(exc))
            return Shown([], str(exc))
        return Shown(lane_rows(found, time.time()))


def destination_rows(settings: Settings, live: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`destinations list`'s rows, with each destination's target and routing beside."""
    by_name = {str(row["destination"]): row for row in live}
    rows = []
    for name, destination in sorted(settings.destinations.items()):
        row = by_name.get(name, {})
        rows.append(
            {
                "name": name,
                "target": destination.url or destination.handler,
                "sources": destination.sources or ["*"],
                "event_types": destination.event_types or ["*"],
                "state": row.get("state", "unknown"),
                "paused": bool(row.get("paused")),
                "workers": int(row.get("workers", 0)),
                "breaker": breaker_text(row.get("breaker") or {}),
                "rate": rate_text(row) if row.get("workers") else None,
                "in_flight": row.get("in_flight") if row.get("workers") else None,
                "last_error": row.get("last_error"),
            }
        )
    return rows


def breaker_text(by_worker: dict[str, Any]) -> str | None:
    """One word when every worker's breaker agrees, else each worker's ("off": none set)."""
    states = {
        worker: str(breaker.get("state")) if isinstance(breaker, dict) else "off"
        for worker, breaker in sorted(by_worker.items())
    }
    if not states:
        return None
    if len(set(states.values())) == 1:
        return next(iter(states.values()))
    return ", ".join(f"{worker}: {state}" for worker, state in states.items())


def rate_text(row: dict[str, Any]) -> str:
    limit = row.get("rate_limit")
    return f"{float(row.get('rate') or 0):g}/s" + (f" of {limit:g}" if limit else "")


def lane_rows(lanes: list[Lane], now: float) -> list[dict[str, Any]]:
    return [{**lane.summary(now), "releasable": lane.state.cause.value == "held"} for lane in lanes]
