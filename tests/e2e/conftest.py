"""The real platform: Tansu subprocess + api, embedder, matcher, notifier as OS processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import Session

from services.launcher import Platform, free_port
from shared.models import Role
from shared.security import create_key
from shared.settings import Settings


@pytest.fixture(params=["sqlite", "postgresql"])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    database_url = "" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    settings = Settings(
        data_dir=tmp_path / "var",
        database_url=database_url,
        kafka_bootstrap="",  # the embedded broker, started by the platform like `salon up` does
        kafka_embedded_port=free_port(),
        api_port=free_port(),
        api_key_pepper="e2e-pepper-0123456789",
        reconcile_after_s=5,  # the broker-restart test waits for the reconciler
        webhook_allow_loopback=True,  # the webhook test's receiver listens on 127.0.0.1
    )
    with Platform(settings) as running:
        yield running


@pytest.fixture
def headers_for(platform: Platform) -> Callable[[Role, str], dict[str, str]]:
    def make(role: Role, owner: str) -> dict[str, str]:
        with Session(platform.engine) as session:
            _, raw = create_key(session, role=role, name=owner, owner=owner, pepper=platform.settings.api_key_pepper)
            session.commit()
        return {"Authorization": f"Bearer {raw}"}

    return make
