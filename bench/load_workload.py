"""The burst the load model consumes: changes made by the real diff, packed into queue messages by the real sender.

A burst of N changes in catalog_gen's mix (its mutator changes 1% of products' metadata, 1% of their text, deletes
0.5% and adds 0.5%: 2 : 2 : 1 : 1). Each kind is produced by the real `CatalogDiff` against a state holding the
previous version, so every change carries what the diff function would send (text, metadata, hashes,
fingerprint, priority). The changes reach the queues the way `Dispatcher.resume` sends them: lane by lane
(priority first), in windows of the pipeline's `dispatch_window`, each window handed to the real
`SqsChangeSender.send` (packing by `pack_messages`, grouping into SendMessageBatch calls) over a recording SQS
client. Catalog order is kept: the priority lane holds the metadata changes then the deletions (the diff emits
deletions last), the normal lane the text changes then the additions (catalog_gen appends new products).

Windows are independent (each `send` packs its own messages), so they are built in parallel processes.

Each message is then summarised as the work a consumer does for it (`MessageWork`), computed with the adapters'
own packing: OpenAI requests from the embedder's `request_slices` (paced, as the consumer's share of the
tokens per minute makes it pack them) and the tokens each is paced as (`pacing_tokens`), Pinecone upsert
requests from `bounded_batches` with the index adapter's limits and its real metadata, deletes per
`MAX_DELETE_IDS`, DynamoDB calls per the stores' batch limits.
"""

from __future__ import annotations

import inspect
import io
import math
import random
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from _common import bench_config
from catalog_gen import make_product
from catalog_sync.adapters.aws.sqs_queue import SqsChangeSender
from catalog_sync.adapters.embedders.openai import OpenAIEmbedder, openai_rates, pacing_tokens
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex, _short_floats
from catalog_sync.adapters.pinecone.limits import MAX_DELETE_IDS, MAX_UPSERT_VECTORS
from catalog_sync.bootstrap.settings import PipelineSettings
from catalog_sync.formats.catalog import open_catalog
from catalog_sync.logic.canonical import embedding_key
from catalog_sync.logic.diff import CatalogDiff
from catalog_sync.logic.packing import batches, bounded_batches
from catalog_sync.logic.snapshot import EmptySnapshot, StoredProduct
from catalog_sync.models.changes import Change, ChangeKind, IndexAction
from catalog_sync.models.config import CatalogConfig
from catalog_sync.resilience.pacing import Pacer
from catalog_sync.services.dispatch import Dispatcher

CATALOG = "shop"
RUN_ID = "20270101T030000Z-00042-a1b2c3"
OPENAI_MODEL = "text-embedding-3-small"
# catalog_gen.mutate: 1% metadata, 1% text, 0.5% deleted, 0.5% added.
MIX: dict[ChangeKind, int] = {
    ChangeKind.METADATA_ONLY: 2,
    ChangeKind.TEXT_CHANGED: 2,
    ChangeKind.DELETED: 1,
    ChangeKind.ADDED: 1,
}
# Dispatcher order: the priority lane first; within a lane, catalog order.
LANES: dict[str, tuple[ChangeKind, ...]] = {
    "p": (ChangeKind.METADATA_ONLY, ChangeKind.DELETED),
    "n": (ChangeKind.TEXT_CHANGED, ChangeKind.ADDED),
}
DISPATCH_WINDOW: int = PipelineSettings.model_fields["dispatch_window"].default
DISPATCH_BATCH: int = inspect.signature(Dispatcher.__init__).parameters["batch_size"].default
# OpenAI's rule of thumb for English: about 4 characters a token (the adapter's own estimate, 3 bytes a token,
# is deliberately pessimistic: it only has to stay under the per-request limit).
CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class MessageWork:
    """What a consumer does for one queue message (see ChangeApplier.apply and record_handler)."""

    lane: str
    body_bytes: int
    changes: int
    ids: int  # distinct products: desired_versions before and after the writes, commits
    cache_keys: int  # distinct texts of the upserts: cache reads (100 a call) and writes (25 a call)
    embed_requests: tuple[tuple[int, int], ...]  # (inputs, tokens) of each OpenAI request on a cache miss
    upsert_requests: tuple[int, ...]  # bytes of each Pinecone upsert request
    updates: int  # Pinecone update requests (one per metadata-only change)
    delete_requests: tuple[int, ...]  # ids of each Pinecone delete request
    upserts: int
    deletes: int
    # The tokens each OpenAI request is paced as (the product's estimate; empty: as `embed_requests` count them).
    embed_paced_tokens: tuple[int, ...] = ()


@dataclass
class WindowResult:
    lane: str
    messages: list[MessageWork]
    kinds: dict[str, int]
    sqs_requests: int
    spool_bytes: int  # the changes as the diff's spool writes them (JSON Lines)


@dataclass
class Burst:
    messages: list[MessageWork]
    kinds: dict[str, int]
    sqs_requests: int
    spool_bytes: int
    seconds: float

    @property
    def changes(self) -> int:
        return sum(m.changes for m in self.messages)


def model_id(dimension: int) -> str:
    # As OpenAIEmbedder names it.
    return OpenAIEmbedder(model=OPENAI_MODEL, dimensions=dimension, api_key="unused").model_id


def burst_config() -> CatalogConfig:
    return bench_config().model_copy(update={"name": CATALOG})


def kind_counts(changes: int) -> dict[ChangeKind, int]:
    total = sum(MIX.values())
    counts = {kind: changes * share // total for kind, share in MIX.items()}
    counts[ChangeKind.METADATA_ONLY] += changes - sum(counts.values())
    return counts


def plan_windows(changes: int) -> list[tuple[str, list[tuple[ChangeKind, int, int]]]]:
    """The dispatcher's windows: per lane, consecutive slices of DISPATCH_WINDOW changes, as (kind, start, stop)."""
    counts = kind_counts(changes)
    windows: list[tuple[str, list[tuple[ChangeKind, int, int]]]] = []
    for lane, kinds in LANES.items():
        spans = [(kind, 0, counts[kind]) for kind in kinds if counts[kind]]
        lane_total = sum(stop for _, _, stop in spans)
        for start in range(0, lane_total, DISPATCH_WINDOW):
            stop = min(start + DISPATCH_WINDOW, lane_total)
            pieces: list[tuple[ChangeKind, int, int]] = []
            offset = 0
            for kind, _, count in spans:
                lo, hi = max(start, offset), min(stop, offset + count)
                if lo < hi:
                    pieces.append((kind, lo - offset, hi - offset))
                offset += count
            windows.append((lane, pieces))
    return windows


class _Snapshot:
    """The state after v1 was synced and committed (a StateSnapshot), built from the v1 diff's own changes."""

    def __init__(self, changes: Sequence[Change], *, model: str, template: str) -> None:
        self.products = {
            c.product_id: StoredProduct(
                product_id=c.product_id,
                desired_version=c.version,
                fingerprint=c.fingerprint,
                text_hash=c.text_hash,
                metadata_hash=c.metadata_hash,
                field_hashes=dict(c.field_hashes or {}),
                committed_version=c.version,
                committed_text_hash=c.text_hash,
                committed_metadata_hash=c.metadata_hash,
            )
            for c in changes
        }
        self.fingerprints = {c.fingerprint: c.product_id for c in changes if c.fingerprint is not None}
        self.live_ids = set(self.products)
        self.pending_deletes: set[str] = set()
        self.embedding_model: str | None = model
        self.text_template: str | None = template

    def get_many(self, product_ids: Sequence[str]) -> dict[str, StoredProduct]:
        return {pid: self.products[pid] for pid in product_ids if pid in self.products}


def _mutate_metadata(rng: random.Random, product: dict[str, Any]) -> None:
    choice = rng.random()  # as catalog_gen.mutate
    if choice < 0.5:
        product["price"] = round(product["price"] * rng.choice([0.8, 0.9, 1.1, 1.25]) + 0.01, 2)
    elif choice < 0.8:
        product["stock"] = product["stock"] + rng.randint(1, 50)
    else:
        product["availability"] = "out_of_stock" if product["availability"] != "out_of_stock" else "in_stock"


def _mutate_text(rng: random.Random, product: dict[str, Any]) -> None:
    if rng.random() < 0.5:
        product["description"] = product["description"] + " Now with an improved design."
    else:
        product["title"] = product["title"] + " (2027 edition)"


def _lines(products: Sequence[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(p) + b"\n" for p in products)


def diff_changes(kind: ChangeKind, start: int, stop: int, *, seed: int, model: str) -> list[Change]:
    """Changes of one kind for products [start, stop) of that kind, made by the real diff (v1 -> v2)."""
    config = burst_config()
    differ = CatalogDiff(config, model_id=model)
    base = {ChangeKind.METADATA_ONLY: 0, ChangeKind.TEXT_CHANGED: 1, ChangeKind.DELETED: 2, ChangeKind.ADDED: 3}[kind]
    numbers = [base * 100_000_000 + i + 1 for i in range(start, stop)]
    rng = random.Random(f"{seed}-{kind}-{start}")
    products = [make_product(rng, n) for n in numbers]

    def run(lines: bytes, snapshot: Any, version: int) -> list[Change]:
        stream = open_catalog(io.BytesIO(lines), "burst.jsonl", id_field=config.id_field)
        return list(differ.run(stream, snapshot, version=version).changes)

    if kind is ChangeKind.ADDED:
        return run(_lines(products), EmptySnapshot(), 2)
    if kind is ChangeKind.DELETED:
        # The catalog lives on without them: one product that stays (unchanged, the fast path) keeps v2 non-empty.
        keeper = make_product(rng, 900_000_000 + start)
        v1 = run(_lines([*products, keeper]), EmptySnapshot(), 1)
        return run(_lines([keeper]), _Snapshot(v1, model=model, template=config.text.fingerprint()), 2)
    v1 = run(_lines(products), EmptySnapshot(), 1)
    snapshot = _Snapshot(v1, model=model, template=config.text.fingerprint())
    mutate = _mutate_metadata if kind is ChangeKind.METADATA_ONLY else _mutate_text
    for product in products:
        mutate(rng, product)
    return run(_lines(products), snapshot, 2)


class _RecordingSqs:
    """The SQS client the real sender talks to: accepts every entry and keeps it."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.requests = 0

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.requests += 1
        self.entries.extend(Entries)
        return {"Successful": [{"Id": entry["Id"]} for entry in Entries], "Failed": []}


def vector_json_sizes(dimension: int, seed: int = 0) -> list[int]:
    """JSON bytes of realistic vectors as the index adapter writes them: OpenAI embeddings are unit vectors of
    float32, written as the shortest decimals that round-trip (`_short_floats`)."""
    if not _VECTOR_JSON:
        rng = np.random.default_rng(seed)
        vectors = rng.standard_normal((256, dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        _VECTOR_JSON.extend(len(orjson.dumps(v)) for v in _short_floats(vectors))
    return _VECTOR_JSON


_VECTOR_JSON: list[int] = []


def embedder(dimension: int, tokens_per_minute: float | None) -> OpenAIEmbedder:
    """The embedder as the consumer makes it: paced to its share of the tokens per minute (None: not paced)."""
    pacer = Pacer(openai_rates(None, tokens_per_minute)) if tokens_per_minute else None
    return OpenAIEmbedder(model=OPENAI_MODEL, dimensions=dimension, api_key="unused", pacer=pacer)


def message_work(
    lane: str,
    body: str,
    changes: Sequence[Change],
    *,
    model: str,
    dimension: int,
    tokens_per_minute: float | None = None,
) -> MessageWork:
    """The consumer's work for one message, with the adapters' own request packing (`tokens_per_minute`: the
    consumer's share, which its embedder packs requests to)."""
    vector_json = vector_json_sizes(dimension)
    index = PineconeVectorIndex(host="https://unused", namespace=CATALOG, metadata_fields=[], index=object())
    upserts = [c for c in changes if c.action is IndexAction.UPSERT]
    updates = [c for c in changes if c.action is IndexAction.UPDATE_METADATA]
    deletes = [c for c in changes if c.action is IndexAction.DELETE]
    if any(c.fields_changed and not c.metadata for c in updates):
        raise AssertionError("a metadata change that removes a field (fetch + rewrite) is not modelled")
    texts: dict[str, str] = {}
    for change in upserts:
        texts.setdefault(embedding_key(change.text or "", model_id=model), change.text or "")
    missing = list(texts.values())
    slices = list(embedder(dimension, tokens_per_minute).request_slices(missing))
    embed_requests = tuple(
        (end - start, sum(math.ceil(len(t) / CHARS_PER_TOKEN) for t in missing[start:end])) for start, end in slices
    )
    embed_paced_tokens = tuple(pacing_tokens(missing[start:end]) for start, end in slices)
    # A record's JSON with its vector: the record with "values": [] and the vector's JSON in place of the [].
    sizes = [
        len(orjson.dumps({"id": c.product_id, "values": [], "metadata": index._metadata(c)})) - 1 + vector_json[i % 256]
        for i, c in enumerate(upserts)
    ]
    upsert_requests = tuple(
        sum(batch)
        for batch in bounded_batches(
            sizes, size_of=lambda size: size, max_items=MAX_UPSERT_VECTORS, max_bytes=index.upsert_request_bytes
        )
    )
    delete_requests = tuple(min(MAX_DELETE_IDS, len(deletes) - s) for s in range(0, len(deletes), MAX_DELETE_IDS))
    return MessageWork(
        lane=lane,
        body_bytes=len(body.encode()),
        changes=len(changes),
        ids=len({c.product_id for c in changes}),
        cache_keys=len(texts),
        embed_requests=embed_requests,
        upsert_requests=upsert_requests,
        updates=len(updates),
        delete_requests=delete_requests,
        upserts=len(upserts),
        deletes=len(deletes),
        embed_paced_tokens=embed_paced_tokens,
    )


def window_work(
    task: tuple[str, list[tuple[ChangeKind, int, int]]],
    *,
    seed: int,
    max_message_bytes: int,
    dimension: int,
    tokens_per_minute: float | None = None,
) -> WindowResult:
    """One dispatch window: its changes by the real diff, its messages by the real sender, then their work."""
    lane, pieces = task
    model = model_id(dimension)
    window: list[Change] = []
    for kind, start, stop in pieces:
        window.extend(diff_changes(kind, start, stop, seed=seed, model=model))
    if any(c.priority is not (lane == "p") for c in window):
        raise AssertionError("the diff put a change in the other lane than the model expects")
    sqs = _RecordingSqs()
    sender = SqsChangeSender(
        sqs, queue_url="n", priority_queue_url="p", run_id=RUN_ID, max_message_bytes=max_message_bytes, catalog=CATALOG
    )
    sender.send(batches(window, DISPATCH_BATCH), priority=lane == "p")
    messages = []
    position = 0
    for entry in sqs.entries:
        count = int(entry["MessageAttributes"]["changes"]["StringValue"])
        chunk = window[position : position + count]
        position += count
        messages.append(
            message_work(
                lane, entry["MessageBody"], chunk, model=model, dimension=dimension, tokens_per_minute=tokens_per_minute
            )
        )
    if position != len(window):
        raise AssertionError(f"messages carry {position} changes of a window of {len(window)}")
    kinds: dict[str, int] = {}
    for change in window:
        kinds[change.kind.value] = kinds.get(change.kind.value, 0) + 1
    spool = sum(len(c.model_dump_json()) + 1 for c in window)
    return WindowResult(lane, messages, kinds, sqs.requests, spool)


def _window_work_star(
    args: tuple[tuple[str, list[tuple[ChangeKind, int, int]]], int, int, int, float | None],
) -> WindowResult:
    task, seed, max_message_bytes, dimension, tokens_per_minute = args
    return window_work(
        task, seed=seed, max_message_bytes=max_message_bytes, dimension=dimension, tokens_per_minute=tokens_per_minute
    )


def build_burst(
    changes: int,
    *,
    seed: int,
    max_message_bytes: int,
    dimension: int,
    tokens_per_minute: float | None = None,
    workers: int = 1,
    progress: bool = False,
) -> Burst:
    """The whole burst, window by window (in `workers` processes), in queue order. `tokens_per_minute`: each
    consumer's share (PipelineSettings.pace_openai_tokens_per_minute), which its embedder packs requests to."""
    started = time.perf_counter()
    tasks = [(task, seed, max_message_bytes, dimension, tokens_per_minute) for task in plan_windows(changes)]
    results: Iterator[WindowResult]
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        results = pool.map(_window_work_star, tasks, chunksize=1) if pool else map(_window_work_star, tasks)
        burst = Burst([], {}, 0, 0, 0.0)
        step = max(1, len(tasks) // 10)
        for done, result in enumerate(results, start=1):
            burst.messages.extend(result.messages)
            for kind, count in result.kinds.items():
                burst.kinds[kind] = burst.kinds.get(kind, 0) + count
            burst.sqs_requests += result.sqs_requests
            burst.spool_bytes += result.spool_bytes
            if progress and (done % step == 0 or done == len(tasks)):
                print(
                    f"  packed {done}/{len(tasks)} windows: {burst.changes:,} changes in {len(burst.messages):,} "
                    f"messages ({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    finally:
        if pool is not None:
            pool.shutdown()
    burst.seconds = time.perf_counter() - started
    return burst
