"""The console app in process (aiohttp's test server, the real broker): pause, resume and
release through Kafka as the CLI does them, each written to the audit topic with who did
it; roles and CSRF on those actions; the workers' reports on the destinations page."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from confluent_kafka import Producer

from hookstream.config import Settings
from hookstream.core.access import Credential, Role, hash_password
from hookstream.core.control import WorkerStatus
from hookstream.core.headers import SOURCE, is_lane_release, text
from hookstream.core.parking import Cause, LaneState, lane_key
from hookstream.kafka.clients import producer_config
from hookstream.kafka.reading import read_to_end
from hookstream.kafka.topics import LANES_TABLE, audit_topic, changelog_topic, control_topic
from hookstream.ops.console.app import create_app
from hookstream.ops.destinations import destination_status

pytestmark = pytest.mark.integration

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
CREDENTIALS = (
    Credential("alice", Role.OPERATOR, hash_password(PASSWORDS["alice"], os.urandom(16))),
    Credential("bob", Role.READ_ONLY, hash_password(PASSWORDS["bob"], os.urandom(16))),
)


def hold_lane(settings: Settings, source: str, entity: str, blocked_by: str, parked: int) -> None:
    """Write a held lane into the lane table's changelog, as a worker's table writes it."""
    state = LaneState(Cause.HELD, blocked_by, time.time() - 60, 0, parked, partition=0)
    producer = Producer(producer_config(settings))
    producer.produce(
        changelog_topic(settings, LANES_TABLE),
        key=json.dumps(lane_key(source, entity)).encode(),
        value=json.dumps(state.to_json()).encode(),
        partition=0,
    )
    assert producer.flush(30) == 0


def release_markers(settings: Settings) -> list[tuple[int, bytes | None, str | None]]:
    return [
        (r.partition, r.key, text(r.headers, SOURCE))
        for r in read_to_end(settings, settings.topics.events)
        if is_lane_release(r.headers)
    ]


@pytest.fixture
async def serve(
    tmp_path: Path,
) -> AsyncIterator[Callable[[Settings], Any]]:
    runners: list[web.AppRunner] = []

    async def start(settings: Settings) -> str:
        app = create_app(settings, CREDENTIALS, refresh=False)
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


def row_of(page: str, attribute: str, value: str) -> str:
    found = re.search(rf'<tr {attribute}="{re.escape(value)}">(.*?)</tr>', page, re.S)
    assert found is not None, page
    return found.group(1)


def pill(row: str, kind: str) -> str:
    found = re.search(rf'<span class="pill {kind} [^"]*"[^>]*>([^<]*)</span>', row)
    assert found is not None, row
    return found.group(1)


async def test_pause_resume_and_release_go_through_kafka_with_an_audit_record(
    make_settings, serve
) -> None:
    settings, _ = make_settings(destinations={"sink": {"url": "http://127.0.0.1:9/hooks"}})
    base = await serve(settings)
    alice, csrf = await signed_in(base, "alice")
    async with alice:
        async with alice.get(base + "/destinations") as r:
            row = row_of(await r.text(), "data-destination", "sink")
        assert pill(row, "dest-state") == "unknown"  # no worker reports it
        assert 'class="pause"' in row

        async with alice.post(base + "/destinations/sink/pause", data={"csrf": csrf}) as r:
            assert r.status == 200
            page = await r.text()
        assert "paused sink" in page
        row = row_of(page, "data-destination", "sink")
        assert pill(row, "dest-state") == "paused"
        assert 'class="resume"' in row
        # What `hookstream destinations list` reads, and so every worker.
        assert [(d["destination"], d["paused"]) for d in destination_status(settings)] == [
            ("sink", True)
        ]
        async with alice.post(base + "/destinations/sink/resume", data={"csrf": csrf}) as r:
            assert r.status == 200
            row = row_of(await r.text(), "data-destination", "sink")
        assert pill(row, "dest-state") == "unknown"
        assert [d["paused"] for d in destination_status(settings)] == [False]

        hold_lane(settings, "std", "cus_1", "evt-9", parked=4)
        async with alice.get(base + "/lanes") as r:
            row = row_of(await r.text(), "data-lane", "std/cus_1")
        assert pill(row, "lane-cause") == "held"
        assert "evt-9" in row
        assert '<td class="num parked">4</td>' in row
        assert 'class="release"' in row
        async with alice.post(
            base + "/lanes/release", data={"csrf": csrf, "source": "std", "entity": "cus_1"}
        ) as r:
            assert r.status == 200
            assert "released std/cus_1: 4 parked event(s) follow" in await r.text()
        # The marker `hookstream lanes release` writes: on the lane's partition, keyed by it.
        assert release_markers(settings) == [(0, b"cus_1", "std")]
        async with alice.post(
            base + "/lanes/release", data={"csrf": csrf, "source": "std", "entity": "cus_2"}
        ) as r:
            assert r.status == 409
            assert "not blocked" in await r.text()
        # Without the CSRF token nothing changes.
        async with alice.post(base + "/destinations/sink/pause") as r:
            assert r.status == 403
        async with alice.post(base + "/destinations/nope/pause", data={"csrf": csrf}) as r:
            assert r.status == 404

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
        async with bob.get(base + "/lanes") as r:
            assert 'class="release"' not in await r.text()
        for path, data in (
            ("/destinations/sink/pause", {}),
            ("/lanes/release", {"source": "std", "entity": "cus_1"}),
        ):
            async with bob.post(base + path, data={"csrf": csrf, **data}) as r:
                assert r.status == 403
    assert [d["paused"] for d in destination_status(settings)] == [False]
    assert len(release_markers(settings)) == 1
    assert len(operator_records(settings)) == 3


def gate_status(state: str, breaker: str, in_flight: int, error: str | None) -> dict[str, Any]:
    """One destination as a worker's gate reports it (streams.destinations.Gate.status)."""
    return {
        "state": state,
        "paused": False,
        "in_flight": in_flight,
        "max_in_flight": 10,
        "rate": 6.25,
        "rate_limit": 20.0,
        "breaker": {"state": breaker, "failures_in_a_row": 5, "opened_at": None, "retry_in": 0},
        "last_error": error,
        "last_error_at": time.time() if error else None,
    }


async def test_the_destinations_page_shows_what_the_workers_report(make_settings, serve) -> None:
    settings, _ = make_settings(destinations={"sink": {"url": "http://127.0.0.1:9/hooks"}})
    producer = Producer(producer_config(settings))
    for worker, status in (
        ("w1", gate_status("open", "open", 3, "HTTP 503")),
        ("w2", gate_status("closed", "closed", 2, None)),
    ):
        report = WorkerStatus(settings.worker.group_id, worker, time.time(), {"sink": status})
        producer.produce(control_topic(settings), key=report.key, value=report.to_bytes())
    assert producer.flush(30) == 0
    base = await serve(settings)
    alice, _csrf = await signed_in(base, "alice")
    async with alice, alice.get(base + "/destinations") as r:
        page = await r.text()
    row = row_of(page, "data-destination", "sink")
    assert pill(row, "dest-state") == "open"  # the worst of the workers' views
    assert '<td class="breaker">w1: open, w2: closed</td>' in row
    assert '<td class="rate">12.5/s of 20</td>' in row  # summed over the workers
    assert '<td class="num in-flight">5</td>' in row
    assert "HTTP 503" in row
    assert 'id="state-error"' not in page
