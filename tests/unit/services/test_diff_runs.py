"""The deployed pipeline's diff (DiffRuns) over in-memory parts: drop claims, continuation from a checkpoint, and
the repairs consumers ask for."""

from __future__ import annotations

import pytest

from catalog_sync.models.changes import RunStatus
from catalog_sync.models.requests import Continuation, SyncRequest, Trigger
from catalog_sync.services.consume import apply_message
from catalog_sync.services.diff_runs import DiffRuns, NothingToResume
from catalog_sync.services.drops import SupersededDrop
from tests.conftest import make_config, product
from tests.doubles.memory import CATALOGS_PREFIX, PUSHES_PREFIX, MemoryPipeline
from tests.unit.services.conftest import jsonl, products

T = 1_795_000_000.0
ARN = "arn:aws:lambda:us-east-1:123456789012:function:diff"
TEN = [f"P{n}" for n in range(10)]


def drop_key(name: str) -> str:
    return f"{CATALOGS_PREFIX}shop/{name}.jsonl"


class Pipeline:
    def __init__(self, *, dispatch_window: int = 100, diff_function: str | None = ARN) -> None:
        self.parts = MemoryPipeline(configs={"shop": make_config()})
        self.runs = DiffRuns(
            self.parts,
            bucket=self.parts.drops_.bucket,
            pushes_prefix=PUSHES_PREFIX,
            dispatch_window=dispatch_window,
            diff_function=diff_function,
        )
        self.state = self.parts.state(make_config())

    def drop(self, name: str, skus: list[str], *, second: float) -> SyncRequest:
        key = drop_key(name)
        self.parts.drops_.put(key, jsonl(products(*skus)), modified=second)
        return SyncRequest(trigger=Trigger.S3_EVENTBRIDGE, catalog="shop", key=key)

    def consume(self) -> None:
        for message in self.parts.take_messages():
            apply_message(self.parts, self.runs, message.body)

    @property
    def index_ids(self) -> set[str]:
        return self.parts.index(make_config()).ids()


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


def test_a_drop_is_claimed_dispatched_and_applied_by_the_consumers(pipeline: Pipeline):
    report = pipeline.runs.run(pipeline.drop("a", ["A", "B"], second=T))
    assert report.run is not None and report.run.status is RunStatus.DISPATCHED
    assert report.run.counts["dispatched_changes"] == 2
    assert pipeline.state.newest_source() == (T, drop_key("a"), "v1")
    assert pipeline.index_ids == set()  # consumers elsewhere apply the changes
    pipeline.consume()
    assert pipeline.index_ids == {"A", "B"} and pipeline.state.runs()[0].status is RunStatus.SUCCEEDED


def test_an_older_drop_after_a_newer_one_is_superseded(pipeline: Pipeline):
    older = pipeline.drop("a", ["A"], second=T)
    pipeline.runs.run(pipeline.drop("b", ["A", "B"], second=T + 60))
    with pytest.raises(SupersededDrop):
        pipeline.runs.run(older)
    assert pipeline.state.newest_source() == (T + 60, drop_key("b"), "v1")


def test_an_attempt_tells_a_superseded_drop_and_bad_input_from_a_run(pipeline: Pipeline):
    older = pipeline.drop("a", ["A"], second=T)
    newer = pipeline.runs.attempt(pipeline.drop("b", ["A", "B"], second=T + 60))
    assert newer.status == "ok" and newer.report is not None
    assert newer.summary()["status"] == "dispatched" and newer.summary()["counts"]["added"] == 2
    superseded = pipeline.runs.attempt(older)
    assert superseded.status == "superseded" and superseded.report is None
    assert superseded.summary() == {"catalog": "shop", "status": "superseded", "reason": superseded.reason}
    key = drop_key("broken")
    pipeline.parts.drops_.put(key, b'{"sku": "A", "ti', modified=T + 120)
    broken = pipeline.runs.attempt(SyncRequest(trigger=Trigger.S3_EVENTBRIDGE, catalog="shop", key=key))
    assert broken.status == "bad_input" and "line 1" in (broken.reason or "")
    assert broken.summary() == {"catalog": "shop", "status": "bad_input", "error": broken.reason}
    assert pipeline.state.runs()[0].status is RunStatus.FAILED  # its run says why


def test_a_continuation_of_a_run_without_a_checkpoint_is_refused(pipeline: Pipeline):
    report = pipeline.runs.run(pipeline.drop("a", ["A"], second=T))
    assert report.run is not None
    with pytest.raises(NothingToResume, match="no checkpoint"):
        pipeline.runs.resume(Continuation(catalog="shop", run_id=report.run.run_id), function_arn=ARN)
    assert pipeline.parts.invoked == []


def test_a_held_drop_gives_back_its_claim(pipeline: Pipeline):
    pipeline.runs.run(pipeline.drop("a", TEN, second=T))
    pipeline.consume()
    report = pipeline.runs.run(pipeline.drop("b", TEN[:2], second=T + 60))  # would delete 80%
    assert report.held and pipeline.state.newest_source() == (T, drop_key("a"), "v1")
    assert pipeline.index_ids == set(TEN) and pipeline.parts.take_messages() == []


def test_a_dispatch_out_of_time_continues_from_its_checkpoint():
    pipeline = Pipeline(dispatch_window=2)
    checks = [0]

    def out_of_time() -> bool:
        checks[0] += 1
        return checks[0] > 1  # time for one window only

    report = pipeline.runs.run(
        pipeline.drop("a", ["A", "B", "C", "D", "E"], second=T), out_of_time=out_of_time, function_arn=ARN
    )
    assert report.run is not None and report.run.status is RunStatus.RUNNING
    run_id = report.run.run_id
    assert pipeline.runs.has_checkpoint(run_id)
    assert pipeline.parts.invoked == [(ARN, {"resume": {"catalog": "shop", "run_id": run_id}})]
    pipeline.consume()
    assert len(pipeline.index_ids) == 2 and pipeline.state.runs()[0].status is RunStatus.RUNNING

    resumed = pipeline.runs.resume(Continuation(catalog="shop", run_id=run_id), function_arn=ARN)
    assert resumed.progress.finished and resumed.progress.changes == 5 and not resumed.completed
    pipeline.consume()
    assert pipeline.index_ids == {"A", "B", "C", "D", "E"}
    run = pipeline.state.runs()[0]
    assert run.status is RunStatus.SUCCEEDED and run.counts["applied_changes"] == 5


def test_a_run_out_of_time_without_a_function_to_continue_in_fails():
    pipeline = Pipeline(dispatch_window=1)
    with pytest.raises(RuntimeError, match="no function to continue in"):
        pipeline.runs.run(pipeline.drop("a", ["A", "B"], second=T), out_of_time=lambda: True)


def test_a_repair_re_reads_each_product_from_the_object_its_desired_state_came_from(pipeline: Pipeline):
    pipeline.runs.run(pipeline.drop("a", ["A", "B"], second=T))
    push = f"{PUSHES_PREFIX}shop/1.jsonl"
    pipeline.parts.drops_.put(push, jsonl([product("B", price=20.0)]), modified=T + 10)
    pipeline.runs.run(SyncRequest(trigger=Trigger.PUSH, catalog="shop", key=push, ids=("B",)))
    pipeline.consume()
    pipeline.parts.invoked.clear()

    assert pipeline.runs.request_repair("shop", ["A", "B", "gone"])
    # A from the newest catalog drop (no key); B from the push that set it; "gone" has nothing to put back.
    assert sorted(pipeline.parts.invoked, key=str) == sorted(
        [
            (ARN, {"catalog": "shop", "ids": ["A"], "force": True}),
            (ARN, {"catalog": "shop", "ids": ["B"], "force": True, "key": push}),
        ],
        key=str,
    )


def test_no_repair_without_a_diff_function():
    pipeline = Pipeline(diff_function=None)
    pipeline.runs.run(pipeline.drop("a", ["A"], second=T))
    assert not pipeline.runs.request_repair("shop", ["A"]) and pipeline.parts.invoked == []


def test_a_resync_of_some_products_reads_the_newest_drop_a_run_has_read(pipeline: Pipeline):
    pipeline.runs.run(pipeline.drop("a", ["A", "B"], second=T))
    pipeline.consume()
    newer = drop_key("b")
    pipeline.parts.drops_.put(newer, jsonl([product("A", price=99.0), product("B")]), modified=T + 60)
    # Not claimed by any run yet: a re-sync of A still reads drop "a".
    report = pipeline.runs.run(SyncRequest(trigger=Trigger.DIRECT, catalog="shop", ids=("A",), force=True))
    assert report.source == f"s3://{pipeline.parts.drops_.bucket}/{drop_key('a')}"
    assert report.diff.counts.changed == 0


def test_the_summary_names_the_config_fields_no_record_has(pipeline: Pipeline):
    pipeline.parts.configs["shop"] = make_config(metadata={"price": "number", "colour": "string"})
    outcome = pipeline.runs.attempt(pipeline.drop("a", ["A", "B"], second=T))
    assert outcome.summary()["config_warnings"] == [
        {"severity": "warning", "field": "colour", "message": "metadata field 'colour' never appears in the catalog"}
    ]
    assert outcome.summary()["counts"]["added"] == 2  # a warning: the run goes on
