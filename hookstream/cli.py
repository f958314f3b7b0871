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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from hookstream.config import Settings, load_settings
from hookstream.core.durations import parse_duration
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


def local_kafka(settings: Settings, **options: Any) -> Any:
    from hookstream.broker import LocalKafka

    return LocalKafka(Path(settings.data_dir) / "kafka", **options)


def _scram_users(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    from hookstream.broker.local import ScramUser

    try:
        return [ScramUser.parse(value) for value in values]
    except BrokerError as exc:
        raise click.BadParameter(str(exc)) from None


@main.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) on localhost:9092."""


@kafka.command("start")
@click.option("--sasl-port", type=int, help="Also listen with SASL_PLAINTEXT on this port.")
@click.option(
    "--scram-user",
    "scram_users",
    multiple=True,
    metavar="NAME:PASSWORD",
    callback=_scram_users,
    help="A SASL user (SCRAM-SHA-256/512 and PLAIN); repeatable; needs --sasl-port.",
)
@config_option
def kafka_start(settings: Settings, sasl_port: int | None, scram_users: list[Any]) -> None:
    """Start the local broker (idempotent); returns when it answers."""
    if scram_users and sasl_port is None:
        raise click.UsageError("--scram-user needs --sasl-port")
    broker = local_kafka(settings, sasl_port=sasl_port, scram_users=scram_users)
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
@click.argument("scheme", type=click.Choice(["discord", "sendgrid"]))
def keygen(scheme: str) -> None:
    """A key pair to try a public-key SCHEME locally: public_keys and signing_key, as JSON."""
    from hookstream.devtools import new_keypair_config

    click.echo(json.dumps(new_keypair_config(scheme), indent=2))


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


# --- operations: DLQ, audit trail, replay ---


def parse_when(value: str | None) -> datetime | None:
    """An ISO 8601 time, or a duration meaning that long ago (``2h``, ``7d``)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO time nor a duration like 2h"
        ) from None


@main.group()
def dlq() -> None:
    """Dead-lettered events: list, show, redrive."""


@dlq.command("list")
@click.option("--source", help="Only this source.")
@click.option("--type", "event_type", help="Only this event type (glob).")
@click.option("--since", help="Dead-lettered at or after (ISO time, or a duration ago: 2h).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@config_option
def dlq_list(
    settings: Settings, source: str | None, event_type: str | None, since: str | None, as_json: bool
) -> None:
    """Dead-lettered events not yet redriven."""
    from hookstream.ops.dlq import dead_letters, dump, select

    entries = select(
        dead_letters(settings), source=source, event_type=event_type, since=parse_when(since)
    )
    if as_json:
        click.echo(dump([e.summary() for e in entries]))
        return
    if not entries:
        click.echo("the DLQ is empty")
        return
    for e in entries:
        click.echo(
            f"{e.dead_lettered_at:%Y-%m-%d %H:%M:%S}  {e.source or '?':10} {e.event_id or '(poison)':30} "
            f"{e.event_type or '-':20} attempts={e.attempts}  {e.last_error or ''}"
        )


@dlq.command("show")
@click.argument("event_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def dlq_show(settings: Settings, event_id: str, as_json: bool) -> None:
    """One dead-lettered event: payload, headers, every attempt's error."""
    from hookstream.ops.dlq import dead_letters, dump, select

    entries = select(dead_letters(settings), event_ids=[event_id])
    if not entries:
        click.echo(f"{event_id} is not in the DLQ", err=True)
        sys.exit(1)
    details = [e.detail() for e in entries]
    if as_json:
        click.echo(dump(details) if len(details) > 1 else dump(details)[1:-1].strip())
        return
    for d in details:
        click.echo(
            f"event {d['event_id']} from {d['source']} ({d['event_type']}), entity {d['entity_id']}"
        )
        click.echo(f"dead-lettered at {d['dead_lettered_at']}: {d['reason']}")
        for attempt in d["history"]:
            click.echo(
                f"  attempt {attempt['attempt']} -> {attempt['destination']}: {attempt['verdict']}"
                f" {attempt['status'] or ''} {attempt['error'] or ''} ({attempt['duration_ms']} ms)"
            )
        click.echo(f"payload ({d['content_type']}): {d['payload'][:2000]}")


@dlq.command("redrive")
@click.argument("event_ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every entry.")
@click.option("--source", help="Every entry of this source.")
@click.option("--since", help="Every entry dead-lettered since (ISO time or duration ago).")
@click.option("--dry-run", is_flag=True, help="Show what would be redriven.")
@config_option
def dlq_redrive(
    settings: Settings,
    event_ids: tuple[str, ...],
    everything: bool,
    source: str | None,
    since: str | None,
    dry_run: bool,
) -> None:
    """Put dead-lettered events back on the events topic for another full try."""
    from hookstream.ops.dlq import dead_letters, redrive, select

    if not (event_ids or everything or source or since):
        raise click.UsageError("name EVENT_IDs, or use --all, --source or --since")
    entries = select(
        dead_letters(settings), event_ids=event_ids, source=source, since=parse_when(since)
    )
    missing = set(event_ids) - {e.event_id for e in entries}
    for event_id in sorted(missing):
        click.echo(f"not in the DLQ: {event_id}", err=True)
    for e in entries:
        click.echo(
            f"{'would redrive' if dry_run else 'redrive'} {e.source}/{e.event_id} ({e.position})"
        )
    if not dry_run and entries:
        from hookstream.telemetry import setup_tracing

        setup_tracing("hookstream-cli", os.environ)  # the redrive span joins the event's trace
        click.echo(f"redriven: {redrive(settings, entries)}")
        from opentelemetry import trace

        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()  # flush the span before the process exits
    if missing:
        sys.exit(1)


@main.group()
def events() -> None:
    """The audit trail of events."""


@events.command("show")
@click.argument("event_id")
@click.option("--source", help="The source, if the id is not unique across sources.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_option
def events_show(settings: Settings, event_id: str, source: str | None, as_json: bool) -> None:
    """Received, each attempt with outcome and error, final state, trace id."""
    from hookstream.ops.audit import event_history, summarize

    steps = event_history(settings, event_id, source)
    if not steps:
        click.echo(f"no audit trail for {event_id}", err=True)
        sys.exit(1)
    summary = summarize(event_id, steps)
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    click.echo(
        f"event {event_id} ({summary['source']}): {summary['state']}, {summary['attempts']} attempt(s)"
    )
    click.echo(f"trace {summary['trace_id']}")
    for step in summary["history"]:
        extra = {
            k: v
            for k, v in step.items()
            if k not in ("event_id", "source", "kind", "at", "trace_id") and v is not None
        }
        click.echo(f"  {step['at']}  {step['kind']:16} {json.dumps(extra, ensure_ascii=False)}")


@main.command()
@click.option("--group", required=True, help="The consumer group (worker.group_id).")
@click.option(
    "--topic", "topic_names", multiple=True, help="Topic to move (default: the events topic)."
)
@click.option("--to-earliest", is_flag=True)
@click.option("--to-latest", is_flag=True)
@click.option("--to-datetime", help="ISO 8601 time.")
@click.option("--to-offset", type=int)
@click.option("--shift-by", type=int)
@click.option("--execute", is_flag=True, help="Move the offsets (otherwise a dry run).")
@click.option(
    "--reprocess", is_flag=True, help="Run replayed events again even if already delivered."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@config_option
def replay(
    settings: Settings,
    group: str,
    topic_names: tuple[str, ...],
    to_earliest: bool,
    to_latest: bool,
    to_datetime: str | None,
    to_offset: int | None,
    shift_by: int | None,
    execute: bool,
    reprocess: bool,
    as_json: bool,
) -> None:
    """Move a consumer group's committed offsets (refuses while the group has live members)."""
    from hookstream.ops import replay as ops

    chosen = [
        to_earliest,
        to_latest,
        to_datetime is not None,
        to_offset is not None,
        shift_by is not None,
    ]
    if sum(chosen) != 1:
        raise click.UsageError(
            "give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by"
        )
    target = ops.Target(
        earliest=to_earliest,
        latest=to_latest,
        datetime=parse_when(to_datetime) if to_datetime else None,
        offset=to_offset,
        shift_by=shift_by,
    )
    moves = ops.plan(settings, group, list(topic_names) or [settings.topics.events], target)
    if as_json:
        click.echo(json.dumps([ops.describe(m) for m in moves], indent=2))
    else:
        for m in moves:
            current = "-" if m.current is None else m.current
            click.echo(f"{m.topic}[{m.partition}]  {current} -> {m.new}  (replays {m.replays})")
        click.echo(f"total records to replay: {sum(m.replays for m in moves)}")
    if not execute:
        click.echo("dry run: add --execute to move the offsets", err=True)
        return
    done = 0

    def progress(move: ops.Move) -> None:
        nonlocal done
        done += 1
        click.echo(
            f"moved {move.topic}[{move.partition}] to {move.new} ({done}/{len(moves)})", err=True
        )

    ops.execute(settings, group, moves, reprocess=reprocess, progress=progress)
    mode = "will run again" if reprocess else "already delivered are skipped as duplicates"
    click.echo(f"offsets moved; restart the workers. Replayed events {mode}.")


if __name__ == "__main__":
    main()
