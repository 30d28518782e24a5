"""One catalog's state on SQLite: products' state, refused changes, the newest catalog object read and runs."""

from __future__ import annotations

from catalog_sync.adapters.local.sqlite_state.claims import SourceClaims
from catalog_sync.adapters.local.sqlite_state.products import ProductState
from catalog_sync.adapters.local.sqlite_state.rejections import RejectionState
from catalog_sync.adapters.local.sqlite_state.runs import RunState


class SqliteStateStore(ProductState, RejectionState, SourceClaims, RunState):
    """One catalog's state (catalog_sync.ports.StateStore) in one SQLite file, each part in its own module."""
