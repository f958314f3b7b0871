"""`hookstream topics create|describe`."""

from __future__ import annotations

import click

from hookstream.cli.options import config_option, echo_json, json_option
from hookstream.config import Settings


@click.group()
def topics() -> None:
    """The events, retry, DLQ and internal topics."""


@topics.command("create")
@config_option
def topics_create(settings: Settings) -> None:
    """Create every topic the config implies (idempotent)."""
    from hookstream.kafka.admin import create_topics

    for state in create_topics(settings):
        verb = "created" if state.created else "exists "
        click.echo(
            f"{verb} {state.spec.name} ({state.partitions} partitions) - {state.spec.purpose}"
        )


@topics.command("describe")
@json_option()
@config_option
def topics_describe(settings: Settings, as_json: bool) -> None:
    """Show the topics and whether they exist."""
    from hookstream.kafka.admin import describe_topics

    states = describe_topics(settings)
    if as_json:
        described = [
            {
                "name": s.spec.name,
                "exists": s.exists,
                "partitions": s.partitions,
                "expected_partitions": s.spec.partitions,
                "config": s.spec.config,
                "purpose": s.spec.purpose,
            }
            for s in states
        ]
        echo_json(described)
        return
    for s in states:
        shown = f"{s.partitions} partitions" if s.exists else "missing"
        click.echo(f"{s.spec.name:40} {shown:15} {s.spec.purpose}")
