"""Serving the ingress until SIGTERM/SIGINT, then draining it.

aiohttp's own shutdown (`run_app`) stops reading from every open connection at once, so a
request whose body is still arriving is starved and cut off at the shutdown timeout,
unanswered. Here the listener closes first (new connections are refused), requests in flight
are read and answered (each with `Connection: close`), and only then does the runner clean
up, which closes idle connections and flushes the producer (its `cleanup_ctx`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = structlog.get_logger("hookstream.ingress")


class InFlight:
    """How many requests are being handled, and whether the ingress is draining."""

    def __init__(self) -> None:
        self.count = 0
        self.draining = False
        self.idle = asyncio.Event()
        self.idle.set()


IN_FLIGHT = web.AppKey("in_flight", InFlight)


@web.middleware
async def track_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request while it runs; once draining, close its connection after answering."""
    state = request.app[IN_FLIGHT]
    state.count += 1
    state.idle.clear()
    try:
        response = await handler(request)
    finally:
        state.count -= 1
        if state.count == 0:
            state.idle.set()
    if state.draining and not response.prepared:
        response.force_close()
    return response


async def serve_until_stopped(
    app: web.Application, host: str, port: int, grace: float, *, reuse_port: bool = False
) -> None:
    """Serve until SIGTERM/SIGINT; then refuse new connections, answer what is in flight
    (for at most `grace` seconds) and clean up."""
    state = InFlight()
    app[IN_FLIGHT] = state
    app.middlewares.insert(0, track_in_flight)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=grace)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_port=reuse_port or None)
        await site.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("ingress_draining", in_flight=state.count)
        state.draining = True
        await site.stop()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await state.idle.wait()
        log.info("ingress_drained", in_flight=state.count)
    finally:
        await runner.cleanup()
