"""What an authentic request is about: its event id, type and entity id."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonpointer import JsonPointerException, resolve_pointer

from hookstream.config import SourceSettings
from hookstream.errors import HookstreamError

_MISSING = object()


class UnusableEvent(HookstreamError):
    """Authentic, but the event cannot be identified (HTTP 400)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class EventFacts:
    event_id: str
    event_type: str | None
    entity_id: str


@dataclass(frozen=True, slots=True)
class Locators:
    """Where a scheme finds each fact by default (None: derived, see describe_event)."""

    event_id: str | None
    event_type: str | None
    entity_id: str | None = None


DEFAULT_LOCATORS: dict[str, Locators] = {
    "standard": Locators(event_id="header:webhook-id", event_type="/type"),
    "hmac": Locators(event_id=None, event_type=None),
}

# Headers worth keeping in the envelope: they carry what re-verification needs.
SIGNATURE_HEADERS: dict[str, tuple[str, ...]] = {
    "standard": ("webhook-id", "webhook-timestamp", "webhook-signature", "svix-id", "svix-timestamp", "svix-signature"),
}


class _Body:
    """The JSON body, parsed at most once and only if a pointer needs it."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self._doc: Any = _MISSING

    def get(self, pointer: str) -> Any:
        if self._doc is _MISSING:
            try:
                self._doc = json.loads(self._raw)
            except (ValueError, UnicodeDecodeError):
                raise UnusableEvent("malformed_json", "the body must be JSON to read " + pointer) from None
        try:
            return resolve_pointer(self._doc, pointer, None)
        except JsonPointerException:
            return None


def _locate(locator: str, headers: Mapping[str, str], body: _Body) -> str | None:
    if locator.startswith("header:"):
        value: Any = headers.get(locator.removeprefix("header:"))
    else:
        value = body.get(locator)
    if value is None or isinstance(value, dict | list) or value == "":
        return None
    return str(value) if not isinstance(value, bool) else None


def signature_headers(source: SourceSettings, headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers that re-verifying or replaying the event needs."""
    names: list[str] = list(SIGNATURE_HEADERS.get(source.scheme, ()))
    for extra in (source.header, source.timestamp_header):
        if extra:
            names.append(extra)
    for locator in (source.event_id, source.event_type, source.entity_id):
        if locator and locator.startswith("header:"):
            names.append(locator.removeprefix("header:"))
    return {name.lower(): headers[name] for name in names if name in headers}


def describe_event(source: SourceSettings, headers: Mapping[str, str], body: bytes) -> EventFacts:
    """Event id, type and entity id of an authentic request; UnusableEvent if no id."""
    defaults = DEFAULT_LOCATORS.get(source.scheme, Locators(None, None))
    doc = _Body(body)
    if source.scheme == "standard" and "webhook-id" not in headers:
        defaults = Locators(event_id="header:svix-id", event_type=defaults.event_type)
    id_locator = source.event_id or defaults.event_id
    if id_locator is None:
        event_id = hashlib.sha256(body).hexdigest()
    else:
        found = _locate(id_locator, headers, doc)
        if found is None:
            raise UnusableEvent("missing_event_id", f"no event id at {id_locator}")
        event_id = found
    event_type = _optional(source.event_type, defaults.event_type, headers, doc)
    entity_id = _optional(source.entity_id, defaults.entity_id, headers, doc)
    return EventFacts(event_id=event_id, event_type=event_type, entity_id=entity_id or event_id)


def _optional(
    configured: str | None, default: str | None, headers: Mapping[str, str], body: _Body
) -> str | None:
    """A fact that may be absent; only a configured pointer insists on a JSON body."""
    locator = configured or default
    if locator is None:
        return None
    try:
        return _locate(locator, headers, body)
    except UnusableEvent:
        if configured:
            raise
        return None
