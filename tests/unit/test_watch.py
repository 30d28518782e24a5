from __future__ import annotations

from pathlib import Path

import pytest

from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.drop_folder import LocalDropFolder, newest_catalog
from catalog_sync.adapters.local.files import FileCatalogSource
from catalog_sync.bootstrap.local import LocalWorkspace
from catalog_sync.services.watch import CatalogWatcher, WatchPolicy
from tests.conftest import make_config, product, write_jsonl


@pytest.mark.parametrize(
    ("pending", "priority", "elapsed", "expected"),
    [
        (0, 0, 1000, None),
        (1, 1, 0, "priority changes"),
        (10, 0, 0, "threshold"),
        (3, 0, 10, None),
        (3, 0, 300, "interval"),
    ],
)
def test_policy(pending: int, priority: int, elapsed: float, expected: str | None):
    policy = WatchPolicy(interval=300, threshold=10)
    assert policy.reason_to_sync(pending=pending, priority=priority, since_last_sync=elapsed) == expected


def test_newest_catalog_in_a_folder(tmp_path: Path):
    import os

    old = write_jsonl(tmp_path / "a.jsonl", [product("1")])
    new = write_jsonl(tmp_path / "b.jsonl", [product("1")])
    (tmp_path / "notes.txt").write_text("x")
    os.utime(old, ns=(1, 1))
    assert newest_catalog(tmp_path) == new
    assert newest_catalog(old) == old


@pytest.mark.parametrize("name", ["feed.xml", "feed.xml.gz", "feed.tsv", "feed.tsv.gz"])
def test_feeds_in_a_folder_of_drops_are_catalogs_but_txt_files_are_not(tmp_path: Path, name: str):
    import os

    feed = tmp_path / name
    feed.write_bytes(b"x")
    os.utime(feed, ns=(1, 1))
    assert newest_catalog(tmp_path) == feed
    (tmp_path / "feed.txt").write_bytes(b"id\ttitle\n")  # newer, but .txt is notes' name too
    assert newest_catalog(tmp_path) == feed
    assert newest_catalog(tmp_path / "feed.txt") == tmp_path / "feed.txt"  # a file named itself is read


def test_watcher_waits_for_the_interval_then_syncs_and_syncs_priority_at_once(tmp_path: Path):
    catalog = write_jsonl(tmp_path / "c.jsonl", [product(str(i)) for i in range(5)])
    workspace = LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder())
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    watcher = CatalogWatcher(
        workspace.service(),
        LocalDropFolder(catalog),
        WatchPolicy(interval=60, threshold=10),
        poll=5,
        clock=lambda: now[0],
        sleep=sleep,
    )
    events = watcher.events(max_syncs=2)
    first = next(events)  # 5 new products: below the threshold, not priority -> wait
    assert first.kind == "pending" and first.pending == 5
    second = next(events)
    assert second.kind == "sync" and second.why == "interval" and now[0] >= 60
    assert workspace.index.count() == 5
    # A deletion is a priority change: synced on the next poll, without waiting for the interval.
    write_jsonl(catalog, [product(str(i)) for i in range(4)])
    synced_at = now[0]
    third = next(events)
    assert third.kind == "sync" and third.why == "priority changes" and now[0] - synced_at < 60
    assert workspace.index.count() == 4


def test_watcher_skips_a_broken_drop_and_keeps_watching(tmp_path: Path):
    drops = tmp_path / "drops"
    drops.mkdir()
    workspace = LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder())
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] == 10:  # a broken drop arrives, then a good one
            (drops / "a.jsonl").write_bytes(b'{"sku": "1", "ti')
        if now[0] == 30:
            write_jsonl(drops / "b.jsonl", [product(str(i)) for i in range(12)])

    watcher = CatalogWatcher(
        workspace.service(),
        LocalDropFolder(drops),
        WatchPolicy(interval=600, threshold=10),
        poll=5,
        clock=lambda: now[0],
        sleep=sleep,
    )
    events = watcher.events(max_syncs=1)
    error = next(events)
    assert error.kind == "error" and "a.jsonl, line 1" in (error.why or "")
    synced = next(events)
    assert synced.kind == "sync" and synced.why == "threshold" and synced.catalog.name == "b.jsonl"
    assert workspace.index.count() == 12


def test_a_drop_still_being_written_is_not_read_and_a_broken_one_is_read_once(tmp_path: Path):
    drops = tmp_path / "drops"
    drops.mkdir()
    workspace = LocalWorkspace(tmp_path / "state", make_config(), HashingEmbedder())
    service = workspace.service()
    write_jsonl(drops / "a.jsonl", [product(str(i)) for i in range(20)])
    assert not service.sync(FileCatalogSource(drops / "a.jsonl")).failed
    plans: list[float] = []
    original_plan = service.plan
    now = [0.0]

    def counting_plan(*args, **kwargs):  # type: ignore[no-untyped-def]
        plans.append(now[0])
        return original_plan(*args, **kwargs)

    service.plan = counting_plan  # type: ignore[method-assign]
    whole = [product(str(i)) for i in range(20)] + [product("new")]

    def sleep(seconds: float) -> None:
        now[0] += seconds
        if now[0] == 5:  # a slow writer: half the file now, the rest 5 s later
            write_jsonl(drops / "b.jsonl", whole[:10])
        if now[0] == 10:
            write_jsonl(drops / "b.jsonl", whole)
        if now[0] == 40:
            (drops / "c.jsonl").write_bytes(b'{"sku": "1", "ti')

    watcher = CatalogWatcher(
        service,
        LocalDropFolder(drops),
        WatchPolicy(interval=60, threshold=1, settle=10),
        poll=5,
        clock=lambda: now[0],
        sleep=sleep,
    )
    events = watcher.events(max_seconds=200)
    synced = next(events)
    assert synced.kind == "sync" and synced.catalog.name == "b.jsonl"
    assert synced.report is not None and synced.report.diff.counts.deleted == 0  # the half file was never read
    assert workspace.index.count() == 21
    error = next(events)
    assert error.kind == "error" and "c.jsonl" in (error.why or "")
    assert list(events) == []  # the broken drop is not read again, interval or not
    assert len([t for t in plans if t > 40]) == 1


def test_a_vanished_file_is_waited_for(tmp_path: Path):
    catalog = tmp_path / "c.jsonl"
    assert newest_catalog(catalog) is None
    assert newest_catalog(tmp_path / "missing-folder") is None
