"""/v1/healthz with replicated workers: every replica listed, the index ready while one is."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from services.runtime import report_status
from shared.db import init_db, make_engine
from shared.models import ServiceStatus, utcnow


def test_every_replica_is_listed_and_the_index_is_ready_while_any_replica_is(client, api_settings):
    engine = make_engine(api_settings.resolved_database_url)
    init_db(engine)
    report_status(engine, "matcher-1", "ready", index={"pitch": 3}, partitions=["salon.vectors:0"])
    report_status(engine, "matcher-2", "rebuilding")
    report_status(engine, "embedder-a1b2", "ready", partitions=["salon.submissions:0", "salon.submissions:1"])

    body = client.get("/v1/healthz").json()
    assert body["index"] == {"state": "ready", "sizes": {"pitch": 3}}
    assert body["services"]["embedder-a1b2"]["partitions"] == ["salon.submissions:0", "salon.submissions:1"]
    assert body["services"]["matcher-2"]["state"] == "rebuilding"

    with Session(engine) as session:  # matcher-1 stops beating (killed)
        row = session.get(ServiceStatus, "matcher-1")
        assert row is not None
        row.updated_at = utcnow() - timedelta(minutes=5)
        session.add(row)
        session.commit()
    body = client.get("/v1/healthz").json()
    assert body["index"]["state"] == "ready (stale)" and body["status"] == "degraded"
