"""The pipeline without its Lambda wrappers: diff -> SQS (two lanes) -> consumers -> Pinecone, state on DynamoDB."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from pinecone import Pinecone

from catalog_sync.adapters.aws.dynamodb_cache import DynamoEmbeddingCache
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.aws.s3 import S3ClaimStore
from catalog_sync.adapters.aws.sqs_queue import SqsChangeSender
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.local.files import FileCatalogSource, LocalRunArtifacts
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.logic.validation import RecordValidator
from catalog_sync.models.changes import RunStatus
from catalog_sync.services.apply import ApplyStats, ChangeApplier
from catalog_sync.services.consume import consume_message
from catalog_sync.services.sync import SyncService
from tests.aws.conftest import REGION
from tests.conftest import make_config, product, write_jsonl
from tests.doubles.aws_resources import TABLE, create_table
from tests.doubles.pinecone_server import PineconeDouble


def consume_all(
    sqs: Any, urls: list[str], applier: ChangeApplier, claims: S3ClaimStore
) -> tuple[ApplyStats, list[str]]:
    """A consumer: priority lane first, each message applied, then acknowledged."""
    stats = ApplyStats()
    order = []
    for url in urls:
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                stats.add(consume_message(message["Body"], applier, resolve_claim=claims.get))
                order.append(url)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return stats, order


def test_diff_dispatches_and_consumers_converge(tmp_path: Path, aws_credentials: None):
    config = make_config()
    validator = RecordValidator(config)
    v1 = [product(str(i)) for i in range(60)]
    v2 = [product(str(i), price=5.0) if i % 5 == 0 else product(str(i), description=f"v2 {i}") for i in range(52)]
    embedder = HashingEmbedder()
    with mock_aws(), PineconeDouble(embedder.dimension) as double:
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        s3 = boto3.client("s3", region_name=REGION)
        create_table(dynamodb)
        s3.create_bucket(Bucket="catalogs")
        urls = [sqs.create_queue(QueueName=name)["QueueUrl"] for name in ("priority", "changes")]
        state = DynamoStateStore(dynamodb, table=TABLE, catalog=config.name, shards=4, concurrency=1)
        index = PineconeVectorIndex(
            host=double.host,
            namespace=config.index_namespace,
            metadata_fields=list(config.metadata),
            index=Pinecone(api_key="test-key").Index(host=double.host),
        )
        cache = DynamoEmbeddingCache(dynamodb, table=TABLE)
        claims = S3ClaimStore(s3, bucket="catalogs")
        applier = ChangeApplier(state=state, index=index, embedder=embedder, cache=cache)
        for version, records in enumerate((v1, v2), start=1):
            sender = SqsChangeSender(
                sqs, queue_url=urls[1], priority_queue_url=urls[0], run_id=f"run{version}", claims=claims
            )
            dispatcher = SyncService(
                config=config,
                state=state,
                index=index,
                embedder=embedder,
                queue=sender,
                artifacts=LocalRunArtifacts(tmp_path),
                cache=cache,
                batch_size=16,
                apply_changes=False,
            )
            report = dispatcher.sync(FileCatalogSource(write_jsonl(tmp_path / f"v{version}.jsonl", records)))
            assert report.run is not None and report.run.status is RunStatus.DISPATCHED
            assert state.pending_count() == report.diff.counts.changed  # recorded, not yet applied
            assert sender.requests <= 2  # every change of the run fits in one SendMessageBatch per lane

            stats, _ = consume_all(sqs, urls, applier, claims)
            assert stats.committed == report.diff.counts.changed and state.pending_count() == 0
            stored = double.vectors(config.index_namespace)
            assert set(stored) == {r["sku"] for r in records}
            for record in records:
                metadata = dict(stored[record["sku"]]["metadata"])
                metadata.pop("_text_hash")
                assert metadata == validator.validate(record["sku"], record).metadata
        # v2: the priority lane carried the deletions and the price changes.
        assert report.diff.counts.priority == 8 + 11

        # A second delivery of the same messages changes nothing: they re-apply the same content, embeddings from
        # the cache.
        sender = SqsChangeSender(sqs, queue_url=urls[1], priority_queue_url=urls[0], run_id="run2", claims=claims)
        sender.send([list(report.diff.changes)], priority=False)
        before = {k: dict(v["metadata"]) for k, v in double.vectors(config.index_namespace).items()}
        again, _ = consume_all(sqs, urls, applier, claims)
        assert again.embedded == 0
        assert {k: dict(v["metadata"]) for k, v in double.vectors(config.index_namespace).items()} == before
