"""The sync service on the production adapters: DynamoDB state and embedding cache (moto), Pinecone (double)."""

from __future__ import annotations

from pathlib import Path

import boto3
from moto import mock_aws
from pinecone import Pinecone

from catalog_sync.adapters.aws.dynamodb_cache import DynamoEmbeddingCache
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.files import FileCatalogSource, LocalRunArtifacts
from catalog_sync.adapters.local.memory_queue import InProcessChangeQueue
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.services.sync import SyncService
from tests.aws.conftest import REGION
from tests.conftest import make_config, product, write_jsonl
from tests.doubles.aws_resources import TABLE, create_table
from tests.doubles.pinecone_server import PineconeDouble


def test_v1_then_v2_converge_on_dynamodb_and_pinecone(tmp_path: Path, aws_credentials: None):
    config = make_config()
    validator = RecordValidator(config)
    v1 = [product(str(i)) for i in range(40)]
    v2 = [product(str(i), price=99.0) if i % 4 == 0 else product(str(i), description=f"new {i}") for i in range(34)]
    embedder = HashingEmbedder()
    with mock_aws(), PineconeDouble(embedder.dimension) as double:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        create_table(dynamodb)
        state = DynamoStateStore(dynamodb, table=TABLE, catalog=config.name, shards=4, concurrency=1)
        index = PineconeVectorIndex(
            host=double.host,
            namespace=config.index_namespace,
            metadata_fields=list(config.metadata),
            index=Pinecone(api_key="test-key").Index(host=double.host),
        )
        service = SyncService(
            config=config,
            state=state,
            index=index,
            embedder=embedder,
            queue=InProcessChangeQueue(),
            artifacts=LocalRunArtifacts(tmp_path),
            cache=DynamoEmbeddingCache(dynamodb, table=TABLE),
            batch_size=16,
        )
        for records in (v1, v2):
            report = service.sync(FileCatalogSource(write_jsonl(tmp_path / "c.jsonl", records)))
            assert not report.failed and not report.held and report.pending_after == 0
            stored = double.vectors(config.index_namespace)
            assert set(stored) == {r["sku"] for r in records}
            for record in records:
                metadata = dict(stored[record["sku"]]["metadata"])
                metadata.pop("_text_hash")
                assert metadata == validator.validate(record["sku"], record).metadata
        assert embedder.texts_embedded == 40 + sum(1 for i in range(34) if i % 4)
        again = service.sync(FileCatalogSource(tmp_path / "c.jsonl"))
        assert again.diff.counts.unchanged == 34
        assert not any(again.applied.as_dict().values())
        assert [run.status.value for run in state.runs()] == ["succeeded"] * 3
