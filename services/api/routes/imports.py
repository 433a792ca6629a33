"""POST /v1/imports: many pitches, mandates or needs from one CSV, XLSX or JSONL file.

The file comes as a multipart upload (field `file`) or as the raw body with its content
type. Participants import their own kind, owned by their key's participant; organizers and
admins import any kind on behalf of participants (an `owner` column, else `?owner=`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.datastructures import UploadFile

from services.api.deps import CallerDep, SettingsDep, get_engine, is_staff
from services.api.imports import (
    ImportOptions,
    ImportProblem,
    ImportReport,
    ImportWriteError,
    RowError,
    import_bytes,
)
from services.api.imports.aliases import KINDS, load_aliases
from services.api.imports.reading import XLSX_MIME
from shared.audit import Actor
from shared.models import SUBMITTER_ROLE, ApiKey

IMPORTS_PATH = "/v1/imports"
router = APIRouter(prefix=IMPORTS_PATH, tags=["imports"])

_TEXT = {"schema": {"type": "string"}}
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": "The file: a multipart upload in field `file`, or the raw file with its content type.",
    "content": {
        "multipart/form-data": {
            "schema": {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
        },
        "text/csv": _TEXT,
        "text/tab-separated-values": _TEXT,
        "application/x-ndjson": _TEXT,
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        XLSX_MIME: {"schema": {"type": "string", "format": "binary"}},
    },
}


class _Unprocessable(Exception):
    """A request the import cannot start on; answered as a 422 with one field error."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message

    def response(self) -> JSONResponse:
        problem = ImportProblem(
            detail=f"{self.message}; nothing was imported / 未导入任何内容",
            errors=[RowError(field=self.field, message=self.message)],
        )
        return JSONResponse(status_code=422, content=problem.model_dump(mode="json", exclude_none=True))


def _options(
    caller: ApiKey,
    *,
    kind: str | None,
    owner: str | None,
    skip_invalid: bool,
    dry_run: bool,
    encoding: str | None,
    batch_size: int,
) -> ImportOptions:
    """The caller's permissions, as for single submissions: a participant submits its own
    kind as itself; staff submit anything, for anyone."""
    resolved = None
    if kind:
        resolved = load_aliases().kind_of(kind)
        if resolved is None:
            raise _Unprocessable("kind", f"unknown kind {kind!r}; use pitch, mandate or need / 未知类型")
    if is_staff(caller):
        allowed = frozenset(KINDS)
    else:
        if owner is not None:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "only organizers may import for other participants / 仅组织方可代为导入"
            )
        allowed = frozenset(k for k in KINDS if SUBMITTER_ROLE[k].value == caller.role)
        if resolved is not None and resolved not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role '{caller.role}' cannot submit a {resolved}; that is for "
                f"{SUBMITTER_ROLE[resolved].value} keys / 无权提交",
            )
        if resolved is None and len(allowed) == 1:
            resolved = next(iter(allowed))  # a participant has one kind: the file needs no kind column
    return ImportOptions(
        kind=resolved,
        default_owner=(owner or caller.owner) if is_staff(caller) else caller.owner,
        owner_column=is_staff(caller),
        allowed_kinds=allowed,
        role=caller.role,
        skip_invalid=skip_invalid,
        dry_run=dry_run,
        encoding=encoding,
        batch_size=batch_size,
        actor=Actor.of(caller),
    )


async def _file_of(request: Request) -> tuple[bytes, str | None, str | None]:
    """(bytes, filename, content type) from a multipart upload or the raw body."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=20)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise _Unprocessable("file", "the upload needs a file in the field `file` / 缺少文件")
        return await upload.read(), upload.filename, upload.content_type
    return await request.body(), None, content_type or None


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ImportReport,
    summary="Import pitches, mandates or needs from a CSV, XLSX or JSONL file; nothing is half-imported",
    description=(
        "Every row is validated like a single submission first. If any row is rejected nothing is stored "
        "and the answer is a 422 listing each rejected row, column and field; with `skip_invalid=true` the "
        "valid rows are stored and the rest reported. Each stored row gets the same `*.submitted` event as "
        "a single submission. Re-sending the same file stores nothing twice (row ids derive from owner and "
        "content, or the `external_ref` column). Files up to SALON_IMPORT_MAX_BYTES."
    ),
    openapi_extra={"requestBody": REQUEST_BODY},
    responses={
        200: {"model": ImportReport, "description": "dry_run=true: what would be imported; nothing stored"},
        422: {"model": ImportProblem, "description": "Rows rejected; nothing was stored"},
    },
)
async def import_entities(
    request: Request,
    engine: Annotated[Engine, Depends(get_engine)],
    settings: SettingsDep,
    caller: CallerDep,
    kind: Annotated[
        str | None, Query(max_length=40, description="pitch | mandate | need for rows without a kind column")
    ] = None,
    owner: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Organizers: owner of rows without an owner")
    ] = None,
    skip_invalid: Annotated[bool, Query(description="Store the valid rows even if some are rejected")] = False,
    dry_run: Annotated[bool, Query(description="Validate and report only")] = False,
    encoding: Annotated[str | None, Query(max_length=40, description="CSV encoding, e.g. gb18030")] = None,
) -> JSONResponse:
    try:
        options = _options(
            caller,
            kind=kind,
            owner=owner,
            skip_invalid=skip_invalid,
            dry_run=dry_run,
            encoding=encoding,
            batch_size=settings.import_batch_size,
        )
        data, filename, content_type = await _file_of(request)
    except _Unprocessable as refused:
        return refused.response()
    try:
        report = await run_in_threadpool(
            import_bytes,
            data,
            engine=engine,
            settings=settings,
            options=options,
            filename=filename,
            content_type=content_type,
        )
    except ImportWriteError as exc:
        return JSONResponse(status_code=503, content={"detail": str(exc)}, headers={"Retry-After": "2"})
    if report.imported_nothing_because_of_errors or (report.rejected and not report.valid):
        problem = ImportProblem(
            detail=f"{report.rejected_rows} of {report.rows} rows rejected; nothing was imported "
            f"/ {report.rejected_rows} 行被拒绝，未导入任何内容",
            errors=report.rejected,
            report=report,
        )
        return JSONResponse(status_code=422, content=problem.model_dump(mode="json"))
    code = status.HTTP_200_OK if dry_run else status.HTTP_202_ACCEPTED
    return JSONResponse(status_code=code, content=report.model_dump(mode="json"))
