"""What every command shares: `--config` (settings loaded once, here), error exits, times."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click

from hookstream.config import config_path, load_settings
from hookstream.core.durations import parse_duration
from hookstream.errors import ConfigError, HookstreamError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ConfigFile:
    """The file the settings came from (None: built-in defaults); `given` if --config named it."""

    path: Path | None
    given: bool

    def argv(self) -> list[str]:
        """`--config PATH` for a child process, so it reads exactly this file."""
        return ["--config", str(self.path)] if self.path is not None else []


@contextlib.contextmanager
def exits_on_errors() -> Iterator[None]:
    """A config error exits 2, any other hookstream error exits 1, each with one line."""
    try:
        yield
    except ConfigError as exc:
        click.echo(f"config error: {exc}", err=True)
        sys.exit(2)
    except HookstreamError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def operator() -> str:
    """Who acts from this shell, for the audit trail: `cli:` and the login name."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _with_settings(command: F, *, pass_file: bool) -> F:
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Config file (default $HOOKSTREAM_CONFIG, else ./hookstream.yaml, else built-in defaults).",
    )
    @functools.wraps(command)
    def wrapper(*args: Any, config_path: Path | None, **kwargs: Any) -> Any:
        with exits_on_errors():
            settings = load_settings(config_path)
            if pass_file:
                kwargs["config_file"] = _loaded_file(config_path)
            return command(*args, settings=settings, **kwargs)

    return wrapper  # type: ignore[return-value]


def _loaded_file(given: Path | None) -> ConfigFile:
    path = config_path(given, os.environ)
    return ConfigFile(path.resolve() if path is not None else None, given is not None)


def config_option(command: F) -> F:
    """`--config PATH` on a command; the loaded Settings arrive as `settings`."""
    return _with_settings(command, pass_file=False)


def config_option_with_file(command: F) -> F:
    """As `config_option`, and the file they came from arrives as `config_file`."""
    return _with_settings(command, pass_file=True)


def json_option(help_text: str = "Print JSON.") -> Callable[[F], F]:
    """`--json`, arriving as `as_json`."""
    return click.option("--json", "as_json", is_flag=True, help=help_text)


def echo_json(value: Any) -> None:
    """Print one JSON value (object or array), indented, UTF-8 as is."""
    click.echo(json.dumps(value, indent=2, ensure_ascii=False))


def parse_when(value: str | None) -> datetime | None:
    """An ISO 8601 time, or a duration meaning that long ago (``2h``, ``7d``)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither an ISO time nor a duration like 2h"
        ) from None
