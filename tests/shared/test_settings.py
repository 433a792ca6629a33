"""Settings: defaults for one laptop; production refuses development shortcuts."""

from __future__ import annotations

import pytest

from shared.errors import ConfigurationError
from shared.settings import Settings

PRODUCTION = {
    "environment": "production",
    "database_url": "postgresql+psycopg://salon@db/salon",
    "kafka_bootstrap": "kafka:9092",
    "api_key_pepper": "3f9c2a7e51b04d8c9e6a1f2b7c3d4e5f",
}


def test_development_defaults_use_sqlite_and_the_embedded_broker(tmp_path):
    settings = Settings(data_dir=tmp_path)
    assert settings.resolved_database_url == f"sqlite:///{tmp_path.resolve() / 'salon.db'}"
    assert settings.bootstrap == "127.0.0.1:19092"
    assert settings.topic("matches") == "salon.matches"


def test_production_accepts_real_infrastructure():
    assert Settings(**PRODUCTION).bootstrap == "kafka:9092"


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"api_key_pepper": "changeme"}, "PEPPER"),
        ({"api_key_pepper": "salon-dev-pepper-not-for-production"}, "PEPPER"),
        ({"database_url": ""}, "DATABASE_URL"),
        ({"database_url": "sqlite:///x.db"}, "DATABASE_URL"),
        ({"kafka_bootstrap": ""}, "KAFKA_BOOTSTRAP"),
        ({"webhook_allow_loopback": True}, "WEBHOOK_ALLOW_LOOPBACK"),
    ],
)
def test_production_refuses_placeholders(override, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        Settings(**{**PRODUCTION, **override})
