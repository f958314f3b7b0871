"""Destination isolation against the real broker and a real worker process, with loopback
HTTP destinations started here: a sick destination beside a healthy one, a long Retry-After
beside a short retry, the breaker, operator pause and resume, a rate limit."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from hookstream.config import Settings
from hookstream.kafka.topics import retry_topic
from tests.conftest import another_worker_config
from tests.integration.test_console_app import operator_records
from tests.integration.test_end_to_end import post_signed
from tests.integration.test_lanes import lag
from tests.integration.test_retries import cli, cli_json, eventually

pytestmark = pytest.mark.integration


@dataclass
class Destination:
    """A loopback destination: `answer(event_id, attempt)` -> (delay, status, headers)."""

    url: str = ""
    answer: Callable[[str, int], tuple[float, int, dict[str, str]]] = lambda e, a: (0.0, 204, {})
    attempts: dict[str, int] = field(default_factory=dict)
    requests: list[tuple[str, float]] = field(default_factory=list)  # every request, when
    delivered: dict[str, float] = field(default_factory=dict)  # event id -> first 2xx at
    order: list[tuple[str, int]] = field(default_factory=list)  # (entity, seq) of each 2xx

    async def receive(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        event_id = request.headers.get("webhook-id", "")
        self.requests.append((event_id, time.time()))
        self.attempts[event_id] = attempt = self.attempts.get(event_id, 0) + 1
        delay, status, headers = self.answer(event_id, attempt)
        if delay:
            await asyncio.sleep(delay)
        if 200 <= status < 300:
            self.delivered.setdefault(event_id, time.time())
            self.order.append((body["data"]["customer"], body["seq"]))
        return web.Response(status=status, headers=headers)


@pytest.fixture
async def destinations(
    unused_tcp_port_factory: Callable[[], int],
) -> AsyncIterator[Callable[[], Destination]]:
    runners: list[web.AppRunner] = []
    made: list[Destination] = []

    def make() -> Destination:
        destination = Destination()
        made.append(destination)
        return destination

    async def start() -> None:
        for destination in made:
            port = unused_tcp_port_factory()
            destination.url = f"http://127.0.0.1:{port}/hooks"
            app = web.Application()
            app.router.add_post("/hooks", destination.receive)
            runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            runners.append(runner)

    make.start = start  # type: ignore[attr-defined]
    yield make
    for runner in runners:
        await runner.cleanup()


def body(event_id: str, kind: str, entity: str, seq: int) -> bytes:
    return json.dumps(
        {"id": event_id, "type": f"{kind}.event", "seq": seq, "data": {"customer": entity}}
    ).encode()


async def metric(settings, name: str, **labels: str) -> float | None:
    """One sample from the worker's /metrics."""
    url = f"http://127.0.0.1:{settings.worker.port}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        text = await response.text()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            got = ",".join(sorted(line[len(name) + 1 : line.index("}")].split(",")))
            if got == want:
                return float(line.rsplit(" ", 1)[1])
    return None


async def test_a_sick_destination_does_not_slow_a_healthy_one(
    make_settings, worker_process, ingress_url, destinations
) -> None:
    sick, healthy = destinations(), destinations()
    sick.answer = lambda e, a: (4.0, 204, {})  # past its 2 s timeout, every time
    await destinations.start()
    settings, config = make_settings(
        worker={"max_in_flight": 64},
        destinations={
            "sick": {
                "url": sick.url,
                "event_types": ["sick.*"],
                "timeout": "2s",
                "max_in_flight": 8,
                "max_wait": "1s",
            },
            "healthy": {"url": healthy.url, "event_types": ["healthy.*"], "timeout": "2s"},
        },
    )
    worker_process(settings, config)
    base = await ingress_url(settings)
    accepted: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:
        for n in range(200):  # interleaved, about 20 a second of each over 10 s
            for kind in ("sick", "healthy"):
                event_id = f"{kind}-{n}"
                status = await post_signed(
                    session,
                    base,
                    settings,
                    "std",
                    event_id,
                    body(event_id, kind, f"{kind}-{n % 20}", n),
                )
                assert status == 202
                accepted[event_id] = time.time()
            await asyncio.sleep(0.05)
    await eventually(lambda: len(healthy.delivered) == 200, timeout=30)
    latencies = sorted(healthy.delivered[e] - accepted[e] for e in healthy.delivered)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    # The target is 1.5 s (measured by bench/destination_isolation.py); a shared CI machine
    # gets a looser bound here. Without isolation it was minutes.
    assert p95 < 3.0, f"healthy p95 accept->delivery {p95:.3f}s"
    assert len(sick.requests) > 0  # the sick one was tried, and timed out


async def test_a_long_retry_after_does_not_hold_up_a_short_retry(
    make_settings, worker_process, ingress_url, destinations
) -> None:
    dest = destinations()
    dest.answer = lambda e, a: (
        (0.0, 429, {"Retry-After": "600"})
        if e == "long-1"
        else (0.0, 503, {})
        if a == 1
        else (0.0, 204, {})
    )
    await destinations.start()
    settings, config = make_settings(
        topics={"partitions": 1},  # both in one partition of each tier
        retry={"schedule": ["1s", "2s", "600s"], "jitter": 0.0},
        destinations={"d": {"url": dest.url, "sources": ["std"], "timeout": "2s"}},
    )
    worker_process(settings, config)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        for n, event_id in enumerate(["long-1", "short-1"]):
            status = await post_signed(
                session, base, settings, "std", event_id, body(event_id, "x", f"c{n}", n)
            )
            assert status == 202
    posted = time.time()
    await eventually(lambda: "short-1" in dest.delivered, timeout=20)
    assert dest.delivered["short-1"] - posted < 6.0  # its 1 s retry, not after the 600 s wait
    assert dest.attempts["long-1"] == 1
    shown = cli_json(config, "events", "show", "long-1")
    scheduled = [s for s in shown["history"] if s["kind"] == "retry_scheduled"]
    assert scheduled[-1]["tier"] == 2  # the tier whose delay covers Retry-After: 600


async def test_the_breaker_opens_probes_and_closes(
    make_settings, worker_process, ingress_url, destinations
) -> None:
    dest = destinations()
    down = {"now": True}
    dest.answer = lambda e, a: (0.0, 503 if down["now"] else 204, {})
    await destinations.start()
    settings, config = make_settings(
        retry={"schedule": ["1s", "2s", "3s"], "jitter": 0.0},
        destinations={
            "d": {
                "url": dest.url,
                "sources": ["std"],
                "timeout": "2s",
                "breaker": {"failures": 3, "cooldown": "4s"},
            }
        },
    )
    worker = worker_process(settings, config)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        for n in range(6):
            event_id = f"b-{n}"
            await post_signed(
                session, base, settings, "std", event_id, body(event_id, "x", f"c{n}", n)
            )

    async def state(name: str) -> bool:
        return (
            await metric(settings, "hookstream_destination_state", destination="d", state=name) == 1
        )

    async with asyncio.timeout(20):
        while not await state("open"):
            await asyncio.sleep(0.2)
    opened = time.time()
    seen = len(dest.requests)
    await asyncio.sleep(2.5)  # inside the cool-down: nothing goes to it
    assert len(dest.requests) == seen
    down["now"] = False
    await eventually(lambda: len(dest.delivered) == 6, timeout=40)
    assert await state("closed")
    first_after = min(t for _, t in dest.requests[seen:])
    assert first_after - opened >= 3.5  # the probe came after the cool-down
    log = worker.output()
    for before, after in (("closed", "open"), ("open", "half_open"), ("half_open", "closed")):
        assert f'"before": "{before}", "after": "{after}"' in log.replace('":"', '": "') or (
            f'"before":"{before}"' in log and f'"after":"{after}"' in log
        )
    # Deferred rounds spend no attempt: nobody reached the DLQ.
    assert all(dest.attempts[f"b-{n}"] <= 4 for n in range(6))
    assert cli_json(config, "dlq", "list") == []


async def test_pause_waits_and_resume_delivers_once_each_in_order(
    make_settings, worker_process, ingress_url, destinations
) -> None:
    dest = destinations()
    await destinations.start()
    settings, config = make_settings(
        destinations={"d": {"url": dest.url, "sources": ["std"], "timeout": "2s"}},
    )
    # Paused before the worker starts: the pause is in the control topic, read at start.
    cli(config, "destinations", "pause", "d")
    worker_process(settings, config)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        for n in range(10):
            for entity in ("c1", "c2"):
                event_id = f"{entity}-{n}"
                await post_signed(
                    session, base, settings, "std", event_id, body(event_id, "x", entity, n)
                )
    rows = await eventually(
        lambda: [r for r in cli_json(config, "destinations", "list") if r["workers"] == 1],
        timeout=20,
    )
    assert rows[0]["state"] == "paused"
    await asyncio.sleep(4)
    assert dest.requests == []  # events wait
    cli(config, "destinations", "resume", "d")
    await eventually(lambda: len(dest.delivered) == 20, timeout=30)
    assert sorted(dest.attempts.values()) == [1] * 20  # delivered once each
    for entity in ("c1", "c2"):
        assert [seq for e, seq in dest.order if e == entity] == list(range(10))
    rows = await eventually(
        lambda: [r for r in cli_json(config, "destinations", "list") if r["state"] == "closed"],
        timeout=20,
    )
    assert rows[0]["destination"] == "d"
    # Both commands left an operator record in the audit trail, saying who.
    actions = [(e["operator_action"], e["target"], e["by"]) for e in operator_records(settings)]
    assert [(action, target) for action, target, _ in actions] == [("pause", "d"), ("resume", "d")]
    assert all(by.startswith("cli:") for _, _, by in actions)


async def test_a_rate_limit_holds_under_a_burst(
    make_settings, worker_process, ingress_url, destinations
) -> None:
    dest = destinations()
    await destinations.start()
    settings, config = make_settings(
        destinations={"d": {"url": dest.url, "sources": ["std"], "rate_limit": "20/s"}},
    )
    worker_process(settings, config)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(
            *(
                post_signed(
                    session, base, settings, "std", f"r-{n}", body(f"r-{n}", "x", f"c{n}", n)
                )
                for n in range(160)
            )
        )
    await eventually(lambda: len(dest.delivered) == 160, timeout=40)
    times = sorted(t for _, t in dest.requests)
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert 17.0 <= rate <= 23.0, f"received at {rate:.1f}/s"


async def test_a_record_not_due_holds_only_its_own_partition_of_the_tier(
    make_settings, worker_process, ingress_url, destinations
) -> None:
    from hookstream.core.headers import EVENT_ID
    from hookstream.kafka.reading import read_to_end
    from hookstream.kafka.topics import retry_topic

    dest = destinations()
    # First attempt: "late" asks for 30 s, the others for 5 s: all land in tier 1 (30 s),
    # the tier covering both, in write order: "late" first.
    dest.answer = lambda e, a: (
        (0.0, 429, {"Retry-After": "30" if e == "late" else "5"}) if a == 1 else (0.0, 204, {})
    )
    await destinations.start()
    settings, config = make_settings(
        retry={"schedule": ["1s", "30s"], "jitter": 0.0},
        destinations={"d": {"url": dest.url, "sources": ["std"], "timeout": "2s"}},
    )
    worker_process(settings, config)
    base = await ingress_url(settings)
    async with aiohttp.ClientSession() as session:
        await post_signed(session, base, settings, "std", "late", body("late", "x", "late", 0))
        await asyncio.sleep(0.5)
        for n in range(8):
            await post_signed(
                session, base, settings, "std", f"soon-{n}", body(f"soon-{n}", "x", f"s{n}", n)
            )
    posted = time.time()

    def tier_partitions() -> dict[str, int]:
        records = read_to_end(settings, retry_topic(settings, 1))
        return {r.headers[EVENT_ID].decode(): r.partition for r in records}

    partitions = await eventually(
        lambda: len(tier_partitions()) == 9 and tier_partitions(), timeout=20
    )
    elsewhere = [e for e, p in partitions.items() if p != partitions["late"]]
    assert elsewhere, "every event landed in one partition"
    await eventually(lambda: all(e in dest.delivered for e in elsewhere), timeout=15)
    assert max(dest.delivered[e] for e in elsewhere) - posted < 12.0  # not after late's 30 s
    assert "late" not in dest.delivered


@pytest.mark.timeout(300)
async def test_a_worker_joining_while_retries_are_held_loses_nothing_and_neither_exits(
    make_settings, worker_process, ingress_url, destinations, tmp_path
) -> None:
    """Retry records held for their not-before time and a destination over its limit while
    the group rebalances: both workers keep running, every event is delivered, in order per
    entity, and the group's committed offsets reach the end of every topic it reads."""
    flaky = destinations()
    # Every fifth event is retried once (never a run long enough to open the breaker).
    flaky.answer = lambda e, a: (0.02, 503 if a == 1 and int(e.split("-")[1]) % 5 == 0 else 204, {})
    await destinations.start()
    settings, config = make_settings(
        worker={"max_in_flight": 32, "max_in_flight_per_partition": 8},
        destinations={"flaky": {"url": flaky.url, "timeout": "2s"}},
    )
    first = worker_process(settings, config)
    base = await ingress_url(settings)
    events = [(f"join-{n}", f"cus_{n % 30:02d}", n) for n in range(300)]
    async with aiohttp.ClientSession() as session:
        for n, (event_id, entity, seq) in enumerate(events):
            data = body(event_id, "join", entity, seq)
            assert await post_signed(session, base, settings, "std", event_id, data) == 202
            if n == 150:  # mid-stream, with retries held and requests in flight
                copy, _ = another_worker_config(config, "second", tmp_path / "second-worker")
                second = worker_process(settings, copy)
    deadline = time.monotonic() + 120
    while len(flaky.delivered) < len(events) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    for worker in (first, second):
        assert worker.process is not None
        assert worker.process.poll() is None, worker.output()[-3000:]
    missing = sorted({e for e, _, _ in events} - set(flaky.delivered))
    assert not missing, f"{len(missing)} never delivered, e.g. {missing[:5]}"
    for entity in {entity for _, entity, _ in events}:
        seqs = [seq for got, seq in flaky.order if got == entity]
        assert list(dict.fromkeys(seqs)) == sorted(set(seqs)), f"{entity} out of order"
    await eventually(lambda: committed_lag(settings) == 0, timeout=60)


def committed_lag(settings: Settings) -> int:
    """Records the group has not committed, summed over the events topic and retry tiers."""
    tiers = range(len(settings.retry.schedule))
    topics = [settings.topics.events, *(retry_topic(settings, tier) for tier in tiers)]
    return sum(lag(settings, topic) for topic in topics)
