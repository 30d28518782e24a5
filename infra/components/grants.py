"""What each function may do beyond writing its own logs: its prefixes of the bucket, the table, the queues and
the secrets it needs, and nothing else."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_

from catalog_sync.adapters.aws.bucket_layout import (
    CATALOGS_PREFIX,
    CLAIMS_PREFIX,
    CONFIGS_PREFIX,
    PUSHES_PREFIX,
    QUARANTINE_PREFIX,
    RUNS_PREFIX,
)
from infra.components.functions import Functions
from infra.components.queues import Queues
from infra.components.secrets import Secrets
from infra.components.storage import Storage
from infra.config import StackConfig


def grant_least_privilege(
    stack: cdk.Stack, functions: Functions, *, config: StackConfig, storage: Storage, queues: Queues, secrets: Secrets
) -> None:
    diff_arn = stack.format_arn(
        service="lambda",
        resource="function",
        resource_name=functions.diff_name,
        arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
    )
    for function, writes in ((functions.diff, True), (functions.consumer, False)):
        _grant_pipeline(function, diff_arn, writes=writes, storage=storage, queues=queues, secrets=secrets)
    _grant_webhook(stack, functions, diff_arn, config=config, storage=storage, secrets=secrets)
    _grant_health(functions.health, storage)


def _grant_pipeline(
    function: lambda_.Function, diff_arn: str, *, writes: bool, storage: Storage, queues: Queues, secrets: Secrets
) -> None:
    """What the diff (writes=True) and the consumer need: their prefixes, the table, queues and secrets."""
    bucket = storage.bucket
    # The diff writes claim checks and the consumer reads them; the diff reads its run archives and any version
    # of a catalog drop (rollbacks); both read the catalogs' configurations.
    reads = [CONFIGS_PREFIX, RUNS_PREFIX, PUSHES_PREFIX] if writes else [CONFIGS_PREFIX, CLAIMS_PREFIX]
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{p}*") for p in reads])
    )
    listed = [f"{CONFIGS_PREFIX}*"]
    if writes:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[bucket.arn_for_objects(f"{CATALOGS_PREFIX}*")],
            )
        )
        # The newest drop of a catalog (a scheduled run) is found by listing its prefix.
        listed.append(f"{CATALOGS_PREFIX}*")
    # A catalog's configuration is found by listing (config.toml or .yaml).
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": listed}},
        )
    )
    if writes:
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject", "s3:AbortMultipartUpload"],
                resources=[bucket.arn_for_objects(f"{p}*") for p in (CLAIMS_PREFIX, RUNS_PREFIX, QUARANTINE_PREFIX)],
            )
        )
        for queue in queues.lanes:
            queue.grant_send_messages(function)
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=[
                "dynamodb:GetItem",
                "dynamodb:BatchGetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:BatchWriteItem",
            ],
            resources=[storage.table.table_arn],
        )
    )
    secrets.pinecone.grant_read(function)
    if secrets.openai is not None:
        secrets.openai.grant_read(function)
    # The diff continues in a new invocation of itself near its timeout (by its invoked ARN, which may carry a
    # version or alias); consumers ask it for repairs.
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[diff_arn, f"{diff_arn}:*"])
    )


def _grant_catalog_configs(function: lambda_.Function, storage: Storage) -> None:
    """Reading the catalogs' configurations, found by listing `config/` (S3 answers 403 for a missing key)."""
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[storage.bucket.arn_for_objects(f"{CONFIGS_PREFIX}*")])
    )
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["s3:ListBucket"],
            resources=[storage.bucket.bucket_arn],
            conditions={"StringLike": {"s3:prefix": [f"{CONFIGS_PREFIX}*"]}},
        )
    )


def _grant_webhook(
    stack: cdk.Stack, functions: Functions, diff_arn: str, *, config: StackConfig, storage: Storage, secrets: Secrets
) -> None:
    """Sync and push (via the diff), idempotency records, the catalogs' schedules, pausing consumption."""
    function = functions.webhook
    secrets.webhook.grant_read(function)
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[diff_arn, f"{diff_arn}:*"])
    )
    _grant_catalog_configs(function, storage)
    function.add_to_role_policy(
        iam.PolicyStatement(actions=["s3:PutObject"], resources=[storage.bucket.arn_for_objects(f"{PUSHES_PREFIX}*")])
    )
    # powertools Idempotency keeps its records in the state table (a partition of their own); the status
    # routes read the catalogs' state; the gate records each accepted nonce (NONCE#, until it expires).
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=[
                "dynamodb:GetItem",
                "dynamodb:Query",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
            ],
            resources=[storage.table.table_arn],
        )
    )
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["events:DescribeRule", "events:EnableRule", "events:DisableRule", "events:PutRule"],
            resources=[
                stack.format_arn(service="events", resource="rule", resource_name=f"{config.schedule_rule_prefix}*")
            ],
        )
    )
    # Pausing and resuming consumption: the consumer's two event source mappings, nothing else.
    function.add_to_role_policy(iam.PolicyStatement(actions=["lambda:ListEventSourceMappings"], resources=["*"]))
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["lambda:UpdateEventSourceMapping"],
            resources=[mapping.event_source_mapping_arn for mapping in functions.consumer_mappings],
        )
    )


def _grant_health(function: lambda_.Function, storage: Storage) -> None:
    """The health function reads the state and the catalogs' configurations; it writes nothing."""
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
            resources=[storage.table.table_arn],
        )
    )
    _grant_catalog_configs(function, storage)
