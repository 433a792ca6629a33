"""One import, start to end: read, validate every row, then (unless refused) write.

"Nothing half-imported": the whole file is validated before anything is written. If any
row is rejected, nothing is written unless `skip_invalid` says to import the valid rows.
Writing commits in batches; an import interrupted between batches is completed by running
it again, because every row's id is derived from its owner and content (or external_ref).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy.engine import Engine

from services.api.imports.mapping import Progress, Validation, validate_table
from services.api.imports.options import ImportOptions
from services.api.imports.reading import ImportFileError, read_table
from services.api.imports.report import ImportedRow, ImportReport, RowError
from services.api.imports.writing import preview_rows, write_rows
from shared.settings import Settings


def validate_bytes(
    data: bytes,
    options: ImportOptions,
    *,
    filename: str | None = None,
    content_type: str | None = None,
    on_progress: Progress | None = None,
) -> Validation:
    """Every row checked; a file that cannot be read at all is one error on row 0."""
    try:
        table = read_table(data, filename=filename, content_type=content_type, encoding=options.encoding)
    except ImportFileError as exc:
        failed = Validation(format="unknown", rows=0, fatal=True)
        failed.reject(RowError(row=0, field="file", message=str(exc), type="file_invalid"))
        return failed
    return validate_table(table, options, on_progress=on_progress)


def may_write(validation: Validation, options: ImportOptions) -> bool:
    """Whether the valid rows may be stored (or, for a dry run, would be)."""
    if validation.fatal:
        return False
    return not validation.errors or options.skip_invalid


def report_of(validation: Validation, options: ImportOptions, written: list[ImportedRow] | None = None) -> ImportReport:
    items = written or []
    return ImportReport(
        format=validation.format,
        rows=validation.rows,
        valid=len(validation.valid),
        accepted=sum(1 for item in items if item.created),
        already_present=sum(1 for item in items if not item.created),
        rejected_rows=len(validation.rejected_rows) if not validation.fatal else validation.rows,
        rejected=validation.errors,
        ignored_columns=validation.ignored_columns,
        kinds=dict(Counter(row.kind for row in validation.valid)),
        ids=[item.id for item in items],
        items=items,
        dry_run=options.dry_run,
        skip_invalid=options.skip_invalid,
    )


def import_bytes(
    data: bytes,
    *,
    engine: Engine,
    settings: Settings,
    options: ImportOptions,
    filename: str | None = None,
    content_type: str | None = None,
    on_progress: Progress | None = None,
) -> ImportReport:
    """Validate the file, then store it (or its valid rows) unless refused; the report says which."""
    validation = validate_bytes(data, options, filename=filename, content_type=content_type, on_progress=on_progress)
    if not may_write(validation, options):
        return report_of(validation, options)
    if options.dry_run:
        return report_of(validation, options, preview_rows(engine, validation.valid))
    written = write_rows(
        engine,
        settings,
        validation.valid,
        batch_size=options.batch_size,
        actor=options.actor,
        on_progress=on_progress,
    )
    return report_of(validation, options, written)
