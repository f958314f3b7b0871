"""Where the signature is checked: one verifier per scheme, every failure one error type.

Verifiers are pure: headers, raw body and `now` in; the verified timestamp out, or a
VerificationError with a reason code. Header lookups must be case-insensitive, so
callers pass a case-insensitive mapping (aiohttp's request headers are one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from hookstream.config import SourceSettings
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
    NO_ACTIVE_SECRET = "no_active_secret"


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
        return self.not_after is None or now <= self.not_after


@dataclass(frozen=True, slots=True)
class Verified:
    """What a successful check established."""

    timestamp: float | None  # the signed send time, where the scheme signs one


class Verifier(Protocol):
    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified: ...


def active_keys(keys: Sequence[SigningKey], now: float) -> list[bytes]:
    """The secrets that may verify at `now`; none is an error of its own."""
    usable = [k.key for k in keys if k.active(now)]
    if not usable:
        raise VerificationError(Reason.NO_ACTIVE_SECRET, "every configured secret has expired")
    return usable


def check_timestamp(raw: str | None, now: float, tolerance: float) -> float:
    """Parse a signed Unix timestamp and refuse it outside `now ± tolerance`."""
    if raw is None or raw == "":
        raise VerificationError(Reason.MISSING_TIMESTAMP)
    try:
        timestamp = float(int(raw.strip()))
    except ValueError:
        raise VerificationError(Reason.MALFORMED_TIMESTAMP, "timestamp is not an integer") from None
    if timestamp < now - tolerance:
        raise VerificationError(Reason.STALE_TIMESTAMP, "timestamp is older than the tolerance")
    if timestamp > now + tolerance:
        raise VerificationError(Reason.FUTURE_TIMESTAMP, "timestamp is too far in the future")
    return timestamp


def any_matches(expected: Sequence[bytes], offered: Sequence[bytes]) -> bool:
    """Constant-time comparison of every offered signature against every expected one."""
    found = False
    for want in expected:
        for got in offered:
            found |= hmac.compare_digest(want, got)
    return found


def b64decode_strict(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(Reason.MALFORMED_SIGNATURE, "signature is not valid base64") from None


def hexdecode_strict(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise VerificationError(Reason.MALFORMED_SIGNATURE, "signature is not valid hex") from None


# --- Standard Webhooks (and Svix, which uses the same scheme under svix-* headers) ---


def standard_secret(secret: str) -> bytes:
    """``whsec_`` + base64 is the Standard Webhooks form of a secret."""
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a Standard Webhooks secret must be whsec_ followed by base64") from None


def sign_standard(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one key (used for delivery too)."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class StandardVerifier:
    keys: tuple[SigningKey, ...]
    tolerance: float

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        prefix = "webhook" if "webhook-signature" in headers else "svix"
        signature = headers.get(f"{prefix}-signature")
        msg_id = headers.get(f"{prefix}-id")
        if not signature or not msg_id:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"{prefix}-id and {prefix}-signature are required")
        timestamp = check_timestamp(headers.get(f"{prefix}-timestamp"), now, self.tolerance)
        offered = []
        for part in signature.split(" "):
            version, sep, value = part.partition(",")
            if not sep:
                raise VerificationError(Reason.MALFORMED_SIGNATURE, "signature entries are version,base64")
            if version == "v1":
                offered.append(b64decode_strict(value))
        if not offered:
            raise VerificationError(Reason.MALFORMED_SIGNATURE, "no v1 signature offered")
        content = f"{msg_id}.{int(timestamp)}.".encode() + body
        expected = [hmac.new(k, content, hashlib.sha256).digest() for k in active_keys(self.keys, now)]
        if not any_matches(expected, offered):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)


# --- generic HMAC ---

_DIGESTS: dict[str, Callable[[], hashlib._Hash]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


@dataclass(frozen=True, slots=True)
class HmacVerifier:
    keys: tuple[SigningKey, ...]
    tolerance: float
    header: str
    algorithm: str
    encoding: str
    prefix: str
    timestamp_header: str | None
    signed_content: str

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> Verified:
        raw = headers.get(self.header)
        if not raw:
            raise VerificationError(Reason.MISSING_SIGNATURE, f"header {self.header} is required")
        raw = raw.strip()
        if self.prefix and not raw.startswith(self.prefix):
            raise VerificationError(Reason.MALFORMED_SIGNATURE, f"signature must start with {self.prefix!r}")
        value = raw[len(self.prefix) :]
        offered = hexdecode_strict(value) if self.encoding == "hex" else b64decode_strict(value)
        timestamp = None
        stamp_text = ""
        if self.timestamp_header:
            timestamp = check_timestamp(headers.get(self.timestamp_header), now, self.tolerance)
            stamp_text = str(int(timestamp))
        content = self.signed_bytes(body, stamp_text)
        digest = _DIGESTS[self.algorithm]
        expected = [hmac.new(k, content, digest).digest() for k in active_keys(self.keys, now)]
        if not any_matches(expected, [offered]):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)

    def signed_bytes(self, body: bytes, timestamp: str) -> bytes:
        """The signed content: the template with the timestamp and the raw body filled in."""
        head, _, tail = self.signed_content.partition("{body}")
        return head.replace("{timestamp}", timestamp).encode() + body + tail.replace("{timestamp}", timestamp).encode()


# --- construction from config ---


def _keys(source: SourceSettings, decode: Callable[[str], bytes]) -> tuple[SigningKey, ...]:
    return tuple(
        SigningKey(decode(entry.value.get_secret_value()), entry.not_after) for entry in source.secrets
    )


def _utf8(secret: str) -> bytes:
    return secret.encode()


def build_standard(source: SourceSettings) -> Verifier:
    return StandardVerifier(_keys(source, standard_secret), source.tolerance)


def build_hmac(source: SourceSettings) -> Verifier:
    assert source.header is not None  # enforced by SourceSettings
    template = source.signed_content or ("{timestamp}.{body}" if source.timestamp_header else "{body}")
    return HmacVerifier(
        keys=_keys(source, _utf8),
        tolerance=source.tolerance,
        header=source.header,
        algorithm=source.algorithm,
        encoding=source.encoding,
        prefix=source.prefix,
        timestamp_header=source.timestamp_header,
        signed_content=template,
    )


SCHEMES: dict[str, Callable[[SourceSettings], Verifier]] = {
    "standard": build_standard,
    "hmac": build_hmac,
}


def build_verifier(source: SourceSettings) -> Verifier:
    """The verifier a source's config describes; ValueError if its secrets are unusable."""
    try:
        builder = SCHEMES[source.scheme]
    except KeyError:
        raise ValueError(f"scheme {source.scheme!r} is not supported yet") from None
    return builder(source)


# --- signing, the way each provider signs (for `hookstream send`, tests and benchmarks) ---


def sign_request(
    source: SourceSettings, body: bytes, event_id: str, now: float
) -> dict[str, str]:
    """Headers that make `body` verify for `source`, signed with its first active secret."""
    secrets = [s for s in source.secrets if s.not_after is None or now <= s.not_after]
    if not secrets:
        raise ValueError("the source has no active secret to sign with")
    secret = secrets[0].value.get_secret_value()
    timestamp = int(now)
    if source.scheme == "standard":
        return {
            "webhook-id": event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign_standard(standard_secret(secret), event_id, timestamp, body),
        }
    if source.scheme == "hmac":
        assert source.header is not None
        verifier = build_hmac(source)
        assert isinstance(verifier, HmacVerifier)
        stamp = str(timestamp) if source.timestamp_header else ""
        content = verifier.signed_bytes(body, stamp)
        digest = hmac.new(secret.encode(), content, _DIGESTS[source.algorithm]).digest()
        value = digest.hex() if source.encoding == "hex" else base64.b64encode(digest).decode()
        headers = {source.header: source.prefix + value}
        if source.timestamp_header:
            headers[source.timestamp_header] = stamp
        return headers
    raise ValueError(f"signing for scheme {source.scheme!r} is not supported yet")
