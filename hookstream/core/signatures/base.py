"""The vocabulary every verifier shares: the one error type, keys, the verified result."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from hookstream.errors import HookstreamError


class Reason(StrEnum):
    """Why a request is not authentic; the code an HTTP 401 problem carries."""

    MISSING_SIGNATURE = "missing_signature"
    MALFORMED_SIGNATURE = "malformed_signature"
    BAD_SIGNATURE = "bad_signature"
    MISSING_TIMESTAMP = "missing_timestamp"
    MALFORMED_TIMESTAMP = "malformed_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    NO_ACTIVE_SECRET = "no_active_secret"  # noqa: S105 - a reason code, not a secret
    REPLAYED_SIGNATURE = "replayed_signature"


class VerificationError(HookstreamError):
    """The request is not authentic. Carries no secret material."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(detail or reason.value)
        self.reason = reason
        self.detail = detail or reason.value


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A secret as bytes, and when it stops being accepted (epoch seconds)."""

    key: bytes
    not_after: float | None = None

    def active(self, now: float) -> bool:
        """True while the secret may still verify."""
        return self.not_after is None or now <= self.not_after

    def __repr__(self) -> str:  # never show key material, even in a traceback
        return f"SigningKey(key=<{len(self.key)} bytes>, not_after={self.not_after!r})"


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A loaded verification key (Ed25519 or ECDSA), and when it stops being accepted."""

    key: object
    not_after: float | None = None

    def active(self, now: float) -> bool:
        """True while the key may still verify."""
        return self.not_after is None or now <= self.not_after


@dataclass(frozen=True, slots=True)
class Verified:
    """What a successful check established."""

    timestamp: float | None  # the signed send time, where the scheme signs one
    # A single-use value the signature covers instead of the body (Mailgun's token):
    # seen twice with different events, the second is a forgery built from a capture.
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class HandshakeAnswer:
    """What a sender's handshake expects back, instead of an accepted event."""

    status: int
    body: bytes
    content_type: str = "application/json"


class Verifier(Protocol):
    """Checks one request of one source; raises VerificationError, nothing else.

    `query` is the request's query string as received (URL-signing schemes sign it)."""

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified: ...


class KeyMaterialError(ValueError):
    """A configured secret or key cannot be used; `field` names the config key."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def active_keys(keys: Sequence[SigningKey], now: float) -> list[bytes]:
    """The secrets that may verify at `now`; none is an error of its own."""
    usable = [k.key for k in keys if k.active(now)]
    if not usable:
        raise VerificationError(Reason.NO_ACTIVE_SECRET, "every configured secret has expired")
    return usable


def active_public_keys(keys: Sequence[PublicKey], now: float) -> list[object]:
    """The public keys that may verify at `now`; none is an error of its own."""
    usable = [k.key for k in keys if k.active(now)]
    if not usable:
        raise VerificationError(Reason.NO_ACTIVE_SECRET, "every configured public key has expired")
    return usable


def any_matches(expected: Sequence[bytes], offered: Sequence[bytes]) -> bool:
    """Constant-time comparison of every offered signature against every expected one."""
    found = False
    for want in expected:
        for got in offered:
            found |= hmac.compare_digest(want, got)
    return found
