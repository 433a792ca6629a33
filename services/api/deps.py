"""Request dependencies: database session and the caller's API key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from shared.models import ApiKey, Role
from shared.security import find_key
from shared.settings import Settings

bearer = HTTPBearer(auto_error=False, description="An API key from `salon keys create`.")


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_caller(
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key (Authorization: Bearer …) / 缺少 API 密钥",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key = find_key(session, credentials.credentials, settings.api_key_pepper)
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown or revoked API key / API 密钥无效或已吊销",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key


CallerDep = Annotated[ApiKey, Depends(get_caller)]

STAFF = {Role.ORGANIZER.value, Role.ADMIN.value}


def is_staff(caller: ApiKey) -> bool:
    return caller.role in STAFF


def require_roles(*roles: Role) -> Callable[[ApiKey], ApiKey]:
    allowed = {role.value for role in roles}

    def check(caller: CallerDep) -> ApiKey:
        if caller.role not in allowed:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"role '{caller.role}' may not do this / 无此权限")
        return caller

    return check
