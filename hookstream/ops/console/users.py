"""The console's users file: who may sign in, with which password hash or token, as what.

```yaml
users:
  - {name: alice, role: operator, password: "scrypt$16384$8$1$<salt>$<hash>"}
  - {name: bob, role: read_only, password: "scrypt$..."}
tokens:
  - {name: ci, role: read_only, token: "sha256$<hex>"}
```

`hookstream console hash` prints a password's or token's hash. The file is typically a
mounted Kubernetes Secret; it is read once at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hookstream.core.access import AccessError, Credential, Role, check_hash
from hookstream.errors import ConfigError

KEY = "console.users_file"


def load_credentials(path: Path | None) -> tuple[Credential, ...]:
    """Every credential in the users file; a ConfigError naming the entry when one is bad.
    The console refuses to start without one: it never runs open."""
    if path is None:
        raise ConfigError(KEY, "the console needs a users file: it never runs open")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(KEY, f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(KEY, f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(KEY, f"{path}: the top level must be a mapping")
    found: list[Credential] = []
    for section, field in (("users", "password"), ("tokens", "token")):
        for n, entry in enumerate(data.get(section) or []):
            found.append(_credential(entry, f"{path}: {section}[{n}]", field))
    if not found:
        raise ConfigError(KEY, f"{path} names no user and no token")
    names = [c.name for c in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(KEY, f"{path}: names used twice: {', '.join(duplicates)}")
    return tuple(found)


def _credential(entry: Any, where: str, field: str) -> Credential:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError(KEY, f"{where} needs a name")
    try:
        role = Role(str(entry.get("role", "")))
    except ValueError:
        raise ConfigError(KEY, f"{where}: role must be read_only or operator") from None
    secret = entry.get(field)
    if not isinstance(secret, str):
        raise ConfigError(KEY, f"{where}: no {field} hash")
    try:
        check_hash(secret)
    except AccessError as exc:
        raise ConfigError(KEY, f"{where}: {exc}") from None
    if (field == "token") != secret.startswith("sha256$"):
        raise ConfigError(
            KEY, f"{where}: a {field} takes a {'sha256' if field == 'token' else 'scrypt'} hash"
        )
    return Credential(entry["name"], role, secret)
