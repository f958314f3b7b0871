"""From a source's config to its verifier and handshake, and signing the way each
provider signs (for `hookstream send`, the demo and tests).

The config layer's side of signatures: `hookstream.core.signatures` verifies with plain
keys and rules; this module reads them out of a source's settings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from hookstream.config import SourceSettings
from hookstream.core.signatures.adyen import AdyenVerifier, adyen_key, sign_adyen
from hookstream.core.signatures.asymmetric import (
    DiscordVerifier,
    SendGridVerifier,
    ed25519_public_key,
    ed25519_signing_key,
    p256_public_key,
    p256_signing_key,
    sign_discord,
    sign_sendgrid,
)
from hookstream.core.signatures.base import (
    HandshakeAnswer,
    KeyMaterialError,
    PublicKey,
    SigningKey,
    Verifier,
)
from hookstream.core.signatures.handshakes import (
    Handshake,
    ZoomValidation,
    discord_deferred,
    discord_ping,
    slack_challenge,
    twitch_challenge,
)
from hookstream.core.signatures.hmac_schemes import (
    BITBUCKET,
    GITHUB,
    INTERCOM,
    SHOPIFY,
    SLACK,
    ZOOM,
    HmacScheme,
    HmacVerifier,
)
from hookstream.core.signatures.linear import (
    LINEAR_HEADER,
    LinearVerifier,
    linear_signature,
    stamp_linear,
)
from hookstream.core.signatures.mailgun import MailgunVerifier, sign_mailgun
from hookstream.core.signatures.paddle import PADDLE_HEADER, PaddleVerifier, sign_paddle
from hookstream.core.signatures.shared_token import GITLAB_HEADER, TokenVerifier
from hookstream.core.signatures.square import SQUARE_HEADER, SquareVerifier, sign_square
from hookstream.core.signatures.standard import StandardVerifier, sign_standard, standard_secret
from hookstream.core.signatures.stripe import STRIPE_HEADER, StripeVerifier, sign_stripe
from hookstream.core.signatures.twilio import (
    IDEMPOTENCY_HEADER,
    TWILIO_HEADER,
    TwilioVerifier,
    sign_twilio,
)
from hookstream.core.signatures.twitch import (
    MESSAGE_ID,
    MESSAGE_SIGNATURE,
    MESSAGE_TIMESTAMP,
    MESSAGE_TYPE,
    SUBSCRIPTION_TYPE,
    TwitchVerifier,
    twitch_signature,
)

# Headers a provider sends beside the signature, naming the event id and type.
_ID_HEADERS: dict[str, tuple[tuple[str, ...], str]] = {
    "github": (("X-GitHub-Delivery",), "X-GitHub-Event"),
    "shopify": (("X-Shopify-Event-Id", "X-Shopify-Webhook-Id"), "X-Shopify-Topic"),
    "bitbucket": (("X-Request-UUID",), "X-Event-Key"),
    "gitlab": (("X-Gitlab-Event-UUID",), "X-Gitlab-Event"),
    "linear": (("Linear-Delivery",), "Linear-Event"),
    "twilio": ((IDEMPOTENCY_HEADER,), ""),
    "twitch": ((MESSAGE_ID,), SUBSCRIPTION_TYPE),
}
_PRESETS: dict[str, HmacScheme] = {
    "github": GITHUB,
    "shopify": SHOPIFY,
    "slack": SLACK,
    "zoom": ZOOM,
    "intercom": INTERCOM,
    "bitbucket": BITBUCKET,
}


def _keys(source: SourceSettings, decode: Callable[[str], bytes]) -> tuple[SigningKey, ...]:
    keys = []
    for index, entry in enumerate(source.secrets):
        try:
            key = decode(entry.value.get_secret_value())
        except ValueError as exc:
            raise KeyMaterialError(f"secrets[{index}]", str(exc)) from None
        keys.append(SigningKey(key, entry.not_after))
    return tuple(keys)


def _public_keys(source: SourceSettings, load: Callable[[str], object]) -> tuple[PublicKey, ...]:
    keys = []
    for index, entry in enumerate(source.public_keys):
        try:
            keys.append(PublicKey(load(entry.value), entry.not_after))
        except ValueError as exc:
            raise KeyMaterialError(f"public_keys[{index}]", str(exc)) from None
    if not keys:
        raise KeyMaterialError("public_keys", "no public key given")
    return tuple(keys)


def _utf8(secret: str) -> bytes:
    return secret.encode()


def _public_url(source: SourceSettings) -> str:
    if source.public_url is None:  # enforced by SourceSettings; kept for the type checker
        raise KeyMaterialError("public_url", f"scheme {source.scheme} needs public_url")
    return source.public_url


def hmac_scheme(source: SourceSettings) -> HmacScheme:
    """The HmacScheme a preset (github, slack, zoom, ...) or generic hmac source uses."""
    if source.scheme in _PRESETS:
        return _PRESETS[source.scheme]
    if source.header is None:  # enforced by SourceSettings; kept for the type checker
        raise ValueError("scheme hmac needs `header`")
    default = "{timestamp}.{body}" if source.timestamp_header else "{body}"
    return HmacScheme(
        header=source.header,
        algorithm=source.algorithm,
        encoding=source.encoding,
        prefix=source.prefix,
        timestamp_header=source.timestamp_header,
        signed_content=source.signed_content or default,
    )


def build_standard(source: SourceSettings) -> Verifier:
    """Standard Webhooks and Svix."""
    return StandardVerifier(_keys(source, standard_secret), source.tolerance)


def build_stripe(source: SourceSettings) -> Verifier:
    """Stripe's ``Stripe-Signature``."""
    return StripeVerifier(_keys(source, _utf8), source.tolerance)


def build_hmac(source: SourceSettings) -> Verifier:
    """GitHub, Shopify, Slack, Zoom, Intercom, Bitbucket and the configurable generic HMAC."""
    return HmacVerifier(hmac_scheme(source), _keys(source, _utf8), source.tolerance)


SCHEMES: dict[str, Callable[[SourceSettings], Verifier]] = {
    "standard": build_standard,
    "stripe": build_stripe,
    "github": build_hmac,
    "shopify": build_hmac,
    "slack": build_hmac,
    "hmac": build_hmac,
    "zoom": build_hmac,
    "intercom": build_hmac,
    "bitbucket": build_hmac,
    "twilio": lambda s: TwilioVerifier.for_url(_keys(s, _utf8), _public_url(s)),
    "square": lambda s: SquareVerifier(_keys(s, _utf8), _public_url(s)),
    "discord": lambda s: DiscordVerifier(_public_keys(s, ed25519_public_key), s.tolerance),
    "sendgrid": lambda s: SendGridVerifier(_public_keys(s, p256_public_key), s.tolerance),
    "mailgun": lambda s: MailgunVerifier(_keys(s, _utf8), s.tolerance),
    "twitch": lambda s: TwitchVerifier(_keys(s, _utf8), s.tolerance),
    "paddle": lambda s: PaddleVerifier(_keys(s, _utf8), s.tolerance),
    "linear": lambda s: LinearVerifier(_keys(s, _utf8), s.tolerance),
    "gitlab": lambda s: TokenVerifier(_keys(s, _utf8)),
    "adyen": lambda s: AdyenVerifier(_keys(s, adyen_key)),
}


def build_verifier(source: SourceSettings) -> Verifier:
    """The verifier a source's config describes; KeyMaterialError (a ValueError naming
    the config key) if its secrets or keys are unusable."""
    try:
        builder = SCHEMES[source.scheme]
    except KeyError:
        raise ValueError(f"scheme {source.scheme!r} is not supported") from None
    return builder(source)


def build_handshake(source: SourceSettings) -> Handshake | None:
    """The handshake a source's sender performs, if its scheme has one."""
    if source.scheme == "slack":
        return slack_challenge
    if source.scheme == "discord":
        return discord_ping
    if source.scheme == "twitch":
        return twitch_challenge
    if source.scheme == "zoom":
        return ZoomValidation(_keys(source, _utf8))
    return None


def acknowledgement(source: SourceSettings, body: bytes) -> HandshakeAnswer | None:
    """The answer an accepted event gets when its sender needs more than 202 (Discord)."""
    return discord_deferred(body) if source.scheme == "discord" else None


# --- signing as the provider does ---


@dataclass(frozen=True, slots=True)
class SignedPayload:
    """A request as the provider would send it: headers, body (some providers sign
    inside it) and the query string (Twilio signs JSON bodies through the URL)."""

    headers: dict[str, str]
    body: bytes
    query: str = ""


def _first_secret(source: SourceSettings, now: float) -> str:
    secrets = [s for s in source.secrets if s.not_after is None or now <= s.not_after]
    if not secrets:
        raise ValueError("the source has no active secret to sign with")
    return secrets[0].value.get_secret_value()


def _signing_key(source: SourceSettings) -> str:
    if source.signing_key is None:
        raise ValueError(
            f"scheme {source.scheme} signs with a private key: set the source's signing_key "
            "(`hookstream keygen` makes a pair)"
        )
    return source.signing_key.get_secret_value()


def _is_json(body: bytes) -> bool:
    return body.lstrip()[:1] in (b"{", b"[")


Signer = Callable[[SourceSettings, str, bytes, str, float], SignedPayload]


def _sign_standard(
    source: SourceSettings, secret: str, body: bytes, msg_id: str, now: float
) -> SignedPayload:
    stamp = int(now)
    signature = sign_standard(standard_secret(secret), msg_id, stamp, body)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
    }
    return SignedPayload(headers, body)


def _sign_twilio(
    source: SourceSettings, secret: str, body: bytes, _: str, now: float
) -> SignedPayload:
    json_body = _is_json(body)
    signature, query = sign_twilio(secret.encode(), _public_url(source), body, json_body)
    headers = {TWILIO_HEADER: signature}
    if not json_body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return SignedPayload(headers, body, query)


def _sign_mailgun(
    source: SourceSettings, secret: str, body: bytes, event_id: str, now: float
) -> SignedPayload:
    token = hashlib.sha256(f"{event_id}:{now}".encode()).hexdigest()[:50]
    return SignedPayload({}, sign_mailgun(secret.encode(), int(now), token, body))


def _sign_twitch(
    source: SourceSettings, secret: str, body: bytes, message_id: str, now: float
) -> SignedPayload:
    stamp = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    headers = {
        MESSAGE_TIMESTAMP: stamp,
        MESSAGE_SIGNATURE: twitch_signature(secret.encode(), message_id, stamp, body),
        MESSAGE_TYPE: "notification",
    }
    return SignedPayload(headers, body)


def _sign_linear(
    source: SourceSettings, secret: str, body: bytes, _: str, now: float
) -> SignedPayload:
    stamped = stamp_linear(body, now)
    return SignedPayload({LINEAR_HEADER: linear_signature(secret.encode(), stamped)}, stamped)


def _sign_with_key(
    source: SourceSettings, private: str, body: bytes, _: str, now: float
) -> SignedPayload:
    try:
        if source.scheme == "discord":
            headers = sign_discord(ed25519_signing_key(private), int(now), body)
        else:
            headers = sign_sendgrid(p256_signing_key(private), int(now), body)
    except ValueError as exc:
        raise KeyMaterialError("signing_key", str(exc)) from None
    return SignedPayload(headers, body)


def _sign_hmac(
    source: SourceSettings, secret: str, body: bytes, _: str, now: float
) -> SignedPayload:
    scheme = hmac_scheme(source)
    stamp = str(int(now)) if scheme.timestamp_header else ""
    headers = {scheme.header: scheme.signature(secret.encode(), body, stamp)}
    if scheme.timestamp_header:
        headers[scheme.timestamp_header] = stamp
    return SignedPayload(headers, body)


def _header(name: str, sign: Callable[[SourceSettings, bytes, bytes, float], str]) -> Signer:
    """A signer whose whole signature is one header."""

    def signer(
        source: SourceSettings, secret: str, body: bytes, _: str, now: float
    ) -> SignedPayload:
        return SignedPayload({name: sign(source, secret.encode(), body, now)}, body)

    return signer


_SIGNERS: dict[str, Signer] = {
    "standard": _sign_standard,
    "stripe": _header(STRIPE_HEADER, lambda s, k, b, now: sign_stripe(k, int(now), b)),
    "twilio": _sign_twilio,
    "square": _header(SQUARE_HEADER, lambda s, k, b, now: sign_square(k, _public_url(s), b)),
    "discord": _sign_with_key,
    "sendgrid": _sign_with_key,
    "mailgun": _sign_mailgun,
    "twitch": _sign_twitch,
    "paddle": _header(PADDLE_HEADER, lambda s, k, b, now: sign_paddle(k, int(now), b)),
    "linear": _sign_linear,
    "gitlab": _header(GITLAB_HEADER, lambda s, k, b, now: k.decode()),
    "adyen": lambda s, secret, b, _, now: SignedPayload({}, sign_adyen(adyen_key(secret), b)),
}


def sign_payload(
    source: SourceSettings,
    body: bytes,
    event_id: str,
    now: float,
    event_type: str | None = None,
) -> SignedPayload:
    """The request `source`'s provider would send with `body`, signed with its first
    active secret (or its signing_key): headers, the body as sent, the query string."""
    if source.scheme in ("discord", "sendgrid"):
        credential = _signing_key(source)
    else:
        credential = _first_secret(source, now)
    signer = _SIGNERS.get(source.scheme, _sign_hmac)
    signed = signer(source, credential, body, event_id, now)
    if source.scheme in _ID_HEADERS:
        id_headers, type_header = _ID_HEADERS[source.scheme]
        signed.headers.update(dict.fromkeys(id_headers, event_id))
        if event_type and type_header:
            signed.headers[type_header] = event_type
    return signed


def sign_request(
    source: SourceSettings,
    body: bytes,
    event_id: str,
    now: float,
    event_type: str | None = None,
) -> dict[str, str]:
    """The headers `source`'s provider would send with `body` unchanged; ValueError for
    the schemes that sign inside the body or through the URL (use sign_payload)."""
    signed = sign_payload(source, body, event_id, now, event_type)
    if signed.body != body or signed.query:
        raise ValueError(f"scheme {source.scheme} changes the body or URL: use sign_payload")
    return signed.headers
