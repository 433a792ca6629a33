"""GET /v1/healthz: broker, database and index state, without authentication."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response, status
from sqlmodel import Session, select

from shared.db import database_ok
from shared.models import ServiceStatus

router = APIRouter(prefix="/v1", tags=["health"])
STALE_AFTER_S = 15


@router.get("/healthz", summary="Broker, database and index state")
def healthz(request: Request, response: Response) -> dict[str, Any]:
    engine = request.app.state.engine
    broker = request.app.state.broker_probe.state()
    db_ok = database_ok(engine)
    services: dict[str, Any] = {}
    if db_ok:
        now = datetime.now(UTC)
        with Session(engine) as session:
            for row in session.exec(select(ServiceStatus)).all():
                updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
                age = (now - updated).total_seconds()
                live = row.state != "stopped" and age < STALE_AFTER_S
                services[row.name] = {
                    "state": row.state if live else f"{row.state} (stale)",
                    "age_s": round(age, 1),
                    **row.detail,
                }
    # One matcher, or replicas named matcher-<n> / matcher-<pod>, each with a full index:
    # the index is ready while any replica is.
    replicas = [detail for name, detail in sorted(services.items()) if name.split("-", 1)[0] == "matcher"]
    matcher = next((detail for detail in replicas if detail["state"] == "ready"), replicas[0] if replicas else {})
    index = {"state": matcher.get("state", "unknown"), "sizes": matcher.get("index", {})}
    healthy = db_ok and broker["ok"] and index["state"] == "ready"
    if not db_ok:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return {
        "status": "ok" if healthy else "degraded",
        "broker": broker,
        "database": {"ok": db_ok},
        "index": index,
        "services": services,
        "outbox": {"published_by_api": request.app.state.relay_stats()},
    }
