"""API keys: shown once, stored as a keyed hash (HMAC-SHA256 with the server pepper)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, select

from shared.models import ApiKey, Role, utcnow

KEY_PREFIX = "salon_"


def hash_key(raw_key: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), raw_key.encode(), hashlib.sha256).hexdigest()


def create_key(session: Session, *, role: Role, name: str, owner: str | None, pepper: str) -> tuple[ApiKey, str]:
    """Store a new key and return it with the raw secret (the only time it exists)."""
    raw = f"{KEY_PREFIX}{role.value[:3]}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name, role=role.value, owner=owner or name, key_hash=hash_key(raw, pepper), prefix=raw[:12])
    session.add(key)
    return key, raw


def find_key(session: Session, raw_key: str, pepper: str) -> ApiKey | None:
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key, pepper))).first()
    if key is None or key.revoked_at is not None:
        return None
    return key


def revoke_key(session: Session, key_id: str) -> bool:
    key = session.get(ApiKey, key_id)
    if key is None:
        return False
    key.revoked_at = utcnow()
    session.add(key)
    return True
