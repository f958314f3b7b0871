"""`hookstream ingress --workers N`: N processes share the port, every accepted event is on
the topic once, and a stop signal ends them all."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from hookstream.kafka.reading import read_to_end
from hookstream.sources import sign_request
from schemas import decode_envelope
from tests.conftest import ROOT
from tests.integration.test_end_to_end import event_body

EVENTS = 40


def children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_two_ingress_processes_share_the_port_and_stop_together(
    make_settings, tmp_path: Path
) -> None:
    settings, config = make_settings()
    base = f"http://127.0.0.1:{settings.ingress.port}"
    log = (tmp_path / "ingress.log").open("wb")
    parent = subprocess.Popen(  # noqa: ASYNC220 - returns at once; waited below
        [
            sys.executable,
            "-m",
            "hookstream.cli",
            "ingress",
            "--config",
            str(config),
            "--workers",
            "2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        ready = 0
        # Fresh connections land on either process: wait until several in a row are ready.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s:
            while ready < 10:
                assert time.monotonic() < deadline, (tmp_path / "ingress.log").read_text()
                assert parent.poll() is None, (tmp_path / "ingress.log").read_text()
                try:
                    async with s.get(f"{base}/readyz") as answer:
                        ready = ready + 1 if answer.status == 200 else 0
                except aiohttp.ClientError:
                    ready = 0
                    await asyncio.sleep(0.2)
            servers = children(parent.pid)
            assert len(servers) == 2

            async def post(n: int) -> int:
                event_id = f"evt_workers_{n:03d}"
                body = event_body(event_id, f"cus_{n % 7}", n)
                headers = {"Content-Type": "application/json"}
                headers.update(sign_request(settings.sources["std"], body, event_id, time.time()))
                async with s.post(f"{base}/webhooks/std", data=body, headers=headers) as answer:
                    await answer.read()
                    return answer.status

            statuses = await asyncio.gather(*(post(n) for n in range(EVENTS)))
        assert statuses == [202] * EVENTS

        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, 30) == 0
        assert not any(map(running, servers))
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        log.close()

    on_topic = [
        decode_envelope(record.value).event_id
        for record in read_to_end(settings, settings.topics.events)
    ]
    assert sorted(on_topic) == [f"evt_workers_{n:03d}" for n in range(EVENTS)]
