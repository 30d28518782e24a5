"""The state stores every state-store test runs on (SQLite, DynamoDB under moto, the services' in-memory fake), and
the changes those tests record."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.local.sqlite_state import SqliteStateStore
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.models.index import IndexSettings
from tests.doubles.aws_resources import REGION, TABLE, create_table
from tests.doubles.memory_state import MemoryCatalogState, MemoryStateStore


@contextmanager
def moto_state_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A DynamoDB client under moto (fake credentials) with the state table created."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client)
        yield client


@pytest.fixture(params=["sqlite", "dynamodb", "memory"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory of stores for one catalog; calling it twice opens the same state again."""
    if request.param == "sqlite":
        yield lambda: SqliteStateStore(tmp_path / "s.sqlite", "shop")
        return
    if request.param == "memory":
        stored = MemoryCatalogState()
        yield lambda: MemoryStateStore("shop", stored)
        return
    with moto_state_table(monkeypatch) as client:
        # One request at a time: moto is not safe for concurrent writes (DynamoDB is).
        yield lambda: DynamoStateStore(client, table=TABLE, catalog="shop", shards=4, concurrency=1)


def counts_consumers(store: Any) -> bool:
    """Whether consumers elsewhere apply a dispatched run's changes and count them (the deployed pipeline's store,
    and its in-memory fake); the embedded default applies its changes within the run."""
    return isinstance(store, DynamoStateStore | MemoryStateStore)


def upsert(pid: str, version: int, text_hash: str = "t", fingerprint: bytes = b"f" * 16) -> Change:
    return Change(
        product_id=pid,
        kind=ChangeKind.ADDED,
        action=IndexAction.UPSERT,
        version=version,
        text_hash=text_hash,
        metadata_hash="m",
        field_hashes={"title": "x"},
        fingerprint=fingerprint,
    )


def delete(pid: str, version: int) -> Change:
    return Change(product_id=pid, kind=ChangeKind.DELETED, action=IndexAction.DELETE, version=version)


def record(store: Any, changes: list[Change]) -> None:
    store.record_desired(changes, [])
    store.record_index_settings(IndexSettings(embedding_model="model", text_template="tpl"))
