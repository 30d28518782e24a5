"""Runs on DynamoDB: numbered per catalog, each with an id no other catalog's run has, listed newest first; a
dispatched run completes when its consumers have handled every change it sent (catalog_sync.adapters.aws.
dynamodb_state.progress)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from catalog_sync.adapters.aws.dynamodb_state import keys
from catalog_sync.adapters.aws.dynamodb_state.table import StateTable, StateWriteError, attribute_values, plain
from catalog_sync.logic.runs import new_run_id
from catalog_sync.models.changes import RunRecord, RunStatus

# Consumers' counters on a run item: a_<name>, reported by runs() as applied_<name>.
APPLIED_PREFIX = "a_"


def catalog_of_run(dynamodb: Any, *, table: str, run_id: str) -> str | None:
    """The catalog a run belongs to, from its id alone (an item written when the run began), or None."""
    item = dynamodb.get_item(TableName=table, Key=keys.run_index_key(run_id)).get("Item")
    return plain(item)["catalog"] if item else None


def registered_catalogs(dynamodb: Any, *, table: str) -> dict[str, int]:
    """Every catalog that has begun a run in this table, with the number of shards its state was written with."""
    catalogs: dict[str, int] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": attribute_values({":pk": keys.CATALOGS_PK}),
    }
    while True:
        response = dynamodb.query(**kwargs)
        for item in map(plain, response.get("Items", [])):
            catalogs[item["sk"]] = int(item.get("shards", keys.DEFAULT_SHARDS))
        if "LastEvaluatedKey" not in response:
            return catalogs
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _run_from_item(item: dict[str, Any]) -> RunRecord:
    """A run as its item (read by `plain`) says, with what the consumers added: their counters and, once they
    handled every change of a dispatched run, its completion."""
    run = RunRecord.model_validate_json(item["run_json"])
    for name, value in item.items():
        if name.startswith(APPLIED_PREFIX):
            run.counts[f"applied_{name[len(APPLIED_PREFIX) :]}"] = int(value)
    if run.status is RunStatus.DISPATCHED:
        run.counts["applied_changes"] = int(item.get("changes_done", 0))
        if "completed_at" in item:
            run.status = RunStatus.SUCCEEDED
            run.finished_at = datetime.fromisoformat(item["completed_at"])
    return run


class RunState(StateTable):
    def begin_run(self, *, mode: str, source: str) -> RunRecord:
        response = self._dynamodb.update_item(
            TableName=self.table,
            Key=self._meta_key("runs"),
            UpdateExpression="ADD seq :one",
            ExpressionAttributeValues=attribute_values({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        seq = int(plain(response["Attributes"])["seq"])
        started = datetime.now(UTC)
        run_id = self._claim_run_id(started, seq)
        self._dynamodb.put_item(
            TableName=self.table,
            Item={**keys.catalog_key(self.catalog), **attribute_values({"shards": self.shards, "last_run": run_id})},
        )
        self.requests["write"] += 1
        run = RunRecord(
            run_id=run_id,
            seq=seq,
            catalog=self.catalog,
            mode=mode,
            source=source,
            status=RunStatus.RUNNING,
            started_at=started,
        )
        self.finish_run(run)
        return run

    def _claim_run_id(self, started: datetime, seq: int) -> str:
        """A run id no other catalog's run has, recorded with this catalog (conditional: first come, first served)."""
        for _ in range(5):
            run_id = new_run_id(started, seq, secrets.token_hex(3))
            claimed = self._update(
                keys.run_index_key(run_id),
                UpdateExpression="SET #catalog = :catalog",  # CATALOG is a reserved word
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeNames={"#catalog": "catalog"},
                ExpressionAttributeValues=attribute_values({":catalog": self.catalog}),
            )
            if claimed:
                return run_id
        raise StateWriteError(f"no free run id for {self.catalog!r} at {started:%Y%m%dT%H%M%SZ}-{seq:05d}")

    def finish_run(self, run: RunRecord) -> bool:
        # An update, not a put: consumers may already be adding to this run's progress counter.
        values: dict[str, Any] = {":run": run.model_dump_json()}
        expression = "SET run_json = :run"
        if run.status is RunStatus.DISPATCHED:
            values[":total"] = run.counts.get("dispatched_changes", 0)
            expression += ", changes_total = :total"  # none: completed at once, below
        item = self._dynamodb.update_item(
            TableName=self.table,
            Key=self._run_key(run.run_id),
            UpdateExpression=expression,
            ExpressionAttributeValues=attribute_values(values),
            ReturnValues="ALL_NEW",
        )["Attributes"]
        self.requests["write"] += 1
        return self._complete_if_done(run.run_id, item)

    def _complete_if_done(self, run_id: str, item: dict[str, Any]) -> bool:
        """`item`: the run's, as stored. Whichever comes last, the dispatch's total or the consumers' count,
        completes the run: exactly once, by the conditional write (True for the caller that made it)."""
        run = plain(item)
        total = run.get("changes_total")
        if total is not None and int(run.get("changes_done", 0)) >= total and "completed_at" not in run:
            return self._update(
                self._run_key(run_id),
                UpdateExpression="SET completed_at = :now",
                ConditionExpression="attribute_not_exists(completed_at)",
                ExpressionAttributeValues=attribute_values({":now": datetime.now(UTC).isoformat()}),
            )
        return False

    def get_run(self, run_id: str) -> RunRecord:
        """The run as the diff last saved it (without the consumers' counters); KeyError if there is none."""
        item = self._dynamodb.get_item(TableName=self.table, Key=self._run_key(run_id)).get("Item")
        if item is None:
            raise KeyError(f"no run {run_id!r} of catalog {self.catalog!r}")
        return RunRecord.model_validate_json(plain(item)["run_json"])

    def find_run(self, run_id: str) -> RunRecord | None:
        item = self._dynamodb.get_item(TableName=self.table, Key=self._run_key(run_id)).get("Item")
        return _run_from_item(plain(item)) if item is not None and "run_json" in item else None

    def runs(self, limit: int = 30) -> list[RunRecord]:
        response = self._dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues=attribute_values({":pk": keys.runs_partition(self.catalog)}),
            ScanIndexForward=False,
            Limit=limit,
        )
        self.requests["query"] += 1
        return [_run_from_item(plain(item)) for item in response.get("Items", [])]
