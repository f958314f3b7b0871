"""`hookstream lanes [list|release SOURCE ENTITY]`: entities whose lane is blocked."""

from __future__ import annotations

import time
from pathlib import Path

import click

from hookstream.cli.options import (
    config_option,
    echo_json,
    exits_on_errors,
    json_option,
    operator,
)
from hookstream.config import Settings


@click.group(invoke_without_command=True)
@json_option("Print a JSON array (as `lanes list --json`).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file, for `lanes` alone (as `lanes list --config`).",
)
@click.pass_context
def lanes(context: click.Context, as_json: bool, config_path: Path | None) -> None:
    """Blocked lanes (ordering: entity): by which event, how many parked; release."""
    if context.invoked_subcommand is None:
        context.invoke(lanes_list, as_json=as_json, config_path=config_path)


@lanes.command("list")
@json_option("Print a JSON array.")
@config_option
def lanes_list(settings: Settings, as_json: bool = False) -> None:
    """Entities whose later events wait behind one in a retry tier or the DLQ."""
    from hookstream.ops.lanes import blocked_lanes

    with exits_on_errors():
        found = blocked_lanes(settings)
    now = time.time()
    if as_json:
        echo_json([lane.summary(now) for lane in found])
        return
    if not found:
        click.echo("no blocked lanes")
        return
    for lane in found:
        s = lane.summary(now)
        click.echo(
            f"{s['source']:10} {s['entity']:24} {s['cause']:9} blocked_by={s['blocked_by'] or '-'}"
            f"  parked={s['parked']}  for {s['blocked_seconds']:.0f}s"
        )


@lanes.command("release")
@click.argument("source")
@click.argument("entity")
@json_option()
@config_option
def lanes_release(settings: Settings, source: str, entity: str, as_json: bool) -> None:
    """Let a lane held behind a dead-lettered event move on (the event stays in the DLQ)."""
    from hookstream.ops.audit import record_operator_action
    from hookstream.ops.lanes import release

    with exits_on_errors():
        lane = release(settings, source, entity)
        record_operator_action(
            settings, operator(), "release", f"{source}/{entity}", blocked_by=lane.state.blocked_by
        )
    if as_json:
        echo_json({**lane.summary(time.time()), "released": True})
        return
    click.echo(
        f"released {source}/{entity}: {lane.state.parked} parked event(s) follow; "
        f"{lane.state.blocked_by} stays in the DLQ"
    )
