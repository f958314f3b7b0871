"""`kafka.client` (librdkafka keys) translated into Faust's broker credentials."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism

from hookstream.errors import ConfigError
from streams.kafka_auth import faust_credentials, parse_security, ssl_context

SCRAM = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-256",
    "sasl.username": "alice",
    "sasl.password": "alice-secret",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a client certificate it signed (openssl, a few hundred milliseconds)."""
    out = tmp_path_factory.mktemp("pki")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=out, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=test-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "client.key", "-out", "client.csr",
            "-subj", "/CN=alice")  # fmt: skip
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "client.pem", "-days", "2")  # fmt: skip
    return {"ca": out / "ca.pem", "cert": out / "client.pem", "key": out / "client.key"}


def test_no_security_keys_means_plaintext_and_no_credentials() -> None:
    assert faust_credentials({}) is None
    assert faust_credentials({"security.protocol": "plaintext", "client.id": "x"}) is None
    assert parse_security({"linger.ms": 5}).protocol == "PLAINTEXT"


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "scram-sha-512"])
def test_sasl_plaintext_becomes_sasl_credentials(mechanism: str) -> None:
    credentials = faust_credentials({**SCRAM, "sasl.mechanism": mechanism})
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism(mechanism.upper())
    assert (credentials.username, credentials.password) == ("alice", "alice-secret")
    assert credentials.ssl_context is None
    assert "alice-secret" not in repr(credentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == mechanism.upper()
    assert auth["sasl_plain_username"] == "alice"


def test_plural_mechanisms_key_is_accepted_as_librdkafka_does() -> None:
    client = {**SCRAM}
    client["sasl.mechanisms"] = client.pop("sasl.mechanism")
    credentials = faust_credentials(client)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_256


def test_sasl_ssl_carries_a_context_that_trusts_the_given_ca(pki: dict[str, Path]) -> None:
    client = {**SCRAM, "security.protocol": "SASL_SSL", "ssl.ca.location": str(pki["ca"])}
    credentials = faust_credentials(client)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_SSL
    context = credentials.ssl_context
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["ssl_context"] is context


def test_mtls_becomes_ssl_credentials_with_the_client_certificate(pki: dict[str, Path]) -> None:
    client = {
        "security.protocol": "SSL",
        "ssl.ca.location": str(pki["ca"]),
        "ssl.certificate.location": str(pki["cert"]),
        "ssl.key.location": str(pki["key"]),
    }
    credentials = faust_credentials(client)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL
    assert credentials_to_aiokafka_auth(credentials) == {
        "security_protocol": "SSL",
        "ssl_context": credentials.context,
    }


def test_a_ca_directory_is_used_as_capath(pki: dict[str, Path]) -> None:
    security = parse_security(
        {"security.protocol": "SSL", "ssl.ca.location": str(pki["ca"].parent)}
    )
    assert ssl_context(security).verify_mode is ssl.CERT_REQUIRED


def test_verification_switches_follow_librdkafka() -> None:
    no_hostname = parse_security(
        {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none"}
    )
    assert ssl_context(no_hostname).check_hostname is False
    assert ssl_context(no_hostname).verify_mode is ssl.CERT_REQUIRED
    unverified = parse_security(
        {"security.protocol": "SSL", "enable.ssl.certificate.verification": "false"}
    )
    context = ssl_context(unverified)
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ({"security.protocol": "SASL_SOMETHING"}, "kafka.client.security.protocol"),
        ({**SCRAM, "sasl.mechanism": "GSSAPI"}, "kafka.client.sasl.mechanism"),
        ({**SCRAM, "sasl.mechanism": "OAUTHBEARER"}, "kafka.client.sasl.mechanism"),
        ({**SCRAM, "sasl.mechanisms": "PLAIN"}, "kafka.client.sasl.mechanisms"),
        ({k: v for k, v in SCRAM.items() if k != "sasl.mechanism"}, "kafka.client.sasl.mechanism"),
        ({k: v for k, v in SCRAM.items() if k != "sasl.username"}, "kafka.client.sasl.username"),
        ({k: v for k, v in SCRAM.items() if k != "sasl.password"}, "kafka.client.sasl.password"),
        ({**SCRAM, "security.protocol": "SSL"}, "kafka.client.sasl.mechanism"),
        ({"sasl.username": "alice"}, "kafka.client.sasl.username"),
        ({**SCRAM, "ssl.ca.location": "/ca.pem"}, "kafka.client.ssl.ca.location"),
        ({**SCRAM, "sasl.kerberos.service.name": "kafka"}, "kafka.client.sasl.kerberos.service.name"),
        ({"security.protocol": "SSL", "ssl.keystore.location": "k.p12"}, "kafka.client.ssl.keystore.location"),
        ({"security.protocol": "SSL", "ssl.certificate.pem": "-----"}, "kafka.client.ssl.certificate.pem"),
        ({"security.protocol": "SSL", "ssl.key.location": "k.pem"}, "kafka.client.ssl.certificate.location"),
        ({"security.protocol": "SSL", "ssl.certificate.location": "c.pem"}, "kafka.client.ssl.key.location"),
        ({"security.protocol": "SSL", "ssl.key.password": "pw"}, "kafka.client.ssl.key.password"),
        ({"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "dns"}, "kafka.client.ssl.endpoint.identification.algorithm"),
        ({"security.protocol": "SSL", "enable.ssl.certificate.verification": "maybe"}, "kafka.client.enable.ssl.certificate.verification"),
        ({**SCRAM, "sasl.password": 1234}, "kafka.client.sasl.password"),
    ],
)  # fmt: skip
def test_unsupported_or_incomplete_settings_name_the_key(client: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        faust_credentials(client)
    assert caught.value.key == key
    assert "alice-secret" not in str(caught.value)


def test_unreadable_files_name_the_key(tmp_path: Path, pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigError) as caught:
        faust_credentials({"security.protocol": "SSL", "ssl.ca.location": str(tmp_path / "no.pem")})
    assert caught.value.key == "kafka.client.ssl.ca.location"
    mismatched = {
        "security.protocol": "SSL",
        "ssl.certificate.location": str(pki["cert"]),
        "ssl.key.location": str(pki["ca"]),  # not a key
    }
    with pytest.raises(ConfigError) as caught:
        faust_credentials(mismatched)
    assert caught.value.key == "kafka.client.ssl.certificate.location"
