"""Faust's broker credentials from `kafka.client`, the librdkafka-style keys every client reads.

confluent-kafka (ingress, topics, ops) takes `kafka.client` as it is; Faust (aiokafka
underneath) has its own vocabulary, so the security keys are translated here. A security
key this translation does not understand is a ConfigError, never silently dropped: a worker
that quietly connects without TLS or SASL is worse than one that refuses to start. Keys
outside `security.*`, `sasl.*` and `ssl.*` tune librdkafka only and are left to it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import faust
from faust.types.auth import CredentialsT

from hookstream.errors import ConfigError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SUPPORTED_KEYS = (
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
)
_SECURITY_PREFIXES = ("security.", "sasl.", "ssl.", "enable.ssl.")

ClientValue = str | int | float | bool


def _key(name: str) -> str:
    return f"kafka.client.{name}"


@dataclass(frozen=True)
class KafkaSecurity:
    """The security part of `kafka.client`, validated."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_location: str | None = None
    certificate_location: str | None = None
    key_location: str | None = None
    key_password: str | None = field(default=None, repr=False)
    check_hostname: bool = True
    verify_certificate: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def parse_security(client: Mapping[str, ClientValue]) -> KafkaSecurity:
    """Validate the security keys of `kafka.client`; ConfigError names the first bad key."""
    for name in client:
        if name.startswith(_SECURITY_PREFIXES) and name not in SUPPORTED_KEYS:
            raise ConfigError(
                _key(name), "is not supported by the worker's Kafka client (aiokafka)"
            )
    protocol = _text(client, "security.protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(_key("security.protocol"), f"must be one of {', '.join(PROTOCOLS)}")
    security = KafkaSecurity(
        protocol=protocol,
        mechanism=_mechanism(client),
        username=_optional_text(client, "sasl.username"),
        password=_optional_text(client, "sasl.password"),
        ca_location=_optional_text(client, "ssl.ca.location"),
        certificate_location=_optional_text(client, "ssl.certificate.location"),
        key_location=_optional_text(client, "ssl.key.location"),
        key_password=_optional_text(client, "ssl.key.password"),
        check_hostname=_hostname_check(client),
        verify_certificate=_flag(client, "enable.ssl.certificate.verification", True),
    )
    _check_combination(client, security)
    return security


def _check_combination(client: Mapping[str, ClientValue], security: KafkaSecurity) -> None:
    for name in client:
        if name.startswith("sasl.") and not security.uses_sasl:
            raise ConfigError(
                _key(name), f"is set but security.protocol is {security.protocol}, not SASL_*"
            )
        if "ssl." in name and not security.uses_tls:
            raise ConfigError(
                _key(name), f"is set but security.protocol is {security.protocol}, not SSL/SASL_SSL"
            )
    if security.uses_sasl:
        if security.mechanism is None:
            raise ConfigError(_key("sasl.mechanism"), f"is required with {security.protocol}")
        if not security.username or security.password is None:
            missing = "sasl.username" if not security.username else "sasl.password"
            raise ConfigError(_key(missing), f"is required with {security.mechanism}")
    if security.key_location and not security.certificate_location:
        raise ConfigError(_key("ssl.certificate.location"), "is required with ssl.key.location")
    if security.certificate_location and not security.key_location:
        raise ConfigError(_key("ssl.key.location"), "is required with ssl.certificate.location")
    if security.key_password is not None and not security.key_location:
        raise ConfigError(_key("ssl.key.password"), "is set but ssl.key.location is not")


def _mechanism(client: Mapping[str, ClientValue]) -> str | None:
    single = _optional_text(client, "sasl.mechanism")
    plural = _optional_text(client, "sasl.mechanisms")
    if single and plural and single.upper() != plural.upper():
        raise ConfigError(_key("sasl.mechanisms"), f"disagrees with sasl.mechanism ({single})")
    name = "sasl.mechanism" if single else "sasl.mechanisms"
    value = (single or plural or "").upper()
    if not value:
        return None
    if value not in MECHANISMS:
        raise ConfigError(_key(name), f"must be one of {', '.join(MECHANISMS)}")
    return value


def _hostname_check(client: Mapping[str, ClientValue]) -> bool:
    value = _text(client, "ssl.endpoint.identification.algorithm", "https").lower()
    if value not in ("https", "none"):
        raise ConfigError(_key("ssl.endpoint.identification.algorithm"), "must be https or none")
    return value == "https"


def _flag(client: Mapping[str, ClientValue], name: str, default: bool) -> bool:
    value = client.get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ConfigError(_key(name), "must be true or false")


def _optional_text(client: Mapping[str, ClientValue], name: str) -> str | None:
    value = client.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str):
        raise ConfigError(_key(name), "must be a string")
    return value


def _text(client: Mapping[str, ClientValue], name: str, default: str) -> str:
    value = _optional_text(client, name)
    return default if value is None else value


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """A client TLS context: the CA to trust (system default if none) and the client certificate."""
    ca = security.ca_location
    try:
        if ca is not None and Path(ca).is_dir():
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, capath=ca)
        else:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(_key("ssl.ca.location"), f"cannot be loaded: {exc}") from None
    # As in librdkafka, no certificate verification means no host name check either.
    context.check_hostname = security.check_hostname and security.verify_certificate
    if not security.verify_certificate:
        context.verify_mode = ssl.CERT_NONE
    if security.certificate_location and security.key_location:
        try:
            context.load_cert_chain(
                security.certificate_location, security.key_location, security.key_password
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                _key("ssl.certificate.location"),
                f"the certificate and key cannot be loaded: {exc}",
            ) from None
    return context


def faust_credentials(client: Mapping[str, ClientValue]) -> CredentialsT | None:
    """Faust's `broker_credentials` for `kafka.client`; None for PLAINTEXT."""
    security = parse_security(client)
    context = ssl_context(security) if security.uses_tls else None
    if security.uses_sasl:
        return faust.SASLCredentials(
            username=security.username,
            password=security.password,
            mechanism=security.mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
