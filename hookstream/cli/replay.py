"""`hookstream replay`: move a consumer group's committed offsets."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from hookstream.cli.options import config_option, echo_json, json_option, parse_when
from hookstream.config import Settings

if TYPE_CHECKING:
    from hookstream.ops.replay import Move, Target

_TARGETS = "--to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by"


@click.command()
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
@json_option("Print the plan as JSON.")
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

    target = _target(to_earliest, to_latest, to_datetime, to_offset, shift_by)
    moves = ops.plan(settings, group, list(topic_names) or [settings.topics.events], target)
    if as_json:
        echo_json([ops.describe(m) for m in moves])
    else:
        _echo_plan(moves)
    if not execute:
        click.echo("dry run: add --execute to move the offsets", err=True)
        return
    done = 0

    def progress(move: Move) -> None:
        nonlocal done
        done += 1
        click.echo(
            f"moved {move.topic}[{move.partition}] to {move.new} ({done}/{len(moves)})", err=True
        )

    ops.execute(settings, group, moves, reprocess=reprocess, progress=progress)
    mode = "will run again" if reprocess else "already delivered are skipped as duplicates"
    click.echo(f"offsets moved; restart the workers. Replayed events {mode}.")


def _target(
    to_earliest: bool,
    to_latest: bool,
    to_datetime: str | None,
    to_offset: int | None,
    shift_by: int | None,
) -> Target:
    """Exactly one of the target options, as the ops layer's Target."""
    from hookstream.ops.replay import Target

    given = (to_datetime, to_offset, shift_by)
    if sum([to_earliest, to_latest, *(value is not None for value in given)]) != 1:
        raise click.UsageError(f"give exactly one of {_TARGETS}")
    return Target(
        earliest=to_earliest,
        latest=to_latest,
        datetime=parse_when(to_datetime) if to_datetime else None,
        offset=to_offset,
        shift_by=shift_by,
    )


def _echo_plan(moves: list[Move]) -> None:
    for m in moves:
        current = "-" if m.current is None else m.current
        click.echo(f"{m.topic}[{m.partition}]  {current} -> {m.new}  (replays {m.replays})")
    click.echo(f"total records to replay: {sum(m.replays for m in moves)}")
