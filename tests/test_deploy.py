"""deploy/ is for machines with a container engine; here it is validated statically:
compose.yaml against the Compose Specification schema, deploy/k8s against the Kubernetes API
schemas (strict, offline: kubernetes-validate bundles them), and both against the code —
settings, modules, routes, topics and partition counts."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from services import probe
from services.api.main import create_app
from services.runtime import all_topics
from shared.errors import ConfigurationError
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SALON_SERVICES = {"api", "embedder", "matcher", "notifier"}
WORKERS = set(probe.WORKERS)
KNOWN_SETTINGS = {f"SALON_{name.upper()}" for name in Settings.model_fields}
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())  # oldest supported, newest bundled
TOPIC_SCRIPT = re.compile(
    r"for topic in (?P<topics>[^;]+); do.*?"
    r'--topic "\$+topic" --partitions (?P<partitions>\d+) --replication-factor (?P<rf>\d+).*?'
    r'--topic "\$+topic\.dlq" --partitions (?P<dlq>\d+)',
    re.S,
)


def k8s_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


K8S = list(k8s_documents())


def k8s(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in K8S if doc["kind"] == kind}


def pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("Deployment", "StatefulSet", "Job"):
        for name, doc in k8s(kind).items():
            yield name, doc["spec"]["template"]["spec"]


def salon_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    image = COMPOSE["services"]["api"]["image"]
    for name, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            if container["image"] == image:
                yield name, container


def parse_topic_script(script: str) -> dict[str, Any]:
    found = TOPIC_SCRIPT.search(script)
    assert found, f"no topic creation loop in:\n{script}"
    return {
        "topics": found["topics"].split(),
        "partitions": int(found["partitions"]),
        "replication": int(found["rf"]),
        "dlq_partitions": int(found["dlq"]),
    }


def api_paths() -> set[str]:
    """The API's paths, from its OpenAPI document."""
    return set(create_app(Settings(), background=False).openapi()["paths"])


# --- compose --------------------------------------------------------------------------------
def test_compose_follows_the_compose_specification():
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    errors = [
        f"{error.json_path}: {error.message}" for error in jsonschema.Draft202012Validator(schema).iter_errors(COMPOSE)
    ]
    assert not errors, errors


def test_compose_runs_kafka_in_kraft_mode_postgres_and_every_service():
    services = COMPOSE["services"]
    assert SALON_SERVICES | {"kafka", "postgres", "topic-init"} <= set(services)
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
    assert "zookeeper" not in services
    assert services["topic-init"]["image"] == services["kafka"]["image"]


def test_each_service_runs_a_real_module_with_known_settings_and_its_replicas():
    for name in SALON_SERVICES:
        service = COMPOSE["services"][name]
        module = service["command"][-1]
        assert service["command"][:2] == ["python", "-m"]
        assert importlib.util.find_spec(module) is not None, module
        assert module == f"services.{name}.main"
        unknown = {key for key in service["environment"] if key.startswith("SALON_")} - KNOWN_SETTINGS
        assert not unknown, f"{name} sets unknown settings {unknown}"
        assert service["environment"]["SALON_ENVIRONMENT"] == "production"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert service["depends_on"]["topic-init"]["condition"] == "service_completed_successfully"
        assert isinstance(service["deploy"]["replicas"], int)
    partitions = int(COMPOSE["x-salon-env"]["SALON_KAFKA_TOPIC_PARTITIONS"])
    for scaled in ("embedder", "matcher"):
        assert 2 <= COMPOSE["services"][scaled]["deploy"]["replicas"] <= partitions
        assert "{hostname}" in COMPOSE["services"][scaled]["environment"]["SALON_INSTANCE_ID"], "one row per replica"


def test_compose_health_checks_probe_something_real():
    services = COMPOSE["services"]
    url = " ".join(services["api"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/[^'\"]+)", url)
    assert path and path.group(1) in api_paths()
    for worker in WORKERS:
        assert services[worker]["healthcheck"]["test"] == ["CMD", "python", "-m", "services.probe", worker]


def test_compose_creates_every_topic_with_the_partitions_the_services_are_told():
    script = parse_topic_script(COMPOSE["services"]["topic-init"]["command"][0])
    assert script["topics"] == all_topics(Settings())
    assert script["partitions"] == int(COMPOSE["x-salon-env"]["SALON_KAFKA_TOPIC_PARTITIONS"])
    assert script["dlq_partitions"] == 1, "as shared/bus.ensure_topics creates them"


def test_compose_settings_pass_the_production_checks():
    env = {key: value for key, value in COMPOSE["x-salon-env"].items()}
    env["SALON_API_KEY_PEPPER"] = "a" * 64  # what the operator exports
    env = {key: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value) for key, value in env.items()}
    Settings(**{key.removeprefix("SALON_").lower(): value for key, value in env.items()})


# --- kubernetes -----------------------------------------------------------------------------
@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(("file", "document"), K8S, ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in K8S])
def test_every_manifest_is_valid_kubernetes(file: str, document: dict[str, Any], version: str):
    kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_check_rejects_a_wrong_field():
    deployment = yaml.safe_load(yaml.safe_dump(k8s("Deployment")["matcher"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["exec"]["cmd"] = ["true"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[-1], strict=True)


def test_kustomization_applies_every_manifest_in_the_namespace():
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted({file for file, _ in K8S})
    namespace = kustomization["namespace"]
    assert set(k8s("Namespace")) == {namespace}
    assert all(doc["metadata"].get("namespace", namespace) == namespace for _, doc in K8S)


def test_selectors_match_their_pods_and_targets_exist():
    workloads = {**k8s("Deployment"), **k8s("StatefulSet")}
    pod_labels = [doc["spec"]["template"]["metadata"]["labels"] for doc in workloads.values()]
    for name, doc in workloads.items():
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector.items() <= doc["spec"]["template"]["metadata"]["labels"].items(), name
        assert isinstance(doc["spec"]["replicas"], int), f"{name} sets its replica count"
    for kind in ("Service", "PodDisruptionBudget"):
        for name, doc in k8s(kind).items():
            selector = doc["spec"]["selector"]
            selector = selector.get("matchLabels", selector)
            assert any(selector.items() <= labels.items() for labels in pod_labels), f"{kind} {name} selects no pod"
    for name, statefulset in k8s("StatefulSet").items():
        assert statefulset["spec"]["serviceName"] in k8s("Service"), name
    for name, hpa in k8s("HorizontalPodAutoscaler").items():
        assert hpa["spec"]["scaleTargetRef"]["name"] in k8s("Deployment"), name


def test_every_salon_deployment_runs_its_module_with_probes_and_resources():
    image = COMPOSE["services"]["api"]["image"]
    deployments = k8s("Deployment")
    assert set(deployments) == SALON_SERVICES
    paths = api_paths()
    for name, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] == image, "one image for every service, as in compose"
        assert container["command"] == ["python", "-m", f"services.{name}.main"]
        for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
            check = container[probe_name]
            if "httpGet" in check:
                assert check["httpGet"]["path"] in paths, f"{name} {probe_name}"
            elif "exec" in check:
                command = check["exec"]["command"]
                assert command[:4] == ["python", "-m", "services.probe", name], f"{name} {probe_name}"
                assert name in WORKERS
            else:
                assert "tcpSocket" in check, f"{name} {probe_name}"
    for name, spec in pod_specs():
        for container in spec.get("initContainers", []) + spec["containers"]:
            resources_ = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources_.get("requests", {})), f"{name}/{container['name']} requests"
            assert {"cpu", "memory"} <= set(resources_.get("limits", {})), f"{name}/{container['name']} limits"


def test_pods_start_only_after_the_topics_exist():
    for name, deployment in k8s("Deployment").items():
        (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert "python -m services.probe topics" in init["command"][-1], name
    assert probe.TOPICS == "topics"


def test_configuration_is_salon_settings_from_one_configmap_and_one_secret():
    configmaps, secrets = k8s("ConfigMap"), k8s("Secret")
    used_in_k8s: set[str] = set()
    for _, container in salon_containers():
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                used_in_k8s |= set(configmaps[source["configMapRef"]["name"]]["data"])
            if "secretRef" in source:
                used_in_k8s |= set(secrets[source["secretRef"]["name"]]["stringData"])
        used_in_k8s |= {variable["name"] for variable in container.get("env", [])}
    salon_k8s = {key for key in used_in_k8s if key.startswith("SALON_")}
    assert salon_k8s <= KNOWN_SETTINGS, salon_k8s - KNOWN_SETTINGS
    compose_env = set(COMPOSE["x-salon-env"])
    for service in SALON_SERVICES:
        compose_env |= set(COMPOSE["services"][service]["environment"])
    assert salon_k8s == {key for key in compose_env if key.startswith("SALON_")}, "same variables in both"


def test_the_placeholder_secret_is_refused_and_a_real_one_accepted():
    config = dict(k8s("ConfigMap")["salon-config"]["data"])
    secret = {k: v for k, v in k8s("Secret")["salon-secrets"]["stringData"].items() if k.startswith("SALON_")}
    fields = {key.removeprefix("SALON_").lower(): value for key, value in {**config, **secret}.items()}
    with pytest.raises(ConfigurationError):
        Settings(**fields)
    Settings(**{**fields, "api_key_pepper": "b" * 64})


def test_kubernetes_creates_the_same_topics_and_partitions_as_compose():
    (container,) = k8s("Job")["salon-topics"]["spec"]["template"]["spec"]["containers"]
    in_k8s = parse_topic_script(container["command"][-1])
    in_compose = parse_topic_script(COMPOSE["services"]["topic-init"]["command"][0])
    assert {k: v for k, v in in_k8s.items() if k != "replication"} == {
        k: v for k, v in in_compose.items() if k != "replication"
    }
    partitions = int(k8s("ConfigMap")["salon-config"]["data"]["SALON_KAFKA_TOPIC_PARTITIONS"])
    assert in_k8s["partitions"] == partitions
    kafka = k8s("StatefulSet")["kafka"]
    assert 1 < in_k8s["replication"] <= kafka["spec"]["replicas"]
    for name in ("embedder", "matcher"):
        assert 2 <= k8s("Deployment")[name]["spec"]["replicas"] <= partitions
    for name, hpa in k8s("HorizontalPodAutoscaler").items():
        if name in WORKERS:
            assert hpa["spec"]["maxReplicas"] <= partitions, "idle members past the partition count"


def test_kubernetes_kafka_is_a_kraft_quorum():
    kafka = k8s("StatefulSet")["kafka"]
    (container,) = kafka["spec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable.get("value") for variable in container["env"]}
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == kafka["spec"]["replicas"] == 3
    assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) < int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"])
    assert container["image"] == COMPOSE["services"]["kafka"]["image"]
    assert not [doc for _, doc in K8S if "zookeeper" in json.dumps(doc).lower()]
    assert "KAFKA_NODE_ID" in shlex.join(container["command"]), "node id from the pod ordinal"


def test_the_image_installs_the_cpu_torch_pin_and_the_project():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile and "pip install ." in dockerfile
    for folder in ("shared", "embeddings", "services"):
        assert f"COPY {folder} " in dockerfile
    assert "USER salon" in dockerfile
