"""The commands a new user runs first, against the real broker: `hookstream run --config`
starts the ingress and the worker on that file and stops on SIGINT; `send --url` takes the
ingress's base URL or the full webhook URL; `demo` accounts for every event it sent, shows
progress while it waits and names an event to follow."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from hookstream.config import Settings
from tests.conftest import STANDARD_SECRET, base_config, free_port, wait_for_group, write_config

pytestmark = pytest.mark.integration

STOP_BOUND = 60.0  # seconds `run` may take to stop after SIGINT


@dataclass
class Result:
    code: int
    out: str
    err: str


async def hookstream(config: Path, *args: str) -> Result:
    """One `hookstream` command as a real process."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hookstream.cli",
        *args,
        "--config",
        str(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


async def answers(url: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session,
            session.get(url) as response,
        ):
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


class RunProcess:
    """`hookstream run --config FILE` in the foreground of its own process."""

    def __init__(self, config: Path, settings: Settings, log: Path, env: dict[str, str]) -> None:
        self.settings = settings
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hookstream.cli", "run", "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=log.parent,  # no hookstream.yaml there
                env=env,
            )

    async def ready(self, timeout: float = 120.0) -> None:
        """Both children answer /healthz on the file's ports and the worker's group is up."""
        ingress = f"http://127.0.0.1:{self.settings.ingress.port}/healthz"
        worker = f"http://127.0.0.1:{self.settings.worker.port}/healthz"
        deadline = time.monotonic() + timeout
        while not (await answers(ingress) and await answers(worker)):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, f"not ready in {timeout}s:\n{self.output()}"
            await asyncio.sleep(0.5)
        left = deadline - time.monotonic()
        await asyncio.to_thread(wait_for_group, self.settings, left, self.process)

    def interrupt(self, bound: float) -> tuple[int, float]:
        """SIGINT, as Ctrl-C sends; the exit code and how long the stop took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(bound)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_BOUND)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
async def run_pipeline(tmp_path: Path) -> AsyncIterator[Callable[..., RunProcess]]:
    started: list[RunProcess] = []

    def start(config: Path, settings: Settings, env: dict[str, str] | None = None) -> RunProcess:
        run = RunProcess(config, settings, tmp_path / f"run{len(started)}.log", env or {})
        started.append(run)
        return run

    yield start
    for run in started:
        await asyncio.to_thread(run.close)


async def test_run_starts_both_children_on_its_config_file_and_stops_on_sigint(
    make_settings, run_pipeline, sink, tmp_path: Path, kafka_bootstrap: str
) -> None:
    settings, config = make_settings(
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "2s"}}
    )
    # A decoy where the children used to look: other ports, other topics.
    decoy = tmp_path / "decoy.yaml"
    write_config(base_config(kafka_bootstrap, tmp_path / "decoy-data"), decoy)
    run = run_pipeline(config, settings, {**os.environ, "HOOKSTREAM_CONFIG": str(decoy)})
    await run.ready()

    base = f"http://127.0.0.1:{settings.ingress.port}"
    full = await hookstream(
        config, "send", "std", "--event-id", "full-url", "--url", f"{base}/webhooks/std"
    )
    plain = await hookstream(config, "send", "std", "--event-id", "base-url", "--url", base)
    for sent in (full, plain):
        assert sent.code == 0, sent
        assert sent.out.startswith("202 ")
    await sink.wait_for(2, timeout=60)
    assert sorted(sink.ids()) == ["base-url", "full-url"]

    code, took = await asyncio.to_thread(run.interrupt, STOP_BOUND)
    print(f"hookstream run stopped {took:.1f}s after SIGINT")
    assert code == 0, run.output()
    lines = run.output().splitlines()
    assert "stopping ..." in lines
    assert lines[-1].endswith("stopped")  # after any terminal codes the worker wrote
    assert not await answers(f"{base}/healthz")
    assert not await answers(f"http://127.0.0.1:{settings.worker.port}/healthz")


PROGRESS = re.compile(r"waiting: (\d+) of (\d+) delivered \((\d+)s of --wait 8s\)")


def summary(out: str) -> tuple[dict[str, str], dict[str, int], list[str]]:
    """The demo's `key: value` counts, its undelivered places, and the sample lines."""
    counts: dict[str, str] = {}
    places: dict[str, int] = {}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("sample event:"):
            return counts, places, [s.strip() for s in lines[i:]]
        key, sep, value = line.partition(": ")
        if sep and key.strip() and not line.startswith(" " * 18):
            counts[key.strip()] = value
        elif line.startswith(" " * 18):
            count, _, rest = line.strip().partition(" ")
            places[rest.split(" (")[0]] = int(count)
    return counts, places, []


async def test_demo_accounts_for_every_event_and_names_one_to_follow(
    make_settings, run_pipeline
) -> None:
    settings, config = make_settings(
        # One long retry tier: within the demo's wait, every failed delivery stays in tier 0.
        retry={"schedule": ["60s"], "jitter": 0.0},
        sources={"demo": {"scheme": "standard", "secrets": [STANDARD_SECRET]}},
        destinations={
            "demo-sink": {
                "url": f"http://127.0.0.1:{free_port()}/hooks",
                "sources": ["demo"],
                "timeout": "2s",
            }
        },
    )
    run = run_pipeline(config, settings, dict(os.environ))
    await run.ready()

    started = time.monotonic()
    demo = await hookstream(
        config, "demo", "--events", "30", "--duplicates", "0.2", "--fail-rate", "0.3", "--wait", "8"
    )
    took = time.monotonic() - started
    assert demo.code == 0, demo
    assert took < 8 + 30, took  # the wait is bounded by --wait
    counts, places, sample = summary(demo.out)

    requests, delivered = int(counts["requests"]), int(counts["delivered"])
    failures = int(counts["sink_failures"])
    answers = ast.literal_eval(counts["answers"])
    assert set(answers) <= {200, 202}
    assert sum(answers.values()) == requests
    # A re-send that arrives after its original was accepted is answered 200 by the ingress
    # (a duplicate it remembers); one sent while the original is under way reaches the
    # worker, whose dedupe table skips it.
    at_the_edge = answers.get(200, 0)
    assert int(counts["distinct"]) == 30
    assert int(counts["deduped"]) == requests - 30 - at_the_edge
    # Every first attempt the sink failed is waiting in tier 0, and nothing else is missing.
    assert failures > 0
    assert delivered == 30 - failures
    assert counts["undelivered"] == f"{failures} of 30 events"
    assert places == {"retrying in tier 0": failures}
    assert int(counts["retried"]) == failures
    assert int(counts["redelivered"]) == 0

    # Progress about once a second while it waited, on stderr, within --wait.
    progress = [tuple(map(int, m.groups())) for m in PROGRESS.finditer(demo.err)]
    assert len(progress) >= 5, demo.err
    assert all(expected == 30 and 0 <= done <= 30 for done, expected, _ in progress)
    seconds = [s for _, _, s in progress]
    assert seconds == sorted(seconds)
    assert seconds[-1] <= 8

    # The sample event: the command to look it up, and its trace.
    event_id = sample[0].split(": ")[1].split(" ")[0]
    assert sample[1] == f"hookstream events show {event_id} --config {config.resolve()}"
    shown = json.loads((await hookstream(config, "events", "show", event_id, "--json")).out)
    state = sample[0].split("(")[1].split(",")[0]
    assert shown["state"] == state
    assert sample[2].startswith(f"trace {shown['trace_id']}: http://localhost:16686/trace/")
