"""`hookstream console`: the operator web console; `hookstream console hash`: users-file hashes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets

import click

from hookstream.cli.options import config_option
from hookstream.config import Settings


@click.group(invoke_without_command=True)
@click.option("--port", type=int, help="Listen on this port (default console.port).")
@click.pass_context
@config_option
def console(ctx: click.Context, settings: Settings, port: int | None) -> None:
    """The operator web console (sign-in required); `console hash` makes users-file hashes."""
    if ctx.invoked_subcommand is not None:
        return
    from hookstream.ops.console.app import serve
    from hookstream.ops.console.users import load_credentials
    from hookstream.telemetry import setup_logging, setup_tracing

    if port is not None:
        settings = settings.model_copy(
            update={"console": settings.console.model_copy(update={"port": port})}
        )
    settings.console.require_session_secret()
    credentials = load_credentials(settings.console.users_file)
    setup_logging()
    setup_tracing("hookstream-console", os.environ)  # a redrive's span joins the event's trace
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, credentials))


@console.command("hash")
@click.option(
    "--token", "as_token", is_flag=True, help="Hash an API token (sha256), not a password."
)
@click.option("--new-token", is_flag=True, help="Make a random token, print it and its hash.")
def console_hash(as_token: bool, new_token: bool) -> None:
    """Print the users-file hash of a password (read from stdin or prompted), or of a token."""
    from hookstream.core.access import hash_password, hash_token

    if new_token:
        token = secrets.token_urlsafe(32)
        click.echo(f"token: {token}")
        click.echo(f"hash:  {hash_token(token)}")
        return
    secret = click.prompt("Token" if as_token else "Password", hide_input=True, err=True)
    click.echo(hash_token(secret) if as_token else hash_password(secret, os.urandom(16)))
