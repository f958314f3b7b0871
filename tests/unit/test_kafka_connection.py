"""The typed `kafka` section: validated at load, adapted for confluent-kafka and for Faust."""

from __future__ import annotations

import json
import logging
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import faust
import pytest
import structlog
import yaml
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types.auth import AuthProtocol, SASLMechanism

from hookstream.config import Settings, load_settings
from hookstream.errors import ConfigError
from hookstream.kafka.clients import client_config, producer_config
from hookstream.kafka.connection import LIBRDKAFKA_LOGGER, KafkaClient
from hookstream.kafka.faust_auth import broker_credentials

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "alice-secret"
SCRAM = {
    "security.protocol": "SASL_PLAINTEXT",
    "sasl.mechanism": "SCRAM-SHA-256",
    "sasl.username": "alice",
    "sasl.password": PASSWORD,
}


def load(tmp_path: Path, client: dict[str, Any], **kafka: Any) -> Settings:
    """The settings for `kafka.client`, written as YAML and loaded as every command loads it."""
    path = tmp_path / "hookstream.yaml"
    path.write_text(yaml.safe_dump({"kafka": {"client": client, **kafka}}))
    return load_settings(path, environ={})


def client(tmp_path: Path, keys: dict[str, Any]) -> KafkaClient:
    return load(tmp_path, keys).kafka.client


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


def test_no_security_keys_means_plaintext_and_no_credentials(tmp_path: Path) -> None:
    assert broker_credentials(KafkaClient()) is None
    plain = client(tmp_path, {"security.protocol": "plaintext", "client.id": "x"})
    assert plain.security_protocol == "PLAINTEXT"
    assert broker_credentials(plain) is None


def test_tuning_keys_pass_through_to_librdkafka_as_given(tmp_path: Path) -> None:
    settings = load(
        tmp_path, {"linger.ms": 5, "client.id": "edge", "socket.keepalive.enable": True}
    )
    assert settings.kafka.client.tuning == {
        "linger.ms": 5,
        "client.id": "edge",
        "socket.keepalive.enable": True,
    }
    config = client_config(settings, **{"group.id": "g"})
    assert config == {
        "bootstrap.servers": "localhost:9092",
        "logger": LIBRDKAFKA_LOGGER,
        "linger.ms": 5,
        "client.id": "edge",
        "socket.keepalive.enable": True,
        "group.id": "g",
    }
    # Durability is the producer's own, whatever the tuning says.
    tuned = load(tmp_path, {"acks": 1})
    assert producer_config(tuned)["acks"] == "all"
    assert producer_config(tuned)["enable.idempotence"] is True


def test_librdkafka_gets_the_security_keys_as_given_with_secrets_revealed(tmp_path: Path) -> None:
    settings = load(tmp_path, {**SCRAM, "sasl.mechanism": "scram-sha-256"})
    config = settings.kafka.to_librdkafka()
    assert config["security.protocol"] == "SASL_PLAINTEXT"
    assert config["sasl.mechanism"] == "SCRAM-SHA-256"
    assert config["sasl.username"] == "alice"
    assert config["sasl.password"] == PASSWORD
    # Defaults hookstream assumes are not written for librdkafka, which has its own.
    assert "ssl.endpoint.identification.algorithm" not in config
    assert "enable.ssl.certificate.verification" not in config


def test_secrets_never_print(tmp_path: Path, pki: dict[str, Path]) -> None:
    settings = load(
        tmp_path,
        {
            **SCRAM,
            "security.protocol": "SASL_SSL",
            "ssl.certificate.location": str(pki["cert"]),
            "ssl.key.location": str(pki["key"]),
            "ssl.key.password": "key-secret",
        },
    )
    rendered = structlog.processors.JSONRenderer(default=str)(
        None,
        "info",
        {"event": "settings", "kafka": settings.kafka, "client": settings.kafka.client},
    )
    for text in (
        repr(settings),
        str(settings),
        repr(settings.kafka.client),
        settings.model_dump_json(),
        json.dumps(settings.kafka.model_dump(mode="json", by_alias=True)),
        str(rendered),
    ):
        assert PASSWORD not in text
        assert "key-secret" not in text


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN", "scram-sha-512"])
def test_sasl_plaintext_becomes_sasl_credentials(tmp_path: Path, mechanism: str) -> None:
    credentials = broker_credentials(client(tmp_path, {**SCRAM, "sasl.mechanism": mechanism}))
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol is AuthProtocol.SASL_PLAINTEXT
    assert credentials.mechanism is SASLMechanism(mechanism.upper())
    assert (credentials.username, credentials.password) == ("alice", PASSWORD)
    assert credentials.ssl_context is None
    assert PASSWORD not in repr(credentials)
    auth = credentials_to_aiokafka_auth(credentials)
    assert auth["security_protocol"] == "SASL_PLAINTEXT"
    assert auth["sasl_mechanism"] == mechanism.upper()
    assert auth["sasl_plain_username"] == "alice"


def test_plural_mechanisms_key_is_accepted_as_librdkafka_does(tmp_path: Path) -> None:
    keys = {**SCRAM}
    keys["sasl.mechanisms"] = keys.pop("sasl.mechanism")
    credentials = broker_credentials(client(tmp_path, keys))
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism is SASLMechanism.SCRAM_SHA_256


def test_sasl_ssl_carries_a_context_that_trusts_the_given_ca(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    keys = {**SCRAM, "security.protocol": "SASL_SSL", "ssl.ca.location": str(pki["ca"])}
    credentials = broker_credentials(client(tmp_path, keys))
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


def test_mtls_becomes_ssl_credentials_with_the_client_certificate(
    tmp_path: Path, pki: dict[str, Path]
) -> None:
    keys = {
        "security.protocol": "SSL",
        "ssl.ca.location": str(pki["ca"]),
        "ssl.certificate.location": str(pki["cert"]),
        "ssl.key.location": str(pki["key"]),
    }
    credentials = broker_credentials(client(tmp_path, keys))
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol is AuthProtocol.SSL
    assert credentials_to_aiokafka_auth(credentials) == {
        "security_protocol": "SSL",
        "ssl_context": credentials.context,
    }


def test_a_ca_directory_is_used_as_capath(tmp_path: Path, pki: dict[str, Path]) -> None:
    tls = client(tmp_path, {"security.protocol": "SSL", "ssl.ca.location": str(pki["ca"].parent)})
    assert tls.ssl_context().verify_mode is ssl.CERT_REQUIRED


def test_verification_switches_follow_librdkafka(tmp_path: Path) -> None:
    no_hostname = client(
        tmp_path, {"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": "none"}
    )
    assert no_hostname.ssl_context().check_hostname is False
    assert no_hostname.ssl_context().verify_mode is ssl.CERT_REQUIRED
    unverified = client(
        tmp_path, {"security.protocol": "SSL", "enable.ssl.certificate.verification": "false"}
    )
    context = unverified.ssl_context()
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False


@pytest.mark.parametrize(
    ("keys", "key"),
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
        ({"linger.ms": [1, 2]}, "kafka.client.linger.ms"),
    ],
)  # fmt: skip
def test_unsupported_or_incomplete_settings_are_config_errors_naming_the_key(
    tmp_path: Path, keys: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, keys)
    assert caught.value.key == key
    assert PASSWORD not in str(caught.value)


def test_a_secret_from_the_environment_is_validated_and_stays_secret(tmp_path: Path) -> None:
    path = tmp_path / "hookstream.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "kafka": {
                    "client": SCRAM | {"sasl.password": None},
                    "client_env": {"sasl.password": "PW"},
                }
            }
        )
    )
    settings = load_settings(path, environ={"PW": PASSWORD})
    assert settings.kafka.to_librdkafka()["sasl.password"] == PASSWORD
    assert PASSWORD not in repr(settings)


def test_unreadable_files_name_the_key(tmp_path: Path, pki: dict[str, Path]) -> None:
    missing_ca = client(
        tmp_path, {"security.protocol": "SSL", "ssl.ca.location": str(tmp_path / "no.pem")}
    )
    with pytest.raises(ConfigError) as caught:
        broker_credentials(missing_ca)
    assert caught.value.key == "kafka.client.ssl.ca.location"
    mismatched = client(
        tmp_path,
        {
            "security.protocol": "SSL",
            "ssl.certificate.location": str(pki["cert"]),
            "ssl.key.location": str(pki["ca"]),  # not a key
        },
    )
    with pytest.raises(ConfigError) as caught:
        broker_credentials(mismatched)
    assert caught.value.key == "kafka.client.ssl.certificate.location"


def test_librdkafka_logs_are_stdlib_records(caplog: pytest.LogCaptureFixture) -> None:
    """A confluent-kafka client made from the config logs through the stdlib logger."""
    from confluent_kafka import Producer

    settings = Settings(kafka={"bootstrap_servers": "127.0.0.1:1"})
    with caplog.at_level(logging.DEBUG, logger=LIBRDKAFKA_LOGGER.name):
        producer = Producer(settings.kafka.to_librdkafka(debug="broker", **{"client.id": "probe"}))
        producer.poll(0.5)
        producer.flush(0)
    assert any(r.name == LIBRDKAFKA_LOGGER.name for r in caplog.records)


@pytest.mark.parametrize("command", ["worker", "ingress", "topics describe"])
def test_a_bad_security_key_stops_every_command_before_it_starts(
    tmp_path: Path, command: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"kafka": {"client": {**SCRAM, "sasl.mechanism": "GSSAPI"}}}))
    args = [*command.split(), "--config", str(path)]
    result = subprocess.run(
        [sys.executable, "-m", "hookstream.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "kafka.client.sasl.mechanism" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr
