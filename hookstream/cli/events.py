"""`hookstream events show|list`: the audit trail of one event, and a search of them all.

Both read the event index (hookstream/ops/index.py): a local SQLite file, caught up with the
topics before each answer, so a lookup costs what the topics gained since the last one. The
first use builds it from the topics; `--no-index` reads the audit topic instead.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from hookstream.cli.options import config_option, echo_json, json_option, parse_when
from hookstream.config import Settings

# What a step line shows besides its kind and time.
_STEP_FRAME = ("event_id", "source", "kind", "at", "trace_id")
STATES = ("accepted", "processing", "retrying", "parked", "delivered", "dead_lettered")

no_index_option = click.option(
    "--no-index", is_flag=True, help="Read the topics instead of the event index."
)


@click.group()
def events() -> None:
    """The audit trail of events, and a search of them."""


@events.command("show")
@click.argument("event_id")
@click.option("--source", help="The source, if the id is not unique across sources.")
@no_index_option
@json_option()
@config_option
def events_show(
    settings: Settings, event_id: str, source: str | None, no_index: bool, as_json: bool
) -> None:
    """Received, each attempt with outcome and error, final state, trace id."""
    summary = _lookup(settings, event_id, source, no_index)
    if summary is None:
        click.echo(f"no audit trail for {event_id}", err=True)
        sys.exit(1)
    if as_json:
        echo_json(summary)
        return
    click.echo(
        f"event {event_id} ({summary['source']}): {summary['state']}, {summary['attempts']} attempt(s)"
    )
    click.echo(f"trace {summary['trace_id']}")
    lane = summary.get("lane")
    if lane and lane["state"] == "parked":
        click.echo(f"lane: parked, behind {lane.get('behind')}")
    elif lane:
        click.echo(
            f"lane: blocking its entity's later events ({lane.get('cause')}) since {lane.get('since')}"
        )
    for step in summary["history"]:
        extra = {k: v for k, v in step.items() if k not in _STEP_FRAME and v is not None}
        click.echo(f"  {step['at']}  {step['kind']:16} {json.dumps(extra, ensure_ascii=False)}")


def _lookup(
    settings: Settings, event_id: str, source: str | None, no_index: bool
) -> dict[str, Any] | None:
    from hookstream.ops.audit import event_history, summarize

    if no_index:
        steps = event_history(settings, event_id, source)
        return summarize(event_id, steps) if steps else None
    from hookstream.ops.index import current_index

    with current_index(settings) as index:
        found = index.get(event_id, source)
    if not found:
        return None
    if len(found) == 1:
        return found[0].show()
    # The same id from several sources: one trail, as the topic scan gives it.
    return summarize(event_id, sorted((s for e in found for s in e.history()), key=_at))


def _at(step: dict[str, Any]) -> float:
    return float(step.get("at", 0) or 0)


@events.command("list")
@click.option("--source", help="Only this source.")
@click.option("--type", "event_type", help="Only this event type (glob: invoice.*).")
@click.option("--entity", help="Only this entity id.")
@click.option("--state", type=click.Choice(STATES), help="Only events in this state.")
@click.option("--destination", help="Only events attempted at this destination.")
@click.option("--since", help="Received at or after (ISO time, or a duration ago: 2h).")
@click.option("--until", help="Received before (ISO time, or a duration ago).")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--cursor", help="Continue after the page that printed this cursor.")
@json_option("Print a JSON array (the next page's cursor goes to stderr).")
@config_option
def events_list(
    settings: Settings,
    source: str | None,
    event_type: str | None,
    entity: str | None,
    state: str | None,
    destination: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    cursor: str | None,
    as_json: bool,
) -> None:
    """Search the event index, newest first."""
    from hookstream.ops.index import EventFilter, current_index

    when_since, when_until = parse_when(since), parse_when(until)
    wanted = EventFilter(
        source=source,
        event_type=event_type,
        entity_id=entity,
        state=state,
        destination=destination,
        since=when_since.timestamp() if when_since else None,
        until=when_until.timestamp() if when_until else None,
    )
    with current_index(settings) as index:
        try:
            page = index.search(wanted, limit=limit, cursor=cursor)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--cursor") from None
    if as_json:
        echo_json([e.summary() for e in page.items])
        if page.next_cursor:
            click.echo(f"next: --cursor {page.next_cursor}", err=True)
        return
    if not page.items:
        click.echo("no events match")
        return
    for e in page.items:
        s = e.summary()
        click.echo(
            f"{s['received_at'][:19]}  {e.source:10} {e.event_id:30} {e.event_type or '-':20}"
            f" {e.state:13} attempts={e.attempts}  {e.last_error or ''}"
        )
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}")
