from pathlib import Path

import pytest

from hookstream.config import load_settings
from hookstream.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hookstream.yaml"
    path.write_text(text)
    return path


def test_builtin_defaults_match_the_spec() -> None:
    settings = load_settings(None, environ={"HOOKSTREAM_CONFIG": ""})
    assert settings.kafka.bootstrap_servers == "localhost:9092"
    assert settings.topics.events == "webhooks.events"
    assert settings.retry.schedule == [30, 120, 600, 3600]
    assert settings.dedupe.ttl == 7 * 86400
    assert settings.ingress.port == 8080
    assert settings.worker.group_id == "hookstream"


def test_the_shipped_example_config_loads() -> None:
    settings = load_settings(ROOT / "hookstream.yaml", environ={})
    assert {"example", "partner", "demo"} <= set(settings.sources)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka: {bootstrap_servers: 'a:1'}\n")
    settings = load_settings(
        path, environ={"KAFKA_BOOTSTRAP_SERVERS": "b:2", "HOOKSTREAM_DATA_DIR": "/var/lib/x"}
    )
    assert settings.kafka.bootstrap_servers == "b:2"
    assert str(settings.data_dir) == "/var/lib/x"


def test_hookstream_config_variable_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "ingress: {port: 9999}\n")
    assert load_settings(None, environ={"HOOKSTREAM_CONFIG": str(path)}).ingress.port == 9999


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("retry: {schedule: [30s, soon]}", "retry.schedule.1"),
        ("ingress: {port: http}", "ingress.port"),
        ("topics: {partitions: 0}", "topics.partitions"),
        ("sources: {s: {scheme: carrier-pigeon, secrets: [x]}}", "sources.s.scheme"),
        ("sources: {s: {scheme: hmac, secrets: [x]}}", "sources.s"),
        ("sources: {s: {scheme: standard}}", "sources.s.secrets"),
        ("destinations: {d: {sources: [nope]}}", "destinations.d"),
        ("kafak: {}", "kafak"),
        ("sources: {t: {scheme: twilio, secrets: [x]}}", "sources.t.public_url"),
        (
            "sources: {t: {scheme: square, secrets: [x], public_url: /hooks}}",
            "sources.t.public_url",
        ),
        ("sources: {d: {scheme: discord}}", "sources.d.public_keys"),
        ("sources: {s: {scheme: standard, secrets: [x], ordering: fifo}}", "sources.s.ordering"),
        (
            "sources: {s: {scheme: standard, secrets: [x], on_dead_letter: drop}}",
            "sources.s.on_dead_letter",
        ),
        ("worker: {max_parked_per_lane: 0}", "worker.max_parked_per_lane"),
        ("worker: {session_timeout: 500ms}", "worker.session_timeout"),
        (
            "sources: {d: {scheme: discord, public_keys: [{value: k, not_after: soon}]}}",
            "sources.d.public_keys.0",
        ),
    ],
)
def test_a_config_error_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert caught.value.key == key or caught.value.key.startswith(key)
    assert key in str(caught.value)


def test_secrets_come_from_env_and_file_and_never_print(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("from-file\n")
    path = write(
        tmp_path,
        "sources: {s: {scheme: hmac, header: X-Sig, secrets_env: S_SECRETS, secrets_file: secret.txt}}",
    )
    settings = load_settings(path, environ={"S_SECRETS": "s3cr3t-a,s3cr3t-b"})
    values = [s.value.get_secret_value() for s in settings.sources["s"].secrets]
    assert values == ["s3cr3t-a", "s3cr3t-b", "from-file"]
    assert "s3cr3t" not in repr(settings)
    assert "from-file" not in str(settings)


def test_missing_secret_env_names_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: {s: {scheme: hmac, header: X, secrets_env: NOPE}}")
    with pytest.raises(ConfigError, match=r"sources\.s\.secrets_env"):
        load_settings(path, environ={})


def test_secret_with_not_after_is_parsed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "sources: {s: {scheme: hmac, header: X, secrets: [new, {value: old, not_after: '2030-01-01T00:00:00+00:00'}]}}",
    )
    secrets = load_settings(path, environ={}).sources["s"].secrets
    assert secrets[0].not_after is None
    assert secrets[1].not_after == 1893456000.0


def test_kafka_client_settings_can_come_from_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kafka: {client: {security.protocol: SASL_SSL, sasl.mechanism: SCRAM-SHA-512,"
        " sasl.username: svc},"
        " client_env: {sasl.password: KAFKA_PASSWORD}}",
    )
    settings = load_settings(path, environ={"KAFKA_PASSWORD": "pw-from-secret"})
    password = settings.kafka.client.sasl_password
    assert password is not None
    assert password.get_secret_value() == "pw-from-secret"
    assert settings.kafka.client.sasl_username == "svc"
    assert "pw-from-secret" not in repr(settings)
    with pytest.raises(ConfigError, match=r"kafka\.client_env\.sasl\.password"):
        load_settings(path, environ={})


def test_public_keys_rotate_like_secrets(tmp_path: Path) -> None:
    text = (
        "sources:\n  d:\n    scheme: discord\n    public_keys:\n"
        "      - {value: aa, not_after: 2025-07-01T00:00:00+00:00}\n      - bb\n"
    )
    source = load_settings(write(tmp_path, text), environ={}).sources["d"]
    assert [k.value for k in source.public_keys] == ["aa", "bb"]
    assert source.public_keys[0].not_after == 1751328000.0
    assert source.public_keys[1].not_after is None
    assert source.secrets == []


def test_the_worker_session_timeout_reaches_the_kafka_consumer(tmp_path: Path) -> None:
    from streams.app import faust_app

    settings = load_settings(write(tmp_path, "worker: {session_timeout: 7s}"), environ={})
    conf = faust_app(settings).conf
    assert conf.broker_session_timeout == 7.0
    assert conf.broker_heartbeat_interval < conf.broker_session_timeout / 3
