"""Where the signature is checked: one verifier per scheme, every failure one error type.

Verifiers are pure: headers, raw body and `now` in; the verified timestamp out, or a
VerificationError with a reason code. Header lookups must be case-insensitive, so
callers pass a case-insensitive mapping (aiohttp's request headers are one).

- ``base``: Reason, VerificationError, SigningKey, Verified, the Verifier protocol;
- ``parsing``: the header parsers (total: every input gives a value or a reason);
- ``standard``: Standard Webhooks and Svix; ``stripe``: Stripe;
- ``hmac_schemes``: GitHub, Shopify, Slack, Zoom, Intercom, Bitbucket, generic ``hmac``;
- ``twilio``, ``square``: signatures over the URL the sender was given;
- ``asymmetric``: Discord (Ed25519) and SendGrid (ECDSA P-256), public keys only;
- ``mailgun``, ``adyen``: signatures inside the body; ``linear``: a timestamp inside it;
- ``twitch``, ``paddle``: formats of their own; ``shared_token``: GitLab's token;
- ``handshakes``: the challenges senders make before (or instead of) events;
- ``registry``: config -> verifier and handshake (SCHEMES, build_verifier,
  build_handshake) and signing as each provider does (sign_payload).
"""

from hookstream.core.signatures.base import (
    HandshakeAnswer,
    KeyMaterialError,
    PublicKey,
    Reason,
    SigningKey,
    VerificationError,
    Verified,
    Verifier,
    active_keys,
    any_matches,
)
from hookstream.core.signatures.hmac_schemes import (
    GITHUB,
    SHOPIFY,
    SLACK,
    HmacScheme,
    HmacVerifier,
)
from hookstream.core.signatures.parsing import (
    b64decode_strict,
    check_timestamp,
    header_text,
    hexdecode_strict,
    parse_prefixed,
    parse_standard_signatures,
    parse_stripe_signature,
    parse_timestamp,
)
from hookstream.core.signatures.standard import (
    StandardVerifier,
    header_family,
    sign_standard,
    standard_secret,
)
from hookstream.core.signatures.stripe import STRIPE_HEADER, StripeVerifier, sign_stripe

__all__ = [
    "GITHUB",
    "SHOPIFY",
    "SLACK",
    "STRIPE_HEADER",
    "HandshakeAnswer",
    "HmacScheme",
    "HmacVerifier",
    "KeyMaterialError",
    "PublicKey",
    "Reason",
    "SignedPayload",
    "SigningKey",
    "StandardVerifier",
    "StripeVerifier",
    "VerificationError",
    "Verified",
    "Verifier",
    "acknowledgement",
    "active_keys",
    "any_matches",
    "b64decode_strict",
    "check_timestamp",
    "header_family",
    "header_text",
    "hexdecode_strict",
    "parse_prefixed",
    "parse_standard_signatures",
    "parse_stripe_signature",
    "parse_timestamp",
    "sign_standard",
    "sign_stripe",
    "standard_secret",
]
