"""A catalog's state on DynamoDB: per-product desired and committed versions, runs and index settings.

One table, items keyed by (pk, sk):

    P#<catalog>#<shard>   <product id>   dv, del, fp, th, mh, fh (desired)   cv, cth, cmh (committed)
    M#<catalog>           index          embedding_model, text_template
    M#<catalog>           runs           seq (the run counter)
    M#<catalog>           source         modified, source_key, source_version, source_sequencer, claims (the newest
                                         catalog object read; claims counts its writes)
    R#<catalog>           <run id>       one run: run_json, changes_total/changes_done, a_<name> (consumers' counts)
    RUN#<run id>          run            catalog (finds a run's catalog from its id alone)
    CATALOGS              <catalog>      shards, last_run (every catalog that has run, for listing them)
    MSG#<catalog>#<run>   <message id>   expires_at (a message whose progress was counted: counted once)
    J#<catalog>           <product id>   v, action, reason, at, expires_at (a change the index refused: current
                                         while v is the product's desired, uncommitted version)

Products are spread over shards so that a catalog's state loads with parallel queries. Every write that
decides what the index should hold is conditional, so that concurrent runs and consumers cannot regress it:
- a desired write applies only if it is newer than the stored desired version (overlapping diff runs);
- a commit applies only if its change is still the desired version (a late consumer commits nothing);
- a fingerprint update applies only while the desired version it was computed against still holds.
Conditional writes go in transactions of up to 100 items (TransactWriteItems, the only batch form that carries
conditions; a transactional write costs twice the write units of a plain one), several in parallel.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import xxhash

from catalog_sync.logic.diff import FingerprintUpdate, StoredProduct
from catalog_sync.logic.drops import DropClaim, claimed, may_claim, same_object
from catalog_sync.logic.gc import paused_gc
from catalog_sync.logic.runs import new_run_id
from catalog_sync.models.changes import Change, IndexAction, RunRecord, RunStatus, StateCounts
from catalog_sync.models.index import IndexRejection
from catalog_sync.resilience.policy import STATE_TRANSACTION_RETRY

DEFAULT_SHARDS = 16
MAX_BATCH_GET = 100
MAX_TRANSACTION_ITEMS = 100
_RETRYABLE = {
    "TransactionCanceledException",  # cancelled for a conflict or throttling, not a condition
    "TransactionConflictException",
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
}
# Orphans found in the index have no known version: they count as present.
UNKNOWN_COMMITTED_VERSION = 0
_PRODUCT_FIELDS = "sk, dv, #del, fp, th, mh, fh, cv, cth, cmh"
_NAMES = {"#del": "del"}
CATALOGS_PK = "CATALOGS"
_MESSAGES_PREFIX = "MSG#"
# Long enough to outlive a message: 14 days in a queue at most, then again as long in its dead-letter queue.
MESSAGE_MARKER_TTL_SECONDS = 30 * 86_400
RUN_INDEX_PREFIX = "RUN#"
_REJECTIONS_PREFIX = "J#"
# A rejection is current only while its change is desired and uncommitted (checked when read); older ones expire.
REJECTION_TTL_SECONDS = 30 * 86_400
# Rejection items read per listing: status stays one small query, however many products were refused.
MAX_REJECTIONS_READ = 2_000
# Consumers' counters on a run item: a_<name>, reported by runs() as applied_<name>.
_APPLIED_PREFIX = "a_"
_COUNTER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class StateWriteError(RuntimeError):
    """DynamoDB did not take a state write after the SDK's retries."""


def _conditional_check_failed(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    return bool(response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


# Claims of the newest catalog object are read, judged, then written if nobody claimed meanwhile: a few rounds.
_CLAIM_ATTEMPTS = 10


def _claim_of(item: dict[str, Any] | None, prefix: str = "") -> DropClaim | None:
    """The claim recorded in the item (`prefix` "prior_": the one it replaced)."""
    key = "source_key" if not prefix else f"{prefix}key"
    if item is None or key not in item:
        return None
    return DropClaim(
        key=item[key]["S"],
        modified=float(item[f"{prefix}modified"]["N"]),
        version_id=item.get(f"{prefix or 'source_'}version", {}).get("S"),
        sequencer=item.get(f"{prefix or 'source_'}sequencer", {}).get("S"),
    )


_KEEP = object()  # a part of the claim item a write leaves as it is


def _claim_attributes(claim: DropClaim | None, prefix: str) -> tuple[list[str], dict[str, Any], list[str]]:
    """SET clauses, their values and REMOVE names recording `claim` (None: no claim) under `prefix`."""
    names = {
        "key": "source_key" if not prefix else f"{prefix}key",
        "modified": f"{prefix}modified",
        "version": f"{prefix or 'source_'}version",
        "sequencer": f"{prefix or 'source_'}sequencer",
    }
    fields = {
        "key": {"S": claim.key} if claim else None,
        "modified": {"N": repr(claim.modified)} if claim else None,
        "version": {"S": claim.version_id} if claim and claim.version_id else None,
        "sequencer": {"S": claim.sequencer} if claim and claim.sequencer else None,
    }
    sets, values, removes = [], {}, []
    for part, value in fields.items():
        if value is None:
            removes.append(names[part])
        else:
            placeholder = f":{prefix or 'c_'}{part}"
            sets.append(f"{names[part]} = {placeholder}")
            values[placeholder] = value
    return sets, values, removes


def _claim_write(claim: Any, read: dict[str, Any] | None, *, prior: Any = None) -> dict[str, Any]:
    """The update recording `claim` (None: no claim; _KEEP: as it is) and the claim it replaced, `prior` (kept to
    be put back if the guard holds the run of `claim`'s drop; None: none), conditional on the item being as
    `read` (`claims` counts its writes)."""
    values: dict[str, Any] = {":one": {"N": "1"}, ":zero": {"N": "0"}}
    sets = ["claims = if_not_exists(claims, :zero) + :one"]
    removes: list[str] = []
    for recorded, prefix in ((claim, ""), (prior, "prior_")):
        if recorded is _KEEP:
            continue
        more_sets, more_values, more_removes = _claim_attributes(recorded, prefix)
        sets += more_sets
        values |= more_values
        removes += more_removes
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    if read is None:
        condition = "attribute_not_exists(pk)"
    elif "claims" in read:
        condition = "claims = :read"
        values[":read"] = read["claims"]
    else:  # written before claims were counted
        condition = "attribute_not_exists(claims) AND modified = :read_m AND source_key = :read_k"
        values[":read_m"], values[":read_k"] = read["modified"], read["source_key"]
    return {"UpdateExpression": expression, "ConditionExpression": condition, "ExpressionAttributeValues": values}


def _product(item: dict[str, Any]) -> StoredProduct:
    def text(name: str) -> str | None:
        value = item.get(name)
        return value["S"] if value else None

    def number(name: str) -> int | None:
        value = item.get(name)
        return int(value["N"]) if value else None

    return StoredProduct(
        product_id=item["sk"]["S"],
        desired_version=int(item["dv"]["N"]),
        deleted=bool(item.get("del", {}).get("BOOL", False)),
        fingerprint=item["fp"]["B"] if "fp" in item else None,
        text_hash=text("th"),
        metadata_hash=text("mh"),
        field_hashes=orjson.loads(item["fh"]["B"]) if "fh" in item else {},
        committed_version=number("cv"),
        committed_text_hash=text("cth"),
        committed_metadata_hash=text("cmh"),
    )


def _run_index_key(run_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{RUN_INDEX_PREFIX}{run_id}"}, "sk": {"S": "run"}}


def catalog_of_run(dynamodb: Any, *, table: str, run_id: str) -> str | None:
    """The catalog a run belongs to, from its id alone (an item written when the run began), or None."""
    item = dynamodb.get_item(TableName=table, Key=_run_index_key(run_id)).get("Item")
    return item["catalog"]["S"] if item else None


def registered_catalogs(dynamodb: Any, *, table: str) -> dict[str, int]:
    """Every catalog that has begun a run in this table, with the number of shards its state was written with."""
    catalogs: dict[str, int] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": CATALOGS_PK}},
    }
    while True:
        response = dynamodb.query(**kwargs)
        for item in response.get("Items", []):
            catalogs[item["sk"]["S"]] = int(item.get("shards", {}).get("N", DEFAULT_SHARDS))
        if "LastEvaluatedKey" not in response:
            return catalogs
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _run_from_item(item: dict[str, Any]) -> RunRecord:
    """A run as its item says, with what the consumers added: their counters and, once they handled every
    change of a dispatched run, its completion."""
    run = RunRecord.model_validate_json(item["run_json"]["S"])
    for name, value in item.items():
        if name.startswith(_APPLIED_PREFIX):
            run.counts[f"applied_{name[len(_APPLIED_PREFIX) :]}"] = int(value["N"])
    if run.status is RunStatus.DISPATCHED:
        run.counts["applied_changes"] = int(item.get("changes_done", {}).get("N", 0))
        if "completed_at" in item:
            run.status = RunStatus.SUCCEEDED
            run.finished_at = datetime.fromisoformat(item["completed_at"]["S"])
    return run


@dataclass
class DynamoSnapshot:
    fingerprints: dict[bytes, str]
    live_ids: set[str]
    pending_deletes: set[str]
    embedding_model: str | None
    text_template: str | None
    _get_many: Callable[[Sequence[str]], dict[str, StoredProduct]] = field(repr=False)

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        return self._get_many(product_ids)


class DynamoStateStore:
    def __init__(
        self,
        dynamodb: Any,
        *,
        table: str,
        catalog: str,
        shards: int = DEFAULT_SHARDS,
        concurrency: int = 8,
        attempts: int = STATE_TRANSACTION_RETRY.attempts,
        backoff_seconds: float = STATE_TRANSACTION_RETRY.base_delay,
    ) -> None:
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self._dynamodb = dynamodb
        self.table = table
        self.catalog = catalog
        self.shards = shards
        self.concurrency = concurrency
        self.requests: dict[str, int] = {"query": 0, "get": 0, "write": 0}

    # ------------------------------------------------------------ keys

    def _partition(self, product_id: str) -> str:
        return f"P#{self.catalog}#{xxhash.xxh3_64_intdigest(product_id.encode()) % self.shards:03d}"

    def _key(self, product_id: str) -> dict[str, Any]:
        return {"pk": {"S": self._partition(product_id)}, "sk": {"S": product_id}}

    def _meta_key(self, name: str) -> dict[str, Any]:
        return {"pk": {"S": f"M#{self.catalog}"}, "sk": {"S": name}}

    def _parallel(self, work: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(work, items))

    # ------------------------------------------------------------ reads

    def _query_shard(self, shard: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"P#{self.catalog}#{shard:03d}"}},
            "ProjectionExpression": "sk, fp, dv, cv, #del",
            "ExpressionAttributeNames": _NAMES,
        }
        while True:
            response = self._dynamodb.query(**kwargs)
            self.requests["query"] += 1
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def snapshot(self) -> DynamoSnapshot:
        fingerprints: dict[bytes, str] = {}
        live: set[str] = set()
        pending_deletes: set[str] = set()
        with paused_gc():
            for items in self._parallel(self._query_shard, list(range(self.shards))):
                for item in items:
                    product_id = item["sk"]["S"]
                    desired = item["dv"]["N"]
                    committed = item.get("cv", {}).get("N")
                    if item.get("del", {}).get("BOOL", False):
                        pending_deletes.add(product_id)
                        continue
                    live.add(product_id)
                    if committed == desired and "fp" in item:
                        fingerprints[item["fp"]["B"]] = product_id
        meta = self._dynamodb.get_item(TableName=self.table, Key=self._meta_key("index")).get("Item", {})
        return DynamoSnapshot(
            fingerprints=fingerprints,
            live_ids=live,
            pending_deletes=pending_deletes,
            embedding_model=meta.get("embedding_model", {}).get("S"),
            text_template=meta.get("text_template", {}).get("S"),
            _get_many=self.get_many,
        )

    def _batch_get(self, product_ids: Sequence[str], projection: str) -> Iterator[dict[str, Any]]:
        unique = list(dict.fromkeys(product_ids))
        for start in range(0, len(unique), MAX_BATCH_GET):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [self._key(pid) for pid in unique[start : start + MAX_BATCH_GET]],
                    "ProjectionExpression": projection,
                    "ExpressionAttributeNames": _NAMES,
                }
            }
            while request:
                response = self._dynamodb.batch_get_item(RequestItems=request)
                self.requests["get"] += 1
                yield from response.get("Responses", {}).get(self.table, [])
                request = response.get("UnprocessedKeys") or {}

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        return {item["sk"]["S"]: _product(item) for item in self._batch_get(product_ids, _PRODUCT_FIELDS)}

    def desired_versions(self, ids: Sequence[str]) -> dict[str, int]:
        return {item["sk"]["S"]: int(item["dv"]["N"]) for item in self._batch_get(ids, "sk, dv, #del")}

    def _count(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        return sum(
            1
            for items in self._parallel(self._query_shard, list(range(self.shards)))
            for item in items
            if predicate(item)
        )

    def pending_count(self) -> int:
        return self._count(lambda item: item.get("cv", {}).get("N") != item["dv"]["N"])

    def product_count(self) -> int:
        return self._count(lambda item: not item.get("del", {}).get("BOOL", False))

    def indexed_count(self) -> int:
        return self._count(lambda item: "cv" in item)

    def counts(self) -> StateCounts:
        counts = StateCounts()
        for items in self._parallel(self._query_shard, list(range(self.shards))):
            for item in items:
                committed = item.get("cv", {}).get("N")
                in_step = committed == item["dv"]["N"]
                if item.get("del", {}).get("BOOL", False):
                    counts.deleting += 1
                else:
                    counts.products += 1
                    counts.synced += in_step
                counts.indexed += committed is not None
                counts.pending += not in_step
        return counts

    # ------------------------------------------------------------ writes

    def _update(self, key: dict[str, Any], **kwargs: Any) -> bool:
        """One conditional update; False when its condition did not hold (a newer writer got there first)."""
        try:
            self._dynamodb.update_item(TableName=self.table, Key=key, **kwargs)
        except Exception as exc:
            if _conditional_check_failed(exc):
                return False
            raise StateWriteError(f"state write failed: {exc}") from exc
        finally:
            self.requests["write"] += 1
        return True

    def _transact(self, operations: Sequence[dict[str, Any]]) -> int:
        """Conditional writes, up to 100 per TransactWriteItems call; returns how many applied.

        A write whose condition fails is dropped (a newer writer got there first) and the rest of its
        transaction is retried without it; conflicts and throttling are retried with backoff.
        """
        applied = 0
        for start in range(0, len(operations), MAX_TRANSACTION_ITEMS):
            chunk = list(operations[start : start + MAX_TRANSACTION_ITEMS])
            attempt = 0
            while chunk:
                try:
                    self._dynamodb.transact_write_items(TransactItems=chunk)
                    self.requests["write"] += 1
                    applied += len(chunk)
                    break
                except Exception as exc:
                    self.requests["write"] += 1
                    response = getattr(exc, "response", None) or {}
                    code = response.get("Error", {}).get("Code")
                    reasons = response.get("CancellationReasons") or []
                    if code == "TransactionCanceledException" and len(reasons) == len(chunk):
                        failed = {
                            i for i, reason in enumerate(reasons) if reason.get("Code") == "ConditionalCheckFailed"
                        }
                        chunk = [op for i, op in enumerate(chunk) if i not in failed]
                        if failed:
                            continue  # the others were only cancelled with them: retry those at once
                    elif code not in _RETRYABLE:
                        raise StateWriteError(f"state write failed: {exc}") from exc
                    attempt += 1
                    if attempt >= self.attempts:
                        raise StateWriteError(f"state write kept failing: {exc}") from exc
                    time.sleep(self.backoff_seconds * 2**attempt)
        return applied

    def record_desired(self, changes: Sequence[Change], fingerprint_updates: Sequence[FingerprintUpdate]) -> None:
        def desire(change: Change) -> dict[str, Any]:
            values: dict[str, Any] = {":v": {"N": str(change.version)}}
            if change.action is IndexAction.DELETE:
                values[":true"] = {"BOOL": True}
                values[":unknown"] = {"N": str(UNKNOWN_COMMITTED_VERSION)}
                # An id the state never knew (an orphan in the index) is tracked as present, version unknown.
                expression = "SET dv = :v, #del = :true, cv = if_not_exists(cv, :unknown)"
            else:
                values.update(
                    {
                        ":false": {"BOOL": False},
                        ":th": {"S": change.text_hash or ""},
                        ":mh": {"S": change.metadata_hash or ""},
                        ":fh": {"B": orjson.dumps(change.field_hashes or {})},
                    }
                )
                expression = "SET dv = :v, #del = :false, th = :th, mh = :mh, fh = :fh"
                if change.fingerprint is not None:
                    values[":fp"] = {"B": change.fingerprint}
                    expression += ", fp = :fp"
                else:
                    expression += " REMOVE fp"
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(change.product_id),
                    "UpdateExpression": expression,
                    # An older run never overwrites a newer run's desired state.
                    "ConditionExpression": "attribute_not_exists(dv) OR dv < :v",
                    "ExpressionAttributeNames": _NAMES,
                    "ExpressionAttributeValues": values,
                }
            }

        def respell(update: FingerprintUpdate) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(update.product_id),
                    "UpdateExpression": "SET fp = :fp",
                    "ConditionExpression": "dv = :v",
                    "ExpressionAttributeValues": {
                        ":fp": {"B": update.fingerprint},
                        ":v": {"N": str(update.desired_version)},
                    },
                }
            }

        self._in_parallel_transactions([desire(change) for change in changes])
        self._in_parallel_transactions([respell(update) for update in fingerprint_updates])

    def _in_parallel_transactions(self, operations: list[dict[str, Any]]) -> int:
        groups = [operations[i : i + MAX_TRANSACTION_ITEMS] for i in range(0, len(operations), MAX_TRANSACTION_ITEMS)]
        return sum(self._parallel(self._transact, groups))

    def commit(self, changes: Sequence[Change]) -> int:
        def commit_one(change: Change) -> dict[str, Any]:
            version = {":v": {"N": str(change.version)}}
            if change.action is IndexAction.DELETE:
                return {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._key(change.product_id),
                        "ConditionExpression": "dv = :v AND #del = :true",
                        "ExpressionAttributeNames": _NAMES,
                        "ExpressionAttributeValues": {**version, ":true": {"BOOL": True}},
                    }
                }
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(change.product_id),
                    "UpdateExpression": "SET cv = :v, cth = :th, cmh = :mh",
                    # Only while the change is still the desired one: a late consumer commits nothing.
                    "ConditionExpression": "dv = :v AND #del = :false",
                    "ExpressionAttributeNames": _NAMES,
                    "ExpressionAttributeValues": {
                        **version,
                        ":false": {"BOOL": False},
                        ":th": {"S": change.text_hash or ""},
                        ":mh": {"S": change.metadata_hash or ""},
                    },
                }
            }

        return self._in_parallel_transactions([commit_one(change) for change in changes])

    def mark_pending(self, ids: Sequence[str]) -> None:
        def forget(product_id: str) -> bool:
            return self._update(
                self._key(product_id),
                UpdateExpression="REMOVE cv, cth, cmh",
                ConditionExpression="attribute_exists(dv)",
            )

        self._parallel(forget, list(ids))

    def record_rejections(self, rejections: Sequence[IndexRejection]) -> None:
        expires = str(int(time.time()) + REJECTION_TTL_SECONDS)

        def put(rejection: IndexRejection) -> bool:
            at = (rejection.at or datetime.now(UTC)).isoformat()
            try:
                self._dynamodb.put_item(
                    TableName=self.table,
                    Item={
                        "pk": {"S": f"{_REJECTIONS_PREFIX}{self.catalog}"},
                        "sk": {"S": rejection.product_id},
                        "v": {"N": str(rejection.version)},
                        "action": {"S": rejection.action},
                        "reason": {"S": rejection.reason},
                        "at": {"S": at},
                        "expires_at": {"N": expires},
                    },
                    # A late consumer's rejection of an older version does not replace a newer one.
                    ConditionExpression="attribute_not_exists(v) OR v <= :v",
                    ExpressionAttributeValues={":v": {"N": str(rejection.version)}},
                )
            except Exception as exc:
                if _conditional_check_failed(exc):
                    return False
                raise StateWriteError(f"state write failed: {exc}") from exc
            self.requests["write"] += 1
            return True

        self._parallel(put, list(rejections))

    def rejections(self, limit: int = 1_000) -> list[IndexRejection]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"{_REJECTIONS_PREFIX}{self.catalog}"}},
        }
        while len(items) < MAX_REJECTIONS_READ:
            response = self._dynamodb.query(**kwargs)
            self.requests["query"] += 1
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        products = {
            item["sk"]["S"]: item for item in self._batch_get([item["sk"]["S"] for item in items], "sk, dv, cv, #del")
        }
        current = []
        for item in items:
            product = products.get(item["sk"]["S"])
            version = item["v"]["N"]
            if product is None or product["dv"]["N"] != version or product.get("cv", {}).get("N") == version:
                continue  # committed since, changed again, or gone
            current.append(
                IndexRejection(
                    product_id=item["sk"]["S"],
                    version=int(version),
                    action=item["action"]["S"],
                    reason=item["reason"]["S"],
                    at=datetime.fromisoformat(item["at"]["S"]),
                )
            )
        current.sort(key=lambda r: r.product_id)
        current.sort(key=lambda r: r.at or datetime.min.replace(tzinfo=UTC), reverse=True)  # newest first
        return current[:limit]

    def uncommit_all(self) -> int:
        items = [item for items in self._parallel(self._query_shard, list(range(self.shards))) for item in items]

        def forget(item: dict[str, Any]) -> bool:
            key = {"pk": {"S": self._partition(item["sk"]["S"])}, "sk": item["sk"]}
            if item.get("del", {}).get("BOOL", False):
                self._dynamodb.delete_item(TableName=self.table, Key=key)
                self.requests["write"] += 1
                return False
            return self._update(key, UpdateExpression="REMOVE cv, cth, cmh")

        return sum(self._parallel(forget, items))

    def record_index_settings(self, *, embedding_model: str, text_template: str) -> None:
        self._dynamodb.put_item(
            TableName=self.table,
            Item={
                **self._meta_key("index"),
                "embedding_model": {"S": embedding_model},
                "text_template": {"S": text_template},
            },
        )
        self.requests["write"] += 1

    # ------------------------------------------------------------ the newest catalog object

    def claim_source(self, *, modified: float, key: str, version_id: str | None, sequencer: str | None = None) -> bool:
        """Record that a run reads the catalog object `key` (at `version_id`, written with S3's `sequencer` when
        its event gave one), last modified at `modified` (epoch seconds), unless a run already read a newer one:
        False then, and this object must not be synced (an older drop's event arriving late, or retried, would
        otherwise undo a newer catalog). Which drop is newer: catalog_sync.logic.drops."""
        claim = DropClaim(key=key, modified=modified, version_id=version_id, sequencer=sequencer)
        for _ in range(_CLAIM_ATTEMPTS):
            item = self._source_item()
            stored = _claim_of(item)
            if not may_claim(claim, stored):
                return False
            # The claim replaced is kept, to be the newest again if the guard holds this drop's run; a re-claim of
            # the same object (a retry) keeps the one it had.
            prior = _KEEP if stored is not None and same_object(claim, stored) else stored
            # Judged against what was read, so written only if nobody claimed meanwhile (else judged again).
            if self._update(self._meta_key("source"), **_claim_write(claimed(claim, stored), item, prior=prior)):
                return True
        raise StateWriteError(f"could not claim {key!r}: other runs kept claiming the catalog's newest object")

    def withdraw_claim(self, claim: DropClaim) -> None:
        """The guard held the run of `claim`'s drop: the drop is as if it had not come. The claim it replaced is the
        newest again (no older drop is superseded by the held one, no repair re-reads it); if another drop was
        claimed since, that one no longer falls back to the held drop."""
        for _ in range(_CLAIM_ATTEMPTS):
            item = self._source_item()
            current, prior = _claim_of(item), _claim_of(item, "prior_")
            if current is not None and same_object(current, claim):
                update = _claim_write(prior, item)
            elif prior is not None and same_object(prior, claim):
                update = _claim_write(_KEEP, item)
            else:
                return
            if self._update(self._meta_key("source"), **update):
                return
        raise StateWriteError(f"could not withdraw the claim on {claim.key!r}: other runs kept claiming")

    def newest_source(self) -> tuple[float, str, str | None] | None:
        """(modified, key, version id) of the newest catalog object a run has read, if any."""
        claim = self.newest_claim()
        return None if claim is None else (claim.modified, claim.key, claim.version_id)

    def newest_claim(self) -> DropClaim | None:
        """The newest catalog object a run has read, with its sequencer when an S3 event gave it."""
        return _claim_of(self._source_item())

    def _source_item(self) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._dynamodb.get_item(
            TableName=self.table, Key=self._meta_key("source"), ConsistentRead=True
        ).get("Item")
        self.requests["get"] += 1
        return item

    # ------------------------------------------------------------ runs

    def begin_run(self, *, mode: str, source: str) -> RunRecord:
        response = self._dynamodb.update_item(
            TableName=self.table,
            Key=self._meta_key("runs"),
            UpdateExpression="ADD seq :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        seq = int(response["Attributes"]["seq"]["N"])
        started = datetime.now(UTC)
        run_id = self._claim_run_id(started, seq)
        self._dynamodb.put_item(
            TableName=self.table,
            Item={
                "pk": {"S": CATALOGS_PK},
                "sk": {"S": self.catalog},
                "shards": {"N": str(self.shards)},
                "last_run": {"S": run_id},
            },
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
                _run_index_key(run_id),
                UpdateExpression="SET #catalog = :catalog",  # CATALOG is a reserved word
                ConditionExpression="attribute_not_exists(pk)",
                ExpressionAttributeNames={"#catalog": "catalog"},
                ExpressionAttributeValues={":catalog": {"S": self.catalog}},
            )
            if claimed:
                return run_id
        raise StateWriteError(f"no free run id for {self.catalog!r} at {started:%Y%m%dT%H%M%SZ}-{seq:05d}")

    def _run_key(self, run_id: str) -> dict[str, Any]:
        # Run ids begin with their start time, so the sort key orders runs by time.
        return {"pk": {"S": f"R#{self.catalog}"}, "sk": {"S": run_id}}

    def finish_run(self, run: RunRecord) -> bool:
        # An update, not a put: consumers may already be adding to this run's progress counter.
        values: dict[str, Any] = {":run": {"S": run.model_dump_json()}}
        expression = "SET run_json = :run"
        if run.status is RunStatus.DISPATCHED:
            total = run.counts.get("dispatched_changes", 0)
            values[":total"] = {"N": str(total)}
            expression += ", changes_total = :total"  # none: completed at once, below
        item = self._dynamodb.update_item(
            TableName=self.table,
            Key=self._run_key(run.run_id),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )["Attributes"]
        self.requests["write"] += 1
        return self._complete_if_done(run.run_id, item)

    def get_run(self, run_id: str) -> RunRecord:
        item = self._dynamodb.get_item(TableName=self.table, Key=self._run_key(run_id)).get("Item")
        if item is None:
            raise KeyError(f"no run {run_id!r} of catalog {self.catalog!r}")
        return RunRecord.model_validate_json(item["run_json"]["S"])

    def find_run(self, run_id: str) -> RunRecord | None:
        item = self._dynamodb.get_item(TableName=self.table, Key=self._run_key(run_id)).get("Item")
        return _run_from_item(item) if item is not None and "run_json" in item else None

    def record_progress(
        self, run_id: str, handled: int, applied: Mapping[str, int] | None = None, *, message_id: str | None = None
    ) -> bool:
        """Count changes of a dispatched run that consumers handled, and add up what they did (`applied`, e.g.
        embedded, cache_hits, upserted: `runs()` reports them as applied_<name>); the last one marks the run
        succeeded.

        With a `message_id`, a marker item and the counters are written in one transaction, on condition that
        the marker is new: a message delivered twice (SQS delivers at least once; a redrive sends it again) is
        counted once, so the run completes when every message was handled, not before.
        """
        expression = "ADD changes_done :n"
        names: dict[str, str] = {}
        values: dict[str, Any] = {":n": {"N": str(handled)}}
        for i, (name, value) in enumerate(sorted((applied or {}).items())):
            if not _COUNTER_NAME.match(name):
                raise ValueError(f"not a counter name: {name!r}")
            names[f"#a{i}"] = f"{_APPLIED_PREFIX}{name}"
            values[f":a{i}"] = {"N": str(int(value))}
            expression += f", #a{i} :a{i}"
        # Only a run that was begun: a message naming no run (forged, or its run's item expired) adds no row.
        kwargs: dict[str, Any] = {
            "ConditionExpression": "attribute_exists(run_json)",
            "ExpressionAttributeNames": names,
        }
        if not names:
            del kwargs["ExpressionAttributeNames"]
        if message_id is not None:
            return self._record_message_progress(run_id, message_id, expression, values, kwargs)
        try:
            response = self._dynamodb.update_item(
                TableName=self.table,
                Key=self._run_key(run_id),
                UpdateExpression=expression,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                **kwargs,
            )
        except Exception as exc:
            if _conditional_check_failed(exc):
                return False
            raise
        finally:
            self.requests["write"] += 1
        return self._complete_if_done(run_id, response["Attributes"])

    def _record_message_progress(
        self, run_id: str, message_id: str, expression: str, values: dict[str, Any], extra: dict[str, Any]
    ) -> bool:
        marker = {
            "pk": {"S": f"{_MESSAGES_PREFIX}{self.catalog}#{run_id}"},
            "sk": {"S": message_id},
            "expires_at": {"N": str(int(time.time()) + MESSAGE_MARKER_TTL_SECONDS)},
        }
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": marker,
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self.table,
                            "Key": self._run_key(run_id),
                            "UpdateExpression": expression,
                            "ExpressionAttributeValues": values,
                            **extra,
                        }
                    },
                ]
            )
        except Exception as exc:
            reasons = (getattr(exc, "response", None) or {}).get("CancellationReasons") or []
            failed = [reason.get("Code") == "ConditionalCheckFailed" for reason in reasons]
            if len(failed) != 2 or not any(failed):
                raise
            if failed[1]:
                return False  # no such run
            # Counted before. That delivery may have stopped before completing the run: the check below is safe
            # to repeat (the completion is a conditional write).
        finally:
            self.requests["write"] += 1
        item = self._dynamodb.get_item(TableName=self.table, Key=self._run_key(run_id), ConsistentRead=True)["Item"]
        self.requests["get"] += 1
        return self._complete_if_done(run_id, item)

    def _complete_if_done(self, run_id: str, item: dict[str, Any]) -> bool:
        # Whichever comes last, the dispatch's total or the consumers' count, completes the run: exactly once,
        # by the conditional write (True for the caller that made it).
        total = item.get("changes_total")
        done = int(item.get("changes_done", {}).get("N", 0))
        if total is not None and done >= int(total["N"]) and "completed_at" not in item:
            return self._update(
                self._run_key(run_id),
                UpdateExpression="SET completed_at = :now",
                ConditionExpression="attribute_not_exists(completed_at)",
                ExpressionAttributeValues={":now": {"S": datetime.now(UTC).isoformat()}},
            )
        return False

    def runs(self, limit: int = 30) -> list[RunRecord]:
        response = self._dynamodb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"R#{self.catalog}"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        self.requests["query"] += 1
        return [_run_from_item(item) for item in response.get("Items", [])]
