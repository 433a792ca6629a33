"""What an import answers: rows accepted, rows rejected with the reason per field, the ids."""

from __future__ import annotations

from pydantic import BaseModel, Field


class RowError(BaseModel):
    """One reason a row (or the header, or the whole file: row 0) was rejected."""

    row: int = Field(0, description="Spreadsheet row or JSONL line; 0 for the file as a whole.")
    column: str | None = Field(None, description="The header as written in the file, when a column is at fault.")
    field: str = Field(description="The API field (e.g. `funding_ask`), `row` or `file`.")
    message: str = Field(description="What is wrong, in English / 中文.")
    type: str = Field("value_error", description="A machine-readable error type (pydantic's where it applies).")


class ImportedRow(BaseModel):
    row: int
    kind: str
    id: str
    created: bool = Field(description="False when an earlier import already stored this row.")


class ImportReport(BaseModel):
    format: str = Field(description="csv, xlsx, jsonl or json.")
    rows: int = Field(description="Data rows in the file (empty rows not counted).")
    valid: int = Field(description="Rows that passed validation.")
    accepted: int = Field(
        description="Rows stored by this import, each with its submission event (dry run: rows that would be)."
    )
    already_present: int = Field(description="Valid rows an earlier import of the same data already stored.")
    rejected_rows: int = Field(description="Rows not imported because of the errors listed.")
    rejected: list[RowError] = Field(default_factory=list)
    ignored_columns: list[str] = Field(default_factory=list, description="Columns deliberately not imported.")
    kinds: dict[str, int] = Field(default_factory=dict, description="Valid rows per kind.")
    ids: list[str] = Field(default_factory=list, description="Entity ids of the imported rows, in file order.")
    items: list[ImportedRow] = Field(default_factory=list)
    dry_run: bool = False
    skip_invalid: bool = False

    @property
    def imported_nothing_because_of_errors(self) -> bool:
        return bool(self.rejected) and not self.skip_invalid


class ImportProblem(BaseModel):
    """A 422 for an import: nothing was stored; `errors` has one entry per rejected cell or row."""

    detail: str
    errors: list[RowError]
    report: ImportReport | None = None
