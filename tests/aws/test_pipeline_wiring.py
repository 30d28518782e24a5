"""The pipeline's wiring: catalog configs found in the bucket (moto), and where a repair re-reads products from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from catalog_sync.adapters.aws.catalog_configs import (
    CatalogConfigs,
    CatalogNotFound,
    find_catalog_config,
    load_catalog_config,
)
from catalog_sync.bootstrap.aws import Pipeline
from catalog_sync.bootstrap.settings import PipelineSettings
from catalog_sync.models.changes import RunRecord, RunStatus
from catalog_sync.models.config import ConfigError
from catalog_sync.services.drops import repair_sources
from tests.aws.conftest import REGION

BUCKET = "catalog-bucket"
TOML = 'name = "{name}"\nid_field = "sku"\n[text]\nfields = ["title"]\n'
YAML = "name: {name}\nid_field: sku\ntext:\n  fields: [title]\n"


@pytest.fixture
def s3(aws_credentials: None) -> Any:
    with mock_aws():
        client = boto3.client("s3", region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        yield client


def put(s3: Any, key: str, body: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())


def test_a_config_is_found_among_catalogs_whose_names_share_its_prefix(s3: Any):
    # Listing "config/shop." returns these first, in key order: more than a page of 10 before config/shop.toml.
    for i in range(12):
        put(s3, f"config/shop.{chr(ord('a') + i)}.toml", TOML.format(name=f"shop.{chr(ord('a') + i)}"))
    put(s3, "config/shop.toml", TOML.format(name="shop"))
    assert find_catalog_config(s3, bucket=BUCKET, configs_prefix="config/", catalog="shop") == "config/shop.toml"
    assert load_catalog_config(s3, bucket=BUCKET, configs_prefix="config/", catalog="shop").name == "shop"
    assert load_catalog_config(s3, bucket=BUCKET, configs_prefix="config/", catalog="shop.c").name == "shop.c"


def test_yaml_configs_and_missing_ones(s3: Any):
    put(s3, "config/outlet.yaml", YAML.format(name="outlet"))
    put(s3, "config/shop.tomlish", TOML.format(name="shop"))  # not a config name
    assert load_catalog_config(s3, bucket=BUCKET, configs_prefix="config/", catalog="outlet").id_field == "sku"
    with pytest.raises(CatalogNotFound, match="no config for catalog 'shop'"):
        load_catalog_config(s3, bucket=BUCKET, configs_prefix="config/", catalog="shop")


def test_a_config_naming_another_catalog_is_refused(s3: Any):
    put(s3, "config/shop.toml", TOML.format(name="outlet"))
    with pytest.raises(ConfigError, match="names catalog 'outlet'") as refused:
        load_catalog_config(s3, bucket=BUCKET, configs_prefix="config/", catalog="shop")
    assert not isinstance(refused.value, CatalogNotFound)


def test_configs_are_kept_for_a_while(s3: Any):
    now = [0.0]
    configs = CatalogConfigs(s3, bucket=BUCKET, configs_prefix="config/", max_age=60, clock=lambda: now[0])
    assert not configs.exists("shop")
    put(s3, "config/shop.toml", TOML.format(name="shop"))
    assert configs.get("shop").text.fields == ["title"]
    put(s3, "config/shop.toml", TOML.format(name="shop").replace('["title"]', '["title", "brand"]'))
    s3.delete_object(Bucket=BUCKET, Key="config/shop.toml")
    assert configs.exists("shop") and configs.get("shop").text.fields == ["title"]  # cached
    now[0] = 61
    assert not configs.exists("shop")
    with pytest.raises(CatalogNotFound):
        configs.get("shop")


def test_the_pipeline_loads_configs_the_same_way(s3: Any, monkeypatch: pytest.MonkeyPatch):
    for i in range(12):
        put(s3, f"config/shop.{chr(ord('a') + i)}.toml", TOML.format(name=f"shop.{chr(ord('a') + i)}"))
    put(s3, "config/shop.yml", YAML.format(name="shop"))
    settings = PipelineSettings(
        table_name="t", bucket=BUCKET, queue_url="q", priority_queue_url="p", pinecone_host="h", pinecone_secret="s"
    )
    assert Pipeline(settings, s3=s3).config("shop").name == "shop"


def test_pipeline_settings_keep_pushes_apart_from_catalogs():
    common: dict[str, Any] = {
        "table_name": "t",
        "bucket": BUCKET,
        "queue_url": "q",
        "priority_queue_url": "p",
        "pinecone_host": "h",
        "pinecone_secret": "s",
    }
    assert PipelineSettings(**common).pushes_prefix == "pushes/"
    with pytest.raises(ValueError, match="overlap"):
        PipelineSettings(**common, pushes_prefix="catalogs/pushed/")


# ---------------------------------------------------------------- repairs


def run(seq: int, key: str) -> RunRecord:
    return RunRecord(
        run_id=f"r{seq}",
        seq=seq,
        catalog="shop",
        mode="ids" if key.startswith("pushes/") else "incremental",
        source=f"s3://{BUCKET}/{key}",
        status=RunStatus.DISPATCHED,
        started_at=datetime.now(UTC),
    )


def test_a_product_is_repaired_from_the_object_its_desired_state_came_from():
    runs = [  # newest first, as the state store lists them
        run(5, "pushes/shop/p2.jsonl"),
        run(4, "catalogs/shop/v2.jsonl"),
        run(3, "pushes/shop/p1.json"),
        run(2, "catalogs/shop/v1.jsonl"),
    ]
    desired = {"a": 5, "b": 4, "c": 3, "d": 2, "e": 1}  # "e": a run older than the runs looked at; "f": none
    sources = repair_sources(
        runs,
        desired,
        ["a", "b", "c", "d", "e", "f"],
        bucket=BUCKET,
        pushes_prefix="pushes/",
    )
    assert sources == {
        "pushes/shop/p2.jsonl": ["a"],
        # Set by a catalog run, or by a run too old to tell: the newest catalog object when the re-sync runs (it
        # holds every product; a drop newer than v2 may land before then).
        None: ["b", "d", "e"],
        "pushes/shop/p1.json": ["c"],  # a push that only deleted "c" (not committed yet): "c" is deleted again
    }  # "f" has no desired state (its deletion was committed): nothing to put back


def test_products_a_push_did_not_set_are_read_from_the_newest_object():
    sources = repair_sources(
        [run(1, "pushes/shop/p.jsonl")],
        {"a": 1, "b": 7, "c": 0},
        ["a", "b", "c"],
        bucket=BUCKET,
        pushes_prefix="pushes/",
    )
    assert sources == {"pushes/shop/p.jsonl": ["a"], None: ["b", "c"]}
    assert repair_sources([], {}, ["a"], bucket=BUCKET, pushes_prefix="pushes/") == {}


def test_a_continuation_is_queued_as_an_asynchronous_invocation_and_a_refusal_raises(aws_credentials: None):
    from botocore.stub import Stubber

    from catalog_sync.adapters.aws.diff_invoker import InvokeFailed

    settings = PipelineSettings(
        table_name="t", bucket=BUCKET, queue_url="q", priority_queue_url="p", pinecone_host="h", pinecone_secret="s"
    )
    client = boto3.client("lambda", region_name=REGION)
    pipeline = Pipeline(settings, s3=object(), sqs=object(), dynamodb=object(), lambda_client=client)
    payload = {"resume": {"catalog": "shop", "run_id": "r1"}}
    with Stubber(client) as stub:
        expected = {
            "FunctionName": "arn:diff",
            "InvocationType": "Event",
            "Payload": b'{"resume":{"catalog":"shop","run_id":"r1"}}',
        }
        stub.add_response("invoke", {"StatusCode": 202}, expected)
        stub.add_response("invoke", {"StatusCode": 500}, expected)
        pipeline.invoke_self("arn:diff", payload)
        with pytest.raises(InvokeFailed):
            pipeline.invoke_self("arn:diff", payload)
        stub.assert_no_pending_responses()
