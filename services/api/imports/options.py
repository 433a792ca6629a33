"""Who imports what: the choices and permissions of one import."""

from __future__ import annotations

from dataclasses import dataclass

from services.api.imports.aliases import KINDS
from shared.audit import CLI, Actor

DEFAULT_BATCH_SIZE = 500


@dataclass(frozen=True)
class ImportOptions:
    kind: str | None = None  # for rows without a kind column/value
    default_owner: str | None = None  # for rows without an owner column/value
    owner_column: bool = True  # may rows name their owner? (organizers, the CLI; never participants)
    allowed_kinds: frozenset[str] = frozenset(KINDS)
    role: str = "admin"  # for messages when a kind is not allowed
    skip_invalid: bool = False  # import the valid rows when some are rejected
    dry_run: bool = False  # validate and report; store nothing
    encoding: str | None = None  # CSV/JSON text encoding; None detects UTF-8/UTF-16/GB18030
    batch_size: int = DEFAULT_BATCH_SIZE  # rows per transaction
    actor: Actor = CLI  # who writes (audited when a pitch's confidential parts are written for someone else)
