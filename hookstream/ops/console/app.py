"""The console's aiohttp application: settings, the event index kept current, the routes."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp_jinja2
import jinja2
import structlog
from aiohttp import web
from aiohttp_session import setup as setup_sessions
from aiohttp_session.cookie_storage import EncryptedCookieStorage

from hookstream.config import Settings
from hookstream.core.access import Credential
from hookstream.errors import HookstreamError
from hookstream.ops.console import views
from hookstream.ops.console.access import (
    PRINCIPAL,
    SESSION_TTL,
    access_control,
    security_headers,
)
from hookstream.ops.console.jobs import RedriveJobs
from hookstream.ops.console.worker_state import WorkerState
from hookstream.ops.index import EventIndex, catch_up, default_path

log = structlog.get_logger("hookstream.console")
HERE = Path(__file__).parent
T = TypeVar("T")


@dataclass
class IndexHolder:
    """The console's own index: one connection that the refresher writes with, one that the
    pages read with, each used by one thread at a time."""

    settings: Settings
    path: Path
    reader: EventIndex = field(init=False)
    writer: EventIndex = field(init=False)
    ready: bool = False
    error: str | None = None
    records: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.writer = EventIndex(self.path, shared=True)
        self.reader = EventIndex(self.path, shared=True)

    async def read(self, query: Callable[[EventIndex], T]) -> T:
        """Run `query` against the index off the event loop."""

        def run() -> T:
            with self._lock:
                return query(self.reader)

        return await asyncio.to_thread(run)

    async def refresh(self) -> None:
        """Catch up once; the error, if any, is shown on the pages until the next success."""
        try:
            done = await asyncio.to_thread(catch_up, self.settings, self.writer)
        except (HookstreamError, sqlite3.Error) as exc:
            # Shown on every page until a catch-up succeeds; the pages keep answering from
            # what the index has.
            self.error = str(exc)
            log.warning("index_catch_up_failed", error=str(exc))
            return
        self.records += done.records
        self.error = None
        if not self.ready:
            log.info("index_ready", records=done.records, seconds=round(done.seconds, 3))
        self.ready = True

    def close(self) -> None:
        self.writer.close()
        self.reader.close()


SETTINGS = web.AppKey("settings", Settings)
INDEX = web.AppKey("index", IndexHolder)
JOBS = web.AppKey("jobs", RedriveJobs)
WORKER = web.AppKey("worker_state", WorkerState)


def session_key(settings: Settings) -> bytes:
    """The 32-byte key that encrypts and signs session cookies: derived from
    console.session_secret (shared by replicas), else random for this process."""
    settings.console.require_session_secret()
    secret = settings.console.session_secret
    if secret is None:
        return secrets.token_bytes(32)
    return hashlib.sha256(
        b"hookstream-console-session\0" + secret.get_secret_value().encode()
    ).digest()


def create_app(
    settings: Settings,
    credentials: tuple[Credential, ...],
    *,
    refresh: bool = True,
) -> web.Application:
    """The console. `refresh=False` leaves the index as it is (tests drive it themselves)."""
    app = web.Application(middlewares=[security_headers])
    setup_sessions(
        app,
        EncryptedCookieStorage(
            session_key(settings),
            cookie_name="hookstream_console",
            max_age=int(settings.console.session_ttl),
            httponly=True,
            samesite="Strict",
            secure=settings.console.secure_cookies,
        ),
    )
    app.middlewares.append(access_control)
    app[PRINCIPAL] = credentials
    app[SESSION_TTL] = settings.console.session_ttl
    app[SETTINGS] = settings
    app[INDEX] = IndexHolder(settings, default_path(settings))
    app[JOBS] = RedriveJobs(settings)
    app[WORKER] = WorkerState(settings)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        context_processors=[views.page_context],
    )
    app.cleanup_ctx.append(_index_refresher(refresh))
    views.add_routes(app)
    app.router.add_static("/static/", HERE / "static", name="static")
    return app


def _index_refresher(enabled: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        holder = app[INDEX]
        task = asyncio.get_running_loop().create_task(_refresh_forever(app)) if enabled else None
        yield
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await app[JOBS].close()
        holder.close()

    return lifecycle


async def _refresh_forever(app: web.Application) -> None:
    holder = app[INDEX]
    interval = app[SETTINGS].console.refresh
    while True:
        await holder.refresh()
        await asyncio.sleep(interval)


async def serve(settings: Settings, credentials: tuple[Credential, ...]) -> None:
    """Run the console until cancelled."""
    app = create_app(settings, credentials)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.console.host, settings.console.port)
    await site.start()
    log.info("console_listening", host=settings.console.host, port=settings.console.port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
