"""`kafka.client` TLS settings reach every client: a broker of our own with an mTLS listener
(client certificate required) and a SASL_SSL one, the ingress's producer (confluent-kafka),
topic creation, and a real worker process (Faust/aiokafka). The certificates are made here."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hookstream.broker import LocalKafka
from hookstream.broker.local import BrokerTls, ScramUser, answers_metadata
from hookstream.config import Settings
from hookstream.kafka.admin import create_topics
from tests.conftest import ROOT, base_config, free_port, write_config
from tests.integration.test_end_to_end import assert_enqueue_refused, event_body, post_signed

pytestmark = pytest.mark.integration

USER = ScramUser("carol", "carol-s3cret")


class Pki:
    """A test CA, the broker's certificate (localhost) and a client's, made with openssl."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.ca, ca_key = out / "ca.pem", out / "ca.key"
        self.openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
                     "-out", str(self.ca), "-days", "2", "-subj", "/CN=hookstream-test-ca",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
        self.broker = self.issue(
            "broker", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
        )
        self.client = self.issue("client", "extendedKeyUsage=clientAuth")

    def openssl(self, *args: str) -> None:
        result = subprocess.run(["openssl", *args], cwd=self.out, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    def issue(self, name: str, extensions: str) -> tuple[Path, Path]:
        """A certificate signed by the CA for CN=name; returns (certificate, PKCS#8 key)."""
        cert, key, ext = (self.out / f"{name}.{suffix}" for suffix in ("pem", "key", "ext"))
        ext.write_text(f"basicConstraints=CA:FALSE\n{extensions}\n")
        self.openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                     "-out", f"{name}.csr", "-subj", f"/CN={name}")  # fmt: skip
        self.openssl("x509", "-req", "-in", f"{name}.csr", "-CA", str(self.ca),
                     "-CAkey", "ca.key", "-CAcreateserial", "-out", str(cert), "-days", "2",
                     "-extfile", str(ext))  # fmt: skip
        return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[LocalKafka]:
    """A second broker: PLAINTEXT, an SSL listener requiring a client certificate, SASL_SSL."""
    certificate, key = pki.broker
    broker = LocalKafka(
        tmp_path_factory.mktemp("tls") / "kafka",
        port=free_port(),
        controller_port=free_port(),
        ssl_port=free_port(),
        sasl_ssl_port=free_port(),
        scram_users=[USER],
        tls=BrokerTls(ca=pki.ca, certificate=certificate, key=key),
        dist_dir=ROOT / ".hookstream" / "kafka" / "dist",
        heap="512m",
    )
    try:
        broker.start()
    except Exception as exc:
        broker.stop()
        pytest.fail(f"could not start the TLS broker: {exc}")
    yield broker
    broker.stop()


def mtls_client(pki: Pki, *, certificate: bool = True) -> dict[str, Any]:
    client = {"security.protocol": "SSL", "ssl.ca.location": str(pki.ca)}
    if certificate:
        cert, key = pki.client
        client |= {"ssl.certificate.location": str(cert), "ssl.key.location": str(key)}
    return client


def tls_settings(
    bootstrap: str | None, tmp_path: Path, name: str, client: dict[str, Any], **sections: Any
) -> tuple[Settings, Path]:
    assert bootstrap is not None
    data = tmp_path / name
    data.mkdir()
    config = base_config(
        bootstrap, data, kafka={"bootstrap_servers": bootstrap, "client": client}, **sections
    )
    path = tmp_path / f"{name}.yaml"
    return write_config(config, path), path


async def deliver_through(
    settings: Settings, config: Path, sink: Any, ingress_url: Any, worker_process: Any, tag: str
) -> None:
    """Topics, ingress (202) and a worker process, all over `settings`' client, deliver 3 events."""
    states = create_topics(settings)
    assert all(s.exists for s in states)
    worker = worker_process(settings, config)
    base = await ingress_url(settings)
    ids = [f"evt_{tag}_{n}" for n in range(3)]
    async with aiohttp.ClientSession() as session:
        for n, event_id in enumerate(ids):
            body = event_body(event_id, "cus_1", n)
            assert await post_signed(session, base, settings, "std", event_id, body) == 202
    await sink.wait_for(3, timeout=30)
    assert sink.ids() == ids
    assert worker.stop() == 0, worker.output()


async def test_mtls_carries_an_event_from_ingress_through_a_worker(
    tls_broker: LocalKafka,
    pki: Pki,
    tmp_path: Path,
    sink: Any,
    ingress_url: Any,
    worker_process: Any,
) -> None:
    assert tls_broker.ssl_bootstrap is not None
    # The listener really speaks TLS: a PLAINTEXT client gets no metadata from it.
    assert not answers_metadata(tls_broker.ssl_bootstrap, timeout=3)
    settings, config = tls_settings(
        tls_broker.ssl_bootstrap,
        tmp_path,
        "mtls",
        mtls_client(pki),
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "5s"}},
    )
    await deliver_through(settings, config, sink, ingress_url, worker_process, "mtls")


@pytest.mark.parametrize(
    "client",
    [
        pytest.param(lambda pki: mtls_client(pki, certificate=False), id="no-client-certificate"),
        pytest.param(lambda pki: {"security.protocol": "SSL"}, id="untrusted-broker"),
    ],
)
async def test_a_client_the_tls_listener_refuses_gets_no_202(
    client: Any, tls_broker: LocalKafka, pki: Pki, tmp_path: Path, ingress_url: Any
) -> None:
    good, _ = tls_settings(tls_broker.ssl_bootstrap, tmp_path, "good", mtls_client(pki))
    create_topics(good)
    bad, _ = tls_settings(
        tls_broker.ssl_bootstrap,
        tmp_path,
        "bad",
        client(pki),
        topics={"events": good.topics.events, "partitions": 3},
        ingress={"produce_timeout": "3s"},
    )
    base = await ingress_url(bad)
    async with aiohttp.ClientSession() as session:
        await assert_enqueue_refused(session, base, bad, "evt_refused", deadline=3)


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_sasl_ssl_scram_carries_an_event_from_ingress_through_a_worker(
    mechanism: str,
    tls_broker: LocalKafka,
    pki: Pki,
    tmp_path: Path,
    sink: Any,
    ingress_url: Any,
    worker_process: Any,
) -> None:
    assert tls_broker.sasl_ssl_bootstrap is not None
    assert not answers_metadata(tls_broker.sasl_ssl_bootstrap, timeout=3)
    client = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.username": USER.name,
        "sasl.password": USER.password,
        "ssl.ca.location": str(pki.ca),
    }
    settings, config = tls_settings(
        tls_broker.sasl_ssl_bootstrap,
        tmp_path,
        "sasl_ssl",
        client,
        destinations={"sink": {"url": sink.url, "sources": ["std"], "timeout": "5s"}},
    )
    await deliver_through(settings, config, sink, ingress_url, worker_process, "sasl_ssl")
