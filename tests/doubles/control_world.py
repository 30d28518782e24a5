"""What the webhook's control routes talk to, built under moto: the signing key (Secrets Manager), the bucket with
a catalog's config, the state table (Idempotency-Key records), the catalog's schedule rule (EventBridge) and the
consumer function's queue mappings (Lambda, SQS).

Call `build_control_world` inside `mock_aws()`; `setenv` sets the webhook's environment (a pytest monkeypatch's
setenv, or os.environ's for a script).
"""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3

from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.models.changes import RunStatus
from tests.doubles.aws_resources import TABLE, create_table
from tests.doubles.catalog_config import catalog_toml

REGION = "us-east-1"
BUCKET = "catalog-bucket"
DIFF_FUNCTION = "catalog-sync-diff"
CONSUMER_FUNCTION = "catalog-sync-consumer"
RULE_PREFIX = "catalog-sync-schedule-"
SCHEDULE = "rate(6 hours)"
SHOP_CONFIG = catalog_toml(required_fields=["title"], embedder={"kind": "hashing"})


@dataclass
class ControlWorld:
    key: bytes
    secret_name: str
    clients: dict[str, Any]
    rule: str
    run_id: str  # shop's one run
    mappings: list[str] = field(default_factory=list)  # UUIDs
    queues: list[str] = field(default_factory=list)  # ARNs

    def __getattr__(self, service: str) -> Any:
        try:
            return self.clients[service]
        except KeyError:
            raise AttributeError(service) from None

    def pushed(self) -> dict[str, bytes]:
        """The push objects in the bucket, by key."""
        s3 = self.clients["s3"]
        listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="pushes/").get("Contents", [])
        return {obj["Key"]: s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read() for obj in listed}

    def mapping_states(self) -> dict[str, str]:
        found = self.clients["lambda"].list_event_source_mappings(FunctionName=CONSUMER_FUNCTION)
        return {mapping["UUID"]: mapping["State"] for mapping in found["EventSourceMappings"]}


def _consumer_function(lambda_client: Any, iam: Any) -> None:
    role = iam.create_role(
        RoleName=f"consumer-{uuid.uuid4().hex[:8]}",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        ),
    )["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "def handler(event, context):\n    return None\n")
    lambda_client.create_function(
        FunctionName=CONSUMER_FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="handler.handler",
        Code={"ZipFile": code.getvalue()},
    )


def build_control_world(setenv: Callable[[str, str], None], *, config: str = SHOP_CONFIG) -> ControlWorld:
    clients = {
        name: boto3.client(name, region_name=REGION)
        for name in ("s3", "dynamodb", "events", "lambda", "sqs", "iam", "secretsmanager")
    }
    key = f"whsec-{uuid.uuid4().hex}".encode()
    secret_name = f"catalog-sync/webhook-{uuid.uuid4().hex[:8]}"  # distinct: powertools caches secrets by name
    clients["secretsmanager"].create_secret(Name=secret_name, SecretString=key.decode())
    clients["s3"].create_bucket(Bucket=BUCKET)
    clients["s3"].put_object(Bucket=BUCKET, Key="config/shop.toml", Body=config.encode())
    create_table(clients["dynamodb"])
    # One succeeded run of shop: the status routes answer for catalogs with state.
    state = DynamoStateStore(clients["dynamodb"], table=TABLE, catalog="shop", concurrency=1)
    run = state.begin_run(mode="incremental", source=f"s3://{BUCKET}/catalogs/shop/v1.jsonl")
    run.status = RunStatus.SUCCEEDED
    run.counts = {"added": 3}
    state.finish_run(run)
    rule = f"{RULE_PREFIX}shop"
    clients["events"].put_rule(
        Name=rule, ScheduleExpression=SCHEDULE, State="ENABLED", Description="Scheduled incremental sync of shop"
    )
    clients["events"].put_targets(
        Rule=rule,
        Targets=[
            {
                "Id": "diff",
                "Arn": f"arn:aws:lambda:{REGION}:123456789012:function:{DIFF_FUNCTION}",
                "Input": json.dumps({"trigger": "schedule", "catalog": "shop", "mode": "incremental"}),
            }
        ],
    )
    _consumer_function(clients["lambda"], clients["iam"])
    world = ControlWorld(key=key, secret_name=secret_name, clients=clients, rule=rule, run_id=run.run_id)
    for name in ("priority", "changes"):
        url = clients["sqs"].create_queue(QueueName=f"{name}-{uuid.uuid4().hex[:6]}")["QueueUrl"]
        arn = clients["sqs"].get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        mapping = clients["lambda"].create_event_source_mapping(
            EventSourceArn=arn, FunctionName=CONSUMER_FUNCTION, BatchSize=10
        )
        world.mappings.append(mapping["UUID"])
        world.queues.append(arn)
    for name, value in {
        "AWS_DEFAULT_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "CATALOG_SYNC_WEBHOOK_SECRET": secret_name,
        "CATALOG_SYNC_DIFF_FUNCTION": DIFF_FUNCTION,
        "CATALOG_SYNC_BUCKET": BUCKET,
        "CATALOG_SYNC_TABLE_NAME": TABLE,
        "CATALOG_SYNC_SCHEDULE_RULE_PREFIX": RULE_PREFIX,
        "CATALOG_SYNC_CONSUMER_FUNCTION": CONSUMER_FUNCTION,
    }.items():
        setenv(name, value)
    return world
