"""The worker and the ingress as real processes print one JSON object per line, on stdout and
stderr alike: their own events and every library's stdlib records (Faust, mode, aiokafka,
aiohttp, librdkafka through confluent-kafka), never plain text between them."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookstream.config import Settings
from tests.conftest import ROOT, free_port, wait_for_group, write_config
from tests.integration.test_end_to_end import event_body, post_signed

pytestmark = pytest.mark.integration


def start(command: str, config: Path, out: Path, err: Path, *extra: str) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "hookstream.cli", command, "--config", str(config), *extra],
            stdout=stdout,
            stderr=stderr,
            cwd=ROOT,
        )


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def json_lines(*files: Path) -> list[dict[str, Any]]:
    """Every line of the files, parsed; fails on the first one that is not a JSON event."""
    events = []
    for file in files:
        for number, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
            try:
                event = json.loads(line)
            except ValueError:
                pytest.fail(f"{file.name}:{number} is not JSON: {line[:300]!r}")
            assert isinstance(event, dict), f"{file.name}:{number}: {line[:300]!r}"
            assert isinstance(event.get("event"), str), f"{file.name}:{number}: no event"
            assert event.get("level") in ("debug", "info", "warning", "error", "critical"), line
            assert "timestamp" in event, line
            events.append(event)
    return events


def loggers(events: list[dict[str, Any]]) -> set[str]:
    return {str(e.get("logger", "")).split(".")[0] for e in events}


def test_the_worker_logs_only_json_lines_faust_and_aiokafka_included(
    make_settings: Callable[..., tuple[Settings, Path]], tmp_path: Path
) -> None:
    settings, config = make_settings()
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"
    # debug: every library speaks, so every kind of record is seen
    process = start("worker", config, out, err, "--log-level", "debug")
    try:
        wait_for_group(settings, 60, process)
    finally:
        code = stop(process)
    assert code == 0, err.read_text()[-3000:]
    events = json_lines(out, err)
    assert out.read_text() == "", "the worker writes nothing but logs, and those to stderr"
    assert {"faust", "mode", "aiokafka"} <= loggers(events), loggers(events)


async def test_the_ingress_logs_only_json_lines_kafka_client_included(tmp_path: Path) -> None:
    # No broker at this address: librdkafka logs its failed connections, the event is refused.
    unreachable = f"127.0.0.1:{free_port()}"
    port = free_port()
    config = tmp_path / "ingress.yaml"
    settings = write_config(
        {
            "kafka": {"bootstrap_servers": unreachable},
            "ingress": {"host": "127.0.0.1", "port": port, "produce_timeout": "1s"},
            "sources": {"std": {"scheme": "standard", "secrets": ["whsec_" + "A" * 32]}},
            "data_dir": str(tmp_path),
        },
        config,
    )
    out, err = tmp_path / "ingress.out", tmp_path / "ingress.err"
    process = start("ingress", config, out, err, "--log-level", "debug")
    try:
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            await until_serving(session, base, process)
            status = await post_signed(
                session, base, settings, "std", "evt_log", event_body("evt_log", "c", 1)
            )
            assert status == 503
            async with session.get(f"{base}/nowhere") as answer:
                assert answer.status == 404
    finally:
        code = stop(process)
    assert code == 0, err.read_text()[-3000:]
    events = json_lines(out, err)
    names = {e["event"] for e in events}
    assert {"ingress_starting", "enqueue_failed", "ingress_drained"} <= names, names
    librdkafka = [e for e in events if e.get("logger") == "hookstream.kafka.librdkafka"]
    assert librdkafka, "no librdkafka line reached the structured log"
    assert any(unreachable in e["event"] for e in librdkafka)


async def until_serving(
    session: aiohttp.ClientSession, base: str, process: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the ingress exited"
        try:
            async with session.get(f"{base}/healthz") as answer:
                if answer.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.2)
    pytest.fail("the ingress did not answer /healthz")
