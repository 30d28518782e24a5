"""Every id the validator accepts reaches Pinecone, and a product Pinecone refuses holds back nothing else: the
AWS pipeline end to end under moto (S3 drop -> diff -> SQS -> consumer -> the Pinecone double, real SDK)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import product
from tests.e2e.test_aws_pipeline import BUCKET, CONFIG, World, drop, run_pipeline
from tests.integration.test_pinecone_index import ENCODED, PASSING  # encodings written out by hand from the README

# Refused by the validator: quarantined, never sent.
INVALID = ["   ", "\u3000", "\u200b", "é" * 256 + "x", "x" * 513]


def metadata_of(record: dict[str, Any]) -> dict[str, Any]:
    """The catalog metadata of a tests.conftest.product record, as the README's [metadata] rules store it."""
    return {name: record[name] for name in ("title", "price", "availability", "stock", "tags")}


def stored_metadata(vector: dict[str, Any]) -> dict[str, Any]:
    metadata = dict(vector["metadata"])
    metadata.pop("_text_hash")
    metadata.pop("_product_id", None)
    return metadata


def state(world: World) -> Any:
    from handlers import _shared

    return _shared.pipeline().state(_shared.pipeline().config("shop"))


def queues_empty(world: World) -> bool:
    return all(
        int(world.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][name]) == 0
        for url in world.queues.values()
        for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    )


def test_non_ascii_long_and_look_alike_ids_through_the_pipeline(world: World):
    ordinary = [product(f"sku-{i}") for i in range(400)]
    odd = [product(pid) for pid in [*ENCODED, *PASSING]]
    # The decomposed spelling of café-1 is the same product: a duplicate, quarantined.
    invalid = [product(pid) for pid in [*INVALID, "cafe\u0301-1"]]
    first = run_pipeline(world, drop(world, "v1.jsonl", [*odd, *ordinary, *invalid]))
    [run] = first["diff"]["runs"]
    assert run["counts"]["invalid"] == len(invalid) and run["counts"]["added"] == len(odd) + 400
    assert first["consumer"]["batchItemFailures"] == []
    stored = world.pinecone.vectors("shop")
    assert set(stored) == {*ENCODED.values(), *PASSING, *(r["sku"] for r in ordinary)}
    for record in [*odd, *ordinary]:
        vector = stored[ENCODED.get(record["sku"], record["sku"])]
        assert stored_metadata(vector) == metadata_of(record)
        assert vector["metadata"].get("_product_id") == (record["sku"] if record["sku"] in ENCODED else None)
    assert state(world).counts().pending == 0 and queues_empty(world)
    assert state(world).runs()[0].status.value == "succeeded"

    # A price change reaches the encoded vector in place; a deletion removes it.
    v2 = [product("café-1", price=2.5), *[r for r in odd if r["sku"] not in ("café-1", "🎉")], *ordinary]
    second = run_pipeline(world, drop(world, "v2.jsonl", v2))
    assert second["consumer"]["batchItemFailures"] == []
    stored = world.pinecone.vectors("shop")
    assert stored[ENCODED["café-1"]]["metadata"]["price"] == 2.5
    assert ENCODED["🎉"] not in stored and len(stored) == len(v2)
    assert state(world).counts().pending == 0


def test_a_product_pinecone_refuses_stays_pending_and_the_rest_of_its_message_commits(
    world: World, monkeypatch: pytest.MonkeyPatch
):
    from catalog_sync.bootstrap import api as deployed

    # A configuration that allows more metadata than Pinecone takes, and an adapter that lets it through: Pinecone
    # itself refuses the product, with a 400 for its whole upsert request.
    config = CONFIG.replace("{openai}", world.openai.base_url).replace(
        'id_field = "sku"', 'id_field = "sku"\nmax_metadata_bytes = 60000'
    )
    world.s3.put_object(Bucket=BUCKET, Key="config/shop.toml", Body=config.encode())
    monkeypatch.setattr("catalog_sync.adapters.pinecone.index.MAX_METADATA_BYTES", 10**6)
    records = [product(f"sku-{i}") for i in range(400)]
    big = product("café-big", availability="a" * 45_000)  # metadata only: the text stays short
    result = run_pipeline(world, drop(world, "v1.jsonl", [*records[:200], big, *records[200:]]))

    assert result["consumer"]["batchItemFailures"] == []  # the message succeeded: nothing to redeliver
    assert queues_empty(world)
    stored = world.pinecone.vectors("shop")
    assert set(stored) == {r["sku"] for r in records}
    refused = [r for r in world.pinecone.requests if r["path"] == "/vectors/upsert"]
    assert sum(1 for r in refused if any(v["metadata"].get("_product_id") == "café-big" for v in r["body"]["vectors"]))
    # Pending with Pinecone's reason, in the state, the status and the run.
    store = state(world)
    assert store.counts().pending == 1
    [rejection] = store.rejections()
    assert rejection.product_id == "café-big" and "400" in rejection.reason and "metadata too large" in rejection.reason
    status = deployed.catalog_status("shop", now=datetime.now(UTC))
    assert status is not None and status.rejected == 1 and status.rejections[0].product_id == "café-big"
    assert any(alert.code == "rejected" and "café-big" in alert.message for alert in status.health.alerts)
    [run] = store.runs()
    assert run.status.value == "succeeded" and run.counts["applied_rejected"] == 1
    assert run.counts["applied_upserted"] == 400

    # Once its record fits, the next drop commits it and the rejection is gone.
    fixed = product("café-big", availability="in_stock")
    again = run_pipeline(world, drop(world, "v2.jsonl", [*records, fixed]))
    assert again["consumer"]["batchItemFailures"] == []
    assert world.pinecone.vectors("shop")["~cafe-big~" + _digest("café-big")]["metadata"]["availability"] == "in_stock"
    assert store.rejections() == [] and store.counts().pending == 0


def _digest(product_id: str) -> str:
    # Computed here with hashlib from the README's rule (not with logic/vector_ids.py).
    import hashlib

    return hashlib.sha256(product_id.encode("utf-8")).hexdigest()[:32]
