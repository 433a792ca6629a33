"""Loads the demo data (shared/demo/*.json) through the real HTTP API, as its owners."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from shared.models import ENTITY_TABLES, SUBMITTER_ROLE, ApiKey, EntityStatus, Role
from shared.security import create_key

DEMO_FILES = {"pitch": "pitches.json", "mandate": "mandates.json", "need": "needs.json"}
PLURAL = {"pitch": "pitches", "mandate": "mandates", "need": "needs"}
DEMO_KEY_PREFIX = "demo:"


def demo_items(kind: str) -> list[dict[str, Any]]:
    raw = resources.files("shared").joinpath("demo", DEMO_FILES[kind]).read_text(encoding="utf-8")
    items: list[dict[str, Any]] = json.loads(raw)
    return items


@dataclass
class DemoLoad:
    ids: dict[str, str]  # ref → entity id
    created: int
    skipped: int


def _owner_key(session: Session, owner: str, role: Role, pepper: str) -> str:
    """A fresh key for a demo owner (old demo keys of that owner are revoked: raw keys are never stored)."""
    for old in session.exec(select(ApiKey).where(ApiKey.owner == owner, ApiKey.name == DEMO_KEY_PREFIX + owner)):
        session.delete(old)
    _, raw = create_key(session, role=role, name=DEMO_KEY_PREFIX + owner, owner=owner, pepper=pepper)
    return raw


def load_demo(
    engine: Engine,
    api_url: str,
    *,
    pepper: str,
    on_item: Callable[[str, str], None] | None = None,
    client: httpx.Client | None = None,
) -> DemoLoad:
    """POST every demo item as its owner; items already present (same owner and title) are skipped."""
    http = client or httpx.Client(base_url=api_url, timeout=30)
    ids: dict[str, str] = {}
    created = skipped = 0
    keys: dict[str, str] = {}
    try:
        for kind in ("need", "mandate", "pitch"):
            table = ENTITY_TABLES[kind]
            for item in demo_items(kind):
                ref, owner = item["ref"], item["owner"]
                body = {k: v for k, v in item.items() if k not in {"ref", "owner"}}
                with Session(engine) as session:
                    title_field = {"pitch": "title", "mandate": "fund_name", "need": "description"}[kind]
                    existing = session.exec(
                        select(table.id).where(
                            table.owner == owner, col(getattr(table, title_field)) == body[title_field]
                        )
                    ).first()
                    if existing is not None:
                        ids[ref] = existing
                        skipped += 1
                        continue
                    if owner not in keys:
                        keys[owner] = _owner_key(session, owner, SUBMITTER_ROLE[kind], pepper)
                        session.commit()
                response = http.post(
                    f"/v1/{PLURAL[kind]}", json=body, headers={"Authorization": f"Bearer {keys[owner]}"}
                )
                if response.status_code != 202:
                    raise RuntimeError(f"demo item {ref} was refused: {response.status_code} {response.text}")
                ids[ref] = response.json()["id"]
                created += 1
                if on_item is not None:
                    on_item(kind, ref)
    finally:
        if client is None:
            http.close()
    return DemoLoad(ids=ids, created=created, skipped=skipped)


def processing_counts(engine: Engine, ids: list[str]) -> dict[str, int]:
    """How many of these entities are in each status."""
    counts = {status.value: 0 for status in EntityStatus}
    with Session(engine) as session:
        for table in ENTITY_TABLES.values():
            for status in session.exec(select(table.status).where(col(table.id).in_(ids))):
                counts[status] = counts.get(status, 0) + 1
    return counts
