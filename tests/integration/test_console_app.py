"""The console app in process (aiohttp's test server, the real broker for the audit trail):
pause, resume and release through the worker-state interface, each written to the audit
topic with who did it; roles and CSRF on those actions; "no data yet" without a worker."""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from hookstream.config import Settings
from hookstream.core.access import Credential, Role, hash_password
from hookstream.kafka.reading import read_to_end
from hookstream.kafka.topics import audit_topic
from hookstream.ops.console.app import create_app

pytestmark = pytest.mark.integration

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
CREDENTIALS = (
    Credential("alice", Role.OPERATOR, hash_password(PASSWORDS["alice"], os.urandom(16))),
    Credential("bob", Role.READ_ONLY, hash_password(PASSWORDS["bob"], os.urandom(16))),
)


@dataclass
class FakeControls:
    """Stands in for the workers' side of pause, resume and release."""

    calls: list[tuple[str, ...]] = field(default_factory=list)

    def pause(self, destination: str, by: str) -> None:
        self.calls.append(("pause", destination, by))

    def resume(self, destination: str, by: str) -> None:
        self.calls.append(("resume", destination, by))

    def release(self, source: str, entity: str, by: str) -> None:
        self.calls.append(("release", source, entity, by))


@dataclass
class FakeWorkers:
    controls: FakeControls | None = field(default_factory=FakeControls)
    paused: set[str] = field(default_factory=set)

    async def destinations(self) -> list[dict[str, Any]] | None:
        return [
            {
                "name": "sink",
                "state": "paused" if "sink" in self.paused else "closed",
                "breaker": "closed",
                "rate": "12/s",
                "in_flight": 3,
                "last_error": None,
                "paused": "sink" in self.paused,
            }
        ]

    async def lanes(self) -> list[dict[str, Any]] | None:
        return [
            {"source": "std", "entity": "cus_1", "blocked_by": "evt-9", "parked": 4, "since": "-"}
        ]


@pytest.fixture
async def serve(
    tmp_path: Path,
) -> AsyncIterator[Callable[[Settings, Any], Any]]:
    runners: list[web.AppRunner] = []

    async def start(settings: Settings, workers: Any) -> str:
        app = create_app(settings, CREDENTIALS, worker_state=workers, refresh=False)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def signed_in(base: str, name: str) -> tuple[aiohttp.ClientSession, str]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.get(base + "/signin") as r:
        found = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert found is not None
    async with session.post(
        base + "/signin",
        data={"csrf": found.group(1), "username": name, "password": PASSWORDS[name]},
    ) as r:
        page = await r.text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None, page
    return session, token.group(1)


def operator_records(settings: Settings) -> list[dict[str, Any]]:
    found = []
    for record in read_to_end(settings, audit_topic(settings)):
        entry = json.loads(record.value or b"{}")
        if "operator_action" in entry:
            found.append(entry)
    return sorted(found, key=lambda e: e["at"])  # keyed by target: several partitions


async def test_pause_resume_and_release_reach_the_workers_and_the_audit_trail(
    make_settings, serve
) -> None:
    settings, _ = make_settings(destinations={"sink": {"url": "http://127.0.0.1:9/hooks"}})
    workers = FakeWorkers()
    base = await serve(settings, workers)
    alice, csrf = await signed_in(base, "alice")
    async with alice:
        async with alice.get(base + "/destinations") as r:
            page = await r.text()
        assert "no-live-data" not in page
        assert "12/s" in page
        assert 'class="pause"' in page

        async with alice.post(base + "/destinations/sink/pause", data={"csrf": csrf}) as r:
            assert r.status == 200
            assert "pause sink" in await r.text()
        workers.paused.add("sink")
        async with alice.get(base + "/destinations") as r:
            assert 'class="resume"' in await r.text()
        async with alice.post(base + "/destinations/sink/resume", data={"csrf": csrf}) as r:
            assert r.status == 200
        async with alice.post(
            base + "/lanes/release", data={"csrf": csrf, "source": "std", "entity": "cus_1"}
        ) as r:
            assert r.status == 200
            assert "released std/cus_1" in await r.text()
        # Without the CSRF token nothing reaches the workers.
        async with alice.post(base + "/destinations/sink/pause") as r:
            assert r.status == 403
        async with alice.post(base + "/destinations/nope/pause", data={"csrf": csrf}) as r:
            assert r.status == 404

    assert workers.controls is not None
    assert workers.controls.calls == [
        ("pause", "sink", "console:alice"),
        ("resume", "sink", "console:alice"),
        ("release", "std", "cus_1", "console:alice"),
    ]
    actions = [(e["operator_action"], e["target"], e["by"]) for e in operator_records(settings)]
    assert actions == [
        ("pause", "sink", "console:alice"),
        ("resume", "sink", "console:alice"),
        ("release", "std/cus_1", "console:alice"),
    ]

    bob, csrf = await signed_in(base, "bob")
    async with bob:
        async with bob.get(base + "/destinations") as r:
            assert 'class="pause"' not in await r.text()
        for path, data in (
            ("/destinations/sink/pause", {}),
            ("/lanes/release", {"source": "std", "entity": "cus_1"}),
        ):
            async with bob.post(base + path, data={"csrf": csrf, **data}) as r:
                assert r.status == 403
    assert len(workers.controls.calls) == 3


async def test_without_worker_state_the_pages_say_no_data_yet(make_settings, serve) -> None:
    settings, _ = make_settings(destinations={"sink": {"url": "http://127.0.0.1:9/hooks"}})
    # A port nobody listens on: what a worker without these endpoints looks like.
    from hookstream.ops.console.worker_state import HttpWorkerState

    base = await serve(settings, HttpWorkerState("http://127.0.0.1:9", timeout=1.0))
    alice, csrf = await signed_in(base, "alice")
    async with alice:
        for path in ("/destinations", "/lanes"):
            async with alice.get(base + path) as r:
                assert r.status == 200
                assert 'id="no-live-data"' in await r.text()
        async with alice.post(base + "/destinations/sink/pause", data={"csrf": csrf}) as r:
            assert r.status == 409
            assert "not available" in await r.text()
