"""Catalog drops in the deployed pipeline: a run's claim on the newest drop, what supersedes it, and which object
a repair re-reads each product from. The order of two drops is catalog_sync.logic.drops'."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from catalog_sync.logic.drops import DropClaim
from catalog_sync.logic.drops import superseded as drop_superseded
from catalog_sync.models.changes import RunRecord
from catalog_sync.models.requests import SyncRequest, Trigger
from catalog_sync.ports import DropClaims, DropStore

# Runs that read a catalog drop: they claim it as the newest object, and an older drop is not synced after it.
DROP_TRIGGERS = {Trigger.S3_EVENTBRIDGE, Trigger.S3_NOTIFICATION, Trigger.SCHEDULE}
# The runs a repair looks through for the pushes that set products' desired state.
REPAIR_LOOKBACK_RUNS = 50


class SupersededDrop(Exception):
    """A catalog drop older than one a run already read: syncing it would undo the newer catalog."""


def claim_drop(claims: DropClaims, drops: DropStore, request: SyncRequest, key: str) -> DropClaim | None:
    """For a catalog drop (an S3 event, or the newest object): the claim recorded for it as the newest object
    read. Raises SupersededDrop when a run already read a newer object."""
    reads_newest = request.key is None and request.trigger is Trigger.DIRECT
    if request.ids is not None or not (request.trigger in DROP_TRIGGERS or reads_newest):
        return None  # a targeted re-sync, a push, or an object asked for by name (a rollback)
    found = drops.look_up(key, bucket=request.bucket, version_id=request.version_id)
    if found is None:
        return None  # unreadable: the diff reports it as bad input when it opens the object
    # Only an S3 event carries a sequencer; a listed object (a schedule) falls back to LastModified.
    claim = found.model_copy(update={"sequencer": request.sequencer})
    if not claims.claim_source(
        modified=claim.modified, key=key, version_id=claim.version_id, sequencer=claim.sequencer
    ):
        newest = claims.newest_claim()
        raise SupersededDrop(
            f"{drops.source(key, bucket=request.bucket).name} was superseded: a run already read a newer object"
            + (f" ({newest.key})" if newest else "")
        )
    return claim


def is_superseded(claims: DropClaims, claim: DropClaim | None, *, modified: float | None = None) -> bool:
    """Whether a newer drop was claimed since this run's. `claim`: the drop the run claimed (None: not a catalog
    drop); `modified`: a checkpoint's from before claims were kept in checkpoints (only a later second supersedes
    it)."""
    if claim is not None:
        return drop_superseded(claim, claims.newest_claim())
    if modified is not None:
        newest = claims.newest_source()
        return newest is not None and newest[0] > modified
    return False  # not a catalog drop (a re-sync of some products, a push, a rollback)


def repair_sources(
    runs: Sequence[RunRecord],
    desired_versions: Mapping[str, int],
    product_ids: Sequence[str],
    *,
    bucket: str,
    pushes_prefix: str,
) -> dict[str | None, list[str]]:
    """The object to re-read each product from, to put its desired state back: key -> products (None: the newest).

    A product's desired version is the sequence number of the run that recorded it. If that run read a push object,
    the product is re-read from that push: it names the product. Otherwise (None) from the newest catalog object
    a run has read, as it is when the re-sync runs: a repair waiting in Lambda's queue must not bring back an
    object that a newer drop replaced meanwhile. A push object is never re-read for a product it does not name:
    absent from it, the product would be deleted. A product without a desired state (its deletion was committed)
    has nothing to put back and is left out: re-read from a catalog object, a product a push deleted would come
    back.
    """
    prefix = f"s3://{bucket}/"
    keys = {run.seq: run.source[len(prefix) :] for run in runs if run.source.startswith(prefix)}
    sources: dict[str | None, list[str]] = {}
    for product_id in product_ids:
        if product_id not in desired_versions:
            continue
        pushed = keys.get(desired_versions[product_id])
        key = pushed if pushed is not None and pushed.startswith(pushes_prefix) else None
        sources.setdefault(key, []).append(product_id)
    return sources
