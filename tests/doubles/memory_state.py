"""A dict-backed state store of one catalog (ports.PipelineState): what the deployed pipeline's store promises, with
nothing underneath, for the services' tests.

Written from the port's docstrings and the contract suite (tests/contracts/test_state_store.py), which it
passes beside SQLite and DynamoDB. Like the deployed store, a dispatched run completes when its consumers have
counted every change it sent, and a message is counted once however often it is delivered. Which catalog drop is
the newer is catalog_sync.logic.drops' rule.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from catalog_sync.logic.drops import DropClaim, claimed, may_claim, same_object
from catalog_sync.logic.runs import new_run_id
from catalog_sync.logic.snapshot import FingerprintUpdate, StoredProduct
from catalog_sync.models.changes import Change, IndexAction, RunRecord, RunStatus, StateCounts
from catalog_sync.models.index import IndexRejection, IndexSettings

# An id deleted from the index that the state never knew (an orphan): present, at no known version.
ORPHAN_VERSION = 0
_COUNTER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass
class MemorySnapshot:
    """The diff's view of the state (logic.snapshot.StateSnapshot), taken at once."""

    fingerprints: dict[bytes, str]
    live_ids: set[str]
    pending_deletes: set[str]
    embedding_model: str | None
    text_template: str | None
    products: dict[str, StoredProduct]

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        return {pid: self.products[pid] for pid in product_ids if pid in self.products}


@dataclass
class _Run:
    """A run as the diff saved it, and what consumers added to it."""

    saved: RunRecord
    total: int | None = None  # a dispatched run's changes to handle
    done: int = 0
    applied: dict[str, int] = field(default_factory=dict)
    completed_at: datetime | None = None


@dataclass
class MemoryCatalogState:
    """Everything stored for one catalog: a store opened again over the same object sees the same state."""

    products: dict[str, StoredProduct] = field(default_factory=dict)
    index: IndexSettings | None = None  # what the whole index was last built with
    runs: dict[str, _Run] = field(default_factory=dict)
    next_seq: int = 1
    counted_messages: set[str] = field(default_factory=set)
    rejections: dict[str, IndexRejection] = field(default_factory=dict)
    claim: DropClaim | None = None
    prior_claim: DropClaim | None = None  # the claim `claim` replaced


class MemoryStateStore:
    def __init__(self, catalog: str = "shop", stored: MemoryCatalogState | None = None) -> None:
        self.catalog = catalog
        self.stored = stored if stored is not None else MemoryCatalogState()

    # ------------------------------------------------------------ products

    def snapshot(self) -> MemorySnapshot:
        products = dict(self.stored.products)
        return MemorySnapshot(
            fingerprints={
                p.fingerprint: p.product_id
                for p in products.values()
                if not p.deleted and not p.pending and p.fingerprint is not None
            },
            live_ids={p.product_id for p in products.values() if not p.deleted},
            pending_deletes={p.product_id for p in products.values() if p.deleted},
            embedding_model=self.stored.index.embedding_model if self.stored.index else None,
            text_template=self.stored.index.text_template if self.stored.index else None,
            products=products,
        )

    def record_desired(self, changes: Sequence[Change], fingerprint_updates: Sequence[FingerprintUpdate]) -> None:
        products = self.stored.products
        for change in changes:
            known = products.get(change.product_id)
            if known is not None and known.desired_version >= change.version:
                continue  # an older run never overwrites a newer run's desired state
            if change.action is IndexAction.DELETE:
                committed = known.committed_version if known is not None else ORPHAN_VERSION
                base = known or StoredProduct(product_id=change.product_id, desired_version=change.version)
                products[change.product_id] = replace(
                    base, desired_version=change.version, deleted=True, committed_version=committed
                )
                continue
            products[change.product_id] = StoredProduct(
                product_id=change.product_id,
                desired_version=change.version,
                fingerprint=change.fingerprint,
                text_hash=change.text_hash,
                metadata_hash=change.metadata_hash,
                field_hashes=dict(change.field_hashes or {}),
                committed_version=known.committed_version if known else None,
                committed_text_hash=known.committed_text_hash if known else None,
                committed_metadata_hash=known.committed_metadata_hash if known else None,
            )
        for update in fingerprint_updates:
            known = products.get(update.product_id)
            if known is not None and known.desired_version == update.desired_version:
                products[update.product_id] = replace(known, fingerprint=update.fingerprint)

    def record_index_settings(self, settings: IndexSettings) -> None:
        self.stored.index = settings

    def index_settings(self) -> IndexSettings | None:
        return self.stored.index

    def desired_versions(self, ids: Sequence[str]) -> dict[str, int]:
        products = self.stored.products
        return {pid: products[pid].desired_version for pid in ids if pid in products}

    def commit(self, changes: Sequence[Change]) -> int:
        """Only changes still desired are committed; a committed deletion forgets the product."""
        products, committed = self.stored.products, 0
        for change in changes:
            known = products.get(change.product_id)
            deleting = change.action is IndexAction.DELETE
            if known is None or known.desired_version != change.version or known.deleted is not deleting:
                continue
            if deleting:
                del products[change.product_id]
            else:
                products[change.product_id] = replace(
                    known,
                    committed_version=change.version,
                    committed_text_hash=change.text_hash,
                    committed_metadata_hash=change.metadata_hash,
                )
            committed += 1
        return committed

    def uncommit_all(self) -> int:
        products = self.stored.products
        for pid in [pid for pid, p in products.items() if p.deleted]:
            del products[pid]
        for pid, known in products.items():
            products[pid] = _forgotten(known)
        return len(products)

    def mark_pending(self, ids: Sequence[str]) -> None:
        products = self.stored.products
        for pid in ids:
            known = products.get(pid)
            if known is not None and not known.deleted:
                products[pid] = _forgotten(known)

    def counts(self) -> StateCounts:
        counts = StateCounts()
        for p in self.stored.products.values():
            counts.indexed += p.indexed
            counts.pending += p.pending
            if p.deleted:
                counts.deleting += 1
            else:
                counts.products += 1
                counts.synced += not p.pending
        return counts

    def pending_count(self) -> int:
        return self.counts().pending

    def product_count(self) -> int:
        return self.counts().products

    def indexed_count(self) -> int:
        return self.counts().indexed

    # ------------------------------------------------------------ rejections

    def record_rejections(self, rejections: Sequence[IndexRejection]) -> None:
        kept = self.stored.rejections
        for rejection in rejections:
            known = kept.get(rejection.product_id)
            if known is None or known.version <= rejection.version:  # an older one never replaces a newer
                kept[rejection.product_id] = rejection

    def rejections(self, limit: int = 1_000) -> list[IndexRejection]:
        products = self.stored.products
        current = [
            r
            for r in self.stored.rejections.values()
            if (p := products.get(r.product_id)) is not None and p.desired_version == r.version and p.pending
        ]
        current.sort(key=lambda r: r.product_id)
        current.sort(key=lambda r: r.at or datetime.min.replace(tzinfo=UTC), reverse=True)
        return current[:limit]

    # ------------------------------------------------------------ runs and consumers' progress

    def begin_run(self, *, mode: str, source: str) -> RunRecord:
        seq, started = self.stored.next_seq, datetime.now(UTC)
        self.stored.next_seq += 1
        run = RunRecord(
            run_id=new_run_id(started, seq, secrets.token_hex(3)),
            seq=seq,
            catalog=self.catalog,
            mode=mode,
            source=source,
            status=RunStatus.RUNNING,
            started_at=started,
        )
        self.stored.runs[run.run_id] = _Run(saved=run.model_copy(deep=True))
        return run

    def finish_run(self, run: RunRecord) -> bool:
        kept = self.stored.runs.setdefault(run.run_id, _Run(saved=run))
        kept.saved = run.model_copy(deep=True)
        if run.status is RunStatus.DISPATCHED:
            kept.total = run.counts.get("dispatched_changes", 0)
        return self._complete_if_done(kept)

    def record_progress(
        self, run_id: str, handled: int, applied: Mapping[str, int] | None = None, *, message_id: str | None = None
    ) -> bool:
        for name in applied or {}:
            if not _COUNTER_NAME.match(name):
                raise ValueError(f"not a counter name: {name!r}")
        kept = self.stored.runs.get(run_id)
        if kept is None:
            return False  # a message naming no run adds no row
        if message_id is None or message_id not in self.stored.counted_messages:
            if message_id is not None:
                self.stored.counted_messages.add(message_id)
            kept.done += handled
            for name, value in (applied or {}).items():
                kept.applied[name] = kept.applied.get(name, 0) + int(value)
        return self._complete_if_done(kept)

    @staticmethod
    def _complete_if_done(kept: _Run) -> bool:
        """Whichever comes last, the dispatch's total or the consumers' count, completes the run, once."""
        if kept.total is None or kept.done < kept.total or kept.completed_at is not None:
            return False
        kept.completed_at = datetime.now(UTC)
        return True

    def get_run(self, run_id: str) -> RunRecord:
        kept = self.stored.runs.get(run_id)
        if kept is None:
            raise KeyError(f"no run {run_id!r} of catalog {self.catalog!r}")
        return kept.saved.model_copy(deep=True)

    def find_run(self, run_id: str) -> RunRecord | None:
        kept = self.stored.runs.get(run_id)
        return _reported(kept) if kept is not None else None

    def runs(self, limit: int = 30) -> list[RunRecord]:
        newest = sorted(self.stored.runs.values(), key=lambda kept: kept.saved.seq, reverse=True)
        return [_reported(kept) for kept in newest[:limit]]

    # ------------------------------------------------------------ drop claims

    def claim_source(self, *, modified: float, key: str, version_id: str | None, sequencer: str | None = None) -> bool:
        claim = DropClaim(key=key, modified=modified, version_id=version_id, sequencer=sequencer)
        stored = self.stored
        if not may_claim(claim, stored.claim):
            return False
        if stored.claim is None:
            stored.prior_claim = None
        elif not same_object(claim, stored.claim):  # a re-claim (a retry) keeps its prior
            stored.prior_claim = stored.claim
        stored.claim = claimed(claim, stored.claim)
        return True

    def withdraw_claim(self, claim: DropClaim) -> None:
        """A held drop is as if it had not come: the claim it replaced is the newest again."""
        stored = self.stored
        if stored.claim is not None and same_object(stored.claim, claim):
            stored.claim, stored.prior_claim = stored.prior_claim, None
        elif stored.prior_claim is not None and same_object(stored.prior_claim, claim):
            stored.prior_claim = None

    def newest_claim(self) -> DropClaim | None:
        return self.stored.claim

    def newest_source(self) -> tuple[float, str, str | None] | None:
        claim = self.stored.claim
        return None if claim is None else (claim.modified, claim.key, claim.version_id)


def _forgotten(product: StoredProduct) -> StoredProduct:
    return replace(product, committed_version=None, committed_text_hash=None, committed_metadata_hash=None)


def _reported(kept: _Run) -> RunRecord:
    """A run as `runs` reports it: with the consumers' counters and, for a dispatched run, its completion."""
    run = kept.saved.model_copy(deep=True)
    run.counts.update({f"applied_{name}": value for name, value in kept.applied.items()})
    if run.status is RunStatus.DISPATCHED:
        run.counts["applied_changes"] = kept.done
        if kept.completed_at is not None:
            run.status, run.finished_at = RunStatus.SUCCEEDED, kept.completed_at
    return run
