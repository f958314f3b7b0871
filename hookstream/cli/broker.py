"""`hookstream kafka start|stop|status`: the local single-node broker."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from hookstream.cli.options import config_option, json_option
from hookstream.config import Settings
from hookstream.errors import BrokerError


def local_kafka(settings: Settings, **options: Any) -> Any:
    """The local broker whose data lives under the config's data dir."""
    from hookstream.broker import LocalKafka

    return LocalKafka(Path(settings.data_dir) / "kafka", **options)


def _scram_users(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[Any]:
    from hookstream.broker.local import ScramUser

    try:
        return [ScramUser.parse(value) for value in values]
    except BrokerError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
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
@json_option()
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
