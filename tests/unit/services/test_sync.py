"""SyncService applying its own changes: what a catalog's changes leave in the index, the state and the queue."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_sync.models.changes import ChangeKind, RunStatus, StateCounts
from catalog_sync.services.sync_report import BadCatalog
from tests.conftest import product
from tests.doubles.memory import BytesSource
from tests.unit.services.conftest import Local, catalog, products, text_of

TEN = [f"P{n}" for n in range(10)]


def test_a_first_sync_indexes_every_product(local: Local):
    records = products("A", "B", "C")
    report = local.service().sync(catalog(records))
    assert report.run is not None and report.run.status is RunStatus.SUCCEEDED
    assert report.diff.counts.added == 3 and report.run.counts["added"] == 3
    assert local.index.ids() == {"A", "B", "C"}
    assert local.index.entries["A"].metadata["price"] == 10.0
    assert sorted(local.embedder.texts) == sorted(text_of(r) for r in records)
    assert local.state.counts() == StateCounts(products=3, indexed=3, pending=0, deleting=0, synced=3)
    assert report.pending_after == 0


def test_each_kind_of_change_reaches_the_index(local: Local):
    local.service().sync(catalog(products(*TEN)))
    vectors_before = {pid: stored.vector.copy() for pid, stored in local.index.entries.items()}
    local.embedder.texts.clear()
    local.queue.sent.clear()
    renamed = product("P0", description="Now with a new description.")
    repriced = product("P1", price=12.5)
    added = product("N1")
    records = [renamed, repriced, *products(*TEN[2:9]), added]  # P9 is gone

    report = local.service().sync(catalog(records))

    counts = report.diff.counts
    assert (counts.added, counts.text_changed, counts.metadata_only, counts.deleted) == (1, 1, 1, 1)
    kinds = {change.product_id: change for change in report.diff.changes}
    assert kinds["P1"].kind is ChangeKind.METADATA_ONLY and kinds["P1"].fields_changed == ("price",)
    assert kinds["P0"].kind is ChangeKind.TEXT_CHANGED and kinds["P9"].kind is ChangeKind.DELETED
    # Only the changed texts were embedded: the metadata-only change kept its vector.
    assert sorted(local.embedder.texts) == sorted([text_of(renamed), text_of(added)])
    assert local.index.entries["P1"].metadata["price"] == 12.5
    np.testing.assert_array_equal(local.index.entries["P1"].vector, vectors_before["P1"])
    assert local.index.entries["P0"].text == text_of(renamed)
    assert local.index.ids() == {*TEN[:9], "N1"}
    # Deletions and price changes go first, on the priority lane.
    lanes = [(priority, {c.product_id for c in batch}) for priority, batch in local.queue.sent]
    assert lanes[0] == (True, {"P1", "P9"}) and all(not priority for priority, _ in lanes[1:])
    assert local.state.counts() == StateCounts(products=10, indexed=10, pending=0, deleting=0, synced=10)


def test_an_unchanged_catalog_changes_nothing(local: Local):
    local.service().sync(catalog(products(*TEN)))
    local.embedder.texts.clear()
    writes = local.index.writes
    report = local.service().sync(catalog(products(*TEN)))
    assert report.diff.counts.changed == 0 and report.run is not None and report.run.status is RunStatus.SUCCEEDED
    assert local.index.writes == writes and local.embedder.texts == []


def test_the_guard_holds_a_catalog_that_would_delete_too_much(local: Local):
    local.service().sync(catalog(products(*TEN)))
    local.queue.sent.clear()
    calls = local.embedder.calls
    # A truncated file: 8 of 10 products (80%) would be deleted, over the default 20%.
    report = local.service().sync(catalog(products("P0", "P1")))
    assert report.held and report.run is not None and report.run.status is RunStatus.HELD
    assert report.guard.reason is not None and "8 of 10" in report.guard.reason
    assert local.index.ids() == set(TEN) and local.queue.sent == [] and local.embedder.calls == calls
    assert local.state.counts() == StateCounts(products=10, indexed=10, pending=0, deleting=0, synced=10)
    assert local.state.runs()[0].status is RunStatus.HELD
    # Forced, the same file goes through.
    forced = local.service().sync(catalog(products("P0", "P1")), force=True)
    assert not forced.held and local.index.ids() == {"P0", "P1"}


def test_the_guard_holds_an_empty_catalog(local: Local):
    local.service().sync(catalog(products("A", "B")))
    report = local.service().sync(BytesSource("memory://shop.json", b"[]"))
    assert report.held and local.index.ids() == {"A", "B"}
    assert report.guard.reason is not None and "empty" in report.guard.reason


def test_an_unreadable_catalog_fails_its_run_and_changes_nothing(local: Local):
    local.service().sync(catalog(products("A", "B")))
    with pytest.raises(BadCatalog):
        local.service().sync(BytesSource("memory://shop.jsonl", b""))
    assert local.state.runs()[0].status is RunStatus.FAILED and local.index.ids() == {"A", "B"}


def test_invalid_records_are_quarantined_and_the_rest_synced(local: Local):
    local.service().sync(catalog(products("A", "B")))
    broken_b = product("B", price="cheap")
    no_id = {key: value for key, value in product("X").items() if key != "sku"}
    report = local.service().sync(catalog([product("A"), broken_b, no_id, product("C")]))
    assert report.diff.counts.invalid == 2 and report.run is not None
    quarantined = local.artifacts.quarantined[report.run.run_id]
    assert report.quarantine_location is not None and len(quarantined) == 2
    assert {record.product_id for record in quarantined} >= {"B"}
    # A product whose record turned invalid keeps its last good version; the valid ones are synced.
    assert local.index.ids() == {"A", "B", "C"}
    assert local.index.entries["B"].metadata["price"] == 10.0
    assert report.run.status is RunStatus.SUCCEEDED


def test_a_dry_run_changes_nothing(local: Local):
    report = local.service().plan(catalog(products("A", "B")))
    assert report.dry_run and report.diff.counts.added == 2
    assert local.index.ids() == set() and local.state.runs() == [] and local.embedder.calls == 0


def test_a_batch_that_fails_twice_stays_pending_and_the_next_sync_resends_it(local: Local):
    local.index.fail_writes = 2  # the first batch fails, and its retry
    report = local.service().sync(catalog(products("A", "B")))
    assert report.failed and report.run is not None and report.run.status is RunStatus.FAILED
    assert report.pending_after == 2 and local.index.ids() == set()
    again = local.service().sync(catalog(products("A", "B")))
    assert not again.failed and local.index.ids() == {"A", "B"} and again.pending_after == 0
    assert again.run is not None and again.run.counts["resent"] == 2


def test_a_batch_that_fails_once_is_retried(local: Local):
    local.index.fail_writes = 1
    report = local.service().sync(catalog(products("A", "B")))
    assert not report.failed and local.index.ids() == {"A", "B"}


def test_products_the_index_refuses_stay_pending_and_the_run_says_so(local: Local):
    local.index.refuse = {"B": "vector id too long"}
    report = local.service().sync(catalog(products("A", "B", "C")))
    assert report.run is not None and report.run.status is RunStatus.SUCCEEDED
    assert report.run.message is not None and "refused 1" in report.run.message and "'B'" in report.run.message
    assert report.run.counts["applied_rejected"] == 1 and report.pending_after == 1
    assert [r.product_id for r in local.state.rejections()] == ["B"] and local.index.ids() == {"A", "C"}


def test_a_dispatching_service_records_and_queues_the_changes_for_consumers_elsewhere(local: Local):
    report = local.service(apply_changes=False).sync(catalog(products("A", "B")))
    assert report.run is not None and report.run.status is RunStatus.DISPATCHED
    assert report.run.counts["dispatched_changes"] == 2 and report.run.counts["dispatched_messages"] == 1
    assert len(local.queue) == 1 and local.index.ids() == set() and local.embedder.calls == 0
    assert local.state.desired_versions(["A", "B"]) == {"A": report.run.seq, "B": report.run.seq}
    assert [c.product_id for c in local.artifacts.change_log[report.run.run_id]] == ["A", "B"]
