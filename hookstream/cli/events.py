"""`hookstream events show`: the audit trail of one event."""

from __future__ import annotations

import json
import sys

import click

from hookstream.cli.options import config_option, echo_json, json_option
from hookstream.config import Settings

# What a step line shows besides its kind and time.
_STEP_FRAME = ("event_id", "source", "kind", "at", "trace_id")


@click.group()
def events() -> None:
    """The audit trail of events."""


@events.command("show")
@click.argument("event_id")
@click.option("--source", help="The source, if the id is not unique across sources.")
@json_option()
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
        echo_json(summary)
        return
    click.echo(
        f"event {event_id} ({summary['source']}): {summary['state']}, {summary['attempts']} attempt(s)"
    )
    click.echo(f"trace {summary['trace_id']}")
    for step in summary["history"]:
        extra = {k: v for k, v in step.items() if k not in _STEP_FRAME and v is not None}
        click.echo(f"  {step['at']}  {step['kind']:16} {json.dumps(extra, ensure_ascii=False)}")
