"""Rows of cells → validated Create models, or the reasons per row and field.

Each row goes through the same Create model as a single submission (`extra="forbid"`,
the same codes-as-words parsing); the only additions are the spreadsheet conventions in
`values` and the columns `kind`, `owner` and `external_ref`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from services.api.errors import ZH_MESSAGES
from services.api.imports.aliases import KINDS, Aliases, Column, load_aliases
from services.api.imports.options import ImportOptions
from services.api.imports.reading import RawRow, RawTable
from services.api.imports.report import RowError
from services.api.imports.values import CellError, as_text, convert, is_blank
from shared.models import CREATE_MODELS, SUBMITTER_ROLE, MandateCreate, NeedCreate, PitchCreate

# Entity ids of imported rows are uuid5 names in this namespace (see `entity_key`).
IMPORT_NAMESPACE = uuid.UUID("6f1c2a8e-3b1d-5c0e-9a57-5a1011f0c0de")
KIND_WORDS = {"pitch": "项目", "mandate": "基金", "need": "需求"}
Progress = Callable[[str, int, int], None]

CreateBody = PitchCreate | MandateCreate | NeedCreate


@dataclass(frozen=True)
class ValidRow:
    row: int
    kind: str
    owner: str
    body: CreateBody
    entity_id: str


@dataclass
class Validation:
    format: str
    rows: int
    valid: list[ValidRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rejected_rows: set[int] = field(default_factory=set)
    ignored_columns: list[str] = field(default_factory=list)
    fatal: bool = False  # a problem with the file or its header: no row can be imported

    def reject(self, error: RowError) -> None:
        self.errors.append(error)
        if error.row > 0 and not self.fatal:
            self.rejected_rows.add(error.row)


def bilingual(error_type: str, message: str) -> str:
    zh = ZH_MESSAGES.get(error_type)
    return f"{message} / {zh}" if zh else message


def entity_key(kind: str, owner: str, body: CreateBody, external_ref: str | None) -> str:
    """The id an imported row gets: the same row of the same owner always gets the same id,
    so re-running an interrupted or repeated import stores nothing twice. Identity is the
    `external_ref` column when the file has one (a corrected row keeps its id), else the
    row's normalised content (codes, not the words typed)."""
    content = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
    basis = f"ref:{external_ref}" if external_ref else f"sha256:{content}"
    return str(uuid.uuid5(IMPORT_NAMESPACE, f"{kind}\x1f{owner}\x1f{basis}"))


@dataclass
class Header:
    """The columns of one header line, with the problems found in it."""

    columns: list[Column | None]
    problems: list[tuple[str, str, str]]  # (column, field, message)
    ignored: list[str]


def plan_header(headers: Sequence[str], *, kinds: Sequence[str], options: ImportOptions, aliases: Aliases) -> Header:
    columns: list[Column | None] = []
    problems: list[tuple[str, str, str]] = []
    ignored: list[str] = []
    seen: dict[tuple[str, str], str] = {}  # (kind or meta, field) → first header
    for header in headers:
        if not header:
            columns.append(None)
            continue
        column = aliases.resolve(header)
        columns.append(column)
        if column is None:
            problems.append(
                (
                    header,
                    "header",
                    f"unknown column {header!r}; use a field name such as "
                    f"{', '.join(aliases.suggestions(tuple(kinds))[:12])}…, or start the header with # to ignore it "
                    f"/ 未知列“{header}”，请改用已知列名，或在列名前加 # 以忽略该列",
                )
            )
            continue
        if column.ignored:
            ignored.append(header)
            continue
        if column.meta == "owner" and not options.owner_column:
            problems.append(
                (
                    header,
                    "owner",
                    "only organizers may import rows for other participants; remove the owner column "
                    "/ 仅组织方可代其他参与方导入，请删除“owner”列",
                )
            )
            continue
        if column.meta:
            targets = [("meta", column.meta)]
        else:
            targets = [(kind, name) for kind, name in column.fields.items() if kind in kinds]
            if not targets:
                problems.append(
                    (
                        header,
                        "header",
                        f"column {header!r} is for {'/'.join(column.fields)}, not {'/'.join(kinds)} "
                        f"/ “{header}”列不适用于{'、'.join(KIND_WORDS[k] for k in kinds)}",
                    )
                )
                continue
        for target in targets:
            if target in seen:
                problems.append(
                    (
                        header,
                        target[1],
                        f"columns {seen[target]!r} and {header!r} both give {target[1]} "
                        f"/ “{seen[target]}”与“{header}”两列重复",
                    )
                )
            seen.setdefault(target, header)
    return Header(columns, problems, ignored)


class RowValidator:
    """Validates rows against the header plan; remembers keys to catch repeated rows."""

    def __init__(self, options: ImportOptions, aliases: Aliases) -> None:
        self.options = options
        self.aliases = aliases
        self.first_row_of: dict[str, int] = {}

    def validate(self, raw: RawRow, columns: Sequence[Column | None]) -> ValidRow | list[RowError]:
        errors: list[RowError] = []
        meta: dict[str, str] = {}
        for (_header, value), column in zip(raw.cells, columns, strict=False):
            if column is not None and column.meta and not is_blank(value):
                meta[column.meta] = str(as_text(value))
        kind = self._kind(raw.number, meta, errors)
        owner = self._owner(raw.number, meta, errors)
        if kind is None:
            return errors
        body: dict[str, Any] = {}
        column_of: dict[str, str] = {}
        for index, (header, value) in enumerate(raw.cells):
            column = columns[index] if index < len(columns) else None
            if column is not None and column.field_for(kind) is not None:
                column_of.setdefault(column.fields[kind], header)  # named in errors, even when empty
            if is_blank(value) or (column is not None and (column.ignored or column.meta)):
                continue
            if column is None:
                errors.append(
                    RowError(
                        row=raw.number,
                        column=header or None,
                        field="row",
                        message=f"a value in column {index + 1}, which has no header / 第{index + 1}列有值但没有列名",
                    )
                )
                continue
            name = column.field_for(kind)
            if name is None:
                errors.append(
                    RowError(
                        row=raw.number,
                        column=header,
                        field="header",
                        message=f"column {header!r} does not apply to a {kind}; leave it empty in this row "
                        f"/ “{header}”列不适用于{KIND_WORDS[kind]}，此行请留空",
                    )
                )
                continue
            try:
                body[name] = convert(name, value, column.unit)
            except CellError as exc:
                errors.append(RowError(row=raw.number, column=header, field=name, message=str(exc)))
        if errors or owner is None:
            return errors
        try:
            model = CREATE_MODELS[kind].model_validate(body)
        except ValidationError as exc:
            for problem in exc.errors(include_url=False):
                location = [str(part) for part in problem.get("loc", ())]
                errors.append(
                    RowError(
                        row=raw.number,
                        column=column_of.get(location[0]) if location else None,
                        field=".".join(location) or "row",
                        message=bilingual(problem["type"], problem["msg"]),
                        type=problem["type"],
                    )
                )
            return errors
        entity_id = entity_key(kind, owner, model, meta.get("external_ref"))
        first = self.first_row_of.setdefault(entity_id, raw.number)
        if first != raw.number:
            same = "external_ref" if "external_ref" in meta else "content"
            return [
                RowError(
                    row=raw.number,
                    field="external_ref" if same == "external_ref" else "row",
                    message=f"repeats row {first} (same owner, kind and {same}) / 与第{first}行重复",
                    type="duplicate",
                )
            ]
        return ValidRow(raw.number, kind, owner, model, entity_id)

    def _kind(self, row: int, meta: dict[str, str], errors: list[RowError]) -> str | None:
        word = meta.get("kind")
        kind = self.aliases.kind_of(word) if word else self.options.kind
        if word and kind is None:
            errors.append(
                RowError(
                    row=row,
                    field="kind",
                    message=f"unknown kind {word!r}; use pitch/项目, mandate/基金 or need/需求 / 未知类型“{word}”",
                )
            )
            return None
        if kind is None:
            errors.append(
                RowError(
                    row=row,
                    field="kind",
                    message="no kind: add a kind/类型 column or choose one for the whole file / 未指定类型",
                )
            )
            return None
        if kind not in self.options.allowed_kinds:
            role = self.options.role
            errors.append(
                RowError(
                    row=row,
                    field="kind",
                    message=f"role '{role}' cannot submit a {kind}; that is for {SUBMITTER_ROLE[kind].value} keys "
                    f"/ 无权提交{KIND_WORDS[kind]}",
                    type="forbidden",
                )
            )
            return None
        return kind

    def _owner(self, row: int, meta: dict[str, str], errors: list[RowError]) -> str | None:
        owner = (meta.get("owner") or self.options.default_owner or "").strip()
        if not owner:
            errors.append(
                RowError(
                    row=row,
                    field="owner",
                    message="no owner: add an owner column or give a default owner / 未指定所有者",
                )
            )
            return None
        if len(owner) > 200:
            errors.append(RowError(row=row, field="owner", message="owner over 200 characters / 所有者名称过长"))
            return None
        return owner


def validate_table(
    table: RawTable, options: ImportOptions, *, on_progress: Progress | None = None, aliases: Aliases | None = None
) -> Validation:
    aliases = aliases or load_aliases()
    result = Validation(table.format, rows=len(table.rows) + len(table.broken))
    for number, why in table.broken:
        result.reject(RowError(row=number, field="row", message=why, type="json_invalid"))
    validator = RowValidator(options, aliases)
    kinds = KINDS if options.kind is None else (options.kind,)
    if table.headers is not None:
        header = plan_header(table.headers, kinds=KINDS, options=options, aliases=aliases)
        has_kind_column = any(column is not None and column.meta == "kind" for column in header.columns)
        if not has_kind_column and options.kind is not None:
            header = plan_header(table.headers, kinds=kinds, options=options, aliases=aliases)
        result.ignored_columns = header.ignored
        if header.problems:
            result.fatal = True
            for column, name, message in header.problems:
                result.reject(RowError(row=table.header_row, column=column, field=name, message=message))
            return result
        if not table.rows:
            result.reject(RowError(row=0, field="file", message="the file has no data rows / 文件没有数据行"))
            result.fatal = True
            return result
        if not has_kind_column and options.kind is None:
            result.reject(
                RowError(
                    row=0,
                    field="kind",
                    message="say which kind the rows are (pitch, mandate or need), or add a kind/类型 column "
                    "/ 请指定类型（项目、基金或需求），或增加“类型”列",
                )
            )
            result.fatal = True
            return result
    if not table.rows and not table.broken:
        result.reject(RowError(row=0, field="file", message="the file has no data rows / 文件没有数据行"))
        result.fatal = True
        return result
    plans: dict[tuple[str, ...], Header] = {}
    ignored: dict[str, None] = dict.fromkeys(result.ignored_columns)
    for done, raw in enumerate(table.rows, start=1):
        if table.headers is not None:
            columns = header.columns
        else:  # JSON: every object names its own keys
            keys = tuple(key for key, _ in raw.cells)
            if keys not in plans:
                plans[keys] = plan_header(keys, kinds=KINDS, options=options, aliases=aliases)
            plan = plans[keys]
            ignored.update(dict.fromkeys(plan.ignored))
            if plan.problems:
                for column, name, message in plan.problems:
                    result.reject(RowError(row=raw.number, column=column, field=name, message=message))
                continue
            columns = plan.columns
        outcome = validator.validate(raw, columns)
        if isinstance(outcome, ValidRow):
            result.valid.append(outcome)
        else:
            for error in outcome:
                result.reject(error)
        if on_progress is not None and (done % 200 == 0 or done == len(table.rows)):
            on_progress("validating", done, len(table.rows))
    result.ignored_columns = list(ignored)
    result.errors.sort(key=lambda error: error.row)
    return result
