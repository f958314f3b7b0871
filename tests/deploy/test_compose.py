"""docker-compose.yml passes `docker compose config` and starts the stack in order."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from .conftest import ROOT, TOOL_DIR, Obj, missing, require_module, run

HOOKSTREAM_SERVICES = ("topics", "ingress", "worker", "console")


@pytest.fixture(scope="session")
def compose_command() -> list[str]:
    """The pinned docker compose, else the docker CLI's plugin, else a standalone one."""
    pinned = TOOL_DIR / "docker-compose"
    if pinned.is_file() and os.access(pinned, os.X_OK):
        return [str(pinned)]
    docker = shutil.which("docker")
    if docker and run(docker, "compose", "version").returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        return [standalone]
    return missing("docker compose")


@pytest.fixture(scope="session")
def compose(compose_command: list[str]) -> Obj:
    """The project as `docker compose config` resolves it."""
    result = run(*compose_command, "--file", "docker-compose.yml", "config", "--format", "json")
    if result.returncode != 0:
        pytest.fail(f"docker compose config failed:\n{result.stderr}", pytrace=False)
    model: Obj = json.loads(result.stdout)
    return model


def depends(compose: Obj, service: str) -> dict[str, str]:
    return {
        name: dep["condition"]
        for name, dep in compose["services"][service].get("depends_on", {}).items()
    }


def test_docker_compose_config_passes(compose: Obj) -> None:
    assert set(compose["services"]) >= {
        "kafka",
        *HOOKSTREAM_SERVICES,
        "jaeger",
        "prometheus",
        "grafana",
        "kafka-exporter",
    }


def test_kafka_is_the_pinned_official_image_in_kraft_mode(compose: Obj) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == "apache/kafka:4.3.1"
    assert set(kafka["environment"]["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_services_start_in_order(compose: Obj) -> None:
    assert depends(compose, "topics") == {"kafka": "service_healthy"}
    for service in ("ingress", "worker"):
        assert depends(compose, service).get("topics") == "service_completed_successfully", service
    assert compose["services"]["topics"]["command"] == ["topics", "create"]
    assert compose["services"]["topics"].get("restart", "no") == "no"
    for name in compose["services"]:
        for dependency, condition in depends(compose, name).items():
            if condition == "service_healthy":
                assert compose["services"][dependency].get("healthcheck"), (
                    f"{name} waits on {dependency}"
                )


def test_ingress_worker_and_console_have_health_checks(compose: Obj) -> None:
    for service in ("ingress", "worker", "console"):
        assert compose["services"][service]["healthcheck"]["test"], service


def test_hookstream_containers_are_locked_down(compose: Obj) -> None:
    for name in HOOKSTREAM_SERVICES:
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert service["pull_policy"] == "build", (
            f"{name} must never pull a registry image named like ours"
        )


def test_worker_keeps_its_state_on_a_named_volume(compose: Obj) -> None:
    worker = compose["services"]["worker"]
    data_dir = worker["environment"]["HOOKSTREAM_DATA_DIR"]
    (volume,) = [v for v in worker["volumes"] if v["target"] == data_dir]
    assert volume["type"] == "volume"
    assert volume["source"] in compose["volumes"]
    assert worker["stop_grace_period"]


def test_bind_mounts_point_at_repository_files(compose: Obj) -> None:
    """A missing bind source would silently become an empty directory."""
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                source = Path(volume["source"])
                assert source.is_relative_to(ROOT), f"{name}: {source}"
                assert source.exists(), f"{name}: {source}"


def test_config_mount_is_the_compose_config(compose: Obj) -> None:
    for name in HOOKSTREAM_SERVICES:
        service = compose["services"][name]
        mounts = {v["target"]: v for v in service["volumes"]}
        config = mounts[service["environment"]["HOOKSTREAM_CONFIG"]]
        assert Path(config["source"]) == ROOT / "deploy" / "compose" / "hookstream.yaml", name
        assert config["read_only"] is True, name


def test_traces_go_to_jaeger_over_otlp(compose: Obj) -> None:
    assert compose["services"]["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    for name in HOOKSTREAM_SERVICES:
        endpoint = urlsplit(compose["services"][name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert (endpoint.hostname, endpoint.port) in {("jaeger", 4317), ("jaeger", 4318)}, name


def test_prometheus_scrapes_both_components_and_loads_the_alerts(compose: Obj) -> None:
    prometheus = compose["services"]["prometheus"]
    config_file = PurePosixPath(
        next(
            arg.split("=", 1)[1]
            for arg in prometheus["command"]
            if arg.startswith("--config.file=")
        )
    )
    mounts = {
        PurePosixPath(v["target"]): Path(v["source"])
        for v in prometheus["volumes"]
        if v["type"] == "bind"
    }
    host_config = mounts[config_file.parent] / config_file.name
    config = yaml.safe_load(host_config.read_text())

    rule_files = [mounts[config_file.parent] / rule for rule in config["rule_files"]]
    assert ROOT / "deploy" / "prometheus" / "alerts.yml" in rule_files
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert {"ingress:8080", "worker:6066"} <= targets
    for target in targets:
        assert target.split(":")[0] in compose["services"], target


def test_grafana_provisions_the_dashboard(compose: Obj) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {
        Path(v["source"]): PurePosixPath(v["target"])
        for v in grafana["volumes"]
        if v["type"] == "bind"
    }
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    assert mounts[provisioning] == PurePosixPath("/etc/grafana/provisioning")

    (provider,) = yaml.safe_load((provisioning / "dashboards" / "hookstream.yml").read_text())[
        "providers"
    ]
    assert mounts[ROOT / "deploy" / "grafana" / "dashboards"] == PurePosixPath(
        provider["options"]["path"]
    )
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    url = urlsplit(datasource["url"])
    assert url.hostname in compose["services"]
    assert url.port == 9090


def test_compose_config_loads_with_hookstream_settings() -> None:
    config_module = require_module("hookstream.config")
    settings = config_module.load_settings(ROOT / "deploy" / "compose" / "hookstream.yaml", {})
    assert settings.kafka.bootstrap_servers == "kafka:9092"
