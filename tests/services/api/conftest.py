"""An in-process API on a real SQLite file (the relay is off: these tests stop at the outbox)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from services.api.main import create_app
from shared.db import init_db, make_engine
from shared.models import Role
from shared.security import create_key
from shared.settings import Settings


@pytest.fixture
def api_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, kafka_bootstrap="127.0.0.1:9", api_key_pepper="test-pepper-0123456789")


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings, background=False)) as test_client:
        yield test_client


@pytest.fixture
def key_for(api_settings: Settings) -> Callable[[Role, str], dict[str, str]]:
    """Authorization headers for a new key of `role` acting for `owner`."""
    engine = make_engine(api_settings.resolved_database_url)
    init_db(engine)

    def make(role: Role, owner: str) -> dict[str, str]:
        with Session(engine) as session:
            _, raw = create_key(session, role=role, name=owner, owner=owner, pepper=api_settings.api_key_pepper)
            session.commit()
        return {"Authorization": f"Bearer {raw}"}

    return make
