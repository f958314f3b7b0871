"""`hookstream dlq list|show|redrive`: dead-lettered events."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from hookstream.cli.options import config_option, echo_json, json_option, operator, parse_when
from hookstream.config import Settings


@click.group()
def dlq() -> None:
    """Dead-lettered events: list, show, redrive."""


@dlq.command("list")
@click.option("--source", help="Only this source.")
@click.option("--type", "event_type", help="Only this event type (glob).")
@click.option("--since", help="Dead-lettered at or after (ISO time, or a duration ago: 2h).")
@click.option("--no-index", is_flag=True, help="Read the DLQ topic instead of the event index.")
@json_option("Print a JSON array.")
@config_option
def dlq_list(
    settings: Settings,
    source: str | None,
    event_type: str | None,
    since: str | None,
    no_index: bool,
    as_json: bool,
) -> None:
    """Dead-lettered events not yet redriven."""
    from hookstream.ops.dlq import dead_letters, select
    from hookstream.ops.index import current_index

    entries: list[Any]
    when = parse_when(since)
    if no_index:
        entries = select(dead_letters(settings), source=source, event_type=event_type, since=when)
    else:
        with current_index(settings) as index:
            entries = index.dead_letters(
                source=source, event_type=event_type, since=when.timestamp() if when else None
            )
    if as_json:
        echo_json([e.summary() for e in entries])
        return
    if not entries:
        click.echo("the DLQ is empty")
        return
    for e in entries:
        summary = e.summary()
        click.echo(
            f"{summary['dead_lettered_at'][:19]}  {e.source or '?':10} {e.event_id or '(poison)':30} "
            f"{e.event_type or '-':20} attempts={e.attempts}  {e.last_error or ''}"
        )


@dlq.command("show")
@click.argument("event_id")
@json_option()
@config_option
def dlq_show(settings: Settings, event_id: str, as_json: bool) -> None:
    """One dead-lettered event: payload, headers, every attempt's error."""
    from hookstream.ops.dlq import dead_letters, select

    entries = select(dead_letters(settings), event_ids=[event_id])
    if not entries:
        click.echo(f"{event_id} is not in the DLQ", err=True)
        sys.exit(1)
    details = [e.detail() for e in entries]
    if as_json:
        # One entry is an object; an id dead-lettered more than once, an array of them.
        echo_json(details[0] if len(details) == 1 else details)
        return
    for d in details:
        _echo_detail(d)


def _echo_detail(d: dict[str, Any]) -> None:
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
    from hookstream.ops.dlq import dead_letters, select

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
        click.echo(f"redriven: {_redrive_traced(settings, entries)}")
    if missing:
        sys.exit(1)


def _redrive_traced(settings: Settings, entries: list[Any]) -> int:
    """Redrive with span export on: each redrive span joins its event's trace."""
    from opentelemetry import trace

    from hookstream.ops.dlq import redrive
    from hookstream.telemetry import setup_tracing

    setup_tracing("hookstream-cli", os.environ)
    try:
        return redrive(settings, entries, by=operator())
    finally:
        provider = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()  # flush the spans before the process exits
