"""Platform's replica bookkeeping (the processes themselves run in tests/e2e/test_scaling.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.launcher import Platform, replica_names, settings_env
from shared.errors import ConfigurationError
from shared.settings import Settings


def test_replicas_are_named_processes_each_with_its_own_name_and_index_folder(tmp_path: Path):
    platform = Platform(Settings(data_dir=tmp_path), replicas={"embedder": 2, "matcher": 2})
    try:
        assert sorted(platform.services) == ["api", "embedder-1", "embedder-2", "matcher-1", "matcher-2", "notifier"]
        matchers = [platform.services[name] for name in ("matcher-1", "matcher-2")]
        assert [p.env["SALON_INSTANCE_ID"] for p in matchers] == ["matcher-1", "matcher-2"]
        assert len({p.env["SALON_INDEX_DIR"] for p in matchers}) == 2, "each replica snapshots its own index"
        assert {p.log_path.name for p in matchers} == {"matcher-1.log", "matcher-2.log"}
        assert platform.services["notifier"].env["SALON_INSTANCE_ID"] == "", "a single process keeps its name"
    finally:
        platform.engine.dispose()


def test_impossible_replica_counts_are_refused(tmp_path: Path):
    with pytest.raises(ConfigurationError):
        Platform(Settings(data_dir=tmp_path), replicas={"api": 2})
    with pytest.raises(ConfigurationError):
        replica_names("matcher", 0)


def test_openmp_threads_wait_passively_unless_the_environment_says_otherwise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert settings_env(Settings(data_dir=tmp_path))["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # an operator's own choice stands
    assert settings_env(Settings(data_dir=tmp_path))["OMP_WAIT_POLICY"] == "ACTIVE"
