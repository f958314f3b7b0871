"""`hookstream destinations list|pause|resume`."""

from __future__ import annotations

from typing import Any

import click

from hookstream.cli.options import (
    config_option,
    echo_json,
    exits_on_errors,
    json_option,
    operator,
)
from hookstream.config import Settings


@click.group()
def destinations() -> None:
    """Destination state (breaker, rate, in flight, last error); pause and resume."""


@destinations.command("list")
@json_option("Print a JSON array, one object per destination.")
@config_option
def destinations_list(settings: Settings, as_json: bool) -> None:
    """Each destination as the live workers report it."""
    from hookstream.ops.destinations import destination_status

    with exits_on_errors():
        rows = destination_status(settings)
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no destinations configured")
        return
    click.echo(
        f"{'DESTINATION':20} {'STATE':10} {'WORKERS':>7} {'IN FLIGHT':>9} {'RATE':>12}  LAST ERROR"
    )
    for row in rows:
        click.echo(
            f"{row['destination']:20} {row['state']:10} {row['workers']:>7} {row['in_flight']:>9} "
            f"{_rate(row):>12}  {row['last_error'] or '-'}"
        )


def _rate(row: dict[str, Any]) -> str:
    limit = row["rate_limit"]
    return f"{row['rate']:g}/s" + (f" of {limit:g}" if limit else "")


@destinations.command("pause")
@click.argument("name")
@json_option()
@config_option
def destinations_pause(settings: Settings, name: str, as_json: bool) -> None:
    """Stop delivering to NAME on every worker; its events wait (survives restarts)."""
    _set(settings, name, True, as_json)


@destinations.command("resume")
@click.argument("name")
@json_option()
@config_option
def destinations_resume(settings: Settings, name: str, as_json: bool) -> None:
    """Deliver to NAME again; the events that waited go in order."""
    _set(settings, name, False, as_json)


def _set(settings: Settings, name: str, paused: bool, as_json: bool) -> None:
    from hookstream.ops.audit import record_operator_action
    from hookstream.ops.destinations import set_paused

    with exits_on_errors():
        pause = set_paused(settings, name, paused)
        record_operator_action(settings, operator(), "pause" if paused else "resume", name)
    if as_json:
        echo_json({"destination": name, "paused": pause.paused, "at": pause.at})
    else:
        click.echo(
            f"{name} {'paused' if paused else 'resumed'}: every worker applies it within seconds"
        )
