"""The console's users file and settings: every mistake is a config error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookstream.config import load_settings
from hookstream.core.access import Role, hash_password, hash_token
from hookstream.errors import ConfigError
from hookstream.ops.console.app import session_key
from hookstream.ops.console.users import load_credentials

PASSWORD_HASH = hash_password("pw", b"0123456789abcdef")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "users.yaml"
    path.write_text(text)
    return path


def test_users_and_tokens_load_with_their_roles(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
users:
  - {{name: alice, role: operator, password: "{PASSWORD_HASH}"}}
tokens:
  - {{name: ci, role: read_only, token: "{hash_token("t")}"}}
""",
    )
    alice, ci = load_credentials(path)
    assert (alice.name, alice.role, alice.is_token) == ("alice", Role.OPERATOR, False)
    assert (ci.name, ci.role, ci.is_token) == ("ci", Role.READ_ONLY, True)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("users: []\n", "names no user"),
        (f'users: [{{name: a, role: admin, password: "{PASSWORD_HASH}"}}]\n', "role must be"),
        ("users: [{name: a, role: operator, password: hunter2}]\n", "scrypt"),
        (f'tokens: [{{name: a, role: operator, token: "{PASSWORD_HASH}"}}]\n', "sha256"),
        ("users: [{role: operator}]\n", "needs a name"),
        (
            f'users: [{{name: a, role: operator, password: "{PASSWORD_HASH}"}},'
            f' {{name: a, role: read_only, password: "{PASSWORD_HASH}"}}]\n',
            "used twice",
        ),
        ("users: [\n", "not valid YAML"),
    ],
)
def test_a_bad_users_file_names_the_key_and_the_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        load_credentials(write(tmp_path, text))
    assert "console.users_file" in str(raised.value)


def test_the_console_never_runs_without_users(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never runs open"):
        load_credentials(None)
    with pytest.raises(ConfigError, match="cannot read"):
        load_credentials(tmp_path / "missing.yaml")


def test_console_settings_resolve_paths_and_the_session_secret(tmp_path: Path) -> None:
    config = tmp_path / "hookstream.yaml"
    config.write_text(
        "console: {users_file: users.yaml, session_secret_env: CONSOLE_KEY,"
        " jaeger_url: 'http://jaeger:16686/'}\n"
    )
    settings = load_settings(config, environ={"CONSOLE_KEY": "k" * 32})
    assert settings.console.users_file == tmp_path / "users.yaml"
    assert settings.console.session_secret is not None
    assert settings.console.session_secret.get_secret_value() == "k" * 32
    assert settings.console.jaeger_url == "http://jaeger:16686"
    # The ingress and worker share the file without the variable; the console requires it.
    shared = load_settings(config, environ={})
    assert shared.console.session_secret is None
    with pytest.raises(ConfigError, match="CONSOLE_KEY") as raised:
        shared.console.require_session_secret()
    assert raised.value.key == "console.session_secret_env"
    with pytest.raises(ConfigError, match="CONSOLE_KEY"):
        session_key(shared)
    config.write_text("console: {jaeger_url: jaeger}\n")
    with pytest.raises(ConfigError, match="absolute http") as raised:
        load_settings(config, environ={})
    assert raised.value.key == "console.jaeger_url"
