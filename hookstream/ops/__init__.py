"""Operator tools: the DLQ, the audit trail, replay by consumer offsets."""
