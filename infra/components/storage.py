"""The catalog bucket (catalogs, configurations and what the functions keep there), its access logs, and the
state table."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct

from catalog_sync.adapters.aws.bucket_layout import CLAIMS_PREFIX, PUSHES_PREFIX, RUNS_PREFIX
from catalog_sync.adapters.aws.dynamodb_state.keys import EXPIRY_ATTRIBUTE, PARTITION_KEY, SORT_KEY
from infra.components.naming import TransparentConstruct
from infra.config import StackConfig


class Storage(TransparentConstruct):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(90))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        queue_days = cdk.Duration.days(config.queues.retention_days + 1)
        self.bucket = s3.Bucket(
            self,
            "CatalogBucket",
            versioned=True,  # a rollback re-syncs an earlier version of a catalog object
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            event_bridge_enabled=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="catalog-bucket/",
            lifecycle_rules=[
                # Claim checks and dispatch archives outlive the messages that point at them, then go.
                s3.LifecycleRule(id="claims", prefix=CLAIMS_PREFIX, expiration=queue_days),
                s3.LifecycleRule(id="runs", prefix=RUNS_PREFIX, expiration=queue_days),
                s3.LifecycleRule(id="pushes", prefix=PUSHES_PREFIX, expiration=queue_days),
                s3.LifecycleRule(id="old-versions", noncurrent_version_expiration=cdk.Duration.days(90)),
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.table = dynamodb.Table(
            self,
            "StateTable",
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=EXPIRY_ATTRIBUTE,  # cache entries, nonces, message markers
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
