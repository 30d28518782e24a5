"""What the diff reads of the stored state: each product's desired and committed versions and hashes, and the
catalog-wide facts (fingerprints of raw records, live ids, pending deletions, the index settings)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


@dataclass(frozen=True, slots=True)
class StoredProduct:
    """A product's stored state: desired (last seen in a catalog) and committed (known to be in the index)."""

    product_id: str
    desired_version: int
    deleted: bool = False
    fingerprint: bytes | None = None
    text_hash: str | None = None
    metadata_hash: str | None = None
    field_hashes: Mapping[str, str] = field(default_factory=dict)
    committed_version: int | None = None
    committed_text_hash: str | None = None
    committed_metadata_hash: str | None = None

    @property
    def pending(self) -> bool:
        return self.committed_version != self.desired_version

    @property
    def indexed(self) -> bool:
        return self.committed_version is not None


class StateSnapshot(Protocol):
    """What the diff needs from the state store."""

    @property
    def fingerprints(self) -> Mapping[bytes, str]:
        """Raw-record fingerprint -> product id, for live products whose desired state is committed."""

    @property
    def live_ids(self) -> Collection[str]:
        """Every product whose desired state is present (committed or not)."""

    @property
    def pending_deletes(self) -> Collection[str]:
        """Products whose desired state is "deleted" but whose delete was not committed yet."""

    @property
    def embedding_model(self) -> str | None:
        """The model the stored text hashes were made for."""

    @property
    def text_template(self) -> str | None:
        """The text template the stored text hashes were made with."""

    def get_many(self, product_ids: Sequence[str]) -> Mapping[str, StoredProduct]: ...


class FingerprintUpdate(NamedTuple):
    """A product whose content is unchanged but whose raw record is spelled differently now.

    The update applies only while `desired_version` is still the product's desired version: a concurrent run
    that changed the product must not get this spelling attached to its newer content.
    """

    product_id: str
    fingerprint: bytes
    desired_version: int


class EmptySnapshot:
    """The state of a catalog never synced: every record is validated and compared with nothing."""

    def __init__(self) -> None:
        self.fingerprints: dict[bytes, str] = {}
        self.live_ids: set[str] = set()
        self.pending_deletes: set[str] = set()
        self.embedding_model: str | None = None
        self.text_template: str | None = None

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        return {}
