"""ChangeApplier and the consumer's apply_message: what a batch leaves in the index and the state."""

from __future__ import annotations

from typing import Any

import pytest

from catalog_sync.models.changes import Change, RunStatus
from catalog_sync.models.requests import SyncRequest, Trigger
from catalog_sync.services.apply import ChangeApplier
from catalog_sync.services.consume import apply_message
from catalog_sync.services.diff_runs import DiffRuns
from tests.conftest import make_config
from tests.doubles.memory import (
    CATALOGS_PREFIX,
    PUSHES_PREFIX,
    MemoryEmbeddingCache,
    MemoryPipeline,
    MemoryVectorIndex,
    RecordingEmbedder,
)
from tests.doubles.memory_state import MemoryStateStore
from tests.unit.services.conftest import delete, jsonl, metadata_only, products, upsert

T = 1_795_000_000.0


class Consumer:
    def __init__(self) -> None:
        self.state = MemoryStateStore()
        self.index = MemoryVectorIndex()
        self.embedder = RecordingEmbedder()
        self.cache = MemoryEmbeddingCache()
        self.applier = ChangeApplier(state=self.state, index=self.index, embedder=self.embedder, cache=self.cache)

    def apply(self, *changes: Change) -> Any:
        """Record the changes as desired (as the diff does before queueing them), then apply them."""
        self.state.record_desired(changes, [])
        return self.applier.apply(changes)


@pytest.fixture
def consumer() -> Consumer:
    return Consumer()


def test_upserts_are_embedded_once_per_text_and_committed(consumer: Consumer):
    stats = consumer.apply(upsert("A", 1, "red shoe"), upsert("B", 1, "red shoe"), upsert("C", 1, "blue hat"))
    assert sorted(consumer.embedder.texts) == ["blue hat", "red shoe"]
    assert (stats.upserted, stats.embedded, stats.committed) == (3, 2, 3)
    assert consumer.index.ids() == {"A", "B", "C"} and consumer.state.pending_count() == 0


def test_a_text_seen_before_comes_from_the_cache(consumer: Consumer):
    consumer.apply(upsert("A", 1, "red shoe"))
    consumer.embedder.texts.clear()
    stats = consumer.apply(upsert("B", 1, "red shoe"))
    assert consumer.embedder.texts == [] and stats.cache_hits == 1 and stats.embedded == 0
    assert "B" in consumer.index.ids()


def test_a_metadata_only_change_never_calls_the_embedder(consumer: Consumer):
    consumer.apply(upsert("A", 1, "red shoe", price=10.0))
    calls = consumer.embedder.calls
    stats = consumer.apply(metadata_only("A", 2, price=12.0))
    assert consumer.embedder.calls == calls and stats.metadata_updated == 1 and stats.embedded == 0
    assert consumer.index.entries["A"].metadata == {"price": 12.0}
    assert consumer.state.pending_count() == 0


def test_a_deletion_removes_the_product_and_its_state(consumer: Consumer):
    consumer.apply(upsert("A", 1, "red shoe"), upsert("B", 1, "blue hat"))
    stats = consumer.apply(delete("A", 2))
    assert stats.deleted == 1 and consumer.index.ids() == {"B"}
    assert consumer.state.desired_versions(["A", "B"]) == {"B": 1}


def test_a_change_no_longer_desired_is_skipped(consumer: Consumer):
    consumer.state.record_desired([upsert("A", 2, "newer text")], [])
    stats = consumer.applier.apply([upsert("A", 1, "older text")])
    assert stats.stale_skipped == 1 and stats.upserted == 0
    assert consumer.index.ids() == set() and consumer.embedder.texts == []
    assert consumer.state.pending_count() == 1


def test_a_refused_write_is_recorded_as_a_rejection_and_holds_back_nothing_else(consumer: Consumer):
    consumer.index.refuse = {"B": "metadata too large"}
    stats = consumer.apply(upsert("A", 1, "red shoe"), upsert("B", 1, "blue hat"))
    assert consumer.index.ids() == {"A"} and stats.committed == 1
    [rejection] = consumer.state.rejections()
    assert (rejection.product_id, rejection.version, rejection.reason) == ("B", 1, "metadata too large")
    assert consumer.state.pending_count() == 1  # B stays pending
    # Accepted later, it is committed and no longer listed.
    consumer.index.refuse = {}
    consumer.applier.apply([upsert("B", 1, "blue hat")])
    assert consumer.state.rejections() == [] and consumer.state.pending_count() == 0


def test_a_failed_write_raises_and_commits_nothing(consumer: Consumer):
    consumer.index.fail_writes = 1
    with pytest.raises(ConnectionError):
        consumer.apply(upsert("A", 1, "red shoe"))
    assert consumer.state.pending_count() == 1 and consumer.state.rejections() == []


# ---------------------------------------------------------------- apply_message, in the deployed pipeline


def dispatched_pipeline(*skus: str) -> tuple[MemoryPipeline, DiffRuns, str]:
    """A pipeline whose diff dispatched a catalog drop of `skus`: its messages wait on the queue."""
    parts = MemoryPipeline(configs={"shop": make_config()})
    runs = DiffRuns(
        parts, bucket=parts.drops_.bucket, pushes_prefix=PUSHES_PREFIX, dispatch_window=100, diff_function="diff"
    )
    key = f"{CATALOGS_PREFIX}shop/a.jsonl"
    parts.drops_.put(key, jsonl(products(*skus)), modified=T)
    report = runs.run(SyncRequest(trigger=Trigger.S3_EVENTBRIDGE, catalog="shop", key=key))
    assert report.run is not None and report.run.status is RunStatus.DISPATCHED
    return parts, runs, report.run.run_id


def test_each_message_is_applied_and_the_last_completes_the_run():
    parts, runs, _ = dispatched_pipeline("A", "B", "C")
    messages = parts.take_messages()
    assert messages
    applied = [apply_message(parts, runs, message.body) for message in messages]
    assert [m.run_completed for m in applied] == [False] * (len(messages) - 1) + [True]
    assert parts.indexes["shop"].ids() == {"A", "B", "C"}
    run = parts.state(make_config()).runs()[0]
    assert run.status is RunStatus.SUCCEEDED
    assert run.counts["applied_changes"] == 3 and run.counts["applied_upserted"] == 3


def test_a_redelivered_message_is_counted_once():
    parts, runs, run_id = dispatched_pipeline("A", "B")
    [message] = parts.take_messages()
    assert apply_message(parts, runs, message.body).run_completed
    calls = parts.embedder_.calls
    again = apply_message(parts, runs, message.body)
    assert not again.run_completed and again.stats.stale_skipped == 0
    assert parts.embedder_.calls == calls  # its texts come from the cache
    run = parts.state(make_config()).find_run(run_id)
    assert run is not None and run.counts["applied_changes"] == 2 and run.counts["applied_upserted"] == 2


def test_a_message_refused_in_part_succeeds_and_records_the_rejection():
    parts, runs, _ = dispatched_pipeline("A", "B")
    parts.index(make_config()).refuse = {"A": "id not accepted"}
    [message] = parts.take_messages()
    applied = apply_message(parts, runs, message.body)
    assert [r.product_id for r in applied.stats.rejected] == ["A"]
    state = parts.state(make_config())
    assert [r.product_id for r in state.rejections()] == ["A"] and parts.indexes["shop"].ids() == {"B"}
    assert applied.run_completed  # handled, if refused: the run is done, and A stays pending
    assert state.pending_count() == 1


def test_a_write_a_newer_change_overtook_is_left_pending_and_its_repair_asked_for():
    parts, runs, _ = dispatched_pipeline("A", "B")
    config = make_config()
    state = parts.state(config)
    [message] = parts.take_messages()
    newer = upsert("A", 99, "A, as a newer drop has it")
    # While the message's write is in flight, a newer run records A's next version.
    parts.index(config).during_write = lambda: state.record_desired([newer], [])
    applied = apply_message(parts, runs, message.body)
    assert applied.stats.repairs == ["A"] and applied.repair_requested
    # A is pending again (its older write may sit in the index), and re-read by the diff function; B committed.
    assert state.snapshot().get_many(["A"])["A"].pending and state.pending_count() == 1
    assert parts.invoked == [(runs.diff_function, {"catalog": "shop", "ids": ["A"], "force": True})]
