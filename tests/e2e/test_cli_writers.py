"""One writer per catalog's local state, with real processes: concurrent syncs, a writer killed part way, Ctrl+C.

Every process here is the real command line (`python -m catalog_sync.cli`) on the hashing embedder. The state is
read by the test with its own read-only SQLite connections, not through the product's store.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import write_jsonl
from tests.doubles.catalog_config import catalog_toml

CONFIG = catalog_toml(metadata={"title": "string", "price": "number"})
# Big enough that a sync takes a few seconds: two started together overlap, and one can be stopped part way.
PRODUCTS = 8_000


def catalog(directory: Path, version: str, n: int = PRODUCTS) -> Path:
    records = (
        {"sku": str(i), "title": f"{version} product {i}", "description": f"version {version} of {i}", "price": 1.0}
        for i in range(n)
    )
    return write_jsonl(directory / f"{version}.jsonl", records)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "shop.toml").write_text(CONFIG)
    return tmp_path


def command(workdir: Path, *args: str) -> list[str]:
    options = ["--config", str(workdir / "shop.toml"), "--state-dir", str(workdir / "state"), "--embedder", "hashing"]
    return [sys.executable, "-m", "catalog_sync.cli", *args, *options]


def start(workdir: Path, *args: str) -> subprocess.Popen[str]:
    # SIGINT back to its default in the child (a test run started in the background ignores it, and the child
    # would inherit that): Python then turns it into KeyboardInterrupt, as in a terminal. No threads spawn here.
    return subprocess.Popen(
        command(workdir, *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )


def run(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(workdir, *args), capture_output=True, text=True, timeout=timeout, check=False)


def last_json(stdout: str) -> Any:
    lines = stdout.strip().splitlines()
    assert lines, "no output on stdout"
    return orjson.loads(lines[-1])


@pytest.fixture
def state_db(workdir: Path) -> Any:
    """Read-only queries on the catalog's state file, each on a fresh connection."""

    def query(sql: str) -> list[tuple[Any, ...]]:
        path = workdir / "state" / "shop" / "state.sqlite"
        if not path.exists():
            return []
        try:
            with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=30)) as connection:
                return connection.execute(sql).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            return []

    return query


def index_versions(workdir: Path) -> dict[str, str]:
    """Product id -> the catalog version its indexed title comes from (read through `export`)."""
    done = run(workdir, "export")
    assert done.returncode == 0, done.stderr
    rows = [orjson.loads(line) for line in done.stdout.splitlines()]
    return {row["id"]: row["metadata"]["title"].split(" ", 1)[0] for row in rows}


def runs_table(state_db: Any) -> list[dict[str, Any]]:
    rows = state_db("SELECT run_id, status, started_at, finished_at, message FROM runs ORDER BY seq")
    return [dict(zip(("run_id", "status", "started_at", "finished_at", "message"), row, strict=True)) for row in rows]


def test_two_syncs_started_together_never_blend_two_catalogs(workdir: Path, state_db: Any):
    """The failure as reported: two syncs of different versions started together both said "succeeded", and the
    index ended as a blend of the two with nothing pending. Now the second writer is refused (exit 4) and the
    index is exactly the catalog of the one that ran."""
    a, b = catalog(workdir, "A"), catalog(workdir, "B")
    procs = {"A": start(workdir, "sync", str(a), "--json"), "B": start(workdir, "sync", str(b), "--json")}
    outputs = {version: proc.communicate(timeout=180) for version, proc in procs.items()}
    codes = {version: proc.returncode for version, proc in procs.items()}

    versions = index_versions(workdir)
    assert len(versions) == PRODUCTS
    held = set(versions.values())
    assert len(held) == 1, f"the index is a blend: {sorted(held)} (exit codes {codes})"
    (winner,) = held
    assert codes[winner] == 0, outputs[winner][1]
    loser = "B" if winner == "A" else "A"
    # The other one either ran entirely before the winner (it waited its turn), or was refused and changed nothing.
    if codes[loser] == 0:
        runs = runs_table(state_db)
        assert len(runs) == 2 and [r["status"] for r in runs] == ["succeeded", "succeeded"]
        assert runs[0]["finished_at"] <= runs[1]["started_at"], f"two writers at once: {runs}"
    else:
        assert codes[loser] == 4, outputs[loser]
        error = last_json(outputs[loser][0])
        assert error["exit_code"] == 4 and "another writer" in error["error"]
        assert f"pid {procs[winner].pid}" in error["error"]
        assert [r["status"] for r in runs_table(state_db)] == ["succeeded"]
    assert state_db("SELECT count(*) FROM products WHERE committed_version IS NOT desired_version") == [(0,)]


def wait_until(predicate: Any, timeout: float = 120.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def committed(state_db: Any) -> int:
    rows = state_db("SELECT count(*) FROM products WHERE committed_version IS NOT NULL")
    return int(rows[0][0]) if rows else 0


def stop_part_way(proc: subprocess.Popen[str], state_db: Any) -> int:
    """Freeze the sync once it has committed some of its changes; the products committed by then."""
    wait_until(lambda: committed(state_db) > 0 or proc.poll() is not None, what="the first commit")
    os.kill(proc.pid, signal.SIGSTOP)
    assert proc.poll() is None, "the sync ended before it could be stopped part way"
    done = committed(state_db)
    assert 0 < done < PRODUCTS
    return done


def test_a_writer_holding_the_state_turns_the_next_away_and_readers_are_not_blocked(workdir: Path, state_db: Any):
    a, b = catalog(workdir, "A", n=300), catalog(workdir, "B", n=300)
    watcher = start(workdir, "watch", str(a), "--interval", "3600", "--poll", "0.05", "--settle", "0", "--json")
    assert watcher.stdout is not None and watcher.stderr is not None
    try:
        events = iter(watcher.stdout.readline, "")
        assert orjson.loads(next(events))["event"] == "start"
        assert orjson.loads(next(events))["event"] == "sync"  # the watcher synced A and keeps the state

        refused = run(workdir, "sync", str(b), "--json")
        assert refused.returncode == 4, refused.stderr
        error = last_json(refused.stdout)
        assert error["exit_code"] == 4
        assert f"pid {watcher.pid}" in error["error"] and "catalog-sync watch" in error["error"]
        assert "another writer holds the state of catalog 'shop'" in error["error"]
        assert [r["status"] for r in runs_table(state_db)] == ["succeeded"]  # nothing changed
        assert set(index_versions(workdir).values()) == {"A"}

        # Readers go on: status says who is writing, monitor plans and says so too.
        status = run(workdir, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert last_json(status.stdout)["writer"]["pid"] == watcher.pid
        assert run(workdir, "runs", "--json").returncode == 0
        plan = run(workdir, "monitor", str(b), "--json")
        assert plan.returncode == 0, plan.stderr
        report = last_json(plan.stdout)
        assert report["counts"]["text_changed"] == 300
        assert any(f"pid {watcher.pid}" in note for note in report["notes"])

        # A writer that may wait queues behind the watcher, and goes on once it stops.
        queued = start(workdir, "sync", str(b), "--wait", "60", "--json")
        assert queued.stderr is not None
        assert "waiting up to 60 s" in queued.stderr.readline()
        assert queued.poll() is None
        watcher.send_signal(signal.SIGINT)
        out, _ = watcher.communicate(timeout=60)
        assert watcher.returncode == 0 and orjson.loads(out.splitlines()[-1])["event"] == "stop"
        out, err = queued.communicate(timeout=120)
        assert queued.returncode == 0, err
        assert last_json(out)["status"] == "succeeded"
    finally:
        for proc in (watcher,):
            if proc.poll() is None:
                proc.kill()
    assert set(index_versions(workdir).values()) == {"B"}
    assert not (workdir / "state" / "shop" / "writer.json").exists()


def test_a_writer_gives_up_after_its_wait(workdir: Path):
    a = catalog(workdir, "A", n=50)
    watcher = start(workdir, "watch", str(a), "--interval", "3600", "--poll", "0.05", "--settle", "0", "--json")
    assert watcher.stdout is not None
    try:
        assert orjson.loads(watcher.stdout.readline())["event"] == "start"
        began = time.monotonic()
        refused = run(workdir, "sync", str(a), "--wait", "1.5")
        assert time.monotonic() - began >= 1.5
        assert refused.returncode == 4
        assert "after waiting 1.5 s" in refused.stderr and f"pid {watcher.pid}" in refused.stderr
    finally:
        watcher.kill()
        watcher.wait()


def test_a_run_left_running_by_a_killed_writer_is_marked_interrupted_by_the_next(workdir: Path, state_db: Any):
    a = catalog(workdir, "A")
    proc = start(workdir, "sync", str(a), "--json")
    applied = stop_part_way(proc, state_db)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    (killed,) = runs_table(state_db)
    assert killed["status"] == "running"  # as it was left

    resumed = run(workdir, "sync", str(a), "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = last_json(resumed.stdout)
    assert any(killed["run_id"] in note and "interrupted" in note for note in report["notes"])
    # Only what the killed run had not committed is sent again.
    assert report["resent"] == PRODUCTS - applied and report["counts"]["added"] == 0
    assert report["applied"]["upserted"] == PRODUCTS - applied and report["pending_after"] == 0

    first, second = runs_table(state_db)
    assert first["run_id"] == killed["run_id"] and first["status"] == "interrupted"
    assert f"pid {proc.pid}" in first["message"] and "killed or crashed" in first["message"]
    assert second["status"] == "succeeded"
    assert set(index_versions(workdir).values()) == {"A"} and len(index_versions(workdir)) == PRODUCTS

    # The interrupted run is history, not a failure: the catalog is healthy, and every view names it.
    status = last_json(run(workdir, "status", "--json").stdout)
    assert status["healthy"] is True and status["score"] == 100.0, status["alerts"]
    assert status["statistics"]["interrupted"] == 1 and status["statistics"]["failure_rate"] == 0.0
    assert [r["status"] for r in status["runs"]] == ["succeeded", "interrupted"]
    shown = run(workdir, "runs", killed["run_id"])
    assert shown.returncode == 0 and "interrupted" in shown.stdout


def test_ctrl_c_says_what_was_applied_and_the_next_sync_resumes(workdir: Path, state_db: Any):
    a = catalog(workdir, "A")
    proc = start(workdir, "sync", str(a))
    stop_part_way(proc, state_db)
    proc.send_signal(signal.SIGINT)
    os.kill(proc.pid, signal.SIGCONT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    (interrupted,) = runs_table(state_db)
    # Marked at once, by the interrupted process itself.
    assert interrupted["status"] == "interrupted" and interrupted["finished_at"] is not None
    applied = committed(state_db)
    pending = PRODUCTS - applied
    assert f"{applied:,} of {PRODUCTS:,} changes were applied" in interrupted["message"]
    message = " ".join(err.split())
    assert f"run {interrupted['run_id']} interrupted by Ctrl+C" in message
    assert f"the other {pending:,} are left to the next sync" in message
    assert f"{pending:,} products are pending" in message and "again to resume" in message
    assert not (workdir / "state" / "shop" / "writer.json").exists()

    resumed = run(workdir, "sync", str(a), "--json")
    assert resumed.returncode == 0, resumed.stderr
    report = last_json(resumed.stdout)
    assert report["resent"] == pending and report["applied"]["upserted"] == pending
    assert report["applied"]["embedded"] == pending and report["pending_after"] == 0
    assert not report["notes"]  # nothing was left running
    assert [r["status"] for r in runs_table(state_db)] == ["interrupted", "succeeded"]
    assert len(index_versions(workdir)) == PRODUCTS


def test_ctrl_c_under_json_is_a_json_error(workdir: Path, state_db: Any):
    a = catalog(workdir, "A")
    proc = start(workdir, "sync", str(a), "--json")
    stop_part_way(proc, state_db)
    proc.send_signal(signal.SIGINT)
    os.kill(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    error = last_json(out)
    (interrupted,) = runs_table(state_db)
    assert error["exit_code"] == 130 and error["run_id"] == interrupted["run_id"]
    assert "interrupted by Ctrl+C" in error["error"]


def test_two_catalogs_sync_at_once_and_share_the_embedding_cache(workdir: Path):
    """The lock is per catalog: two catalogs under one state root sync together, and the embedding cache they
    share (SQLite, WAL, a busy timeout) takes both writers' embeddings."""
    (workdir / "outlet.toml").write_text(CONFIG.replace('name = "shop"', 'name = "outlet"'))
    a, b = catalog(workdir, "A"), catalog(workdir, "B")
    shop = start(workdir, "sync", str(a), "--json")
    outlet_command = command(workdir, "sync", str(b), "--json")
    outlet_command[outlet_command.index(str(workdir / "shop.toml"))] = str(workdir / "outlet.toml")
    outlet = subprocess.Popen(outlet_command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for proc in (shop, outlet):
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert last_json(out)["pending_after"] == 0
    cache = workdir / "state" / "embedding-cache.sqlite"
    with closing(sqlite3.connect(f"{cache.as_uri()}?mode=ro", uri=True)) as connection:
        assert connection.execute("SELECT count(*) FROM embedding_cache").fetchone() == (2 * PRODUCTS,)


def test_ctrl_c_during_a_watch_sync_says_what_was_applied(workdir: Path, state_db: Any):
    a = catalog(workdir, "A")
    watcher = start(workdir, "watch", str(a), "--interval", "3600", "--poll", "0.05", "--settle", "0", "--json")
    stop_part_way(watcher, state_db)
    watcher.send_signal(signal.SIGINT)
    os.kill(watcher.pid, signal.SIGCONT)
    out, _ = watcher.communicate(timeout=60)
    assert watcher.returncode == 130
    (interrupted,) = runs_table(state_db)
    assert interrupted["status"] == "interrupted"
    events = [orjson.loads(line) for line in out.splitlines()]
    assert events[-2] == {"event": "stop", "interrupted_run": interrupted["run_id"]}
    assert events[-1]["exit_code"] == 130 and f"of {PRODUCTS:,} changes were applied" in events[-1]["error"]
