"""The `hookstream` command. Settings are loaded here, once, and handed down."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hookstream.config import Settings, load_settings
from hookstream.errors import BrokerError, ConfigError, HookstreamError, TopicError

F = TypeVar("F", bound=Callable[..., Any])


def config_option(command: F) -> F:
    """`--config PATH` on every command; the loaded Settings arrive as `settings`."""

    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Config file (default $HOOKSTREAM_CONFIG, else ./hookstream.yaml, else built-in defaults).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, config_path: Path | None, **kwargs: Any) -> Any:
        try:
            settings = load_settings(config_path)
        except ConfigError as exc:
            click.echo(f"config error: {exc}", err=True)
            sys.exit(2)
        try:
            return command(*args, settings=settings, **kwargs)
        except ConfigError as exc:
            click.echo(f"config error: {exc}", err=True)
            sys.exit(2)
        except (BrokerError, TopicError, HookstreamError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hookstream")
def main() -> None:
    """hookstream: a webhook gateway on Kafka."""


# --- local broker ---


def local_kafka(settings: Settings) -> Any:
    from hookstream.broker import LocalKafka

    return LocalKafka(Path(settings.data_dir) / "kafka")


@main.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) on localhost:9092."""


@kafka.command("start")
@config_option
def kafka_start(settings: Settings) -> None:
    """Start the local broker (idempotent); returns when it answers."""
    broker = local_kafka(settings)
    started = time.monotonic()
    if broker.start():
        click.echo(
            f"kafka started on {broker.bootstrap} in {time.monotonic() - started:.1f}s (data: {broker.home})"
        )
    else:
        click.echo(f"kafka already answering on {broker.bootstrap}")


@kafka.command("stop")
@config_option
def kafka_stop(settings: Settings) -> None:
    """Stop the local broker and wait until it is gone."""
    broker = local_kafka(settings)
    click.echo("kafka stopped" if broker.stop() else "kafka was not running")


@kafka.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def kafka_status(settings: Settings, as_json: bool) -> None:
    """Is the local broker running and answering? Exit 1 if not answering."""
    status = local_kafka(settings).status()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "running": status.running,
                    "answering": status.answering,
                    "pid": status.pid,
                    "bootstrap": status.bootstrap,
                    "home": str(status.home),
                }
            )
        )
    else:
        state = "answering" if status.answering else "not answering"
        owner = f"pid {status.pid}" if status.running else "not started by hookstream"
        click.echo(f"kafka on {status.bootstrap}: {state} ({owner})")
    if not status.answering:
        sys.exit(1)


# --- topics ---


@main.group()
def topics() -> None:
    """The events, retry, DLQ and internal topics."""


@topics.command("create")
@config_option
def topics_create(settings: Settings) -> None:
    """Create every topic the config implies (idempotent)."""
    from hookstream.admin import create_topics

    for state in create_topics(settings):
        verb = "created" if state.created else "exists "
        click.echo(
            f"{verb} {state.spec.name} ({state.partitions} partitions) - {state.spec.purpose}"
        )


@topics.command("describe")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def topics_describe(settings: Settings, as_json: bool) -> None:
    """Show the topics and whether they exist."""
    from hookstream.admin import describe_topics

    states = describe_topics(settings)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "name": s.spec.name,
                        "exists": s.exists,
                        "partitions": s.partitions,
                        "expected_partitions": s.spec.partitions,
                        "config": s.spec.config,
                        "purpose": s.spec.purpose,
                    }
                    for s in states
                ],
                indent=2,
            )
        )
        return
    for s in states:
        shown = f"{s.partitions} partitions" if s.exists else "missing"
        click.echo(f"{s.spec.name:40} {shown:15} {s.spec.purpose}")


# --- the pipeline ---


@main.command()
@click.option("--log-level", default="info", show_default=True)
@config_option
def ingress(settings: Settings, log_level: str) -> None:
    """Run the HTTP edge."""
    from hookstream.telemetry import setup_logging, setup_tracing
    from ingress.app import run_ingress

    setup_logging(log_level)
    setup_tracing("hookstream-ingress", os.environ)
    run_ingress(settings)


@main.command()
@click.option("--log-level", default="info", show_default=True)
@config_option
def worker(settings: Settings, log_level: str) -> None:
    """Run the stream processor."""
    from hookstream.telemetry import setup_logging, setup_tracing
    from streams.app import run_worker

    setup_logging(log_level)
    setup_tracing("hookstream-worker", os.environ)
    run_worker(settings, loglevel="warning" if log_level == "info" else log_level)


@main.command()
@config_option
def run(settings: Settings) -> None:
    """Everything locally, in the foreground: broker, topics, ingress, worker. Ctrl-C stops it all."""
    from hookstream.admin import create_topics
    from hookstream.broker.local import answers_metadata

    broker = None
    if not answers_metadata(settings.kafka.bootstrap_servers):
        if settings.kafka.bootstrap_servers not in ("localhost:9092", "127.0.0.1:9092"):
            raise BrokerError(f"no broker answers at {settings.kafka.bootstrap_servers}")
        broker = local_kafka(settings)
        click.echo("starting the local Kafka broker ...")
        broker.start()
    create_topics(settings)
    click.echo(
        f"topics ready; ingress on :{settings.ingress.port}, worker metrics on :{settings.worker.port}"
    )
    base = [sys.executable, "-m", "hookstream.cli"]
    config = (
        ["--config", os.environ["HOOKSTREAM_CONFIG"]] if os.environ.get("HOOKSTREAM_CONFIG") else []
    )
    children = [
        subprocess.Popen([*base, "worker", *config]),
        subprocess.Popen([*base, "ingress", *config]),
    ]
    stopping = False

    def stop(signum: int, _: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        click.echo("stopping ...")
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
        if broker is not None:
            broker.stop()
        click.echo("stopped")
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed and not stopping:
        sys.exit(1)


@main.command()
@click.argument("source")
@click.argument("payload", required=False, type=click.File("rb"), default=None)
@click.option("--event-id", help="Event id (default: a new random one).")
@click.option("--type", "event_type", default="demo.event", show_default=True, help="Event type.")
@click.option("--url", help="Ingress base URL (default http://localhost:<ingress.port>).")
@config_option
def send(
    settings: Settings,
    source: str,
    payload: Any,
    event_id: str | None,
    event_type: str,
    url: str | None,
) -> None:
    """Sign a payload as SOURCE's provider does and POST it. PAYLOAD is a file or - for stdin."""
    from hookstream.devtools import send_one

    status, answer = send_one(
        settings, source, payload.read() if payload else None, event_id, event_type, url
    )
    click.echo(f"{status} {answer}")
    if status >= 300:
        sys.exit(1)


@main.command()
@click.option("--events", "count", default=200, show_default=True, help="How many distinct events.")
@click.option("--duplicates", default=0.2, show_default=True, help="Share of events sent twice.")
@click.option(
    "--fail-rate", default=0.0, show_default=True, help="Share of deliveries the demo sink fails."
)
@click.option("--source", default="demo", show_default=True)
@click.option("--wait", default=60.0, show_default=True, help="Seconds to wait for deliveries.")
@config_option
def demo(
    settings: Settings, count: int, duplicates: float, fail_rate: float, source: str, wait: float
) -> None:
    """A burst of signed events through the running pipeline, and what became of them."""
    from hookstream.devtools import run_demo

    report = run_demo(settings, source, count, duplicates, fail_rate, wait)
    for key, value in report.items():
        click.echo(f"{key:>16}: {value}")


if __name__ == "__main__":
    main()
