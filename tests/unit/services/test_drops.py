"""Catalog drops in the deployed pipeline (services/drops.py): which requests claim their drop, when a claim is
superseded, and which object a repair re-reads each product from."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from catalog_sync.models.changes import RunRecord, RunStatus
from catalog_sync.models.requests import SyncRequest, Trigger
from catalog_sync.services.drops import SupersededDrop, claim_drop, is_superseded, repair_sources
from tests.doubles.memory import BUCKET, MemoryDropStore
from tests.doubles.memory_state import MemoryStateStore

T = 1_795_000_000.0
KEY = "catalogs/shop/a.jsonl"


@pytest.fixture
def drops() -> MemoryDropStore:
    store = MemoryDropStore()
    store.put(KEY, b"{}\n", modified=T)
    store.put("catalogs/shop/b.jsonl", b"{}\n", modified=T + 60)
    return store


def request(trigger: Trigger, **fields: object) -> SyncRequest:
    return SyncRequest.model_validate({"trigger": trigger, "catalog": "shop", **fields})


@pytest.mark.parametrize("trigger", [Trigger.S3_EVENTBRIDGE, Trigger.S3_NOTIFICATION, Trigger.SCHEDULE])
def test_a_run_of_a_catalog_drop_claims_it(drops: MemoryDropStore, trigger: Trigger):
    state = MemoryStateStore()
    claim = claim_drop(state, drops, request(trigger, key=KEY), KEY)
    assert claim is not None and (claim.key, claim.modified, claim.version_id) == (KEY, T, "v1")
    assert state.newest_source() == (T, KEY, "v1")


def test_a_direct_sync_of_the_newest_object_claims_it_but_not_one_named(drops: MemoryDropStore):
    state = MemoryStateStore()
    assert claim_drop(state, drops, request(Trigger.DIRECT, key=KEY), KEY) is None  # a rollback
    assert claim_drop(state, drops, request(Trigger.DIRECT), KEY) is not None


def test_pushes_and_resyncs_claim_nothing(drops: MemoryDropStore):
    state = MemoryStateStore()
    assert claim_drop(state, drops, request(Trigger.PUSH, key=KEY), KEY) is None
    assert claim_drop(state, drops, request(Trigger.S3_EVENTBRIDGE, key=KEY, ids=("A",)), KEY) is None
    assert state.newest_claim() is None


def test_an_event_carries_its_sequencer_into_the_claim(drops: MemoryDropStore):
    state = MemoryStateStore()
    claim = claim_drop(state, drops, request(Trigger.S3_EVENTBRIDGE, key=KEY, sequencer="00A1"), KEY)
    assert claim is not None and claim.sequencer == "00A1" and state.newest_claim() == claim


def test_an_older_drop_is_refused_after_a_newer_one_and_supersedes_its_run(drops: MemoryDropStore):
    state = MemoryStateStore()
    mine = claim_drop(state, drops, request(Trigger.S3_EVENTBRIDGE, key=KEY), KEY)
    assert not is_superseded(state, mine)
    newer = "catalogs/shop/b.jsonl"
    claim_drop(state, drops, request(Trigger.S3_EVENTBRIDGE, key=newer), newer)
    assert is_superseded(state, mine)
    with pytest.raises(SupersededDrop, match=r"b\.jsonl"):
        claim_drop(state, drops, request(Trigger.S3_EVENTBRIDGE, key=KEY), KEY)


def test_a_checkpoint_without_a_claim_is_superseded_only_by_a_later_second(drops: MemoryDropStore):
    state = MemoryStateStore()
    claim_drop(state, drops, request(Trigger.SCHEDULE, key=KEY), KEY)
    assert not is_superseded(state, None, modified=T)
    assert is_superseded(state, None, modified=T - 1)
    assert not is_superseded(state, None)  # not a catalog drop


def run(seq: int, source: str) -> RunRecord:
    return RunRecord(
        run_id=f"r{seq}",
        seq=seq,
        catalog="shop",
        mode="incremental",
        source=source,
        status=RunStatus.DISPATCHED,
        started_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_repair_sources_name_the_push_that_set_a_product_and_otherwise_the_newest_drop():
    runs = [run(1, f"s3://{BUCKET}/catalogs/shop/a.jsonl"), run(2, f"s3://{BUCKET}/pushes/shop/1.jsonl")]
    desired = {"A": 1, "B": 2, "C": 3}  # C: a run not among those listed (a re-sync from the newest)
    sources = repair_sources(runs, desired, ["A", "B", "C", "gone"], bucket=BUCKET, pushes_prefix="pushes/")
    assert sources == {None: ["A", "C"], "pushes/shop/1.jsonl": ["B"]}
