"""The AwsSolutions findings this design accepts, each with its reason (cdk-nag checks the rest)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from catalog_sync.adapters.aws.bucket_layout import (
    CATALOGS_PREFIX,
    CLAIMS_PREFIX,
    CONFIGS_PREFIX,
    PUSHES_PREFIX,
    QUARANTINE_PREFIX,
    RUNS_PREFIX,
)
from infra.components.api import WebhookApi
from infra.components.functions import Functions
from infra.components.queues import Queues
from infra.components.secrets import Secrets
from infra.components.storage import Storage
from infra.config import StackConfig


def acknowledge_findings(
    stack: cdk.Stack,
    *,
    config: StackConfig,
    storage: Storage,
    queues: Queues,
    secrets: Secrets,
    functions: Functions,
    api: WebhookApi,
) -> None:

    def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
        cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))

    def arn(token: str) -> str:
        # How cdk-nag spells a resource in a finding: <LogicalId.Arn>
        resolved = stack.resolve(token)
        logical_id, attribute = resolved["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"

    def policy_of(function: lambda_.Function) -> IConstruct:
        return function.role.node.find_child("DefaultPolicy") if function.role else function

    bucket = arn(storage.bucket.bucket_arn)
    for name, function in functions.by_name().items():
        acknowledge(
            function,
            "L1",
            "Python 3.12 is the runtime the functions and their dependency layer are built and tested for; "
            "moving to a newer one is a deliberate upgrade, not a default",
        )
        acknowledge(
            policy_of(function),
            f"IAM5[Resource::{arn(functions.log_groups[name].log_group_arn)}:log-stream:*]",
            "Lambda creates a new log stream per execution environment, in the function's own log group only",
        )
        acknowledge(
            policy_of(function),
            "IAM5[Resource::*]",
            "X-Ray tracing: xray:PutTraceSegments and PutTelemetryRecords support no resource-level permissions"
            + (
                "; lambda:ListEventSourceMappings neither (updates are limited to the consumer's two mappings)"
                if function is functions.webhook
                else ""
            ),
        )
    prefixes = {
        CONFIGS_PREFIX: "catalog configurations, read by the functions that load a catalog's settings",
        CLAIMS_PREFIX: "claim checks of changes too large for a message, written by the diff, read by consumers",
        CATALOGS_PREFIX: "catalog drops, read by the diff at any version",
        RUNS_PREFIX: "a run's archived changes and checkpoint, written and read by the diff",
        QUARANTINE_PREFIX: "quarantined records, written by the diff",
        PUSHES_PREFIX: "products pushed through the webhook, written by it and read by the diff",
    }
    for function, used in (
        (functions.diff, list(prefixes)),
        (functions.consumer, [CONFIGS_PREFIX, CLAIMS_PREFIX]),
        (functions.webhook, [CONFIGS_PREFIX, PUSHES_PREFIX]),
        (functions.health, [CONFIGS_PREFIX]),
    ):
        for prefix in used:
            acknowledge(
                policy_of(function),
                f"IAM5[Resource::{bucket}/{prefix}*]",
                f"Objects under one prefix of the stack's own bucket: {prefixes[prefix]}",
            )
    qualified_diff = f"arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:{functions.diff_name}:*"
    for function in (functions.diff, functions.consumer, functions.webhook):
        acknowledge(
            policy_of(function),
            f"IAM5[Resource::{qualified_diff}]",
            "The diff function's own versions and aliases: it may be invoked (and re-invokes itself) by a "
            "qualified ARN",
        )
    rules = f"arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/{config.schedule_rule_prefix}*"
    acknowledge(
        policy_of(functions.webhook),
        f"IAM5[Resource::{rules}]",
        "The catalogs' schedule rules, which the webhook enables, disables or re-times: the stack's own names",
    )
    for secret, why in (
        (secrets.pinecone, "a Pinecone API key is issued by Pinecone; rotate it there, then put the new value"),
        (secrets.openai, "an OpenAI API key is issued by OpenAI; rotate it there, then put the new value"),
        (
            secrets.webhook,
            "the webhook key is shared with the systems that sign requests; rotating it is coordinated with them",
        ),
    ):
        if secret is not None:
            acknowledge(secret, "SMG4", f"No automatic rotation: {why}")
    acknowledge(
        queues.diff_failures,
        "SQS3",
        "This queue is itself the dead-letter destination of the diff's failed invocations and events",
    )
    acknowledge(
        api.api,
        "APIG4",
        "Webhook callers are third-party systems that cannot sign with SigV4: every route except /health and "
        "/openapi.json checks an HMAC-SHA256 signature with a key from Secrets Manager in the function",
    )
    notifications = stack.node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
    if notifications is not None:
        acknowledge(
            notifications,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's own custom resource that turns on the bucket's EventBridge notifications, created by CDK",
        )
