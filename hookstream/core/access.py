"""Who may use the console and what each role may do (pure).

Passwords are kept as scrypt hashes (`scrypt$n$r$p$salt$hash`, salt and hash in base64),
API tokens as SHA-256 hex digests (`sha256$hex`: a token is random and long, a slow hash
adds nothing). Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from enum import StrEnum

from hookstream.errors import HookstreamError

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


class Role(StrEnum):
    READ_ONLY = "read_only"
    OPERATOR = "operator"


class Action(StrEnum):
    """What a signed-in user may ask for beyond reading."""

    REDRIVE = "redrive"
    PAUSE = "pause"
    RESUME = "resume"
    RELEASE = "release"


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.READ_ONLY: frozenset(),
    Role.OPERATOR: frozenset(Action),
}


class AccessError(HookstreamError):
    """A users file entry that cannot be used."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is signed in, and as what."""

    name: str
    role: Role

    def may(self, action: Action) -> bool:
        return action in _ALLOWED[self.role]


@dataclass(frozen=True, slots=True)
class Credential:
    """One users file entry: a password hash or a token digest, and a role."""

    name: str
    role: Role
    secret_hash: str  # scrypt$... or sha256$...

    @property
    def is_token(self) -> bool:
        return self.secret_hash.startswith("sha256$")


def hash_password(password: str, salt: bytes) -> str:
    """The users-file form of a password (salt: 16 random bytes from the caller)."""
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return "$".join(
        (
            "scrypt",
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        )
    )


def hash_token(token: str) -> str:
    """The users-file form of an API token."""
    return "sha256$" + hashlib.sha256(token.encode()).hexdigest()


def check_hash(secret_hash: str) -> None:
    """AccessError unless `secret_hash` is one this module can verify."""
    kind, _, rest = secret_hash.partition("$")
    if kind == "sha256" and len(rest) == 64:
        return
    parts = rest.split("$")
    if kind == "scrypt" and len(parts) == 5 and all(p.isdigit() for p in parts[:3]):
        try:
            base64.b64decode(parts[3], validate=True)
            base64.b64decode(parts[4], validate=True)
            return
        except ValueError:
            pass
    raise AccessError("not a scrypt$n$r$p$salt$hash or sha256$hex hash")


def verify_password(password: str, secret_hash: str) -> bool:
    """Whether `password` matches a scrypt hash; False for anything malformed."""
    parts = secret_hash.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        expected = base64.b64decode(parts[5], validate=True)
        if n > 2**20 or r > 32 or p > 16:
            return False  # refuse hashes that would cost a sign-in seconds of CPU
        actual = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected), maxmem=2**27
        )
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def verify_token(token: str, secret_hash: str) -> bool:
    """Whether `token` matches a sha256 digest."""
    if not secret_hash.startswith("sha256$"):
        return False
    return hmac.compare_digest(hash_token(token).encode(), secret_hash.encode())


def authenticate_password(
    credentials: tuple[Credential, ...], name: str, password: str
) -> Principal | None:
    """The user `name` if `password` is theirs."""
    for credential in credentials:
        if credential.name == name and not credential.is_token:
            if verify_password(password, credential.secret_hash):
                return Principal(credential.name, credential.role)
            return None
    return None


def authenticate_token(credentials: tuple[Credential, ...], token: str) -> Principal | None:
    """Whoever holds `token`."""
    found = None
    for credential in credentials:
        # Every token is compared, so the time taken does not tell which one matched.
        if credential.is_token and verify_token(token, credential.secret_hash):
            found = Principal(credential.name, credential.role)
    return found


def same_token(expected: str | None, given: str | None) -> bool:
    """A CSRF token check: both present and equal, in constant time."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
