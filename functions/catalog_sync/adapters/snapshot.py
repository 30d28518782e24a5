"""The state snapshot both state stores give the diff (catalog_sync.logic.snapshot.StateSnapshot)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from catalog_sync.logic.snapshot import StoredProduct


@dataclass
class Snapshot:
    """What the diff reads of every product, loaded at once; any product's full stored state on demand."""

    fingerprints: dict[bytes, str]
    live_ids: set[str]
    pending_deletes: set[str]
    embedding_model: str | None
    text_template: str | None
    _get_many: Callable[[Sequence[str]], dict[str, StoredProduct]] = field(repr=False)

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        return self._get_many(product_ids)
