"""State store and embedding cache of the embedded default, on SQLite: the schema and connection (table),
products' state (products), refused changes (rejections), the newest catalog object read (claims) and runs
(runs), composed into SqliteStateStore (store); the embedding cache (cache)."""

from catalog_sync.adapters.local.sqlite_state.cache import SqliteEmbeddingCache
from catalog_sync.adapters.local.sqlite_state.products import UNKNOWN_COMMITTED_VERSION
from catalog_sync.adapters.local.sqlite_state.runs import catalog_of_run, local_catalogs
from catalog_sync.adapters.local.sqlite_state.store import SqliteStateStore
from catalog_sync.adapters.local.sqlite_state.table import STATE_FILE

__all__ = [
    "STATE_FILE",
    "UNKNOWN_COMMITTED_VERSION",
    "SqliteEmbeddingCache",
    "SqliteStateStore",
    "catalog_of_run",
    "local_catalogs",
]
