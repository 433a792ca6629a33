"""Test-only crash points: a process SIGKILLs itself at a named place in its own code.

Fault tests need "kill -9 between the effect and the offset commit" to happen exactly
there, not wherever a timer happens to land. `SALON_FAULT_INJECT` lists points as
`service.point` or `service.point@N` (comma-separated); a process configured as `service`
kills itself the N-th time (default: first) it reaches `point`. A killed process does not
restart by itself, so each point fires once per process that was started with it.

Empty (the default) makes `reach` a dictionary lookup that never fires; production
settings refuse a non-empty value (see `Settings`).
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from shared.errors import ConfigurationError

log = logging.getLogger(__name__)

# The points the code calls `reach` at (a typo in a test's setting fails loudly).
POINTS = frozenset(
    {
        "after_effect_before_commit",  # shared.bus: the batch's effect is stored, its offsets are not committed
        "between_phases",  # matcher, mid-batch: this vector stored (status embedded), its proposals not yet
        "after_send_before_record",  # notifier: webhooks sent, the attempts not yet recorded
    }
)

_armed: dict[str, int] = {}  # point → how many more times it may be reached before firing
_service = ""


def parse(spec: str, service: str) -> dict[str, int]:
    """The points of `spec` that belong to `service`, with the count at which each fires."""
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition("@")
        owner, _, point = name.partition(".")
        if point not in POINTS or (count and not count.isdigit()) or (count and int(count) < 1):
            raise ConfigurationError(
                f"SALON_FAULT_INJECT item {item!r}: expected service.point[@N] with a point in {sorted(POINTS)}"
            )
        if owner == service:
            armed[point] = int(count or 1)
    return armed


def configure(spec: str, service: str) -> None:
    """Arm this process's points (called once at start-up with the process's service name)."""
    global _service
    _service = service
    _armed.clear()
    _armed.update(parse(spec, service))
    if _armed:
        log.warning("fault injection armed for %s: %s", service, _armed)


def reach(point: str) -> None:
    """Mark that `point` was reached; SIGKILL this process if it is armed and its count is up."""
    if point not in _armed:
        return
    _armed[point] -= 1
    if _armed[point] > 0:
        return
    # Said on stderr first (the service log), so a test can tell the injected kill from a crash.
    print(f"FAULT-INJECT {_service}.{point}: SIGKILL pid {os.getpid()}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
