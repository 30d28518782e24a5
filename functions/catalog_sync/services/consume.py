"""The consumer's work for one queue message: unpack its changes and apply them (see apply.py).

A message is all or nothing for the queue: if applying raises, the message is not acknowledged and comes
back (then to the dead-letter queue); changes of it that were already applied are skipped on the redelivery
or re-applied harmlessly, because a change applies only while it is the desired version and writes are
idempotent. Applying raises only for what another delivery may get past (throttling, a service error, a lost
connection). A product the index refuses for its content would be refused on every delivery: it is recorded as
rejected and left pending, and the message succeeds with the others (`ApplyStats.rejected`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catalog_sync.logic.packing import unpack_message
from catalog_sync.services.apply import ApplyStats, ChangeApplier


def consume_message(
    body: str, applier: ChangeApplier, *, resolve_claim: Callable[[dict[str, Any]], bytes] | None = None
) -> ApplyStats:
    changes = unpack_message(body, resolve_claim=resolve_claim)
    return applier.apply(changes)
