"""The pipeline's commands: `ingress`, `worker`, `run` (both, supervised), `send`, `demo`."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from hookstream.cli.options import ConfigFile, config_option, config_option_with_file
from hookstream.config import Settings
from hookstream.errors import BrokerError

if TYPE_CHECKING:
    from hookstream.cli.supervisor import Outcome
    from hookstream.devtools import DemoReport, Progress

JAEGER_UI = "http://localhost:16686"  # Jaeger all-in-one's UI, as docs/tracing.md runs it
LOCAL_BOOTSTRAP = ("localhost:9092", "127.0.0.1:9092")


@click.command()
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes serving the one port (SO_REUSEPORT), each with its own producer.",
)
@click.option("--reuse-port", is_flag=True, hidden=True)
@config_option_with_file
def ingress(
    settings: Settings, config_file: ConfigFile, log_level: str, workers: int, reuse_port: bool
) -> None:
    """Run the HTTP edge."""
    if workers > 1:
        _ingress_processes(settings, config_file, log_level, workers)
        return
    from hookstream.telemetry import setup_logging, setup_tracing
    from ingress.app import run_ingress

    setup_logging(log_level)
    setup_tracing("hookstream-ingress", os.environ, record_unexported=False)
    run_ingress(settings, reuse_port=reuse_port)


def _ingress_processes(
    settings: Settings, config_file: ConfigFile, log_level: str, workers: int
) -> None:
    """`workers` ingress processes on one port; a stop signal is passed on to each."""
    from hookstream.cli.supervisor import Child, Supervisor

    if settings.ingress.port == 0:
        raise click.UsageError("--workers needs a fixed ingress.port (not 0)")
    base = [sys.executable, "-m", "hookstream.cli", "ingress", *config_file.argv()]
    argv = [*base, "--log-level", log_level, "--reuse-port"]
    children = [Child(f"ingress-{n}", argv) for n in range(1, workers + 1)]
    outcome = Supervisor(children, grace=settings.ingress.produce_timeout + 5).run()
    _report(outcome)


@click.command()
@click.option("--log-level", default="info", show_default=True)
@config_option
def worker(settings: Settings, log_level: str) -> None:
    """Run the stream processor."""
    from hookstream.telemetry import setup_logging, setup_tracing
    from streams.app import run_worker

    setup_logging(log_level)
    # Spans nothing exports are ids only: trace ids still reach logs, headers and the audit.
    setup_tracing("hookstream-worker", os.environ, record_unexported=False)
    # Faust, mode and aiokafka one step quieter than hookstream, and never at debug: their
    # debug lines print whole records, the envelope's signed headers and body included.
    libraries = {"debug": "info", "info": "warning"}.get(log_level.lower(), log_level)
    run_worker(settings, loglevel=libraries)


@click.command()
@config_option_with_file
def run(settings: Settings, config_file: ConfigFile) -> None:
    """Everything locally, in the foreground: broker, topics, ingress, worker. Ctrl-C stops it all."""
    from hookstream.cli.supervisor import Child, Supervisor
    from hookstream.kafka.admin import create_topics

    broker = _start_broker_if_needed(settings)
    try:
        create_topics(settings)
        click.echo(
            f"topics ready; ingress on :{settings.ingress.port}, worker metrics on :{settings.worker.port}"
        )
        # The children read the very file this process loaded, whatever named it.
        base = [sys.executable, "-m", "hookstream.cli"]
        children = [
            Child("worker", [*base, "worker", *config_file.argv()]),
            Child("ingress", [*base, "ingress", *config_file.argv()]),
        ]
        outcome = Supervisor(children).run(on_stop=lambda: click.echo("stopping ..."))
    finally:
        if broker is not None:
            broker.stop()
    click.echo("stopped")
    _report(outcome)


def _start_broker_if_needed(settings: Settings) -> Any:
    """The local broker, started, if nothing answers where the config points; else None."""
    from hookstream.broker.local import answers_metadata
    from hookstream.cli.broker import local_kafka

    if answers_metadata(settings.kafka.bootstrap_servers):
        return None
    if settings.kafka.bootstrap_servers not in LOCAL_BOOTSTRAP:
        raise BrokerError(f"no broker answers at {settings.kafka.bootstrap_servers}")
    broker = local_kafka(settings)
    click.echo("starting the local Kafka broker ...")
    broker.start()
    return broker


def _report(outcome: Outcome) -> None:
    """Say which child ended the run or had to be killed; exit 1 if one failed."""
    for ended in outcome.exits:
        if ended.killed:
            click.echo(f"{ended.name} did not stop in time and was killed", err=True)
    unasked = outcome.unasked
    if unasked is not None:
        prefix = "error: " if unasked.code else ""
        click.echo(f"{prefix}{unasked.name} exited on its own with code {unasked.code}", err=True)
    if outcome.failed is not None:
        sys.exit(1)


@click.command()
@click.argument("source")
@click.argument("payload", required=False, type=click.File("rb"), default=None)
@click.option("--event-id", help="Event id (default: a new random one).")
@click.option("--type", "event_type", default="demo.event", show_default=True, help="Event type.")
@click.option(
    "--url",
    help="The ingress's base URL, or the full .../webhooks/SOURCE URL (default http://localhost:<ingress.port>).",
)
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
    from hookstream.devtools import local_ingress, send_one, webhook_url

    try:
        target = webhook_url(url or local_ingress(settings), source)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--url'") from None
    body = payload.read() if payload else None
    status, answer = send_one(settings, source, body, event_id, event_type, target)
    click.echo(f"{status} {answer}")
    if status >= 300:
        sys.exit(1)


@click.command()
@click.argument("scheme", type=click.Choice(["discord", "sendgrid"]))
def keygen(scheme: str) -> None:
    """A key pair to try a public-key SCHEME locally: public_keys and signing_key, as JSON."""
    import json

    from hookstream.devtools import new_keypair_config

    click.echo(json.dumps(new_keypair_config(scheme), indent=2))


@click.command()
@click.option("--events", "count", default=200, show_default=True, help="How many distinct events.")
@click.option("--duplicates", default=0.2, show_default=True, help="Share of events sent twice.")
@click.option(
    "--fail-rate", default=0.0, show_default=True, help="Share of deliveries the demo sink fails."
)
@click.option("--source", default="demo", show_default=True)
@click.option("--wait", default=60.0, show_default=True, help="Seconds to wait for deliveries.")
@config_option_with_file
def demo(
    settings: Settings,
    config_file: ConfigFile,
    count: int,
    duplicates: float,
    fail_rate: float,
    source: str,
    wait: float,
) -> None:
    """A burst of signed events through the running pipeline, and what became of them."""
    from hookstream.devtools import run_demo

    report = run_demo(settings, source, count, duplicates, fail_rate, wait, _echo_progress)
    for key, value in report.counts.items():
        click.echo(f"{key:>16}: {value}")
    _echo_undelivered(report)
    _echo_sample(report, config_file)


def _echo_progress(progress: Progress) -> None:
    click.echo(
        f"waiting: {progress.delivered} of {progress.expected} delivered"
        f" ({progress.elapsed:.0f}s of --wait {progress.wait:g}s)",
        err=True,
    )


def _echo_undelivered(report: DemoReport) -> None:
    """Where each event the sink did not get is, so the numbers add up."""
    missing = sum(len(ids) for ids in report.undelivered.values())
    click.echo(f"{'undelivered':>16}: {missing} of {report.events} events")
    for place, ids in report.undelivered.items():
        shown = ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")
        click.echo(f"{'':>18}{len(ids)} {place} ({shown})")


def _echo_sample(report: DemoReport, config_file: ConfigFile) -> None:
    """One event id to follow, with the commands that show its history and trace."""
    if report.sample is None:
        return
    trail = report.trails.get(report.sample)
    state = f"{trail.state}, {trail.attempts} attempt(s)" if trail else "not seen by the worker"
    option = f" --config {config_file.path}" if config_file.given else ""
    click.echo(f"{'sample event':>16}: {report.sample} ({state})")
    click.echo(f"{'':>18}hookstream events show {report.sample}{option}")
    if trail is not None and trail.trace_id:
        click.echo(
            f"{'':>18}trace {trail.trace_id}: {JAEGER_UI}/trace/{trail.trace_id}"
            " (Jaeger, when traces are exported)"
        )
