"""Ingress throughput with tracing off and on, as ratios measured in one run.

    .venv/bin/python bench/tracing_overhead.py [--requests N] [--concurrency C] [--rounds R]

The real ingress app (verification, Avro envelope, confluent-kafka producer with acks=all)
against the real broker (`KAFKA_BOOTSTRAP_SERVERS`, default localhost:9092), on loopback,
with signed Standard Webhooks requests from an aiohttp client in the same process. Each mode
runs in a fresh child process, because a process has one global tracer provider:

- `bare`:     a bare aiohttp handler that reads the body and answers 202 — the
              baseline for the ingress target (verify + produce durably at >= 0.6x of it);
- `api-noop`: no SDK installed at all, the OpenTelemetry API's no-op spans (a floor);
- `default`:  what `hookstream ingress` does without OTEL_* variables: spans are made
              (trace ids reach logs and Kafka headers) but not exported;
- `otlp`:     OTEL_EXPORTER_OTLP_ENDPOINT set: batched OTLP/HTTP export to a local receiver
              run by this script, which decodes nothing and answers 200.

Modes alternate over R rounds; the median requests/s of each is reported, and its ratio to
`api-noop`. Topics are unique per run (`bench.<tag>.events`) and left on the broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import yaml

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MODES = ("bare", "api-noop", "default", "otlp")


def write_config(directory: Path, bootstrap: str) -> Path:
    tag = uuid.uuid4().hex[:8]
    config = {
        "kafka": {"bootstrap_servers": bootstrap},
        "topics": {"events": f"bench.{tag}.events", "partitions": 3},
        "ingress": {"host": "127.0.0.1", "port": 0},
        "worker": {"group_id": f"bench-{tag}"},
        "sources": {"std": {"scheme": "standard", "secrets": [SECRET]}},
        "data_dir": str(directory),
    }
    path = directory / "hookstream.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


# --- the child: one mode, one measurement ---


def bare_app() -> Any:
    """The baseline: read the body, answer 202, nothing else."""
    from aiohttp import web

    async def accept(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "accepted"}, status=202)

    app = web.Application()
    app.router.add_post("/webhooks/std", accept)
    return app


async def measure(config: Path, mode: str, requests: int, concurrency: int) -> float:
    import aiohttp
    from aiohttp import web

    from hookstream.config import load_settings
    from hookstream.sources import sign_request
    from hookstream.telemetry import setup_tracing
    from ingress.app import create_app

    settings = load_settings(config, environ={})
    # The load generator's session is made first, so the aiohttp-client instrumentation that
    # setup_tracing switches on does not trace the client side: only the ingress is measured.
    connector = aiohttp.TCPConnector(limit=concurrency)
    session = aiohttp.ClientSession(connector=connector)
    if mode != "api-noop":
        setup_tracing("hookstream-ingress", os.environ)
    runner = web.AppRunner(bare_app() if mode == "bare" else create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/webhooks/std"
    counter = iter(range(requests + 200))

    async def client(session: aiohttp.ClientSession, count: int) -> None:
        for _ in range(count):
            event_id = f"evt-{next(counter)}-{uuid.uuid4().hex[:6]}"
            body = json.dumps({"id": event_id, "type": "bench", "data": {"n": 1}}).encode()
            headers = sign_request(settings.sources["std"], body, event_id, time.time())
            headers["Content-Type"] = "application/json"
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                if response.status != 202:
                    raise RuntimeError(f"HTTP {response.status}")

    async with session:
        await asyncio.gather(*(client(session, 10) for _ in range(20)))  # warm up: 200
        share = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
        started = time.perf_counter()
        await asyncio.gather(*(client(session, n) for n in share))
        elapsed = time.perf_counter() - started
    await runner.cleanup()
    return requests / elapsed


# --- the parent: a local OTLP receiver, children in alternating order ---


class Receiver:
    """An OTLP/HTTP endpoint on loopback that accepts and counts export requests."""

    def __init__(self) -> None:
        self.exports = 0
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(),), daemon=True
        ).start()
        self._ready.wait(10)

    async def _serve(self) -> None:
        from aiohttp import web

        async def export(request: web.Request) -> web.Response:
            await request.read()
            self.exports += 1
            return web.Response(body=b"", content_type="application/x-protobuf")

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", export)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = runner.addresses[0][1]
        self._ready.set()
        await asyncio.Event().wait()


def run_child(config: Path, mode: str, args: argparse.Namespace, receiver: Receiver) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if mode == "otlp":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{receiver.port}"
    command = [sys.executable, __file__, "--child", mode, "--config", str(config)]
    command += ["--requests", str(args.requests), "--concurrency", str(args.concurrency)]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{result.stderr[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rate = asyncio.run(measure(args.config, args.child, args.requests, args.concurrency))
        print(f"{rate:.1f}")
        return

    from hookstream.config import load_settings
    from hookstream.kafka.admin import create_topics

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    with tempfile.TemporaryDirectory(prefix="hookstream-bench-") as tmp:
        config = write_config(Path(tmp), bootstrap)
        create_topics(load_settings(config, environ={}))
        receiver = Receiver()
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for round_ in range(args.rounds):
            order = MODES if round_ % 2 == 0 else tuple(reversed(MODES))
            for mode in order:
                rates[mode].append(run_child(config, mode, args, receiver))
                print(f"round {round_ + 1} {mode:>9}: {rates[mode][-1]:8.0f} req/s", flush=True)
    floor = statistics.median(rates["api-noop"])
    bare = statistics.median(rates["bare"])
    summary: dict[str, Any] = {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "otlp_export_requests": receiver.exports,
    }
    print()
    for mode in MODES:
        median = statistics.median(rates[mode])
        summary[mode] = {
            "median_rps": round(median),
            "ratio_to_api_noop": round(median / floor, 3),
            "ratio_to_bare": round(median / bare, 3),
        }
        print(
            f"{mode:>9}: {median:8.0f} req/s  ratio {median / floor:.3f}  vs bare {median / bare:.3f}"
        )
    print(json.dumps(summary))
    if receiver.exports == 0:
        raise SystemExit("the otlp mode exported nothing: the measurement is not of export")


if __name__ == "__main__":
    main()
