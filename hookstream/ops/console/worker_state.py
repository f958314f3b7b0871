"""Destination and lane state, as the console gets it from the workers.

The console depends only on `WorkerState`. `HttpWorkerState` asks a worker's HTTP port
(`console.worker_url`) for `GET /destinations` and `GET /lanes`, each a JSON array, and
answers None ("no data yet") while the worker does not serve them. Pausing, resuming and
releasing go through `controls`; without one the pages say the action is not available.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import structlog

from hookstream.config import Settings
from hookstream.errors import HookstreamError

log = structlog.get_logger("hookstream.console")


class ControlUnavailable(HookstreamError):
    """This deployment has no way to carry out the action yet."""


class WorkerControls(Protocol):
    """Operator actions that reach every worker."""

    def pause(self, destination: str, by: str) -> None: ...

    def resume(self, destination: str, by: str) -> None: ...

    def release(self, source: str, entity: str, by: str) -> None: ...


class WorkerState(Protocol):
    """What the destinations and lanes pages show, and the actions they offer."""

    controls: WorkerControls | None

    async def destinations(self) -> list[dict[str, Any]] | None:
        """One object per destination (name, state, breaker, rate, in_flight, last_error,
        paused), or None when no worker says yet."""

    async def lanes(self) -> list[dict[str, Any]] | None:
        """One object per blocked lane (source, entity, blocked_by, parked, since), or None."""


@dataclass
class HttpWorkerState:
    """Asks the worker's HTTP port."""

    base_url: str
    controls: WorkerControls | None = None
    timeout: float = 2.0

    async def destinations(self) -> list[dict[str, Any]] | None:
        return await self._get("/destinations")

    async def lanes(self) -> list[dict[str, Any]] | None:
        return await self._get("/lanes")

    async def _get(self, path: str) -> list[dict[str, Any]] | None:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as s,
                s.get(self.base_url + path) as response,
            ):
                if response.status != 200:
                    return None
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.info("worker_state_unavailable", path=path, error=str(exc))
            return None
        if not isinstance(body, list):
            return None
        return [item for item in body if isinstance(item, dict)]


def destination_rows(settings: Settings, live: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Every configured destination, with what the worker says of it where it says."""
    by_name: Mapping[str, dict[str, Any]] = {str(d.get("name")): d for d in live or []}
    rows = []
    for name, destination in sorted(settings.destinations.items()):
        rows.append(
            {
                "name": name,
                "target": destination.url or destination.handler,
                "sources": destination.sources or ["*"],
                "event_types": destination.event_types or ["*"],
                "live": by_name.get(name),
            }
        )
    return rows
