"""The consumer's work for one queue message: unpack its changes and apply them (see apply.py), count them
towards their run, and ask for the re-sync of products whose writes a newer change overtook.

A message is all or nothing for the queue: if applying raises, the message is not acknowledged and comes
back (then to the dead-letter queue); changes of it that were already applied are skipped on the redelivery
or re-applied harmlessly, because a change applies only while it is the desired version and writes are
idempotent. Applying raises only for what another delivery may get past (throttling, a service error, a lost
connection). A product the index refuses for its content would be refused on every delivery: it is recorded as
rejected and left pending, and the message succeeds with the others (`ApplyStats.rejected`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from catalog_sync.logic.packing import BadMessage, unpack_envelope, unpack_message
from catalog_sync.ports import PipelineParts
from catalog_sync.services.apply import ApplyStats, ChangeApplier
from catalog_sync.services.diff_runs import DiffRuns


def consume_message(
    body: str, applier: ChangeApplier, *, resolve_claim: Callable[[dict[str, Any]], bytes] | None = None
) -> ApplyStats:
    changes = unpack_message(body, resolve_claim=resolve_claim)
    return applier.apply(changes)


@dataclass(frozen=True)
class AppliedMessage:
    catalog: str
    run_id: str | None
    stats: ApplyStats
    run_completed: bool  # this message was the last of its run
    repair_requested: bool  # the overtaken products' re-sync was asked for (stats.repairs)


def apply_message(parts: PipelineParts, runs: DiffRuns, body: str) -> AppliedMessage:
    """Apply one queue message of the deployed pipeline; raises for a message to retry (or dead-letter)."""
    message = unpack_envelope(body, resolve_claim=parts.claims().get)
    if message.catalog is None:
        raise BadMessage("message names no catalog")
    config = parts.config(message.catalog)
    state = parts.state(config)
    applier = ChangeApplier(
        state=state, index=parts.index(config), embedder=parts.embedder(config), cache=parts.cache()
    )
    stats = applier.apply(message.changes)
    completed = message.run_id is not None and state.record_progress(
        message.run_id, len(message.changes), stats.as_dict(), message_id=message.message_id
    )
    # A newer change overtook these writes: the products are pending again; re-sync them.
    repaired = bool(stats.repairs) and runs.request_repair(message.catalog, stats.repairs)
    return AppliedMessage(message.catalog, message.run_id, stats, completed, repaired)
