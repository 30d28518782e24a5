"""moto's TransactWriteItems with a rollback that costs what the transaction touches, not the whole table.

moto backs a transaction up by deep-copying every table it names, once per item: with the state and the
embedding cache in one table, 100-item transactions over a 20,000-product catalog made the pipeline benchmark
run for many minutes and grow past 20 GB. The semantics stay moto's (all or nothing; a failed condition cancels
the transaction with a reason per item; TransactionCanceledException), only the backup changes: the items the
transaction names are copied before it runs and put back if it is cancelled.

`install()` is idempotent; the tests install it for the session (tests/conftest.py) and the pipeline benchmark
before it starts.
"""

from __future__ import annotations

import copy
import types
from functools import cache
from typing import Any


def _key(backend: Any, op_type: str, op: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    table_name = op["TableName"]
    if op_type != "Put":
        return table_name, op["Key"]
    table = backend.get_table(table_name)
    key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = op["Item"][table.range_key_attr]
    return table_name, key


@cache  # once per process
def install() -> None:
    from moto.dynamodb import models

    real_copy = models.copy

    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        # The table backup moto takes inside transact_write_items: replaced by the per-item backup below.
        if isinstance(value, models.Table):
            return value
        return real_copy.deepcopy(value, memo)

    # Only moto's DynamoDB module sees this namespace; everything but deepcopy of a Table is the real `copy`.
    models.copy = types.SimpleNamespace(**{name: getattr(real_copy, name) for name in dir(real_copy)})
    models.copy.deepcopy = deepcopy
    moto_transact = models.DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        backups = []
        for item in transact_items:
            op_type, op = next(iter(item.items()))
            try:
                table_name, key = _key(self, op_type, op)
                current = self.get_item(table_name, key)
            except Exception:
                continue
            backups.append((table_name, key, copy.deepcopy(current.to_json()["Attributes"]) if current else None))
        try:
            moto_transact(self, transact_items)
        except Exception:
            for table_name, key, attributes in reversed(backups):
                if attributes is None:
                    if self.get_item(table_name, key) is not None:
                        self.delete_item(table_name, key)
                else:
                    self.put_item(table_name, attributes)
            raise

    models.DynamoDBBackend.transact_write_items = transact_write_items
