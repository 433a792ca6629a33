"""The matcher's counterpart cache: what it serves is what the database holds (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session

from services.api.intake import create_entity, replace_entity
from services.matcher.entities import EntityCache
from shared.models import CREATE_MODELS, Pitch, get_entity
from shared.settings import Settings
from tests.payloads import PITCH


def submit(engine, title: str) -> str:
    with Session(engine, expire_on_commit=False) as session:
        body = CREATE_MODELS["pitch"].model_validate({**PITCH, "title": f"project {title}"})
        return create_entity(session, Settings(), "pitch", body, owner="ent-1").id


def fetch(engine, cache: EntityCache, ids: list[str]) -> dict[str, Pitch]:
    with Session(engine) as session:
        return {entity.id: entity for entity in cache.fetch(session, "pitch", ids)}  # type: ignore[misc]


def test_a_second_fetch_is_served_from_memory(any_engine) -> None:
    ids = [submit(any_engine, str(n)) for n in range(3)]
    cache = EntityCache()
    first = fetch(any_engine, cache, ids)
    assert sorted(first) == sorted(ids) and (cache.hits, cache.misses) == (0, 3)
    second = fetch(any_engine, cache, ids)
    assert all(second[i] is first[i] for i in ids) and (cache.hits, cache.misses) == (3, 3)
    assert second[ids[0]].title == "project 0"


def test_an_updated_entity_is_read_again(any_engine) -> None:
    entity_id = submit(any_engine, "old")
    cache = EntityCache()
    fetch(any_engine, cache, [entity_id])
    with Session(any_engine, expire_on_commit=False) as session:
        stored = get_entity(session, "pitch", entity_id)
        body = CREATE_MODELS["pitch"].model_validate({**PITCH, "title": "new title"})
        replace_entity(session, Settings(), stored, body)  # version + 1
    assert fetch(any_engine, cache, [entity_id])[entity_id].title == "new title"
    assert cache.misses == 2


def test_a_change_that_keeps_the_version_is_seen_by_its_update_time(any_engine) -> None:
    entity_id, original = submit(any_engine, "a"), submit(any_engine, "b")
    cache = EntityCache()
    assert fetch(any_engine, cache, [entity_id])[entity_id].duplicate_of is None
    with Session(any_engine) as session:  # what the matcher's second transaction does
        stored = get_entity(session, "pitch", entity_id)
        stored.duplicate_of = original
        stored.updated_at = stored.updated_at + timedelta(milliseconds=5)
        session.add(stored)
        session.commit()
    assert fetch(any_engine, cache, [entity_id])[entity_id].duplicate_of == original


def test_unknown_ids_are_left_out(any_engine) -> None:
    entity_id = submit(any_engine, "a")
    cache = EntityCache()
    assert list(fetch(any_engine, cache, [entity_id, "no-such-id"])) == [entity_id]
    assert fetch(any_engine, cache, []) == {}


def test_the_least_recently_used_entity_goes_first(any_engine) -> None:
    a, b, c = (submit(any_engine, title) for title in "abc")
    cache = EntityCache(capacity=2)
    fetch(any_engine, cache, [a])
    fetch(any_engine, cache, [b])
    fetch(any_engine, cache, [a])  # a is now the most recent
    fetch(any_engine, cache, [c])
    assert len(cache) == 2
    hits = cache.hits
    fetch(any_engine, cache, [a, c])
    assert cache.hits == hits + 2  # b was evicted, a and c were not


def test_a_rolled_back_transaction_leaves_cached_entities_readable(any_engine) -> None:
    entity_id = submit(any_engine, "kept")
    cache = EntityCache()
    with Session(any_engine) as session:
        cache.fetch(session, "pitch", [entity_id])
        session.rollback()  # would expire every object still attached to the session
    with Session(any_engine) as session:
        (entity,) = cache.fetch(session, "pitch", [entity_id])
    assert entity.title == "project kept" and cache.hits == 1


def test_capacity_zero_reads_the_database_each_time(any_engine) -> None:
    entity_id = submit(any_engine, "a")
    cache = EntityCache(capacity=0)
    assert list(fetch(any_engine, cache, [entity_id])) == [entity_id]
    assert len(cache) == 0
    with pytest.raises(ValueError, match="capacity"):
        EntityCache(capacity=-1)
