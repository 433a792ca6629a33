"""API keys: shown once, stored as a keyed hash (HMAC-SHA256 with the server pepper)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, select

from shared import audit
from shared.models import ApiKey, Role, utcnow

KEY_PREFIX = "salon_"


def hash_key(raw_key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), raw_key.encode(), hashlib.sha256).hexdigest()


def create_key(
    session: Session, *, role: Role, name: str, owner: str | None, pepper: str, actor: audit.Actor = audit.CLI
) -> tuple[ApiKey, str]:
    """Store a new key and return it with the raw secret (the only time it exists); audit-logged."""
    raw = f"{KEY_PREFIX}{role.value[:3]}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name, role=role.value, owner=owner or name, key_hash=hash_key(raw, pepper), prefix=raw[:12])
    session.add(key)
    detail = {"role": key.role, "owner": key.owner, "name": key.name, "prefix": key.prefix}
    audit.record(session, actor, audit.AuditAction.API_KEY_CREATE, "api_key", key.id, **detail)
    return key, raw


def find_key(session: Session, raw_key: str, pepper: str) -> ApiKey | None:
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key, pepper))).first()
    if key is None or key.revoked_at is not None:
        return None
    return key


def revoke_key(session: Session, key_id: str, *, actor: audit.Actor = audit.CLI) -> bool:
    """Revoke a key (audit-logged); False when there is no such key."""
    key = session.get(ApiKey, key_id)
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        detail = {"role": key.role, "owner": key.owner, "name": key.name, "prefix": key.prefix}
        audit.record(session, actor, audit.AuditAction.API_KEY_REVOKE, "api_key", key.id, **detail)
    return True
