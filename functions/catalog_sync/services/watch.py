"""Watch where a catalog arrives (a file, a folder of drops: ports.WatchedLocation) and sync when it changes.

A change to the catalog is planned first (a dry-run diff). It is synced at once when it holds a priority change
(a deletion, a price or stock change) or when at least `threshold` changes are pending; otherwise it waits
for the regular interval, so that many small edits are batched into one sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass

from catalog_sync.ports import CatalogDrop, WatchedLocation
from catalog_sync.services.sync import SyncService
from catalog_sync.services.sync_report import BadCatalog, SyncReport


@dataclass(frozen=True)
class WatchPolicy:
    interval: float = 300.0
    threshold: int = 10
    # A file is read only after it has not changed for this long: a drop still being written (and so
    # truncated, which would read as deletions) is left alone. Producers that write to a temporary name and
    # rename need no wait at all.
    settle: float = 10.0

    def reason_to_sync(self, *, pending: int, priority: int, since_last_sync: float) -> str | None:
        """Why to sync now, or None to wait."""
        if not pending:
            return None
        if priority:
            return "priority changes"
        if pending >= self.threshold:
            return "threshold"
        if since_last_sync >= self.interval:
            return "interval"
        return None


@dataclass
class WatchEvent:
    kind: str  # "sync" | "pending" | "error"
    catalog: CatalogDrop
    pending: int
    why: str | None = None
    report: SyncReport | None = None


class CatalogWatcher:
    def __init__(
        self,
        service: SyncService,
        location: WatchedLocation,
        policy: WatchPolicy,
        *,
        poll: float = 5.0,
        force: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.location = location
        self.policy = policy
        self.poll = poll
        self.force = force
        self.clock = clock
        self.sleep = sleep

    def events(self, *, max_syncs: int | None = None, max_seconds: float | None = None) -> Iterator[WatchEvent]:
        started = last_sync = self.clock()
        seen: Hashable | None = None
        broken: Hashable | None = None
        last_poll: Hashable | None = None
        unchanged_since = started
        syncs = 0
        while True:
            catalog = self.location.newest()
            now = self.clock()
            signature = None if catalog is None else catalog.signature
            if signature != last_poll:
                unchanged_since = now
            last_poll = signature
            stable = signature is not None and signature != broken and now - unchanged_since >= self.policy.settle
            if catalog is not None and stable and (signature != seen or now - last_sync >= self.policy.interval):
                seen = signature
                try:
                    plan = self.service.plan(catalog.source)
                    pending = plan.diff.counts.changed + plan.diff.resent
                    why = self.policy.reason_to_sync(
                        pending=pending, priority=plan.diff.counts.priority, since_last_sync=now - last_sync
                    )
                    if why is not None:
                        report = self.service.sync(catalog.source, force=self.force)
                        syncs += 1
                        last_sync = self.clock()
                        yield WatchEvent("sync", catalog, pending, why, report)
                    elif pending:
                        yield WatchEvent("pending", catalog, pending)
                    else:
                        last_sync = now
                except BadCatalog as exc:
                    # A broken drop changes nothing; it is not read again until it changes.
                    broken = signature
                    yield WatchEvent("error", catalog, 0, why=str(exc))
                except Exception as exc:  # a watcher outlives a failed sync: what failed stays pending
                    yield WatchEvent("error", catalog, 0, why=f"{type(exc).__name__}: {exc}")
            if max_syncs is not None and syncs >= max_syncs:
                return
            if max_seconds is not None and self.clock() - started >= max_seconds:
                return
            self.sleep(self.poll)
