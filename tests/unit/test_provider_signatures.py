"""The provider schemes beyond the first six: each verifies what its provider signs and
refuses any alteration; rotation, retirement and the timestamp window hold for each.

Where a provider's SDK is on PyPI it does the provider's side: twilio's RequestValidator
signs, squareup's, sendgrid's, paddle's and Adyen's verifiers accept what we sign,
PyNaCl signs as Discord. Where a provider ships no Python code the signer is its
documented algorithm, written here from the documentation, and published examples
(Twilio's, SendGrid's, Adyen's) are used as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import Adyen.util as adyen_util
import nacl.signing
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from multidict import CIMultiDict
from paddle_billing.Notifications import Secret as PaddleSecret
from paddle_billing.Notifications.PaddleSignature import PaddleSignature
from sendgrid.helpers.eventwebhook import EventWebhook
from square.utils.webhooks_helper import verify_signature as square_verify
from twilio.request_validator import RequestValidator

from hookstream.config import SourceSettings
from hookstream.core.signatures import KeyMaterialError, Reason, VerificationError
from hookstream.core.signatures.asymmetric import new_keypair
from hookstream.sources import build_verifier, sign_payload

NOW = 1_700_000_000.0
PUBLIC_URL = "https://hooks.example.com/webhooks/provider"


@dataclass(frozen=True)
class Request:
    headers: dict[str, str]
    body: bytes
    query: str = ""


def verify(source: SourceSettings, request: Request, now: float = NOW) -> None:
    build_verifier(source).verify(CIMultiDict(request.headers), request.body, now, request.query)


def refused(source: SourceSettings, request: Request, now: float = NOW) -> Reason:
    with pytest.raises(VerificationError) as caught:
        verify(source, request, now)
    return caught.value.reason


def hmac_hex(key: str, content: bytes, digest: Any = hashlib.sha256) -> str:
    return hmac.new(key.encode(), content, digest).hexdigest()


# --- the provider's side of each scheme ---

TWILIO_FORM = (
    b"AccountSid=AC123&CallSid=CA1234567890ABCDE&CallStatus=ringing&From=%2B12349013030"
    b"&To=%2B18005551212&Digits=1234&Body=hello+world"
)


def twilio_form_signs(secret: str, body: bytes, now: float) -> Request:
    # Twilio's own library computes the signature of the URL and the POST parameters.
    query = "tenant=acme"
    params = dict(parse_qsl(body.decode(), keep_blank_values=True))
    signature = RequestValidator(secret).compute_signature(f"{PUBLIC_URL}?{query}", params)
    headers = {"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"}
    return Request(headers, body, query)


def twilio_json_signs(secret: str, body: bytes, now: float) -> Request:
    # JSON bodies: the body's SHA-256 travels in the URL, and the URL alone is signed.
    query = "bodySHA256=" + hashlib.sha256(body).hexdigest()
    signature = RequestValidator(secret).compute_signature(f"{PUBLIC_URL}?{query}", {})
    return Request({"X-Twilio-Signature": signature}, body, query)


def square_signs(secret: str, body: bytes, now: float) -> Request:
    # Square documents HMAC-SHA256 over notification URL + body, base64.
    digest = hmac.new(secret.encode(), PUBLIC_URL.encode() + body, hashlib.sha256).digest()
    return Request({"x-square-hmacsha256-signature": base64.b64encode(digest).decode()}, body)


def discord_signs(seed_hex: str, body: bytes, now: float) -> Request:
    # PyNaCl, the library Discord's own examples verify with, signs as Discord does.
    stamp = str(int(now))
    signed = nacl.signing.SigningKey(bytes.fromhex(seed_hex)).sign(stamp.encode() + body)
    return Request(
        {"X-Signature-Ed25519": signed.signature.hex(), "X-Signature-Timestamp": stamp}, body
    )


def sendgrid_signs(private_b64: str, body: bytes, now: float) -> Request:
    # ECDSA P-256 / SHA-256 over timestamp + payload, DER signature in base64.
    key = serialization.load_der_private_key(base64.b64decode(private_b64), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    stamp = str(int(now))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return Request(
        {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        },
        body,
    )


def mailgun_signs(secret: str, body: bytes, now: float) -> Request:
    # Mailgun's documented Python check, run the other way round.
    stamp = str(int(now))
    token = "5d" + hashlib.sha256(body + stamp.encode()).hexdigest()[:48]
    doc = json.loads(body)
    doc["signature"] = {
        "timestamp": stamp,
        "token": token,
        "signature": hmac_hex(secret, f"{stamp}{token}".encode()),
    }
    return Request({"Content-Type": "application/json"}, json.dumps(doc).encode())


def zoom_signs(secret: str, body: bytes, now: float) -> Request:
    stamp = str(int(now))
    signature = "v0=" + hmac_hex(secret, f"v0:{stamp}:".encode() + body)
    return Request({"x-zm-signature": signature, "x-zm-request-timestamp": stamp}, body)


def twitch_signs(secret: str, body: bytes, now: float) -> Request:
    message_id = "e76c6bd4-55c9-4987-8304-da1588d8988b"
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")
    signature = "sha256=" + hmac_hex(secret, (message_id + stamp).encode() + body)
    headers = {
        "Twitch-Eventsub-Message-Id": message_id,
        "Twitch-Eventsub-Message-Timestamp": stamp,
        "Twitch-Eventsub-Message-Signature": signature,
        "Twitch-Eventsub-Message-Type": "notification",
    }
    return Request(headers, body)


def paddle_signs(secret: str, body: bytes, now: float) -> Request:
    stamp = str(int(now))
    signature = hmac_hex(secret, f"{stamp}:".encode() + body)
    return Request({"Paddle-Signature": f"ts={stamp};h1={signature}"}, body)


def linear_signs(secret: str, body: bytes, now: float) -> Request:
    doc = json.loads(body)
    doc["webhookTimestamp"] = int(now * 1000)
    signed = json.dumps(doc).encode()
    return Request({"Linear-Signature": hmac_hex(secret, signed)}, signed)


def intercom_signs(secret: str, body: bytes, now: float) -> Request:
    return Request({"X-Hub-Signature": "sha1=" + hmac_hex(secret, body, hashlib.sha1)}, body)


def bitbucket_signs(secret: str, body: bytes, now: float) -> Request:
    return Request({"X-Hub-Signature": "sha256=" + hmac_hex(secret, body)}, body)


def gitlab_signs(secret: str, body: bytes, now: float) -> Request:
    return Request({"X-Gitlab-Token": secret}, body)


def adyen_signs(hex_key: str, body: bytes, now: float) -> Request:
    # Adyen's own library signs each notification item.
    doc = json.loads(body)
    for entry in doc["notificationItems"]:
        item = entry["NotificationRequestItem"]
        signature = adyen_util.generate_notification_sig(item, hex_key).decode()
        item.setdefault("additionalData", {})["hmacSignature"] = signature
    return Request({"Content-Type": "application/json"}, json.dumps(doc).encode())


# --- one case per provider ---

JSON_BODY = b'{"id":"evt_1","type":"invoice.paid","data":{"object":{"customer":"cus_1"}}}'
MAILGUN_BODY = json.dumps(
    {"event-data": {"id": "CPgfbmQMTCKtHW6uIWtuVe", "event": "delivered", "recipient": "a@b.c"}}
).encode()
ADYEN_ITEM = {
    "pspReference": "7914073381342284",
    "merchantReference": "TestPayment-1407325143704",
    "merchantAccountCode": "TestMerchant",
    "amount": {"currency": "EUR", "value": 1130},
    "eventCode": "AUTHORISATION",
    "success": "true",
    "eventDate": "2019-05-06T17:15:34.121+02:00",
}
ADYEN_BODY = json.dumps(
    {"live": "false", "notificationItems": [{"NotificationRequestItem": ADYEN_ITEM}]}
).encode()
DISCORD_KEYS = (new_keypair("discord"), new_keypair("discord"))
SENDGRID_KEYS = (new_keypair("sendgrid"), new_keypair("sendgrid"))


def change_customer(body: bytes) -> bytes:
    return body.replace(b"cus_1", b"cus_2")


def change_token(body: bytes) -> bytes:
    doc = json.loads(body)
    doc["signature"]["token"] = doc["signature"]["token"][:-1] + "x"
    return json.dumps(doc).encode()


def change_amount(body: bytes) -> bytes:
    return body.replace(b"1130", b"1131")


@dataclass(frozen=True)
class Case:
    name: str
    config: dict[str, Any]
    secrets: tuple[str, str]
    sign: Callable[[str, bytes, float], Request]
    body: bytes = JSON_BODY
    alter: Callable[[bytes], bytes] = change_customer
    timestamped: bool = False
    public: dict[str, str] = field(default_factory=dict)  # signing key -> public key

    def source(self, *entries: Any) -> SourceSettings:
        """Settings holding these secrets (or, for public-key schemes, the public halves)."""
        if not self.public:
            return SourceSettings(secrets=list(entries), **self.config)
        keys = [
            {**e, "value": self.public[e["value"]]} if isinstance(e, dict) else self.public[e]
            for e in entries
        ]
        signer = entries[0]["value"] if isinstance(entries[0], dict) else entries[0]
        return SourceSettings(public_keys=keys, signing_key=signer, **self.config)

    def signed(self, secret: str, now: float = NOW) -> Request:
        return self.sign(secret, self.body, now)


CASES = [
    Case(
        "twilio-form",
        {"scheme": "twilio", "public_url": PUBLIC_URL},
        ("twilio-auth-token-1", "twilio-auth-token-2"),
        twilio_form_signs,
        body=TWILIO_FORM,
        alter=lambda b: b.replace(b"ringing", b"completed"),
    ),
    Case(
        "twilio-json",
        {"scheme": "twilio", "public_url": PUBLIC_URL},
        ("twilio-auth-token-1", "twilio-auth-token-2"),
        twilio_json_signs,
    ),
    Case(
        "square",
        {"scheme": "square", "public_url": PUBLIC_URL},
        ("Ibxx_5AKakO-3qeNVR61Dw", "another-signature-key"),
        square_signs,
    ),
    Case(
        "discord",
        {"scheme": "discord"},
        (DISCORD_KEYS[0][1], DISCORD_KEYS[1][1]),
        discord_signs,
        timestamped=True,
        public={private: public for public, private in DISCORD_KEYS},
    ),
    Case(
        "sendgrid",
        {"scheme": "sendgrid"},
        (SENDGRID_KEYS[0][1], SENDGRID_KEYS[1][1]),
        sendgrid_signs,
        body=b'[{"email":"a@b.c","event":"delivered","sg_event_id":"cus_1"}]',
        timestamped=True,
        public={private: public for public, private in SENDGRID_KEYS},
    ),
    Case(
        "mailgun",
        {"scheme": "mailgun"},
        ("key-mailgun-1", "key-mailgun-2"),
        mailgun_signs,
        body=MAILGUN_BODY,
        alter=change_token,
        timestamped=True,
    ),
    Case("zoom", {"scheme": "zoom"}, ("zoom-1", "zoom-2"), zoom_signs, timestamped=True),
    Case("twitch", {"scheme": "twitch"}, ("twitch-1", "twitch-2"), twitch_signs, timestamped=True),
    Case(
        "paddle",
        {"scheme": "paddle"},
        ("pdl_ntfset_1", "pdl_ntfset_2"),
        paddle_signs,
        timestamped=True,
    ),
    Case("linear", {"scheme": "linear"}, ("lin_wh_1", "lin_wh_2"), linear_signs, timestamped=True),
    Case("intercom", {"scheme": "intercom"}, ("client-1", "client-2"), intercom_signs),
    Case("bitbucket", {"scheme": "bitbucket"}, ("bb-1", "bb-2"), bitbucket_signs),
    Case("gitlab", {"scheme": "gitlab"}, ("glpat-token-1", "glpat-token-2"), gitlab_signs),
    Case(
        "adyen",
        {"scheme": "adyen"},
        (
            "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056",
            "0011223344556677889900AABBCCDDEEFF00112233445566778899AABBCCDDEE",
        ),
        adyen_signs,
        body=ADYEN_BODY,
        alter=change_amount,
    ),
]
TIMESTAMPED = [c for c in CASES if c.timestamped]


def by_name(case: Case) -> str:
    return case.name


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_accepted_as_the_provider_signs(case: Case) -> None:
    verify(case.source(case.secrets[0]), case.signed(case.secrets[0]))


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_altered_signed_content_is_refused(case: Case) -> None:
    request = case.signed(case.secrets[0])
    if case.name == "gitlab":  # a token covers no content: only the token itself counts
        request = replace(request, headers={"X-Gitlab-Token": case.secrets[0] + "x"})
    else:
        request = replace(request, body=case.alter(request.body))
    assert refused(case.source(case.secrets[0]), request) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_other_secret_is_refused(case: Case) -> None:
    request = case.signed(case.secrets[1])
    assert refused(case.source(case.secrets[0]), request) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_unsigned_is_missing_signature(case: Case) -> None:
    source = case.source(case.secrets[0])
    body = case.body if case.name not in ("mailgun", "adyen") else b'{"notificationItems": []}'
    assert refused(source, Request({}, body)) is Reason.MISSING_SIGNATURE


@pytest.mark.parametrize("case", TIMESTAMPED, ids=by_name)
def test_stale_and_future_timestamps_are_refused(case: Case) -> None:
    source = case.source(case.secrets[0])
    tolerance = source.tolerance
    stale = case.signed(case.secrets[0], NOW - tolerance - 1)
    future = case.signed(case.secrets[0], NOW + tolerance + 1)
    assert refused(source, stale) is Reason.STALE_TIMESTAMP
    assert refused(source, future) is Reason.FUTURE_TIMESTAMP
    verify(source, case.signed(case.secrets[0], NOW - tolerance + 1))
    verify(source, case.signed(case.secrets[0], NOW + tolerance - 1))


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_any_secret_or_key_of_the_set_verifies(case: Case) -> None:
    source = case.source(*case.secrets)
    for secret in case.secrets:
        verify(source, case.signed(secret))


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_a_retired_secret_or_key_no_longer_verifies(case: Case) -> None:
    old, new = case.secrets
    source = case.source({"value": old, "not_after": NOW - 1}, new)
    verify(source, case.signed(new))
    assert refused(source, case.signed(old)) is Reason.BAD_SIGNATURE
    verify(source, case.signed(old, NOW - 10), NOW - 10)
    only_old = case.source({"value": old, "not_after": NOW - 1})
    assert refused(only_old, case.signed(old)) is Reason.NO_ACTIVE_SECRET


@pytest.mark.parametrize("case", CASES, ids=by_name)
def test_sign_payload_verifies(case: Case) -> None:
    source = case.source(case.secrets[0])
    signed = sign_payload(source, case.body, "evt_1", NOW, "invoice.paid")
    verify(source, Request(signed.headers, signed.body, signed.query))


# --- the providers' published examples ---


def test_twilio_documented_example() -> None:
    # Twilio's "Webhooks security" example: token 12345, this URL and these parameters.
    body = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212"
    source = SourceSettings(
        scheme="twilio", secrets=["12345"], public_url="https://mycompany.com/myapp.php"
    )
    request = Request({"X-Twilio-Signature": "0/KCTR6DLpKmkAf8muzZqo1nDgQ="}, body, "foo=1&bar=2")
    verify(source, request)
    assert refused(source, replace(request, query="foo=1&bar=3")) is Reason.BAD_SIGNATURE


def test_sendgrid_documented_example() -> None:
    # The verification key, payload, timestamp and signature of SendGrid's example.
    key = (
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7"
        "yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA=="
    )
    source = SourceSettings(scheme="sendgrid", public_keys=[key])
    body = b'{"category":"example_payload","event":"test_event","message_id":"message_id"}'
    headers = {
        "X-Twilio-Email-Event-Webhook-Signature": (
            "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0="
        ),
        "X-Twilio-Email-Event-Webhook-Timestamp": "1588788367",
    }
    verify(source, Request(headers, body), 1588788367.0)
    assert refused(source, Request(headers, body + b" "), 1588788367.0) is Reason.BAD_SIGNATURE


def test_adyen_documented_example() -> None:
    # Adyen's HMAC example: this key and item give this hmacSignature.
    key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
    item = {
        **ADYEN_ITEM,
        "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
    }
    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
    verify(SourceSettings(scheme="adyen", secrets=[key]), Request({}, body.encode()))


# --- the providers' libraries accept what we sign ---


def test_twilio_library_accepts_our_signature_form_and_json() -> None:
    source = SourceSettings(scheme="twilio", secrets=["tok"], public_url=PUBLIC_URL)
    validator = RequestValidator("tok")
    form = sign_payload(source, TWILIO_FORM, "e", NOW)
    params = dict(parse_qsl(TWILIO_FORM.decode()))
    assert validator.validate(PUBLIC_URL, params, form.headers["X-Twilio-Signature"])
    signed = sign_payload(source, JSON_BODY, "e", NOW)
    url = f"{PUBLIC_URL}?{signed.query}"
    assert validator.validate(url, JSON_BODY.decode(), signed.headers["X-Twilio-Signature"])
    assert not validator.validate(
        url, JSON_BODY.decode() + " ", signed.headers["X-Twilio-Signature"]
    )


def test_twilio_port_variants_and_sha256_shared_keys() -> None:
    source = SourceSettings(scheme="twilio", secrets=["tok"], public_url=PUBLIC_URL)
    with_port = PUBLIC_URL.replace(".com/", ".com:443/")
    params = dict(parse_qsl(TWILIO_FORM.decode()))
    signature = RequestValidator("tok").compute_signature(with_port, params)
    verify(source, Request({"X-Twilio-Signature": signature}, TWILIO_FORM))
    sha256 = RequestValidator("tok").compute_signature(PUBLIC_URL, params, "HMAC_SHA256")
    settings_header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    headers = {
        "X-Twilio-Signature": sha256,
        "X-Twilio-Webhooks-Signature-Settings": settings_header,
    }
    verify(source, Request(headers, TWILIO_FORM))
    headers["X-Twilio-Webhooks-Signature-Settings"] = "algorithm=HMAC_MD5"
    assert refused(source, Request(headers, TWILIO_FORM)) is Reason.MALFORMED_SIGNATURE


def test_square_library_accepts_our_signature() -> None:
    source = SourceSettings(scheme="square", secrets=["sq-key"], public_url=PUBLIC_URL)
    signed = sign_payload(source, JSON_BODY, "e", NOW)
    header = signed.headers["x-square-hmacsha256-signature"]
    assert square_verify(
        request_body=JSON_BODY.decode(),
        signature_header=header,
        signature_key="sq-key",
        notification_url=PUBLIC_URL,
    )
    # A gateway behind a proxy: the URL Square signed, not the one the request reached.
    other = SourceSettings(scheme="square", secrets=["sq-key"], public_url="http://10.0.0.1/x")
    assert refused(other, Request(signed.headers, JSON_BODY)) is Reason.BAD_SIGNATURE


def test_pynacl_accepts_our_discord_signature() -> None:
    public, private = DISCORD_KEYS[0]
    source = SourceSettings(scheme="discord", public_keys=[public], signing_key=private)
    signed = sign_payload(source, JSON_BODY, "e", NOW)
    content = signed.headers["X-Signature-Timestamp"].encode() + JSON_BODY
    nacl.signing.VerifyKey(bytes.fromhex(public)).verify(
        content, bytes.fromhex(signed.headers["X-Signature-Ed25519"])
    )


def test_sendgrid_library_accepts_our_signature() -> None:
    public, private = SENDGRID_KEYS[0]
    source = SourceSettings(scheme="sendgrid", public_keys=[public], signing_key=private)
    signed = sign_payload(source, JSON_BODY, "e", NOW)
    assert EventWebhook(public).verify_signature(
        JSON_BODY.decode(),
        signed.headers["X-Twilio-Email-Event-Webhook-Signature"],
        signed.headers["X-Twilio-Email-Event-Webhook-Timestamp"],
    )


def test_paddle_library_accepts_our_signature_and_rotation_header() -> None:
    source = SourceSettings(scheme="paddle", secrets=["pdl_ntfset_1"])
    header = sign_payload(source, JSON_BODY, "e", time.time()).headers["Paddle-Signature"]
    assert PaddleSignature().verify(header, JSON_BODY.decode(), PaddleSecret("pdl_ntfset_1"))
    # While a secret rotates Paddle sends one h1 per secret.
    old = paddle_signs("pdl_old", JSON_BODY, NOW).headers["Paddle-Signature"]
    both = (
        old
        + ";h1="
        + paddle_signs("pdl_new", JSON_BODY, NOW).headers["Paddle-Signature"].split("h1=")[1]
    )
    verify(
        SourceSettings(scheme="paddle", secrets=["pdl_new"]),
        Request({"Paddle-Signature": both}, JSON_BODY),
    )


def test_adyen_library_accepts_our_signature() -> None:
    key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
    signed = sign_payload(SourceSettings(scheme="adyen", secrets=[key]), ADYEN_BODY, "e", NOW)
    item = json.loads(signed.body)["notificationItems"][0]["NotificationRequestItem"]
    assert adyen_util.is_valid_hmac_notification(item, key)


# --- scheme specifics ---


def test_mailgun_signature_does_not_cover_the_event_so_the_token_is_the_nonce() -> None:
    source = SourceSettings(scheme="mailgun", secrets=["key-1"])
    request = mailgun_signs("key-1", MAILGUN_BODY, NOW)
    verified = build_verifier(source).verify(CIMultiDict(request.headers), request.body, NOW)
    assert verified.nonce == json.loads(request.body)["signature"]["token"]
    # Legacy webhooks and routes post the same three fields as a form.
    doc = json.loads(request.body)["signature"]
    form = "&".join(f"{k}={v}" for k, v in doc.items()).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    verify(source, Request(headers, form + b"&event=delivered"))


def test_adyen_every_item_must_verify() -> None:
    key = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
    source = SourceSettings(scheme="adyen", secrets=[key])
    signed = json.loads(adyen_signs(key, ADYEN_BODY, NOW).body)
    unsigned = {"NotificationRequestItem": {**ADYEN_ITEM, "pspReference": "2"}}
    signed["notificationItems"].append(unsigned)
    assert refused(source, Request({}, json.dumps(signed).encode())) is Reason.MISSING_SIGNATURE


def test_linear_timestamp_is_read_from_the_signed_body() -> None:
    source = SourceSettings(scheme="linear", secrets=["s"])
    unstamped = Request({"Linear-Signature": hmac_hex("s", JSON_BODY)}, JSON_BODY)
    assert refused(source, unstamped) is Reason.MISSING_TIMESTAMP
    not_json = Request({"Linear-Signature": hmac_hex("s", b"nope")}, b"nope")
    assert refused(source, not_json) is Reason.MISSING_TIMESTAMP


def test_twitch_timestamps_in_rfc3339_with_offsets() -> None:
    source = SourceSettings(scheme="twitch", secrets=["s"])
    message_id, body = "m1", JSON_BODY
    for stamp in ("2023-11-14T22:13:20Z", "2023-11-14T23:13:20.5+01:00", "2023-11-14t22:13:20z"):
        signature = "sha256=" + hmac_hex("s", (message_id + stamp).encode() + body)
        headers = {
            "Twitch-Eventsub-Message-Id": message_id,
            "Twitch-Eventsub-Message-Timestamp": stamp,
            "Twitch-Eventsub-Message-Signature": signature,
        }
        verify(source, Request(headers, body))
    headers["Twitch-Eventsub-Message-Timestamp"] = "1700000000"
    assert refused(source, Request(headers, body)) is Reason.MALFORMED_TIMESTAMP


def test_gitlab_token_is_compared_whole() -> None:
    source = SourceSettings(scheme="gitlab", secrets=["glpat-secret"])
    for offered in ("glpat-secre", "glpat-secret ", "GLPAT-SECRET", "x" * 4096):
        assert refused(source, Request({"X-Gitlab-Token": offered}, b"{}")) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"scheme": "discord", "public_keys": ["abcd"]}, "public_keys[0]"),
        ({"scheme": "sendgrid", "public_keys": ["bm90IGEga2V5"]}, "public_keys[0]"),
        ({"scheme": "adyen", "secrets": ["not-hex"]}, "secrets[0]"),
    ],
)
def test_unusable_keys_name_their_config_key(config: dict[str, Any], field: str) -> None:
    with pytest.raises(KeyMaterialError) as caught:
        build_verifier(SourceSettings(**config))
    assert caught.value.field == field


def test_errors_and_reprs_carry_no_secret_material() -> None:
    for case in CASES:
        secret = case.secrets[0]
        source = case.source(secret)
        with pytest.raises(VerificationError) as caught:
            verify(source, case.signed(case.secrets[1]))
        assert secret not in str(caught.value)
        assert secret not in repr(build_verifier(source))
