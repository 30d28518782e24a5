"""The AWS pipeline under moto, v1 then v2: requests to each service per 1,000 changes, against the minimum.

    python bench/pipeline_bench.py --n 20000

moto's SQS and DynamoDB are slow in ways AWS is not (moto's queries scan the whole table), so the seconds say
little; the requests are what count. For each pass it prints seconds and, per service, the requests made per
1,000 changes beside the fewest that the service's batch limits allow for the same work:
- SQS: SendMessageBatch calls; minimum = the packed bytes in 1 MiB batches of at most 10 messages;
- OpenAI: embedding requests; minimum = texts / 2,048 inputs, or tokens / 300,000 (tokens estimated as the
  adapter does, pessimistically, without a tokenizer);
- Pinecone: upserts (minimum: 1,000 vectors or 2 MB per request), deletes (1,000 ids), updates (one per
  product: the API has no batch form);
- DynamoDB: state writes (desired state and commit, both conditional, in transactions of up to 100 items)
  against BatchWriteItem's 25 items per call, plus batched reads.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import boto3
import orjson
from moto import mock_aws
from pinecone import Pinecone

from _common import bench_config, dataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.doubles import moto_transactions
from tests.doubles.aws_resources import TABLE, create_table
from tests.doubles.openai_server import OpenAIDouble
from tests.doubles.pinecone_server import PineconeDouble

from catalog_sync.adapters.aws.dynamodb_cache import DynamoEmbeddingCache
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.aws.s3 import S3ClaimStore
from catalog_sync.adapters.aws.sqs_queue import MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, SqsChangeSender
from catalog_sync.adapters.embedders.openai import (
    MAX_INPUTS_PER_REQUEST,
    MAX_TOKENS_PER_REQUEST,
    OpenAIEmbedder,
    estimate_tokens,
)
from catalog_sync.adapters.local.files import FileCatalogSource, LocalRunArtifacts
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.adapters.pinecone.limits import MAX_REQUEST_BYTES
from catalog_sync.logic.packing import unpack_envelope
from catalog_sync.services.apply import ApplyStats, ChangeApplier
from catalog_sync.services.sync import SyncService

DIMENSIONS = 256


def ratio(made: int, minimum: int) -> str:
    return f"{made / minimum:.2f}x" if minimum else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    moto_transactions.install()  # moto copies whole tables to roll a transaction back: quadratic here
    v1, v2, _ = dataset(args.n)
    config = bench_config()
    with (
        mock_aws(),
        PineconeDouble(DIMENSIONS) as pinecone,
        OpenAIDouble() as openai,
        tempfile.TemporaryDirectory() as tmp,
    ):
        dynamodb, sqs, s3 = (boto3.client(name, region_name="us-east-1") for name in ("dynamodb", "sqs", "s3"))
        create_table(dynamodb)
        s3.create_bucket(Bucket="claims")
        urls = {
            name: sqs.create_queue(QueueName=name, Attributes={"MaximumMessageSize": "1048576"})["QueueUrl"]
            for name in ("priority", "changes")
        }
        state = DynamoStateStore(dynamodb, table=TABLE, catalog=config.name, concurrency=1)  # moto: one at a time
        cache = DynamoEmbeddingCache(dynamodb, table=TABLE)
        index = PineconeVectorIndex(
            host=pinecone.host,
            namespace=config.name,
            metadata_fields=list(config.metadata),
            index=Pinecone(api_key="bench").Index(host=pinecone.host),
        )
        embedder = OpenAIEmbedder(
            model="text-embedding-3-small", dimensions=DIMENSIONS, api_key="bench", base_url=openai.base_url
        )
        applier = ChangeApplier(state=state, index=index, embedder=embedder, cache=cache)
        claims = S3ClaimStore(s3, bucket="claims")
        print(f"{args.n:,} products; requests per 1,000 changes (made / fewest the batch limits allow)")
        for label, path in (("v1", v1), ("v2", v2)):
            sender = SqsChangeSender(
                sqs,
                queue_url=urls["changes"],
                priority_queue_url=urls["priority"],
                run_id=label,
                max_message_bytes=1024 * 1024,
                claims=claims,
                catalog=config.name,
            )
            service = SyncService(
                config=config,
                state=state,
                index=index,
                embedder=embedder,
                queue=sender,
                artifacts=LocalRunArtifacts(Path(tmp)),
                cache=cache,
                apply_changes=False,
            )
            before_state = dict(state.requests)
            before_cache = dict(cache.requests)
            pinecone_before = len(pinecone.requests)
            openai_before = len(openai.requests)
            started = time.perf_counter()
            report = service.sync(FileCatalogSource(path))
            dispatched = time.perf_counter() - started
            # Consumers: every message, applied as the consumer function would.
            stats = ApplyStats()
            minimum_sqs = 0
            messages = 0
            for url in (urls["priority"], urls["changes"]):
                lane_bytes = lane_messages = 0
                while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
                    for message in batch:
                        lane_bytes += len(message["Body"].encode())
                        lane_messages += 1
                        unpacked = unpack_envelope(message["Body"], resolve_claim=claims.get)
                        stats.add(applier.apply(unpacked.changes))
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                # Each lane is its own queue: its messages go in their own batches.
                messages += lane_messages
                minimum_sqs += max(
                    math.ceil(lane_messages / MAX_BATCH_ENTRIES), math.ceil(lane_bytes / MAX_BATCH_BYTES)
                )
            seconds = time.perf_counter() - started
            changes = len(report.diff.changes)
            per = 1000 / max(changes, 1)
            pinecone_calls: dict[str, int] = {}
            upsert_bytes = 0
            for request in pinecone.requests[pinecone_before:]:
                pinecone_calls[request["path"]] = pinecone_calls.get(request["path"], 0) + 1
                if request["path"] == "/vectors/upsert":
                    upsert_bytes += request["bytes"]
            openai_requests = len(openai.requests) - openai_before
            state_calls = {k: state.requests[k] - before_state[k] for k in state.requests}
            cache_calls = {k: cache.requests[k] - before_cache[k] for k in cache.requests}
            embedded_tokens = sum(
                estimate_tokens(text)
                for request in openai.requests[openai_before:]
                for text in request["body"]["input"]
            )
            minimum_openai = max(
                math.ceil(stats.embedded / MAX_INPUTS_PER_REQUEST), math.ceil(embedded_tokens / MAX_TOKENS_PER_REQUEST)
            )
            minimum_upserts = max(math.ceil(stats.upserted / 1000), math.ceil(upsert_bytes / MAX_REQUEST_BYTES))
            minimum_deletes = math.ceil(stats.deleted / 1000)
            print(
                f"\n{label}: {changes:,} changes, dispatched in {dispatched:.1f} s, applied by {seconds:.1f} s "
                f"(moto), {messages} messages, {stats.embedded:,} texts embedded"
            )
            rows: list[tuple[str, int, int]] = [
                ("SQS SendMessageBatch", sender.requests, minimum_sqs),
                ("OpenAI embeddings", openai_requests, minimum_openai),
                ("Pinecone upsert", pinecone_calls.get("/vectors/upsert", 0), minimum_upserts),
                ("Pinecone update (metadata)", pinecone_calls.get("/vectors/update", 0), stats.metadata_updated),
                ("Pinecone delete", pinecone_calls.get("/vectors/delete", 0), minimum_deletes),
                # Desired state and commit, each a write per change: 25 per BatchWriteItem at best.
                ("DynamoDB state writes", state_calls["write"], 2 * math.ceil(changes / 25)),
                ("DynamoDB cache writes", cache_calls["write"], math.ceil(stats.embedded / 25)),
            ]
            for name, made, minimum in rows:
                print(f"  {name:<30}{made * per:>9.1f}{minimum * per:>9.1f}  {ratio(made, minimum)}")
            other = {
                k: v
                for k, v in {**state_calls, **{f"cache_{k}": v for k, v in cache_calls.items()}}.items()
                if k not in ("write", "cache_write")
            }
            print(
                f"  DynamoDB reads: {orjson.dumps(other).decode()} "
                f"({state_calls['query']} shard queries load the state)"
            )


if __name__ == "__main__":
    main()
