"""The Kubernetes overlays render, validate offline, and keep the deployment's promises.

Every test runs once per overlay (k8s/overlays/dev, k8s/overlays/prod) on the
objects `kustomize build` renders.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from .conftest import ROOT, Manifests, Obj, require_module

# Oldest Kubernetes the manifests support, and the newest the schemas know.
K8S_VERSIONS = ("1.30", "latest")

# Custom resources, validated against our schemas of their fields in schemas/.
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1", "KafkaTopic"): "kafkatopic.json",
    ("kafka.strimzi.io/v1", "KafkaUser"): "kafkauser.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

# What a ConfigMap must never carry: webhook signing secrets and key material.
SECRET_PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=]{8,}"),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"(?i)(password|secret)\s*[:=]\s*\S{4,}"),
)


def ident(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata'].get('namespace', '-')}/{obj['metadata']['name']}"


def containers(pod_template: Obj) -> Iterator[Obj]:
    spec = pod_template["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a matchLabels selector (the only kind used here) selects the labels."""
    assert set(selector) <= {"matchLabels"}, f"unsupported selector {selector}"
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def env_of(container: Obj) -> dict[str, Obj]:
    return {item["name"]: item for item in container.get("env", [])}


def container_port(container: Obj, port: int | str) -> int:
    """A probe's port, named or numeric, as a number."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def ingress(manifests: Manifests) -> tuple[Obj, Obj]:
    deployment = manifests.get("Deployment", "hookstream-ingress")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return deployment, container


def hookstream_containers(manifests: Manifests) -> Iterator[tuple[Obj, Obj]]:
    """Every workload's container that runs hookstream (each reads the shared config)."""
    for kind in ("Deployment", "StatefulSet", "Job"):
        for workload in manifests.of_kind(kind):
            for container in containers(workload["spec"]["template"]):
                image = str(container.get("image", "")).rsplit("/", 1)[-1]
                if image.startswith("hookstream"):
                    yield workload, container


def worker(manifests: Manifests) -> tuple[Obj, Obj]:
    statefulset = manifests.get("StatefulSet", "hookstream-worker")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return statefulset, container


# -- schemas ------------------------------------------------------------------


@pytest.mark.parametrize("k8s_version", K8S_VERSIONS)
def test_builtin_objects_validate_against_kubernetes_schemas(
    manifests: Manifests, k8s_version: str
) -> None:
    kubernetes_validate = require_module("kubernetes_validate")
    version = kubernetes_validate.latest_version() if k8s_version == "latest" else k8s_version
    errors = []
    for obj in manifests.objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(str(part) for part in exc.absolute_path)
            errors.append(f"{ident(obj)}: {exc.message} at /{path}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{ident(obj)}: {exc.message}")
    assert not errors, f"{manifests.overlay} against Kubernetes {version}:\n" + "\n".join(errors)


def strict_crd_schema(node: Any) -> Any:
    """A CRD's openAPIV3Schema as a JSON schema that rejects unknown fields.

    The API server, with kubectl's default strict field validation, refuses
    fields a structural schema does not declare; plain JSON schema would
    allow them.
    """
    if isinstance(node, list):
        return [strict_crd_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict_crd_schema(value) for key, value in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def test_custom_resources_validate_against_their_crd_schemas(manifests: Manifests) -> None:
    jsonschema = require_module("jsonschema")
    validators = {}
    for key, filename in CRD_SCHEMAS.items():
        declared = json.loads((ROOT / "tests" / "deploy" / "schemas" / filename).read_text())
        assert (declared["group"], declared["version"], declared["kind"]) == (
            *key[0].split("/"),
            key[1],
        )
        schema = strict_crd_schema(copy.deepcopy(declared["openAPIV3Schema"]))
        validators[key] = jsonschema.Draft7Validator(schema)

    custom = [obj for obj in manifests.objects if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS]
    if manifests.with_operators:
        assert {obj["kind"] for obj in custom} >= {"KafkaTopic", "ServiceMonitor", "PrometheusRule"}
    else:
        assert custom == [], (
            "this overlay is for clusters without Strimzi or the Prometheus Operator"
        )
    errors = []
    for obj in custom:
        for error in validators[(obj["apiVersion"], obj["kind"])].iter_errors(obj):
            path = "/".join(str(part) for part in error.absolute_path)
            errors.append(f"{ident(obj)}: {error.message} at /{path}")
        if not DNS_SUBDOMAIN.match(obj["metadata"]["name"]):
            errors.append(f"{ident(obj)}: name is not a DNS subdomain")
        if not obj["metadata"].get("namespace"):
            errors.append(f"{ident(obj)}: no namespace")
    assert not errors, "\n".join(errors)


# -- workloads ------------------------------------------------------------------


def test_ingress_probes_readiness_on_readyz_and_liveness_on_healthz(manifests: Manifests) -> None:
    _, container = ingress(manifests)
    port = manifests.hookstream_config()["ingress"]["port"]
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/readyz"
    assert liveness["httpGet"]["path"] == "/healthz"
    assert container_port(container, readiness["httpGet"]["port"]) == port
    assert container_port(container, liveness["httpGet"]["port"]) == port


def test_worker_probes_health_on_the_worker_port(manifests: Manifests) -> None:
    _, container = worker(manifests)
    port = manifests.hookstream_config()["worker"]["port"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz", probe
        assert container_port(container, container[probe]["httpGet"]["port"]) == port, probe


def is_hookstream(container: Obj) -> bool:
    """Whether the container runs the hookstream image (not a third-party one)."""
    return str(container["image"]).split(":")[0].split("/")[-1] == "hookstream"


def test_every_container_runs_non_root_read_only_without_capabilities(manifests: Manifests) -> None:
    checked = 0
    for obj, template in manifests.workloads():
        pod = template["spec"].get("securityContext", {})
        for container in containers(template):
            where = f"{ident(obj)} container {container['name']}"
            ctx = container.get("securityContext", {})
            effective = {**pod, **ctx}
            assert effective.get("runAsNonRoot") is True, where
            # A number: the kubelet cannot check runAsNonRoot against an image's user name.
            assert isinstance(effective.get("runAsUser"), int), where
            assert effective["runAsUser"] != 0, where
            assert effective.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            # The official Kafka image writes its config under /etc/kafka at start.
            if is_hookstream(container):
                assert ctx.get("readOnlyRootFilesystem") is True, where
            assert ctx.get("allowPrivilegeEscalation") is False, where
            assert ctx.get("privileged", False) is False, where
            assert "ALL" in ctx.get("capabilities", {}).get("drop", []), where
            assert not ctx.get("capabilities", {}).get("add"), where
            checked += 1
    assert checked >= 2


def test_secret_files_are_readable_by_the_pod_user(manifests: Manifests) -> None:
    """Secret volumes without world-read bits are readable only through fsGroup."""
    for obj, template in manifests.workloads():
        pod = template["spec"]
        for volume in pod.get("volumes", []):
            source = volume.get("secret") or volume.get("projected")
            if source is None:
                continue
            mode = source.get("defaultMode", 0o644)
            if mode & 0o004:
                continue
            context = pod.get("securityContext", {})
            assert context.get("fsGroup") is not None, (
                f"{ident(obj)} volume {volume['name']}: mode {mode:o} without fsGroup"
            )
            assert mode & 0o040, f"{ident(obj)} volume {volume['name']}: not group-readable"


def test_every_container_sets_cpu_and_memory_requests_and_limits(manifests: Manifests) -> None:
    for obj, template in manifests.workloads():
        for container in containers(template):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert set(resources.get(bound, {})) >= {"cpu", "memory"}, (
                    f"{ident(obj)} container {container['name']} lacks {bound}"
                )


def test_worker_keeps_its_state_on_a_volume_claim_per_pod(manifests: Manifests) -> None:
    statefulset, container = worker(manifests)
    data_dir = env_of(container)["HOOKSTREAM_DATA_DIR"]["value"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
    templates = statefulset["spec"].get("volumeClaimTemplates", [])
    claims = [t for t in templates if t["metadata"]["name"] == mount["name"]]
    assert len(claims) == 1, f"{data_dir} is not on a per-pod volume claim"
    (claim,) = claims
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    pod_volumes = {v["name"] for v in statefulset["spec"]["template"]["spec"].get("volumes", [])}
    assert mount["name"] not in pod_volumes, "the data volume must come from the claim template"
    assert not mount.get("readOnly", False)


def test_worker_has_a_headless_service(manifests: Manifests) -> None:
    statefulset, _ = worker(manifests)
    service = manifests.get("Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    assert selects(
        {"matchLabels": service["spec"]["selector"]},
        statefulset["spec"]["template"]["metadata"]["labels"],
    )


def test_worker_grace_period_leaves_time_to_commit(manifests: Manifests) -> None:
    statefulset, _ = worker(manifests)
    assert statefulset["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 60


def test_worker_replicas_fit_partitions_and_standbys(manifests: Manifests) -> None:
    statefulset, _ = worker(manifests)
    config = manifests.hookstream_config()
    replicas = statefulset["spec"]["replicas"]
    standbys = config["worker"]["standby_replicas"]
    assert 1 <= replicas <= config["topics"]["partitions"], (
        "pods beyond the partition count stay idle"
    )
    assert standbys <= replicas - 1, "a standby must live on another worker pod"
    if replicas > 1:
        assert standbys >= 1, "several workers without standbys replay the changelog on every move"


def test_hookstream_containers_export_traces_over_otlp(manifests: Manifests) -> None:
    for _, container in (ingress(manifests), worker(manifests)):
        env = env_of(container)
        assert re.match(r"^https?://[a-z0-9.-]+:\d+$", env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"])
        assert env["OTEL_SERVICE_NAME"]["value"].startswith("hookstream-")


# -- config and secrets -----------------------------------------------------------


def test_config_maps_hold_no_secret_material(manifests: Manifests) -> None:
    config = manifests.hookstream_config()
    for name, source in config["sources"].items():
        assert "secrets" not in source, f"source {name} has inline secrets"
        assert "secrets_env" in source or "secrets_file" in source, f"source {name} names no secret"
    for name, destination in config.get("destinations", {}).items():
        assert "secret" not in destination, f"destination {name} has an inline secret"
    for key in config["kafka"].get("client", {}):
        assert not re.search(r"password|secret|\.pem$|jaas", key), (
            f"kafka.client.{key} is secret material"
        )
    for config_map in manifests.of_kind("ConfigMap"):
        for key, value in config_map.get("data", {}).items():
            for pattern in SECRET_PATTERNS:
                assert not pattern.search(str(value)), (
                    f"{ident(config_map)} {key} matches {pattern.pattern}"
                )


def secret_mount_paths(template: Obj, container: Obj) -> list[PurePosixPath]:
    """Mount paths of the container's volumes that are built only from Secrets."""
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    paths = []
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})
        projected = volume.get("projected", {}).get("sources")
        if "secret" in volume or (projected and all("secret" in s for s in projected)):
            paths.append(PurePosixPath(mount["mountPath"]))
    return paths


def test_source_secrets_come_from_a_secret(manifests: Manifests) -> None:
    """Both workloads load the whole config, so both resolve the source secrets."""
    sources = manifests.hookstream_config()["sources"]
    for workload, container in (ingress(manifests), worker(manifests)):
        env = env_of(container)
        mounts = secret_mount_paths(workload["spec"]["template"], container)
        for name, source in sources.items():
            where = f"{ident(workload)} source {name}"
            if "secrets_env" in source:
                variable = env.get(source["secrets_env"], {})
                assert "secretKeyRef" in variable.get("valueFrom", {}), (
                    f"{where}: {source['secrets_env']}"
                )
            if "secrets_file" in source:
                path = PurePosixPath(source["secrets_file"])
                assert any(path.is_relative_to(m) for m in mounts), (
                    f"{where}: {path} is not a mounted Secret"
                )


def test_kafka_client_files_are_mounted_from_secrets(manifests: Manifests) -> None:
    locations = [
        PurePosixPath(value)
        for key, value in manifests.hookstream_config()["kafka"].get("client", {}).items()
        if key.endswith(".location")
    ]
    for workload, container in hookstream_containers(manifests):
        mounts = secret_mount_paths(workload["spec"]["template"], container)
        for path in locations:
            assert any(path.is_relative_to(m) for m in mounts), (
                f"{ident(workload)}: {path} not mounted"
            )


# -- availability ------------------------------------------------------------------


def test_ingress_has_an_autoscaler(manifests: Manifests) -> None:
    deployment, _ = ingress(manifests)
    (hpa,) = manifests.of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"


def test_ingress_and_worker_have_disruption_budgets(manifests: Manifests) -> None:
    budgets = manifests.of_kind("PodDisruptionBudget")
    for workload, _ in (ingress(manifests), worker(manifests)):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert any(selects(pdb["spec"]["selector"], labels) for pdb in budgets), ident(workload)


def test_every_pod_is_isolated_by_a_network_policy(manifests: Manifests) -> None:
    policies = manifests.of_kind("NetworkPolicy")
    for workload, template in manifests.workloads():
        namespace = workload["metadata"]["namespace"]
        assert any(
            policy["metadata"]["namespace"] == namespace
            and "Ingress" in policy["spec"]["policyTypes"]
            and selects(policy["spec"]["podSelector"], template["metadata"]["labels"])
            for policy in policies
        ), ident(workload)


# -- topics ------------------------------------------------------------------------


def duration_ms(text: str | int | float) -> float:
    """A config duration (`30s`, `7d`, or seconds) in milliseconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    if isinstance(text, int | float):
        return float(text) * 1000
    match = re.fullmatch(r"([\d.]+)(ms|s|m|h|d)", text)
    assert match, f"not a duration: {text}"
    return float(match[1]) * units[match[2]] * 1000


def test_topics_are_those_hookstream_creates(operator_manifests: Manifests, tmp_path: Path) -> None:
    """Each topic `hookstream topics create` would make exists as a KafkaTopic, alike."""
    topic_specs = require_module("hookstream.kafka.topics").topic_specs
    declared = {t["spec"]["topicName"]: t["spec"] for t in operator_manifests.of_kind("KafkaTopic")}
    for spec in topic_specs(load_hookstream_settings(operator_manifests, tmp_path)):
        assert spec.name in declared, spec.name
        topic = declared[spec.name]
        assert topic["partitions"] == spec.partitions, spec.name
        assert topic["replicas"] == spec.replication_factor, spec.name
        for key, value in spec.config.items():
            assert str(topic["config"].get(key)) == value, f"{spec.name} {key}"


def test_topic_retention_fits_the_config(operator_manifests: Manifests) -> None:
    config = operator_manifests.hookstream_config()
    events = config["topics"]["events"]
    topics = {
        t["spec"]["topicName"]: t["spec"]["config"]
        for t in operator_manifests.of_kind("KafkaTopic")
    }
    assert topics[events]["retention.ms"] >= duration_ms(config["dedupe"]["ttl"]), (
        "a replay must reach back over the whole dedupe window"
    )
    longest_delay = max(duration_ms(delay) for delay in config["retry"]["schedule"])
    for tier in range(len(config["retry"]["schedule"])):
        assert topics[f"{events}.retry.{tier}"]["retention.ms"] > longest_delay, tier
    assert topics[f"{events}.dlq"]["retention.ms"] == -1, "dead letters never expire"


def test_topics_belong_to_one_strimzi_cluster(operator_manifests: Manifests) -> None:
    topics = operator_manifests.of_kind("KafkaTopic")
    assert len({t["metadata"]["labels"]["strimzi.io/cluster"] for t in topics}) == 1
    assert len({t["metadata"]["namespace"] for t in topics}) == 1


# -- monitoring --------------------------------------------------------------------


def test_service_monitors_scrape_ingress_and_worker(operator_manifests: Manifests) -> None:
    services = operator_manifests.of_kind("Service")
    scraped = set()
    for monitor in operator_manifests.of_kind("ServiceMonitor"):
        selected = [
            s
            for s in services
            if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
        ]
        assert selected, ident(monitor)
        for service in selected:
            port_names = {p["name"] for p in service["spec"]["ports"]}
            for endpoint in monitor["spec"]["endpoints"]:
                assert endpoint["port"] in port_names, f"{ident(monitor)} -> {ident(service)}"
            scraped.add(service["metadata"]["name"])
    assert scraped == {"hookstream-ingress", "hookstream-worker"}


def test_prometheus_rule_ships_the_alerts_file(operator_manifests: Manifests) -> None:
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    (rule,) = operator_manifests.of_kind("PrometheusRule")
    assert rule["spec"]["groups"] == alerts["groups"]


def test_standalone_kafka_and_topics_job_fit_the_config(standalone_manifests: Manifests) -> None:
    """Without Strimzi: the bundled broker is what the config names, and a Job creates the topics."""
    config = standalone_manifests.hookstream_config()
    kafka = standalone_manifests.get("StatefulSet", "kafka")
    service = standalone_manifests.get("Service", kafka["spec"]["serviceName"])
    namespace = kafka["metadata"]["namespace"]
    assert service["spec"]["clusterIP"] == "None"
    assert (
        config["kafka"]["bootstrap_servers"]
        == f"{service['metadata']['name']}.{namespace}.svc:9092"
    )
    assert config["topics"]["replication_factor"] == kafka["spec"]["replicas"] == 1
    pod = kafka["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False, "KAFKA_* service variables become broker properties"
    (job,) = standalone_manifests.of_kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert is_hookstream(container)
    assert container["args"] == ["topics", "create"]
    assert job["spec"]["ttlSecondsAfterFinished"] > 0, (
        "a finished Job must not block the next apply"
    )
    mounted = {
        v["configMap"]["name"]
        for v in job["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    }
    statefulset, _ = worker(standalone_manifests)
    worker_maps = {
        v["configMap"]["name"]
        for v in statefulset["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    }
    assert mounted == worker_maps, "the Job creates the topics of the config the worker reads"
    assert env_of(container).keys() >= {
        "HOOKSTREAM_CONFIG",
        *(s["secrets_env"] for s in config["sources"].values() if "secrets_env" in s),
    }


def load_hookstream_settings(
    manifests: Manifests, tmp_path: Path, given: set[str] | None = None
) -> Any:
    """The mounted hookstream.yaml, loaded by hookstream itself, secrets stood in for
    (with `given`, only the variables a pod sets)."""
    config_module = require_module("hookstream.config")
    config = manifests.hookstream_config()
    environ = {}
    for name, source in config["sources"].items():
        if "secrets_env" in source:
            environ[source["secrets_env"]] = "stand-in-secret"
        if "secrets_file" in source:
            stand_in = tmp_path / f"{name}.secret"
            stand_in.write_text("stand-in-secret\n")
            source["secrets_file"] = str(stand_in)
    console = config.get("console") or {}
    if "session_secret_env" in console:
        environ[console["session_secret_env"]] = "stand-in-secret"
    if given is not None:
        environ = {name: value for name, value in environ.items() if name in given}
    file = tmp_path / "hookstream.yaml"
    file.write_text(yaml.safe_dump(config))
    return config_module.load_settings(file, environ)


def test_console_signs_in_from_a_secret_and_keeps_its_index_on_a_volume(
    manifests: Manifests, tmp_path: Path
) -> None:
    [deployment] = [
        d for d in manifests.of_kind("Deployment") if d["metadata"]["name"] == "hookstream-console"
    ]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["console"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = env_of(container)
    settings = load_hookstream_settings(manifests, tmp_path)
    secret_env = manifests.hookstream_config()["console"]["session_secret_env"]
    # A generated Secret's name gains a hash suffix.
    assert env[secret_env]["valueFrom"]["secretKeyRef"]["name"].startswith("hookstream-console")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    users = Path(str(settings.console.users_file))
    assert volumes[mounts[str(users.parent)]]["secret"]["secretName"].startswith(
        "hookstream-console"
    )
    data_dir = env["HOOKSTREAM_DATA_DIR"]["value"]
    assert "emptyDir" in volumes[mounts[data_dir]]  # rebuildable from Kafka: no claim needed
    services = [
        s for s in manifests.of_kind("Service") if s["metadata"]["name"] == "hookstream-console"
    ]
    assert services
    assert services[0]["spec"]["ports"][0]["targetPort"] == "http"
    assert container["ports"][0]["containerPort"] == settings.console.port


def test_config_loads_with_hookstream_settings(manifests: Manifests, tmp_path: Path) -> None:
    """The mounted hookstream.yaml passes the application's own validation."""
    settings = load_hookstream_settings(manifests, tmp_path)
    assert settings.topics.partitions == manifests.hookstream_config()["topics"]["partitions"]


def test_every_hookstream_pod_loads_the_config_with_the_environment_it_is_given(
    manifests: Manifests, tmp_path: Path
) -> None:
    """A variable the shared file names but only one pod sets (the console's session
    secret) must not stop the others from starting."""
    checked = set()
    for workload, container in hookstream_containers(manifests):
        settings = load_hookstream_settings(manifests, tmp_path, set(env_of(container)))
        if container.get("args", [None])[0] == "console":
            settings.console.require_session_secret()
        checked.add(workload["metadata"]["name"])
    assert {"hookstream-ingress", "hookstream-worker", "hookstream-console"} <= checked
