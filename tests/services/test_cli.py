"""`salon keys`: a key is printed once and only its hash is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from services.cli import app
from shared.db import make_engine
from shared.models import ApiKey
from shared.security import find_key
from shared.settings import get_settings


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SALON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("SALON_API_KEY_PEPPER", "cli-test-pepper-0123456789")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_keys_create_prints_the_key_once_and_stores_its_hash(data_dir: Path):
    result = CliRunner().invoke(app, ["keys", "create", "--role", "fund", "--name", "深创投"])
    assert result.exit_code == 0, result.output
    raw = result.output.strip().splitlines()[-1]
    assert raw.startswith("salon_fun_")
    engine = make_engine(f"sqlite:///{data_dir / 'salon.db'}")
    with Session(engine) as session:
        [key] = session.exec(select(ApiKey)).all()
        assert key.owner == "深创投" and key.role == "fund"
        assert raw not in key.key_hash and key.prefix == raw[:12]
        assert find_key(session, raw, "cli-test-pepper-0123456789") is not None
        assert find_key(session, raw, "another-pepper") is None

    listed = CliRunner().invoke(app, ["keys", "list"])
    assert key.id in listed.output and raw not in listed.output
    assert CliRunner().invoke(app, ["keys", "revoke", key.id]).exit_code == 0
    with Session(engine) as session:
        assert find_key(session, raw, "cli-test-pepper-0123456789") is None


def test_unknown_role_is_refused(data_dir: Path):
    result = CliRunner().invoke(app, ["keys", "create", "--role", "hacker", "--name", "x"])
    assert result.exit_code != 0
