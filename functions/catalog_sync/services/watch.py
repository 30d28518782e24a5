"""Watch a catalog file (or a folder of drops) and sync when it changes.

A change to the file is planned first (a dry-run diff). It is synced at once when it holds a priority change
(a deletion, a price or stock change) or when at least `threshold` changes are pending; otherwise it waits
for the regular interval, so that many small edits are batched into one sync.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.services.sync import BadCatalog, SyncReport, SyncService

CATALOG_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".json.gz", ".jsonl.gz", ".ndjson.gz", ".csv.gz")


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
    catalog: Path
    pending: int
    why: str | None = None
    report: SyncReport | None = None


def newest_catalog(path: Path) -> Path | None:
    """The file itself, or the newest catalog file in a folder of drops; None while there is none."""
    try:
        if path.is_file():
            return path
        candidates = [
            (p.stat().st_mtime_ns, p.name, p)
            for p in path.iterdir()
            if p.is_file() and p.name.lower().endswith(CATALOG_SUFFIXES)
        ]
    except OSError:  # the file or a drop vanished between looks: try again at the next poll
        return None
    return max(candidates)[2] if candidates else None


class CatalogWatcher:
    def __init__(
        self,
        service: SyncService,
        path: Path,
        policy: WatchPolicy,
        *,
        poll: float = 5.0,
        force: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.service = service
        self.path = path
        self.policy = policy
        self.poll = poll
        self.force = force
        self.clock = clock
        self.sleep = sleep

    def events(self, *, max_syncs: int | None = None, max_seconds: float | None = None) -> Iterator[WatchEvent]:
        started = last_sync = self.clock()
        seen: tuple[str, int, int] | None = None
        broken: tuple[str, int, int] | None = None
        last_poll: tuple[str, int, int] | None = None
        unchanged_since = started
        syncs = 0
        while True:
            catalog = newest_catalog(self.path)
            now = self.clock()
            signature = None
            if catalog is not None:
                try:
                    stat = catalog.stat()
                    signature = (str(catalog), stat.st_mtime_ns, stat.st_size)
                except FileNotFoundError:  # replaced between listing and stat
                    signature = None
            if signature != last_poll:
                unchanged_since = now
            last_poll = signature
            stable = signature is not None and signature != broken and now - unchanged_since >= self.policy.settle
            if catalog is not None and stable and (signature != seen or now - last_sync >= self.policy.interval):
                seen = signature
                try:
                    plan = self.service.plan(FileCatalogSource(catalog))
                    pending = plan.diff.counts.changed + plan.diff.resent
                    why = self.policy.reason_to_sync(
                        pending=pending, priority=plan.diff.counts.priority, since_last_sync=now - last_sync
                    )
                    if why is not None:
                        report = self.service.sync(FileCatalogSource(catalog), force=self.force)
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
