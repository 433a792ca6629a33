"""Bulk import of pitches, mandates and needs from CSV, XLSX or JSONL (`salon import`, POST /v1/imports)."""

from services.api.imports.importer import import_bytes, may_write, report_of, validate_bytes
from services.api.imports.options import DEFAULT_BATCH_SIZE, ImportOptions
from services.api.imports.reading import ImportFileError
from services.api.imports.report import ImportedRow, ImportProblem, ImportReport, RowError
from services.api.imports.writing import ImportWriteError, write_rows

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "ImportFileError",
    "ImportOptions",
    "ImportProblem",
    "ImportReport",
    "ImportWriteError",
    "ImportedRow",
    "RowError",
    "import_bytes",
    "may_write",
    "report_of",
    "validate_bytes",
    "write_rows",
]
