"""The state store on DynamoDB: the table's key layout (keys), the calls every part shares (table), products'
state (products), refused changes (rejections), the newest catalog object read (claims), runs (runs) and their
consumers' progress (progress), composed into DynamoStateStore (store)."""

from catalog_sync.adapters.aws.dynamodb_state.keys import DEFAULT_SHARDS
from catalog_sync.adapters.aws.dynamodb_state.products import UNKNOWN_COMMITTED_VERSION
from catalog_sync.adapters.aws.dynamodb_state.runs import catalog_of_run, registered_catalogs
from catalog_sync.adapters.aws.dynamodb_state.store import DynamoStateStore
from catalog_sync.adapters.aws.dynamodb_state.table import MAX_BATCH_GET, MAX_TRANSACTION_ITEMS, StateWriteError

__all__ = [
    "DEFAULT_SHARDS",
    "MAX_BATCH_GET",
    "MAX_TRANSACTION_ITEMS",
    "UNKNOWN_COMMITTED_VERSION",
    "DynamoStateStore",
    "StateWriteError",
    "catalog_of_run",
    "registered_catalogs",
]
