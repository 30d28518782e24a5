"""The state table's key layout: every item's (pk, sk), for the state, the embedding cache and the webhook.

    P#<catalog>#<shard>   <product id>   dv, del, fp, th, mh, fh (desired)   cv, cth, cmh (committed)
    M#<catalog>           index          embedding_model, text_template, embedder (JSON: kind, settings, dimension)
    M#<catalog>           runs           seq (the run counter)
    M#<catalog>           source         modified, source_key, source_version, source_sequencer, claims (the newest
                                         catalog object read; claims counts its writes), prior_* (the claim it
                                         replaced)
    R#<catalog>           <run id>       one run: run_json, changes_total/changes_done, a_<name> (consumers' counts)
    RUN#<run id>          run            catalog (finds a run's catalog from its id alone)
    CATALOGS              <catalog>      shards, last_run (every catalog that has run, for listing them)
    MSG#<catalog>#<run>   <message id>   expires_at (a message whose progress was counted: counted once)
    J#<catalog>           <product id>   v, action, reason, at, expires_at (a change the index refused: current
                                         while v is the product's desired, uncommitted version)
    E#<cache key>         v              vec, model, expires_at (an embedding, adapters/aws/dynamodb_cache.py)
    NONCE#<nonce>         seen           expires_at (a signed request's nonce, adapters/aws/seen_nonces.py)

(The webhook's Idempotency-Key records are powertools', keyed as adapters/aws/idempotency.py describes.)
Products are spread over shards so that a catalog's state loads with parallel queries.
"""

from __future__ import annotations

from typing import Any

import xxhash

# The table's schema (the stack creates it with these): the key, and the attribute its TTL deletes items by.
PARTITION_KEY = "pk"
SORT_KEY = "sk"
EXPIRY_ATTRIBUTE = "expires_at"

DEFAULT_SHARDS = 16
PRODUCTS_PREFIX = "P#"
META_PREFIX = "M#"
RUNS_PREFIX = "R#"
RUN_INDEX_PREFIX = "RUN#"
CATALOGS_PK = "CATALOGS"
MESSAGES_PREFIX = "MSG#"
REJECTIONS_PREFIX = "J#"
EMBEDDINGS_PREFIX = "E#"
NONCE_PREFIX = "NONCE#"

Key = dict[str, Any]


def _key(pk: str, sk: str) -> Key:
    return {PARTITION_KEY: {"S": pk}, SORT_KEY: {"S": sk}}


def shard_partition(catalog: str, shard: int) -> str:
    return f"{PRODUCTS_PREFIX}{catalog}#{shard:03d}"


def product_partition(catalog: str, shards: int, product_id: str) -> str:
    return shard_partition(catalog, xxhash.xxh3_64_intdigest(product_id.encode()) % shards)


def product_key(catalog: str, shards: int, product_id: str) -> Key:
    return _key(product_partition(catalog, shards, product_id), product_id)


def meta_key(catalog: str, name: str) -> Key:
    """One of the catalog's own items: "index" (settings), "runs" (the counter), "source" (the newest object)."""
    return _key(f"{META_PREFIX}{catalog}", name)


def runs_partition(catalog: str) -> str:
    return f"{RUNS_PREFIX}{catalog}"


def run_key(catalog: str, run_id: str) -> Key:
    # Run ids begin with their start time, so the sort key orders runs by time.
    return _key(runs_partition(catalog), run_id)


def run_index_key(run_id: str) -> Key:
    return _key(f"{RUN_INDEX_PREFIX}{run_id}", "run")


def catalog_key(catalog: str) -> Key:
    return _key(CATALOGS_PK, catalog)


def message_marker_key(catalog: str, run_id: str, message_id: str) -> Key:
    return _key(f"{MESSAGES_PREFIX}{catalog}#{run_id}", message_id)


def rejections_partition(catalog: str) -> str:
    return f"{REJECTIONS_PREFIX}{catalog}"


def rejection_key(catalog: str, product_id: str) -> Key:
    return _key(rejections_partition(catalog), product_id)


def embedding_key(cache_key: str) -> Key:
    return _key(f"{EMBEDDINGS_PREFIX}{cache_key}", "v")


def nonce_key(nonce: str) -> Key:
    return _key(f"{NONCE_PREFIX}{nonce}", "seen")
