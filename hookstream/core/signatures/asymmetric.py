"""Public-key schemes: the sender signs with a private key, the gateway holds only the
public one, so nothing it stores could forge a request.

- Discord (interactions and webhook events): ``X-Signature-Ed25519: <hex>``, Ed25519
  over ``{X-Signature-Timestamp}{body}``; the application's public key, hex.
- SendGrid event webhook: ``X-Twilio-Email-Event-Webhook-Signature: <base64 DER>``,
  ECDSA P-256 with SHA-256 over ``{X-Twilio-Email-Event-Webhook-Timestamp}{body}``;
  the verification key as SendGrid shows it (base64 DER SubjectPublicKeyInfo), or PEM.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hookstream.core.signatures.base import (
    PublicKey,
    Reason,
    VerificationError,
    Verified,
    active_public_keys,
)
from hookstream.core.signatures.parsing import (
    b64decode_strict,
    check_timestamp,
    header_text,
    hexdecode_strict,
)

DISCORD_SIGNATURE = "X-Signature-Ed25519"
DISCORD_TIMESTAMP = "X-Signature-Timestamp"
SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
_ECDSA = ec.ECDSA(hashes.SHA256())


def ed25519_public_key(text: str) -> Ed25519PublicKey:
    """A Discord application public key: 64 hex digits. ValueError otherwise."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError("an Ed25519 public key must be 64 hex digits") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key must be 64 hex digits")
    return Ed25519PublicKey.from_public_bytes(raw)


def p256_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """A SendGrid verification key: base64 DER (as SendGrid shows it) or PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm):
        raise ValueError("not a base64 DER or PEM public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("the key must be an ECDSA P-256 public key")
    return key


def _signed(headers: Mapping[str, str], signature: str, timestamp: str) -> tuple[str, str]:
    raw = header_text(headers, signature)
    if raw is None:
        raise VerificationError(Reason.MISSING_SIGNATURE, f"header {signature} is required")
    stamp = header_text(headers, timestamp)
    if stamp is None:
        raise VerificationError(Reason.MISSING_TIMESTAMP, f"header {timestamp} is required")
    return raw.strip(), stamp


@dataclass(frozen=True, slots=True)
class DiscordVerifier:
    """Ed25519 over the timestamp and the body, any active key."""

    keys: tuple[PublicKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw, stamp = _signed(headers, DISCORD_SIGNATURE, DISCORD_TIMESTAMP)
        signature = hexdecode_strict(raw)
        if len(signature) != 64:
            raise VerificationError(Reason.MALFORMED_SIGNATURE, "an Ed25519 signature is 64 bytes")
        timestamp = check_timestamp(stamp, now, self.tolerance)
        content = stamp.encode() + body
        if not _any_verifies(active_public_keys(self.keys, now), signature, content):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)


@dataclass(frozen=True, slots=True)
class SendGridVerifier:
    """ECDSA P-256 / SHA-256 over the timestamp and the body, any active key."""

    keys: tuple[PublicKey, ...]
    tolerance: float

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float, query: str = ""
    ) -> Verified:
        raw, stamp = _signed(headers, SENDGRID_SIGNATURE, SENDGRID_TIMESTAMP)
        signature = b64decode_strict(raw)
        timestamp = check_timestamp(stamp, now, self.tolerance)
        content = stamp.encode() + body
        if not _any_verifies(active_public_keys(self.keys, now), signature, content):
            raise VerificationError(Reason.BAD_SIGNATURE)
        return Verified(timestamp)


def _any_verifies(keys: Sequence[object], signature: bytes, content: bytes) -> bool:
    """True if one key accepts the signature; a garbled signature is just a bad one."""
    for key in keys:
        try:
            if isinstance(key, Ed25519PublicKey):
                key.verify(signature, content)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(signature, content, _ECDSA)
            else:
                continue
        except (InvalidSignature, ValueError):
            continue
        return True
    return False


# --- signing, for `hookstream send` and tests: the sender's side ---


def ed25519_signing_key(text: str) -> Ed25519PrivateKey:
    """A private key as `new_keypair` prints it: the 32-byte seed, hex."""
    try:
        raw = bytes.fromhex(text.strip())
        return Ed25519PrivateKey.from_private_bytes(raw)
    except ValueError:
        raise ValueError("an Ed25519 signing key must be 64 hex digits (the seed)") from None


def p256_signing_key(text: str) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key: base64 DER PKCS#8 (as `new_keypair` prints it) or PEM."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = serialization.load_der_private_key(
                base64.b64decode(text, validate=True), password=None
            )
    except (ValueError, TypeError, binascii.Error, UnsupportedAlgorithm):
        raise ValueError("not a base64 DER or PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the signing key must be an ECDSA P-256 private key")
    return key


def sign_discord(key: Ed25519PrivateKey, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers Discord sends with `body`."""
    stamp = str(timestamp)
    return {
        DISCORD_SIGNATURE: key.sign(stamp.encode() + body).hex(),
        DISCORD_TIMESTAMP: stamp,
    }


def sign_sendgrid(key: ec.EllipticCurvePrivateKey, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers SendGrid's event webhook sends with `body`."""
    stamp = str(timestamp)
    signature = key.sign(stamp.encode() + body, _ECDSA)
    return {
        SENDGRID_SIGNATURE: base64.b64encode(signature).decode(),
        SENDGRID_TIMESTAMP: stamp,
    }


def new_keypair(scheme: str) -> tuple[str, str]:
    """(public key for `public_keys`, private key for `signing_key`), for trying a
    public-key source locally."""
    if scheme == "discord":
        private = Ed25519PrivateKey.generate()
        seed = private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        public = private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return public.hex(), seed.hex()
    if scheme == "sendgrid":
        ec_private = ec.generate_private_key(ec.SECP256R1())
        der = ec_private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pkcs8 = ec_private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return base64.b64encode(der).decode(), base64.b64encode(pkcs8).decode()
    raise ValueError(f"scheme {scheme!r} has no key pair (discord and sendgrid do)")
