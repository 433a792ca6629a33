"""deploy/ is for machines with a container engine; here it is validated statically."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
SALON_SERVICES = {"api", "embedder", "matcher", "notifier"}


def test_compose_runs_kafka_in_kraft_mode_postgres_and_every_service():
    services = COMPOSE["services"]
    assert SALON_SERVICES | {"kafka", "postgres"} <= set(services)
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller", "KRaft, no ZooKeeper"
    assert "zookeeper" not in services


def test_each_service_runs_a_real_module_with_known_settings():
    known = {f"SALON_{name.upper()}" for name in Settings.model_fields}
    for name in SALON_SERVICES:
        service = COMPOSE["services"][name]
        module = service["command"][-1]
        assert service["command"][:2] == ["python", "-m"]
        assert importlib.util.find_spec(module) is not None, module
        assert module == f"services.{name}.main"
        unknown = {key for key in service["environment"] if key.startswith("SALON_")} - known
        assert not unknown, f"{name} sets unknown settings {unknown}"
        assert service["environment"]["SALON_ENVIRONMENT"] == "production"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
        assert isinstance(service.get("deploy", {}).get("replicas", 1), int)


def test_the_image_installs_the_cpu_torch_pin_and_the_project():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "torch==2.13.0" in dockerfile and "pip install ." in dockerfile
    for folder in ("shared", "embeddings", "services"):
        assert f"COPY {folder} " in dockerfile
