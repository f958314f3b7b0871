"""Faust's `broker_credentials` from the typed `kafka.client` (aiokafka underneath).

The config model has already refused every security key aiokafka could not honour, so
this is a translation only: TLS becomes an `ssl.SSLContext`, SASL its mechanism and
credentials (the password revealed here, for the client, and nowhere else).
"""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from hookstream.kafka.connection import KafkaClient


def broker_credentials(client: KafkaClient) -> CredentialsT | None:
    """The credentials Faust's app takes for `kafka.client`; None for PLAINTEXT."""
    context = client.ssl_context() if client.uses_tls else None
    if client.uses_sasl:
        password = client.sasl_password
        return faust.SASLCredentials(
            username=client.sasl_username,
            password=password.get_secret_value() if password is not None else None,
            mechanism=client.mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
