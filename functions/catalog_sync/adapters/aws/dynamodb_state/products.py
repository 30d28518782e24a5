"""Products' desired and committed state, and the index settings, on DynamoDB.

Conditional, so that concurrent runs and consumers cannot regress what the index should hold:
- a desired write applies only if it is newer than the stored desired version (overlapping diff runs);
- a commit applies only if its change is still the desired version (a late consumer commits nothing);
- a fingerprint update applies only while the desired version it was computed against still holds.

Products' items are read as stored, not through TypeDeserializer: these reads go over every product of a
catalog, where the generic conversion would cost many times the CPU of reading the few attributes directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from catalog_sync.adapters.aws.dynamodb_state.table import NAMES, StateTable, attribute_values, plain
from catalog_sync.adapters.snapshot import Snapshot
from catalog_sync.logic.gc import paused_gc
from catalog_sync.logic.snapshot import FingerprintUpdate, StoredProduct
from catalog_sync.models.changes import Change, IndexAction, StateCounts
from catalog_sync.models.index import IndexEmbedder, IndexSettings

# Orphans found in the index have no known version: they count as present.
UNKNOWN_COMMITTED_VERSION = 0
_PRODUCT_FIELDS = "sk, dv, #del, fp, th, mh, fh, cv, cth, cmh"


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
        deleted=_deleted(item),
        fingerprint=item["fp"]["B"] if "fp" in item else None,
        text_hash=text("th"),
        metadata_hash=text("mh"),
        field_hashes=orjson.loads(item["fh"]["B"]) if "fh" in item else {},
        committed_version=number("cv"),
        committed_text_hash=text("cth"),
        committed_metadata_hash=text("cmh"),
    )


def _deleted(item: dict[str, Any]) -> bool:
    return bool(item.get("del", {}).get("BOOL", False))


class ProductState(StateTable):
    def snapshot(self) -> Snapshot:
        fingerprints: dict[bytes, str] = {}
        live: set[str] = set()
        pending_deletes: set[str] = set()
        with paused_gc():
            for items in self._all_shards():
                for item in items:
                    product_id = item["sk"]["S"]
                    desired = item["dv"]["N"]
                    committed = item.get("cv", {}).get("N")
                    if _deleted(item):
                        pending_deletes.add(product_id)
                        continue
                    live.add(product_id)
                    if committed == desired and "fp" in item:
                        fingerprints[item["fp"]["B"]] = product_id
        meta = plain(self._dynamodb.get_item(TableName=self.table, Key=self._meta_key("index")).get("Item", {}))
        return Snapshot(
            fingerprints=fingerprints,
            live_ids=live,
            pending_deletes=pending_deletes,
            embedding_model=meta.get("embedding_model"),
            text_template=meta.get("text_template"),
            _get_many=self.get_many,
        )

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        return {item["sk"]["S"]: _product(item) for item in self._batch_get(product_ids, _PRODUCT_FIELDS)}

    def desired_versions(self, ids: Sequence[str]) -> dict[str, int]:
        return {item["sk"]["S"]: int(item["dv"]["N"]) for item in self._batch_get(ids, "sk, dv, #del")}

    # ------------------------------------------------------------ counts

    def _count(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        return sum(1 for items in self._all_shards() for item in items if predicate(item))

    def pending_count(self) -> int:
        return self._count(lambda item: item.get("cv", {}).get("N") != item["dv"]["N"])

    def product_count(self) -> int:
        return self._count(lambda item: not _deleted(item))

    def indexed_count(self) -> int:
        return self._count(lambda item: "cv" in item)

    def counts(self) -> StateCounts:
        counts = StateCounts()
        for items in self._all_shards():
            for item in items:
                committed = item.get("cv", {}).get("N")
                in_step = committed == item["dv"]["N"]
                if _deleted(item):
                    counts.deleting += 1
                else:
                    counts.products += 1
                    counts.synced += in_step
                counts.indexed += committed is not None
                counts.pending += not in_step
        return counts

    # ------------------------------------------------------------ writes

    def record_desired(self, changes: Sequence[Change], fingerprint_updates: Sequence[FingerprintUpdate]) -> None:
        def desire(change: Change) -> dict[str, Any]:
            values: dict[str, Any] = {":v": change.version}
            if change.action is IndexAction.DELETE:
                values |= {":true": True, ":unknown": UNKNOWN_COMMITTED_VERSION}
                # An id the state never knew (an orphan in the index) is tracked as present, version unknown.
                expression = "SET dv = :v, #del = :true, cv = if_not_exists(cv, :unknown)"
            else:
                values |= {
                    ":false": False,
                    ":th": change.text_hash or "",
                    ":mh": change.metadata_hash or "",
                    ":fh": orjson.dumps(change.field_hashes or {}),
                }
                expression = "SET dv = :v, #del = :false, th = :th, mh = :mh, fh = :fh"
                if change.fingerprint is not None:
                    values[":fp"] = change.fingerprint
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
                    "ExpressionAttributeNames": NAMES,
                    "ExpressionAttributeValues": attribute_values(values),
                }
            }

        def respell(update: FingerprintUpdate) -> dict[str, Any]:
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(update.product_id),
                    "UpdateExpression": "SET fp = :fp",
                    "ConditionExpression": "dv = :v",
                    "ExpressionAttributeValues": attribute_values(
                        {":fp": update.fingerprint, ":v": update.desired_version}
                    ),
                }
            }

        self._in_parallel_transactions([desire(change) for change in changes])
        self._in_parallel_transactions([respell(update) for update in fingerprint_updates])

    def commit(self, changes: Sequence[Change]) -> int:
        def commit_one(change: Change) -> dict[str, Any]:
            if change.action is IndexAction.DELETE:
                return {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._key(change.product_id),
                        "ConditionExpression": "dv = :v AND #del = :true",
                        "ExpressionAttributeNames": NAMES,
                        "ExpressionAttributeValues": attribute_values({":v": change.version, ":true": True}),
                    }
                }
            return {
                "Update": {
                    "TableName": self.table,
                    "Key": self._key(change.product_id),
                    "UpdateExpression": "SET cv = :v, cth = :th, cmh = :mh",
                    # Only while the change is still the desired one: a late consumer commits nothing.
                    "ConditionExpression": "dv = :v AND #del = :false",
                    "ExpressionAttributeNames": NAMES,
                    "ExpressionAttributeValues": attribute_values(
                        {
                            ":v": change.version,
                            ":false": False,
                            ":th": change.text_hash or "",
                            ":mh": change.metadata_hash or "",
                        }
                    ),
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

    def uncommit_all(self) -> int:
        items = [item for items in self._all_shards() for item in items]

        def forget(item: dict[str, Any]) -> bool:
            key = self._key(item["sk"]["S"])
            if _deleted(item):
                self._dynamodb.delete_item(TableName=self.table, Key=key)
                self.requests["write"] += 1
                return False
            return self._update(key, UpdateExpression="REMOVE cv, cth, cmh")

        return sum(self._parallel(forget, items))

    def record_index_settings(self, settings: IndexSettings) -> None:
        values: dict[str, object] = {
            "embedding_model": settings.embedding_model,
            "text_template": settings.text_template,
            "settled": settings.settled,
        }
        if settings.embedder is not None:
            values["embedder"] = settings.embedder.model_dump_json()
        # The whole item is replaced: nothing of an earlier record outlives this one.
        self._dynamodb.put_item(TableName=self.table, Item={**self._meta_key("index"), **attribute_values(values)})
        self.requests["write"] += 1

    def index_settings(self) -> IndexSettings | None:
        item = self._dynamodb.get_item(TableName=self.table, Key=self._meta_key("index"), ConsistentRead=True)
        self.requests["get"] += 1
        meta = plain(item.get("Item", {}))
        if "embedding_model" not in meta:
            return None
        embedder = meta.get("embedder")
        return IndexSettings(
            embedding_model=meta["embedding_model"],
            text_template=meta.get("text_template", ""),
            embedder=IndexEmbedder.model_validate_json(embedder) if embedder else None,
            settled=bool(meta.get("settled", True)),
        )
