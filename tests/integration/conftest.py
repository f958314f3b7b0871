"""Fixtures for tests that run the real ingress and a local HTTP destination."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from hookstream.config import Settings
from ingress.app import create_app

pytestmark = pytest.mark.integration


@dataclass
class Delivery:
    event_id: str
    body: bytes
    headers: dict[str, str]
    received_at: float = 0.0


@dataclass
class Sink:
    """A local HTTP destination that records what it receives, in order."""

    url: str
    received: list[Delivery] = field(default_factory=list)
    answer: Callable[[Delivery, int], int] = lambda delivery, attempt: 204
    retry_after: dict[str, str] = field(default_factory=dict)  # event id -> Retry-After header

    def ids(self) -> list[str]:
        return [d.event_id for d in self.received]

    async def wait_for_total(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                await asyncio.sleep(0.1)

    async def wait_for(self, count: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while len({d.event_id for d in self.received}) < count:
                await asyncio.sleep(0.1)


@pytest.fixture
async def sink(unused_tcp_port_factory: Callable[[], int]) -> AsyncIterator[Sink]:
    port = unused_tcp_port_factory()
    state = Sink(url=f"http://127.0.0.1:{port}/hooks")
    attempts: dict[str, int] = {}

    async def receive(request: web.Request) -> web.Response:
        delivery = Delivery(
            request.headers.get("webhook-id", ""),
            await request.read(),
            dict(request.headers),
            time.monotonic(),
        )
        attempts[delivery.event_id] = attempts.get(delivery.event_id, 0) + 1
        status = state.answer(delivery, attempts[delivery.event_id])
        if 200 <= status < 300:
            state.received.append(delivery)
            return web.Response(status=status)
        headers = {}
        if delivery.event_id in state.retry_after and attempts[delivery.event_id] == 1:
            headers["Retry-After"] = state.retry_after[delivery.event_id]
        return web.Response(status=status, headers=headers)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield state
    await runner.cleanup()


@pytest.fixture
async def ingress_url() -> AsyncIterator[Callable[[Settings], Awaitable[str]]]:
    """Start the real ingress app (real producer) for some settings; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(settings: Settings) -> str:
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()
