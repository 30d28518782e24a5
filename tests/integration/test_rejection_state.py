"""Rejections in the state store contract, held by both stores (SQLite, and DynamoDB under moto): a change the
index refused is listed, with the index's reason, while it is the product's desired, uncommitted change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from catalog_sync.models.index import IndexRejection
from tests.doubles.state_stores import delete, record, upsert

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def rejected(pid: str, version: int, reason: str = "refused", *, minutes: int = 0, action: str = "upsert") -> Any:
    return IndexRejection(
        product_id=pid, version=version, action=action, reason=reason, at=T0 + timedelta(minutes=minutes)
    )


def listed(store: Any) -> list[tuple[str, int, str]]:
    return [(r.product_id, r.version, r.reason) for r in store.rejections()]


def test_a_rejection_is_listed_while_its_change_is_pending(make_store):
    store = make_store()
    record(store, [upsert("café-1", 1), upsert("b", 1), upsert("c", 1)])
    store.commit([upsert("c", 1)])
    assert store.rejections() == []
    store.record_rejections(
        [rejected("café-1", 1, "metadata too large", minutes=1), rejected("b", 1, "bad id", minutes=2)]
    )
    assert listed(store) == [("b", 1, "bad id"), ("café-1", 1, "metadata too large")]  # newest first
    first = store.rejections()[1]
    assert first.action == "upsert" and first.at == T0 + timedelta(minutes=1)
    # Reopened: rejections are state, not memory.
    assert listed(make_store()) == listed(store)
    # Committed since (a later delivery got through), or changed again: no longer listed.
    store.commit([upsert("café-1", 1)])
    record(store, [upsert("b", 2)])
    assert store.rejections() == []
    assert store.pending_count() == 1  # b, at its new version


def test_an_older_rejection_does_not_replace_a_newer_one(make_store):
    store = make_store()
    record(store, [upsert("a", 1)])
    record(store, [upsert("a", 2)])
    store.record_rejections([rejected("a", 2, "newer")])
    store.record_rejections([rejected("a", 1, "older, delivered late")])
    assert listed(store) == [("a", 2, "newer")]


def test_a_refused_deletion_is_listed_until_it_is_committed(make_store):
    store = make_store()
    record(store, [upsert("a", 1)])
    store.commit([upsert("a", 1)])
    record(store, [delete("a", 2)])
    store.record_rejections([rejected("a", 2, "refused", action="delete")])
    assert [(r.product_id, r.action) for r in store.rejections()] == [("a", "delete")]
    store.commit([delete("a", 2)])
    assert store.rejections() == []


def test_the_listing_is_bounded(make_store):
    store = make_store()
    record(store, [upsert(f"p{i}", 1) for i in range(30)])
    store.record_rejections([rejected(f"p{i}", 1, minutes=i) for i in range(30)])
    assert [r.product_id for r in store.rejections(limit=3)] == ["p29", "p28", "p27"]
    assert len(store.rejections()) == 30
