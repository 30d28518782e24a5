"""Peak memory of the two functions on a 1M-product scale, each measured in a process of its own.

The real handlers run (handlers.diff.handler, handlers.consumer.handler) with the real Pipeline wiring, the real
adapters and the real SDKs; only the network ends are replaced:
- DynamoDB: a real boto3 client whose requests are answered by a `before-send` hook, so botocore serialises the
  requests and parses the responses as it does against AWS (a Query page of up to 1 MB of items, as DynamoDB
  pages). The table's content lives in an SQLite file, not in the measured process.
- Pinecone and OpenAI: the SDKs' HTTP transports answer in process (httpx / httpx2 `handle_request`), so the
  SDKs build, encode and parse real requests and responses (OpenAI's embeddings come back base64-encoded, as the
  SDK asks for them).
- S3 and SQS: small fakes (the catalog drop is streamed from a local file; the change archive goes to a
  temporary file, as S3ChangeArchive spools it anyway).
Secrets come from a stub of `get_secret`.

    diff      the diff function on a catalog drop: state snapshot from DynamoDB (16 shard queries), the diff
              streamed over v2, the guard's count of indexed products (another pass over the shards), and the
              resumable dispatch (desired state in transactions, messages to SQS)
    snapshot  DynamoStateStore.snapshot() alone: what loading the state from DynamoDB costs
    consumer  one consumer invocation on a batch of full messages (text changes: embed, upsert, commit)
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import xxhash

from _common import bench_config, peak_rss_mb

CATALOG = "shop"
TABLE = "catalog-sync-bench"
BUCKET = "catalog-sync-bench"
PINECONE_HOST = "https://products-bench.svc.aped-4627-b74a.pinecone.io"
DIMENSION = 1536
# DynamoDB returns at most 1 MB of items per Query page, counted before the projection: a product item holds
# pk, sk, dv, del, fp, th, mh, fh (the field hashes, ~420 bytes of JSON), cv, cth and cmh: about 620 bytes.
QUERY_PAGE_BYTES = 1024 * 1024
ITEM_BYTES = 620


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def catalog_toml() -> bytes:
    config = bench_config()
    fields = ", ".join(f'"{name}"' for name in config.text.fields)
    metadata = "\n".join(f'{name} = "{kind.value}"' for name, kind in config.metadata.items())
    return (
        f'name = "{CATALOG}"\nid_field = "{config.id_field}"\n\n[text]\nfields = [{fields}]\n\n'
        f'[metadata]\n{metadata}\n\n[embedder]\nkind = "openai"\n'
    ).encode()


def environment(max_message_bytes: int) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CATALOG_SYNC_TABLE_NAME": TABLE,
        "CATALOG_SYNC_BUCKET": BUCKET,
        "CATALOG_SYNC_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/changes",
        "CATALOG_SYNC_PRIORITY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/priority",
        "CATALOG_SYNC_PINECONE_HOST": PINECONE_HOST,
        "CATALOG_SYNC_PINECONE_SECRET": "pinecone",
        "CATALOG_SYNC_OPENAI_SECRET": "openai",
        "CATALOG_SYNC_MAX_MESSAGE_BYTES": str(max_message_bytes),
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "CatalogSyncBench",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }


# ---------------------------------------------------------------------------------------------------- preparing state


def prepare_state(v1: Path, changed_ids: set[str], database: Path, *, model: str) -> int:
    """The DynamoDB table after v1 was synced: every product's (shard, id, fingerprint) for the shard queries,
    and the full items of the products v2 changes (what get_many reads for them). Returns the products."""
    from catalog_sync.adapters.aws.dynamodb_state import DEFAULT_SHARDS
    from catalog_sync.formats.catalog import open_catalog
    from catalog_sync.logic.diff import CatalogDiff
    from catalog_sync.logic.snapshot import EmptySnapshot

    config = bench_config().model_copy(update={"name": CATALOG})
    differ = CatalogDiff(config, model_id=model)
    database.unlink(missing_ok=True)
    db = sqlite3.connect(database)
    db.execute("CREATE TABLE products (shard INTEGER, sk TEXT, fp BLOB, PRIMARY KEY (shard, sk)) WITHOUT ROWID")
    db.execute("CREATE TABLE items (sk TEXT PRIMARY KEY, item BLOB)")
    changed_lines: list[bytes] = []
    rows: list[tuple[int, str, bytes]] = []
    count = 0
    with v1.open("rb") as raw:
        stream = open_catalog(raw, v1.name, id_field=config.id_field)
        assert stream.lines is not None
        for line in stream.lines:
            product_id = str(orjson.loads(line)[config.id_field])
            # As the diff fingerprints a raw line (logic/diff.py, _Walk.lines) and the store shards an id.
            fingerprint = xxhash.xxh3_128_digest(line, seed=differ.seed)
            shard = xxhash.xxh3_64_intdigest(product_id.encode()) % DEFAULT_SHARDS
            rows.append((shard, product_id, fingerprint))
            if product_id in changed_ids:
                changed_lines.append(line)
            count += 1
            if len(rows) >= 100_000:
                db.executemany("INSERT INTO products VALUES (?, ?, ?)", rows)
                rows.clear()
    db.executemany("INSERT INTO products VALUES (?, ?, ?)", rows)
    stream = open_catalog(io.BytesIO(b"".join(changed_lines)), "changed.jsonl", id_field=config.id_field)
    for change in differ.run(stream, EmptySnapshot(), version=1).changes:
        item = {
            "sk": {"S": change.product_id},
            "dv": {"N": "1"},
            "del": {"BOOL": False},
            "fp": {"B": base64.b64encode(change.fingerprint or b"").decode()},
            "th": {"S": change.text_hash or ""},
            "mh": {"S": change.metadata_hash or ""},
            "fh": {"B": base64.b64encode(orjson.dumps(change.field_hashes or {})).decode()},
            "cv": {"N": "1"},
            "cth": {"S": change.text_hash or ""},
            "cmh": {"S": change.metadata_hash or ""},
        }
        db.execute("INSERT INTO items VALUES (?, ?)", (change.product_id, orjson.dumps(item)))
    db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
    db.executemany(
        "INSERT INTO meta VALUES (?, ?)", [("embedding_model", model), ("text_template", config.text.fingerprint())]
    )
    db.commit()
    db.close()
    return count


# ---------------------------------------------------------------------------------------------------- DynamoDB


class FakeCpu:
    """CPU the in-process fakes spend (thread time), to be taken out of the handler's figure."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, started: float) -> None:
        spent = time.thread_time() - started
        with self._lock:
            self.seconds += spent


FAKE_CPU = FakeCpu()


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


class DynamoTable:
    """Answers the state store's and the cache's DynamoDB requests (before-send hook on a real client)."""

    def __init__(self, database: Path | None, *, consumer_version: int = 2) -> None:
        self.db = sqlite3.connect(database, check_same_thread=False) if database else None
        self.consumer_version = consumer_version
        self.requests: dict[str, int] = {}

    def __call__(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        started = time.thread_time()
        try:
            return self._answer(request, AWSResponse)
        finally:
            FAKE_CPU.add(started)

    def _answer(self, request: Any, response_type: Any) -> Any:
        operation = request.headers["X-Amz-Target"].decode().split(".")[-1]
        self.requests[operation] = self.requests.get(operation, 0) + 1
        body = orjson.loads(request.body)
        answer: dict[str, Any] = getattr(self, operation.lower(), lambda _: {})(body)
        return response_type(
            request.url, 200, {"Content-Type": "application/x-amz-json-1.0"}, _Raw(orjson.dumps(answer))
        )

    def query(self, body: dict[str, Any]) -> dict[str, Any]:
        pk = body["ExpressionAttributeValues"][":pk"]["S"]
        if not pk.startswith(f"P#{CATALOG}#") or self.db is None:
            return {"Items": [], "Count": 0, "ScannedCount": 0}
        shard = int(pk.rsplit("#", 1)[1])
        after = body.get("ExclusiveStartKey", {}).get("sk", {}).get("S", "")
        items: list[dict[str, Any]] = []
        size = 0
        last = None
        cursor = self.db.execute(
            "SELECT sk, fp FROM products WHERE shard = ? AND sk > ? ORDER BY sk LIMIT 100000", (shard, after)
        )
        for sk, fp in cursor:
            item = {"sk": {"S": sk}, "fp": {"B": base64.b64encode(fp).decode()}, "dv": {"N": "1"}, "cv": {"N": "1"}}
            items.append(item)
            size += ITEM_BYTES
            last = sk
            if size >= QUERY_PAGE_BYTES:
                break
        else:
            last = None
        answer: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
        if last is not None:
            answer["LastEvaluatedKey"] = {"pk": {"S": pk}, "sk": {"S": last}}
        return answer

    def getitem(self, body: dict[str, Any]) -> dict[str, Any]:
        key = body["Key"]
        if key["pk"]["S"] == f"M#{CATALOG}" and key["sk"]["S"] == "index" and self.db is not None:
            meta = dict(self.db.execute("SELECT name, value FROM meta"))
            return {"Item": {**key, **{name: {"S": value} for name, value in meta.items()}}}
        if key["pk"]["S"].startswith(f"R#{CATALOG}"):
            return {"Item": dict(key)}  # the run item, as record_progress reads it back (no total: not complete)
        return {}

    def batchgetitem(self, body: dict[str, Any]) -> dict[str, Any]:
        responses: dict[str, list[dict[str, Any]]] = {}
        for table, request in body["RequestItems"].items():
            found = responses.setdefault(table, [])
            for key in request["Keys"]:
                pk, sk = key["pk"]["S"], key["sk"]["S"]
                if not pk.startswith("P#"):
                    continue  # the embedding cache: every text is new
                if self.db is None:
                    found.append({"sk": {"S": sk}, "dv": {"N": str(self.consumer_version)}, "del": {"BOOL": False}})
                    continue
                row = self.db.execute("SELECT item FROM items WHERE sk = ?", (sk,)).fetchone()
                if row is not None:
                    found.append(orjson.loads(row[0]))
        return {"Responses": responses, "UnprocessedKeys": {}}

    def updateitem(self, body: dict[str, Any]) -> dict[str, Any]:
        if "ADD seq" in body.get("UpdateExpression", ""):
            return {"Attributes": {"seq": {"N": "2"}}}
        if body.get("ReturnValues") == "ALL_NEW":
            return {"Attributes": dict(body["Key"])}
        return {}

    def batchwriteitem(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"UnprocessedItems": {}}


def dynamodb_client(table: DynamoTable) -> Any:
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    client.meta.events.register("before-send.dynamodb", table)
    return client


# ---------------------------------------------------------------------------------------------------- S3, SQS


class FakeS3:
    def __init__(self, objects: dict[str, Path | bytes], scratch: Path) -> None:
        self.objects = objects
        self.scratch = scratch

    def list_objects_v2(self, *, Bucket: str, Prefix: str, **_: Any) -> dict[str, Any]:
        return {"Contents": [{"Key": key} for key in sorted(self.objects) if key.startswith(Prefix)]}

    def get_object(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        value = self.objects[Key]
        body = value.open("rb") if isinstance(value, Path) else io.BytesIO(value)
        return {"Body": body, "VersionId": "1"}

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, Any]:
        self.objects[Key] = bytes(Body)
        return {}

    def upload_fileobj(self, fileobj: Any, bucket: str, key: str) -> None:
        path = self.scratch / key.replace("/", "_")
        with path.open("wb") as out:
            shutil.copyfileobj(fileobj, out)
        self.objects[key] = path


class FakeSqs:
    def __init__(self) -> None:
        self.messages = 0

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.messages += len(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


# ---------------------------------------------------------------------------------------------------- Pinecone, OpenAI


def patch_transports(vector_count: int) -> dict[str, int]:
    """Answer the Pinecone SDK (httpx) and the OpenAI SDK (httpx2) in process; count their requests."""
    import httpx
    import httpx2

    calls: dict[str, int] = {}
    rng = np.random.default_rng(0)

    def pinecone(self: Any, request: httpx.Request) -> httpx.Response:
        started = time.thread_time()
        try:
            return pinecone_answer(request)
        finally:
            FAKE_CPU.add(started)

    def pinecone_answer(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls[path] = calls.get(path, 0) + 1
        answer: dict[str, Any] = {}
        if path.endswith("/describe_index_stats"):
            answer = {
                "namespaces": {CATALOG: {"vectorCount": vector_count}},
                "dimension": DIMENSION,
                "indexFullness": 0.0,
                "totalVectorCount": vector_count,
            }
        elif path.endswith("/vectors/upsert"):
            answer = {"upsertedCount": len(orjson.loads(request.read())["vectors"])}
        return httpx.Response(200, json=answer, request=request)

    def openai(self: Any, request: httpx2.Request) -> httpx2.Response:
        started = time.thread_time()
        try:
            return openai_answer(request)
        finally:
            FAKE_CPU.add(started)

    def openai_answer(request: httpx2.Request) -> httpx2.Response:
        calls["openai"] = calls.get("openai", 0) + 1
        payload = orjson.loads(request.read())
        inputs = payload["input"]
        vectors = rng.standard_normal((len(inputs), payload.get("dimensions") or DIMENSION)).astype("<f4")
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        base64_wanted = payload.get("encoding_format") == "base64"
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": base64.b64encode(vector.tobytes()).decode() if base64_wanted else vector.tolist(),
            }
            for i, vector in enumerate(vectors)
        ]
        tokens = sum(len(text) // 4 for text in inputs)
        body = {
            "object": "list",
            "data": data,
            "model": payload["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return httpx2.Response(
            200, content=orjson.dumps(body), headers={"content-type": "application/json"}, request=request
        )

    httpx.HTTPTransport.handle_request = pinecone  # type: ignore[method-assign]
    httpx2.HTTPTransport.handle_request = openai  # type: ignore[method-assign]
    return calls


class LambdaContext:
    function_name = "CatalogSync-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:CatalogSync-bench"
    aws_request_id = "bench"
    log_group_name = "/aws/lambda/CatalogSync-bench"
    log_stream_name = "bench"

    def __init__(self, memory_mb: int, timeout_s: int) -> None:
        self.memory_limit_in_mb = memory_mb
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def _pipeline(s3: FakeS3, dynamodb: Any) -> Any:
    from catalog_sync.bootstrap import aws as pipeline_module
    from catalog_sync.bootstrap.aws import Pipeline
    from catalog_sync.bootstrap.settings import PipelineSettings

    pipeline_module.get_secret = lambda name, max_age: f"{name}-key"  # Secrets Manager
    return Pipeline(PipelineSettings(), s3=s3, sqs=FakeSqs(), dynamodb=dynamodb)


# ---------------------------------------------------------------------------------------------------- measurements


def measure_snapshot(database: Path) -> dict[str, Any]:
    from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
    from catalog_sync.bootstrap.settings import PipelineSettings

    table = DynamoTable(database)
    store = DynamoStateStore(
        dynamodb_client(table),
        table=TABLE,
        catalog=CATALOG,
        concurrency=PipelineSettings.model_fields["state_concurrency"].default,
    )
    baseline = current_rss_mb()
    started = time.perf_counter()
    snapshot = store.snapshot()
    seconds = time.perf_counter() - started
    return {
        "products": len(snapshot.live_ids),
        "fingerprints": len(snapshot.fingerprints),
        "queries": table.requests.get("Query", 0),
        "seconds": seconds,
        "baseline_mb": baseline,
        "peak_mb": peak_rss_mb(),
    }


def measure_diff(database: Path, v2: Path, products: int, memory_mb: int, timeout_s: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        objects: dict[str, Path | bytes] = {
            f"config/{CATALOG}.toml": catalog_toml(),
            f"catalogs/{CATALOG}/v2.jsonl": v2,
        }
        s3 = FakeS3(objects, Path(scratch))
        table = DynamoTable(database)
        calls = patch_transports(products)
        from handlers import diff as diff_handler

        pipeline = _pipeline(s3, dynamodb_client(table))
        setattr(diff_handler, "pipeline", lambda: pipeline)  # noqa: B010 - the handler's wiring, replaced
        baseline = current_rss_mb()
        started = time.perf_counter()
        event = {"catalog": CATALOG, "key": f"catalogs/{CATALOG}/v2.jsonl"}
        context: Any = LambdaContext(memory_mb, timeout_s)
        result = diff_handler.handler(event, context)
        seconds = time.perf_counter() - started
    run = result["runs"][0]
    return {
        "status": run["status"],
        "counts": run.get("counts", {}),
        "messages": pipeline.sqs.messages,
        "dynamodb": table.requests,
        "pinecone": calls,
        "seconds": seconds,
        "baseline_mb": baseline,
        "peak_mb": peak_rss_mb(),
    }


def _sqs_event(bodies: list[str]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": f"m{i}",
                "receiptHandle": f"r{i}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:changes",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def measure_consumer(batches: list[list[str]], memory_mb: int, timeout_s: int) -> dict[str, Any]:
    """The consumer handler on each batch in turn (one invocation each, warm after the first): per invocation
    its own CPU (the fakes' taken out) and the changes it handled; peak RSS over all of them."""
    from catalog_sync.logic.packing import unpack_message

    with tempfile.TemporaryDirectory() as scratch:
        s3 = FakeS3({f"config/{CATALOG}.toml": catalog_toml()}, Path(scratch))
        table = DynamoTable(None)
        calls = patch_transports(0)
        from handlers import consumer as consumer_handler

        pipeline = _pipeline(s3, dynamodb_client(table))
        setattr(consumer_handler, "pipeline", lambda: pipeline)  # noqa: B010 - the handler's wiring, replaced
        sizes = [[(len(body), len(unpack_message(body))) for body in bodies] for bodies in batches]
        events = [_sqs_event(bodies) for bodies in batches]
        del batches
        baseline = current_rss_mb()
        invocations = []
        for event, batch_sizes in zip(events, sizes, strict=True):
            fake_before, started, cpu = FAKE_CPU.seconds, time.perf_counter(), time.process_time()
            context: Any = LambdaContext(memory_mb, timeout_s)
            response = consumer_handler.handler(event, context)
            cpu = time.process_time() - cpu
            fake = FAKE_CPU.seconds - fake_before
            invocations.append(
                {
                    "messages": len(batch_sizes),
                    "payload_mb": sum(b for b, _ in batch_sizes) / 1e6,
                    "changes": sum(c for _, c in batch_sizes),
                    "failures": len(response.get("batchItemFailures", [])),
                    "seconds": time.perf_counter() - started,
                    "handler_cpu_s": cpu - fake,
                    "fake_cpu_s": fake,
                }
            )
    return {
        "invocations": invocations,
        "dynamodb": table.requests,
        "requests": calls,
        "baseline_mb": baseline,
        "peak_mb": peak_rss_mb(),
    }


def setup_child(max_message_bytes: int) -> None:
    os.environ.update(environment(max_message_bytes))
