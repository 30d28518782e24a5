"""The writer lock of a catalog's directory, and what its holder record says, against real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog_sync.adapters.local.sqlite_state import SqliteStateStore
from catalog_sync.adapters.local.writer_lock import HOLDER_FILE, WriterBusy, WriterLock, current_writer, read_holder
from catalog_sync.models.changes import RunStatus

# Another process takes the lock the way `filelock` does (flock on the lock file), then waits on stdin.
HOLDER = """
import sys
from pathlib import Path
from catalog_sync.adapters.local.writer_lock import WriterLock
lock = WriterLock(Path(sys.argv[1]), command="catalog-sync sync v2.jsonl")
lock.acquire()
lock.record_run("20250101T000000Z-00007-abcdef")
print("held", flush=True)
if sys.stdin.readline().strip() == "release":
    lock.release()
"""


@pytest.fixture
def holder(tmp_path: Path):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "shop")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_writer_is_turned_away_with_who_holds_it(tmp_path: Path, holder: subprocess.Popen[str]):
    with pytest.raises(WriterBusy) as refused:
        WriterLock(tmp_path / "shop").acquire()
    message = str(refused.value)
    assert f"pid {holder.pid}" in message and "`catalog-sync sync v2.jsonl`" in message
    assert "run 20250101T000000Z-00007-abcdef" in message
    # A reader sees the same writer, without taking the lock.
    writer = current_writer(tmp_path / "shop")
    assert writer is not None and writer.pid == holder.pid


def test_the_lock_passes_on_release_and_the_record_goes(tmp_path: Path, holder: subprocess.Popen[str]):
    assert holder.stdin is not None
    holder.stdin.write("release\n")
    holder.stdin.flush()
    holder.wait(timeout=30)
    lock = WriterLock(tmp_path / "shop", command="catalog-sync watch drops/")
    lock.acquire(wait=5)
    assert lock.left_behind is None  # released cleanly: no record left
    record = read_holder(tmp_path / "shop")
    assert record is not None and record.pid == os.getpid() and record.command == "catalog-sync watch drops/"
    lock.release()
    assert not (tmp_path / "shop" / HOLDER_FILE).exists()


def test_a_killed_holder_frees_the_lock_and_leaves_its_record(tmp_path: Path, holder: subprocess.Popen[str]):
    holder.kill()
    holder.wait(timeout=30)
    assert current_writer(tmp_path / "shop") is None  # its record names a process that is gone
    lock = WriterLock(tmp_path / "shop")
    lock.acquire()  # at once: the operating system released the dead process's lock
    try:
        assert lock.left_behind is not None and lock.left_behind.pid == holder.pid
        assert lock.left_behind.run_id == "20250101T000000Z-00007-abcdef"
    finally:
        lock.release()


def test_only_running_runs_are_marked_interrupted(tmp_path: Path):
    store = SqliteStateStore(tmp_path / "state.sqlite", "shop")
    try:
        done = store.begin_run(mode="incremental", source="a.jsonl")
        done.status = RunStatus.SUCCEEDED
        store.finish_run(done)
        left = store.begin_run(mode="incremental", source="b.jsonl")
        assert store.interrupt_running_runs("its process is gone") == [left.run_id]
        assert [(r.run_id, r.status, r.message) for r in store.runs()] == [
            (left.run_id, RunStatus.INTERRUPTED, "its process is gone"),
            (done.run_id, RunStatus.SUCCEEDED, None),
        ]
        assert store.interrupt_running_runs("again") == []
    finally:
        store.close()
