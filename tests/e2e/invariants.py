"""What the fault tests submit and how they count afterwards: the submitter and the ledger
of services/bench (shared with `salon bench recovery`), plus a `settle` that prints the
ledger so a test run shows its counts ("FAULT LEDGER …", visible with `pytest -s`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy.engine import Engine

from services.bench.ledger import Ledger, wait_settled
from services.bench.load import PLURAL, Participants, varied_bodies
from services.bench.load import SubmissionStream as Stream

__all__ = ["PLURAL", "Ledger", "Participants", "Stream", "settle", "varied_bodies"]

log = logging.getLogger("faults")


def settle(
    engine: Engine,
    accepted: dict[str, str],
    owners: Iterable[str],
    *,
    matches_topic: str,
    timeout: float,
    label: str,
) -> Ledger:
    """Wait until every accepted entity is matched and the outbox is empty, then count.

    Returns the ledger either way (printed and logged with `label`); the caller asserts on it.
    """
    ledger = wait_settled(engine, accepted, owners, matches_topic=matches_topic, timeout=timeout)
    log.warning("FAULT LEDGER [%s] %s", label, ledger.line())
    print(f"FAULT LEDGER [{label}] {ledger.line()}")
    return ledger
