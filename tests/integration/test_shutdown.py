"""SIGTERM during a burst loses nothing: the real `hookstream ingress` and `hookstream worker`
processes are stopped and restarted mid-burst; every event answered 202 is delivered."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookstream.config import Settings
from hookstream.sources import sign_request
from tests.conftest import ROOT
from tests.integration.test_end_to_end import event_body

pytestmark = pytest.mark.integration

EVENTS = 600
RATE = 60.0  # events per second: the burst lasts ten seconds
CONCURRENCY = 40


@dataclass
class Outcome:
    event_id: str
    started: float
    status: int | None = None  # an HTTP answer
    failure: str | None = None  # "refused", or "disconnected" when the answer never came


class IngressProcess:
    """`hookstream ingress` as a real subprocess on the configured port."""

    def __init__(self, config: Path, settings: Settings, log: Path) -> None:
        self.config = config
        self.base = f"http://127.0.0.1:{settings.ingress.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self, timeout: float = 30.0) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waited below
                [sys.executable, "-m", "hookstream.cli", "ingress", "--config", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.output()
                try:
                    async with session.get(f"{self.base}/readyz") as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"the ingress was not ready within {timeout}s:\n{self.output()}")

    async def terminate(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def post_once(
    session: aiohttp.ClientSession, base: str, settings: Settings, n: int
) -> Outcome:
    """One signed event, sent once (a real sender would retry what did not get a 2xx)."""
    event_id = f"evt_burst_{n:04d}"
    body = event_body(event_id, f"cus_{n % 25:02d}", n)
    headers = {"Content-Type": "application/json"}
    headers.update(sign_request(settings.sources["std"], body, event_id, time.time()))
    outcome = Outcome(event_id, time.monotonic())
    try:
        async with session.post(f"{base}/webhooks/std", data=body, headers=headers) as answer:
            await answer.read()
            outcome.status = answer.status
    except aiohttp.ClientConnectorError as exc:
        refused = isinstance(exc.os_error, ConnectionRefusedError)
        outcome.failure = "refused" if refused else f"connect: {exc.os_error!r}"
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        outcome.failure = f"disconnected: {type(exc).__name__}"
    return outcome


async def post_slowly(base: str, settings: Settings, n: int, seconds: float) -> Outcome:
    """One event whose body trickles in over `seconds`: in flight when SIGTERM arrives."""
    event_id = f"evt_slow_{n:02d}"
    body = event_body(event_id, f"cus_slow_{n}", n)
    headers = {"Content-Type": "application/json"}
    headers.update(sign_request(settings.sources["std"], body, event_id, time.time()))
    pieces = [body[i : i + 16] for i in range(0, len(body), 16)]

    async def trickle() -> Any:
        for piece in pieces:
            yield piece
            await asyncio.sleep(seconds / len(pieces))

    outcome = Outcome(event_id, time.monotonic())
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/webhooks/std", data=trickle(), headers=headers) as answer,
    ):
        await answer.read()
        outcome.status = answer.status
    return outcome


async def test_sigterm_of_ingress_and_worker_mid_burst_loses_no_accepted_event(
    make_settings: Any, worker_process: Any, sink: Any, tmp_path: Path
) -> None:
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "5s"}}
    )
    worker = await asyncio.to_thread(worker_process, settings, config)
    ingress = IngressProcess(config, settings, tmp_path / "ingress.log")
    await ingress.start()
    outcomes: list[Outcome] = []
    marks: dict[str, float] = {}
    exit_codes: dict[str, int] = {}
    in_flight: list[Outcome] = []

    async def send_burst() -> None:
        gate = asyncio.Semaphore(CONCURRENCY)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(n: int) -> None:
                async with gate:
                    outcomes.append(await post_once(session, ingress.base, settings, n))

            tasks = []
            for n in range(EVENTS):
                tasks.append(asyncio.create_task(one(n)))
                await asyncio.sleep(1 / RATE)
            await asyncio.gather(*tasks)

    async def restart_ingress() -> None:
        while sum(o.status == 202 for o in outcomes) < EVENTS // 5:
            await asyncio.sleep(0.05)
        slow = [asyncio.create_task(post_slowly(ingress.base, settings, n, 1.5)) for n in range(5)]
        await asyncio.sleep(0.3)
        marks["ingress_sigterm"] = time.monotonic()
        exit_codes["ingress"] = await ingress.terminate()
        in_flight.extend(await asyncio.gather(*slow))
        marks["ingress_exited"] = time.monotonic()
        await asyncio.sleep(1.5)  # senders meanwhile must find the port closed
        marks["ingress_restarting"] = time.monotonic()
        await ingress.start()
        marks["ingress_ready"] = time.monotonic()

    async def restart_worker() -> None:
        while len(sink.received) < EVENTS // 3:
            await asyncio.sleep(0.05)
        marks["worker_sigterm"] = time.monotonic()
        exit_codes["worker"] = await asyncio.to_thread(worker.stop)
        marks["worker_exited"] = time.monotonic()
        await asyncio.to_thread(worker.start)

    started = time.monotonic()
    try:
        async with asyncio.timeout(90):
            await asyncio.gather(send_burst(), restart_ingress(), restart_worker())
        accepted = {o.event_id for o in outcomes + in_flight if o.status == 202}
        async with asyncio.timeout(60):
            while not accepted <= set(sink.ids()):
                await asyncio.sleep(0.2)
    finally:
        ingress_exit = await ingress.terminate() if ingress.process else None
        ingress.kill()

    delivered = Counter(sink.ids())
    duplicates = sum(count - 1 for count in delivered.values())
    statuses = Counter(o.status for o in outcomes if o.status is not None)
    failures = Counter(o.failure for o in outcomes if o.failure is not None)
    print(
        f"\nburst of {EVENTS} in {time.monotonic() - started:.1f}s: answers {dict(statuses)}, "
        f"no answer {dict(failures)}, delivered {len(delivered)} distinct, "
        f"{duplicates} duplicate deliveries, worker stopped in "
        f"{marks['worker_exited'] - marks['worker_sigterm']:.1f}s, ingress stopped in "
        f"{marks['ingress_exited'] - marks['ingress_sigterm']:.1f}s with {len(in_flight)} "
        f"slow requests in flight"
    )
    # Requests in flight at SIGTERM (bodies still arriving) were answered, then the process exited.
    assert [o.status for o in in_flight] == [202] * 5
    assert marks["ingress_exited"] - marks["ingress_sigterm"] >= 1.0
    # Every 202 was delivered (at least once), and nothing was answered with a 5xx.
    assert accepted <= set(delivered), sorted(accepted - set(delivered))[:10]
    assert not [o for o in outcomes if o.status is not None and o.status >= 500]
    assert set(statuses) == {202}
    # Both stopped cleanly, on their own, with exit status 0.
    assert exit_codes == {"ingress": 0, "worker": 0}, ingress.output() + worker.output()
    assert ingress_exit == 0
    # Requests sent while no ingress ran were refused at connect time, never half-answered.
    closed = [
        o
        for o in outcomes
        if marks["ingress_exited"] < o.started < marks["ingress_restarting"] - 0.05
    ]
    assert closed, "no request fell into the window without an ingress"
    assert {o.failure for o in closed} == {"refused"}
    # Every request that went unanswered was sent while the ingress was stopping or stopped.
    unanswered = [o for o in outcomes if o.status is None]
    assert all(o.started >= marks["ingress_sigterm"] - 0.5 for o in unanswered)
    assert all(o.started <= marks["ingress_ready"] for o in unanswered)
    # The worker's SIGTERM let the event in hand finish and committed: no redelivery.
    assert duplicates == 0, [e for e, c in delivered.items() if c > 1][:10]
