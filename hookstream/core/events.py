"""What an authentic request is about: its event id, type and entity id, where each
scheme's provider puts them, and the handshakes a sender expects answered."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jsonpointer import JsonPointerException, resolve_pointer

from hookstream.core.signatures import header_family
from hookstream.core.signatures.body_fields import form_fields
from hookstream.core.signatures.handshakes import slack_challenge
from hookstream.errors import HookstreamError

_MISSING = object()


class UnusableEvent(HookstreamError):
    """Authentic, but the event cannot be identified (HTTP 400)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class SourceRules(Protocol):
    """What this module reads of a source's config (a source's settings satisfy it)."""

    @property
    def scheme(self) -> str: ...

    @property
    def event_id(self) -> str | None: ...

    @property
    def event_type(self) -> str | None: ...

    @property
    def entity_id(self) -> str | None: ...

    @property
    def header(self) -> str | None: ...

    @property
    def timestamp_header(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class EventFacts:
    event_id: str
    event_type: str | None
    entity_id: str


@dataclass(frozen=True, slots=True)
class Locators:
    """Where a scheme finds each fact by default, first match wins; an empty event_id
    means the id is derived (sha256 of the body), an empty entity_id means the event id.
    `derive_if_missing`: when no locator finds an id, derive it rather than refuse.
    `id_parts`: the id is these values joined with ``:`` (all must be present)."""

    event_id: tuple[str, ...]
    event_type: tuple[str, ...]
    entity_id: tuple[str, ...] = ()
    derive_if_missing: bool = False
    id_parts: tuple[str, ...] = ()


DEFAULT_LOCATORS: dict[str, Locators] = {
    # Stripe: the Event object; the customer is the entity where there is one,
    # else the object itself (customer.* events carry the customer as the object).
    "stripe": Locators(
        event_id=("/id",),
        event_type=("/type",),
        entity_id=("/data/object/customer", "/data/object/id"),
    ),
    # GitHub: the delivery GUID (kept on redelivery) and the event name are headers.
    "github": Locators(
        event_id=("header:X-GitHub-Delivery",),
        event_type=("header:X-GitHub-Event",),
        entity_id=("/repository/full_name", "/organization/login"),
    ),
    # Shopify: X-Shopify-Event-Id marks duplicates; older deliveries only carry the
    # per-delivery X-Shopify-Webhook-Id, which is also kept across retries.
    "shopify": Locators(
        event_id=("header:X-Shopify-Event-Id", "header:X-Shopify-Webhook-Id"),
        event_type=("header:X-Shopify-Topic",),
        entity_id=("/admin_graphql_api_id", "/id", "header:X-Shopify-Shop-Domain"),
    ),
    # Slack Events API: the event_callback envelope.
    "slack": Locators(
        event_id=("/event_id",),
        event_type=("/event/type", "/type"),
        entity_id=("/team_id", "/enterprise_id"),
    ),
    "standard": Locators(event_id=("header:webhook-id",), event_type=("/type",)),
    "hmac": Locators(event_id=(), event_type=()),
    # Twilio: form posts (JSON for some products); retries repeat the idempotency token.
    "twilio": Locators(
        event_id=("header:I-Twilio-Idempotency-Token",),
        event_type=("/MessageStatus", "/SmsStatus", "/CallStatus", "/EventType"),
        entity_id=("/CallSid", "/MessageSid", "/SmsSid", "/Sid"),
        derive_if_missing=True,
    ),
    "square": Locators(event_id=("/event_id",), event_type=("/type",), entity_id=("/data/id",)),
    # Discord: interactions carry an id; webhook events do not (their body is the id).
    "discord": Locators(
        event_id=("/id",),
        event_type=("/event/type", "/data/name", "/type"),
        entity_id=("/guild_id", "/channel_id", "/event/data/guild/id"),
        derive_if_missing=True,
    ),
    # SendGrid: a batch (a JSON array) of events, retried as the same batch.
    "sendgrid": Locators(event_id=(), event_type=("/0/event",)),
    "mailgun": Locators(
        event_id=("/event-data/id",),
        event_type=("/event-data/event", "/event"),
        entity_id=("/event-data/message/headers/message-id", "/event-data/recipient"),
        derive_if_missing=True,
    ),
    # Zoom: no event id; a redelivery repeats the body (and its event_ts).
    "zoom": Locators(
        event_id=(),
        event_type=("/event",),
        entity_id=("/payload/object/uuid", "/payload/object/id", "/payload/account_id"),
    ),
    "twitch": Locators(
        event_id=("header:Twitch-Eventsub-Message-Id",),
        event_type=("header:Twitch-Eventsub-Subscription-Type", "/subscription/type"),
        entity_id=("/event/broadcaster_user_id", "/subscription/condition/broadcaster_user_id"),
    ),
    "paddle": Locators(
        event_id=("/event_id",),
        event_type=("/event_type",),
        entity_id=("/data/customer_id", "/data/id"),
    ),
    "linear": Locators(
        event_id=("header:Linear-Delivery",),
        event_type=("header:Linear-Event", "/type"),
        entity_id=("/data/id",),
        derive_if_missing=True,
    ),
    "intercom": Locators(event_id=("/id",), event_type=("/topic",), entity_id=("/data/item/id",)),
    "bitbucket": Locators(
        event_id=("header:X-Request-UUID", "header:X-Request-Id"),
        event_type=("header:X-Event-Key",),
        entity_id=("/repository/full_name", "/repository/uuid"),
    ),
    "gitlab": Locators(
        event_id=("header:X-Gitlab-Event-UUID", "header:X-Gitlab-Webhook-UUID"),
        event_type=("header:X-Gitlab-Event", "/object_kind"),
        entity_id=("/project/path_with_namespace", "/project/id", "/project_id"),
        derive_if_missing=True,
    ),
    # Adyen: duplicates share eventCode and pspReference; a payment's modifications
    # name it as originalReference, so one payment's events stay in order.
    "adyen": Locators(
        event_id=(),
        id_parts=(
            "/notificationItems/0/NotificationRequestItem/eventCode",
            "/notificationItems/0/NotificationRequestItem/pspReference",
        ),
        event_type=("/notificationItems/0/NotificationRequestItem/eventCode",),
        entity_id=(
            "/notificationItems/0/NotificationRequestItem/originalReference",
            "/notificationItems/0/NotificationRequestItem/pspReference",
        ),
    ),
}
_SVIX = Locators(event_id=("header:svix-id",), event_type=("/type",))

# Headers kept in the envelope: what re-verifying the event, or replaying it exactly
# as the sender sent it, needs. The generic hmac scheme adds its configured headers.
SIGNATURE_HEADERS: dict[str, tuple[str, ...]] = {
    "stripe": ("Stripe-Signature",),
    "github": ("X-Hub-Signature-256", "X-GitHub-Delivery", "X-GitHub-Event", "X-GitHub-Hook-ID"),
    "shopify": (
        "X-Shopify-Hmac-Sha256",
        "X-Shopify-Event-Id",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Topic",
        "X-Shopify-Shop-Domain",
        "X-Shopify-Triggered-At",
        "X-Shopify-API-Version",
    ),
    "slack": (
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
        "X-Slack-Retry-Num",
        "X-Slack-Retry-Reason",
    ),
    "standard": (
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
    ),
    "hmac": (),
    "twilio": (
        "X-Twilio-Signature",
        "X-Twilio-Webhooks-Signature-Settings",
        "I-Twilio-Idempotency-Token",
    ),
    "square": ("x-square-hmacsha256-signature",),
    "discord": ("X-Signature-Ed25519", "X-Signature-Timestamp"),
    "sendgrid": (
        "X-Twilio-Email-Event-Webhook-Signature",
        "X-Twilio-Email-Event-Webhook-Timestamp",
    ),
    "mailgun": (),  # the signature is inside the body
    "zoom": ("x-zm-signature", "x-zm-request-timestamp"),
    "twitch": (
        "Twitch-Eventsub-Message-Id",
        "Twitch-Eventsub-Message-Timestamp",
        "Twitch-Eventsub-Message-Signature",
        "Twitch-Eventsub-Message-Type",
        "Twitch-Eventsub-Subscription-Type",
    ),
    "paddle": ("Paddle-Signature",),
    "linear": ("Linear-Signature", "Linear-Delivery", "Linear-Event"),
    "intercom": ("X-Hub-Signature",),
    "bitbucket": ("X-Hub-Signature", "X-Request-UUID", "X-Event-Key", "X-Hook-UUID"),
    "gitlab": ("X-Gitlab-Event", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID"),
    "adyen": (),  # every item carries its signature
}


def default_locators(scheme: str, headers: Mapping[str, str]) -> Locators:
    """The scheme's defaults; Svix senders name the id ``svix-id`` (as the verifier reads it)."""
    if scheme == "standard" and header_family(headers) == "svix":
        return _SVIX
    return DEFAULT_LOCATORS.get(scheme, Locators((), ()))


def _text(value: Any) -> str | None:
    """A located value as text: scalars only, non-empty, encodable as UTF-8."""
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, from a \\ud800 escape or a raw header byte
        return None
    return text or None


class _Body:
    """The JSON body, parsed at most once and only if a pointer needs it. A form-encoded
    body (Twilio's posts) is read as an object of its fields, so pointers name fields."""

    def __init__(self, raw: bytes, form: bool = False) -> None:
        self._raw = raw
        self._doc: Any = form_fields(raw) if form else _MISSING
        self._bad = False

    def get(self, pointer: str) -> Any:
        if self._doc is _MISSING:
            try:
                self._doc = json.loads(self._raw)
            except (ValueError, UnicodeDecodeError, RecursionError):
                self._doc = None
                self._bad = True
        if self._bad:
            raise UnusableEvent("malformed_json", "the body must be JSON to read " + pointer)
        try:
            return resolve_pointer(self._doc, pointer, None)
        except (JsonPointerException, TypeError, ValueError):
            return None


def _locate(locator: str, headers: Mapping[str, str], body: _Body) -> str | None:
    if locator.startswith("header:"):
        return _text(headers.get(locator.removeprefix("header:")))
    return _text(body.get(locator))


def _first(locators: tuple[str, ...], headers: Mapping[str, str], body: _Body) -> str | None:
    """The first locator that finds a value; a body that is not JSON finds nothing."""
    for locator in locators:
        try:
            found = _locate(locator, headers, body)
        except UnusableEvent:
            continue
        if found is not None:
            return found
    return None


# Schemes whose signature covers the body only: neither the id header nor a timestamp is
# signed, so a captured request can be re-sent under a new id at any later time.
_BODY_ONLY_SCHEMES = frozenset({"github", "shopify"})


def signs_body_only(source: SourceRules) -> bool:
    """True if a request of this source can be replayed under a new event id: the worker
    then dedupes it on a digest of the signed body as well."""
    if source.scheme == "hmac":
        return not source.timestamp_header
    return source.scheme in _BODY_ONLY_SCHEMES


def body_dedupe_id(body: bytes) -> str:
    """The pseudo event id under which a body-only-signed body is remembered."""
    return "body:" + hashlib.sha256(body).hexdigest()


def describe_event(source: SourceRules, headers: Mapping[str, str], body: bytes) -> EventFacts:
    """Event id, type and entity id of an authentic request; UnusableEvent if no id."""
    defaults = default_locators(source.scheme, headers)
    content_type = (headers.get("Content-Type") or "").lower()
    doc = _Body(body, form=content_type.startswith("application/x-www-form-urlencoded"))
    id_locators = (source.event_id,) if source.event_id else defaults.event_id
    parts = () if source.event_id else defaults.id_parts
    if parts:
        values = [_first((part,), headers, doc) for part in parts]
        if None in values:
            _raise_if_not_json(doc, parts)
            raise UnusableEvent("missing_event_id", "no event id at " + " and ".join(parts))
        event_id = ":".join(v for v in values if v is not None)
    elif not id_locators:
        event_id = hashlib.sha256(body).hexdigest()
    else:
        found = _first(id_locators, headers, doc)
        if found is None and defaults.derive_if_missing and not source.event_id:
            found = hashlib.sha256(body).hexdigest()
        if found is None:
            _raise_if_not_json(doc, id_locators)
            raise UnusableEvent("missing_event_id", "no event id at " + " or ".join(id_locators))
        event_id = found
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in event_id):
        # It travels as the `webhook-id` header of every delivery: CR/LF there would break it.
        raise UnusableEvent("bad_event_id", "the event id contains control characters")
    event_type = _optional(source.event_type, defaults.event_type, headers, doc)
    entity_id = _optional(source.entity_id, defaults.entity_id, headers, doc)
    return EventFacts(event_id=event_id, event_type=event_type, entity_id=entity_id or event_id)


def _raise_if_not_json(doc: _Body, locators: tuple[str, ...]) -> None:
    """Say `malformed_json` rather than `missing_event_id` when the body could not be read."""
    for locator in locators:
        if locator.startswith("/"):
            doc.get(locator)


def _optional(
    configured: str | None, defaults: tuple[str, ...], headers: Mapping[str, str], body: _Body
) -> str | None:
    """A fact that may be absent; only a configured pointer insists on a JSON body."""
    if configured:
        return _locate(configured, headers, body)
    return _first(defaults, headers, body)


def signature_headers(source: SourceRules, headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers that re-verifying or replaying the event needs."""
    names: list[str] = list(SIGNATURE_HEADERS.get(source.scheme, ()))
    if source.scheme == "hmac":
        names += [name for name in (source.header, source.timestamp_header) if name]
    defaults = default_locators(source.scheme, headers)
    configured = (source.event_id, source.event_type, source.entity_id)
    for locator in (*configured, *defaults.event_id, *defaults.event_type, *defaults.entity_id):
        if locator and locator.startswith("header:"):
            names.append(locator.removeprefix("header:"))
    kept: dict[str, str] = {}
    for name in names:
        value = _text(headers.get(name))
        if value is not None:
            kept[name.lower()] = value
    return kept


def handshake_challenge(source: SourceRules, body: bytes) -> str | None:
    """Slack's ``url_verification``: the challenge to echo back, else None. (The ingress
    answers every scheme's handshake through ``hookstream.sources.build_handshake``.)"""
    answer = slack_challenge({}, body, 0.0) if source.scheme == "slack" else None
    if answer is None:
        return None
    challenge = json.loads(answer.body)["challenge"]
    return challenge if isinstance(challenge, str) else None
