"""Avro schemas of hookstream's Kafka records and their codec."""

from schemas.envelope import Envelope, EnvelopeError, decode_envelope, encode_envelope

__all__ = ["Envelope", "EnvelopeError", "decode_envelope", "encode_envelope"]
