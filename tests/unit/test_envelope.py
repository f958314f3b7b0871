import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import Envelope, EnvelopeError, decode_envelope, encode_envelope
from schemas.envelope import MAGIC

text = st.text(max_size=40)
envelopes = st.builds(
    Envelope,
    event_id=text,
    source=text,
    entity_id=text,
    body=st.binary(max_size=2000),
    received_at=st.integers(min_value=0, max_value=4102444800000).map(
        lambda ms: datetime.fromtimestamp(ms / 1000, UTC)
    ),
    event_type=st.none() | text,
    content_type=st.none() | text,
    headers=st.dictionaries(text, text, max_size=5),
)


@given(envelopes)
def test_round_trip_keeps_every_byte(envelope: Envelope) -> None:
    assert decode_envelope(encode_envelope(envelope)) == envelope


def test_single_object_encoding_header() -> None:
    data = encode_envelope(Envelope("e", "s", "k", b"{}", datetime.now(UTC)))
    assert data[:2] == MAGIC == b"\xc3\x01"
    assert len(data) > 10


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_an_envelope_error_never_a_crash(data: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_envelope(data)


@pytest.mark.parametrize("cut", [0, 1, 5, 10, 12, 20])
def test_truncated_records_are_poison(cut: int) -> None:
    data = encode_envelope(Envelope("evt", "src", "ent", b'{"a":1}', datetime.now(UTC)))
    with pytest.raises(EnvelopeError):
        decode_envelope(data[:cut])


def test_unknown_schema_fingerprint_is_poison() -> None:
    data = bytearray(encode_envelope(Envelope("e", "s", "k", b"", datetime.now(UTC))))
    data[5] ^= 0xFF
    with pytest.raises(EnvelopeError, match="fingerprint"):
        decode_envelope(bytes(data))
