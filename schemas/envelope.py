"""The event envelope in Avro single-object encoding (``C3 01`` + CRC-64-AVRO fingerprint + body).

Readers find the writer's schema from the fingerprint, so no registry is needed and
older envelopes stay readable after the schema evolves.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

from hookstream.errors import HookstreamError

MAGIC = b"\xc3\x01"
_HEADER_LEN = len(MAGIC) + 8


class EnvelopeError(HookstreamError):
    """A record is not a readable envelope (a poison record)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One received webhook."""

    event_id: str
    source: str
    entity_id: str
    body: bytes
    received_at: datetime
    event_type: str | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _load(version: int) -> dict[str, Any]:
    text = resources.files("schemas").joinpath(f"envelope.v{version}.avsc").read_text("utf-8")
    parsed = parse_schema(json.loads(text))
    assert isinstance(parsed, dict)
    return parsed


_WRITER = _load(1)


def _fingerprint(schema: dict[str, Any]) -> bytes:
    # fastavro's hex is already the little-endian byte order the encoding writes.
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


# Every schema version ever written, by the fingerprint its records carry.
_KNOWN: dict[bytes, dict[str, Any]] = {_fingerprint(_WRITER): _WRITER}
_PREFIX = MAGIC + _fingerprint(_WRITER)


def encode_envelope(envelope: Envelope) -> bytes:
    """Serialize with the current schema version."""
    out = io.BytesIO()
    out.write(_PREFIX)
    fastavro.schemaless_writer(
        out,
        _WRITER,
        {
            "event_id": envelope.event_id,
            "source": envelope.source,
            "event_type": envelope.event_type,
            "entity_id": envelope.entity_id,
            "received_at": envelope.received_at,
            "content_type": envelope.content_type,
            "body": envelope.body,
            "headers": envelope.headers,
        },
    )
    return out.getvalue()


def decode_envelope(data: bytes) -> Envelope:
    """Parse a record value; anything unreadable raises EnvelopeError."""
    if len(data) < _HEADER_LEN or data[:2] != MAGIC:
        raise EnvelopeError("not Avro single-object encoded (bad magic)")
    writer = _KNOWN.get(data[2:_HEADER_LEN])
    if writer is None:
        raise EnvelopeError(f"unknown schema fingerprint {data[2:_HEADER_LEN].hex()}")
    buffer = io.BytesIO(data)
    buffer.seek(_HEADER_LEN)
    try:
        record: dict[str, Any] = fastavro.schemaless_reader(buffer, writer, _WRITER)  # type: ignore[assignment]
    except Exception as exc:  # fastavro raises whatever the bytes provoke
        raise EnvelopeError(f"undecodable envelope: {type(exc).__name__}: {exc}") from exc
    if buffer.tell() != len(data):
        raise EnvelopeError("trailing bytes after the envelope")
    received = record["received_at"]
    if received.tzinfo is None:
        received = received.replace(tzinfo=UTC)
    return Envelope(
        event_id=record["event_id"],
        source=record["source"],
        entity_id=record["entity_id"],
        body=record["body"],
        received_at=received,
        event_type=record["event_type"],
        content_type=record["content_type"],
        headers=dict(record["headers"]),
    )


__all__ = ["MAGIC", "Envelope", "EnvelopeError", "decode_envelope", "encode_envelope"]
