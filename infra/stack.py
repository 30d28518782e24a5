"""The catalog-sync stack: the bucket catalogs are dropped into, the diff, consumer and webhook functions, the
queues between them, the state table, secrets, alarms and a dashboard. Every function may act only on its own
resources; every threshold comes from the StackConfig.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import (
    aws_apigateway as apigateway_v1,
)
from aws_cdk import (
    aws_apigatewayv2 as apigw,
)
from aws_cdk import (
    aws_apigatewayv2_integrations as integrations,
)
from aws_cdk import (
    aws_cloudwatch as cloudwatch,
)
from aws_cdk import (
    aws_cloudwatch_actions as cloudwatch_actions,
)
from aws_cdk import (
    aws_dynamodb as dynamodb,
)
from aws_cdk import (
    aws_events as events,
)
from aws_cdk import (
    aws_events_targets as targets,
)
from aws_cdk import (
    aws_iam as iam,
)
from aws_cdk import (
    aws_lambda as lambda_,
)
from aws_cdk import (
    aws_lambda_destinations as destinations,
)
from aws_cdk import (
    aws_lambda_event_sources as event_sources,
)
from aws_cdk import (
    aws_logs as logs,
)
from aws_cdk import (
    aws_s3 as s3,
)
from aws_cdk import (
    aws_secretsmanager as secretsmanager,
)
from aws_cdk import (
    aws_sns as sns,
)
from aws_cdk import (
    aws_sns_subscriptions as subscriptions,
)
from aws_cdk import (
    aws_sqs as sqs,
)
from aws_cdk import (
    aws_ssm as ssm,
)
from constructs import Construct, IConstruct

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.bucket_layout import (
    CATALOGS_PREFIX,
    CLAIMS_PREFIX,
    CONFIGS_PREFIX,
    PUSHES_PREFIX,
    QUARANTINE_PREFIX,
    RUNS_PREFIX,
)
from infra.config import StackConfig

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
LAYERS_DIR = ROOT / "layers"
# What the functions' asset leaves out: caches, and the local embedder's model (never used on Lambda).
FUNCTION_EXCLUDES = ["**/__pycache__", "**/*.pyc", "*.egg-info", "catalog_sync/adapters/embedders/static_minilm"]
# HTTP API access log fields ($context variables of HTTP APIs, not REST APIs').
HTTP_API_ACCESS_LOG = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "method": "$context.httpMethod",
    "routeKey": "$context.routeKey",
    "path": "$context.path",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "integrationError": "$context.integrationErrorMessage",
}
TTL_ATTRIBUTE = "expires_at"  # the embedding cache's expiry (DynamoEmbeddingCache)


@jsii.implements(cdk.ILocalBundling)
class LocalLayerBuild:
    """Builds the dependency layer with pip on this machine (binary wheels for the target platform): no Docker."""

    def __init__(self, architecture: str) -> None:
        self.architecture = architecture

    def try_bundle(self, output_dir: str, *, image: Any = None, **_: Any) -> bool:
        subprocess.run(
            [
                sys.executable,
                str(LAYERS_DIR / "build.py"),
                "--output",
                output_dir,
                "--architecture",
                self.architecture,
                "--requirements",
                str(LAYERS_DIR / "requirements.txt"),
            ],
            check=True,
        )
        return True


@jsii.implements(apigw.IAccessLogSettings)
class AccessLogs:
    """Access logging for an HTTP API stage (the interface has no ready-made class in Python)."""

    def __init__(self, *, destination: apigw.IAccessLogDestination, log_format: apigateway_v1.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigw.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway_v1.AccessLogFormat:
        return self._format


class CatalogSyncStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}

        self._storage()
        self._queues()
        self._secrets()
        self._alerts()
        self._functions()
        self._triggers()
        self._webhook()
        self._alarms()
        self._dashboard()
        self._outputs()
        self._acknowledge_findings()

    # ------------------------------------------------------------------ storage

    def _storage(self) -> None:
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(90))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        queue_days = cdk.Duration.days(self.config.queues.retention_days + 1)
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
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    # ------------------------------------------------------------------ queues

    def _queue(self, name: str) -> tuple[sqs.Queue, sqs.Queue]:
        settings = self.config.queues
        dead_letters = sqs.Queue(
            self,
            f"{name}DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        queue = sqs.Queue(
            self,
            name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            max_message_size_bytes=settings.max_message_bytes,
            retention_period=cdk.Duration.days(settings.retention_days),
            visibility_timeout=cdk.Duration.seconds(self.config.visibility_timeout_seconds),
            dead_letter_queue=sqs.DeadLetterQueue(queue=dead_letters, max_receive_count=settings.max_receive_count),
        )
        return queue, dead_letters

    def _queues(self) -> None:
        self.change_queue, self.change_dlq = self._queue("ChangeQueue")
        self.priority_queue, self.priority_dlq = self._queue("PriorityQueue")
        # Diff invocations that failed after Lambda's own retries (S3 drops, schedules, webhook calls).
        self.diff_failures = sqs.Queue(
            self,
            "DiffFailures",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )

    # ------------------------------------------------------------------ secrets and alerts

    def _secrets(self) -> None:
        placeholder = secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=32)
        self.pinecone_secret = secretsmanager.Secret(
            self,
            "PineconeApiKey",
            description="catalog-sync: the Pinecone API key (set its value after the first deploy)",
            generate_secret_string=placeholder,
        )
        self.openai_secret = (
            secretsmanager.Secret(
                self,
                "OpenAIApiKey",
                description="catalog-sync: the OpenAI API key (set its value after the first deploy)",
                generate_secret_string=placeholder,
            )
            if self.config.openai
            else None
        )
        # A random key from the start; callers of the webhook sign their requests with it.
        self.webhook_secret = secretsmanager.Secret(
            self,
            "WebhookSigningKey",
            description="catalog-sync: the HMAC-SHA256 key webhook requests are signed with",
            generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=64),
        )

    def _alerts(self) -> None:
        self.alert_topic = sns.Topic(self, "Alerts", display_name="catalog-sync alerts", enforce_ssl=True)
        for email in self.config.alarms.alert_emails:
            self.alert_topic.add_subscription(subscriptions.EmailSubscription(email))

    # ------------------------------------------------------------------ functions

    def _retain_logs(self, log_group: logs.LogGroup) -> None:
        # The days are validated against what CloudWatch Logs accepts (config.py); jsii's enum has no numbers.
        resource = log_group.node.default_child
        assert isinstance(resource, logs.CfnLogGroup)
        resource.retention_in_days = self.config.functions.log_retention_days

    def _function(
        self,
        name: str,
        *,
        handler: str,
        memory_mb: int,
        timeout_seconds: int,
        ephemeral_storage_mb: int,
        environment: dict[str, str],
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self,
            f"{name}Logs",
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self._retain_logs(log_group)
        self.log_groups[name] = log_group
        # An explicit role instead of the AWS managed basic-execution policy: logs only to its own group.
        role = iam.Role(
            self,
            f"{name}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"catalog-sync {name} function",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn, f"{log_group.log_group_arn}:log-stream:*"],
            )
        )
        return lambda_.Function(
            self,
            name,
            function_name=f"{self.stack_name}-{name.lower()}",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=FUNCTION_EXCLUDES),
            layers=[self.powertools_layer, self.dependency_layer],
            memory_size=memory_mb,
            timeout=cdk.Duration.seconds(timeout_seconds),
            ephemeral_storage_size=cdk.Size.mebibytes(ephemeral_storage_mb),
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "POWERTOOLS_SERVICE_NAME": names.SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": names.NAMESPACE,
                **environment,
            },
        )

    def _functions(self) -> None:
        config = self.config
        self.powertools_layer = lambda_.LayerVersion.from_layer_version_arn(
            self,
            "PowertoolsLayer",
            ssm.StringParameter.value_for_string_parameter(
                self, f"/aws/service/powertools/python/arm64/python3.12/{config.powertools_version}"
            ),
        )
        # Layers unpack in order, later ones over earlier ones: ours must come after Powertools (which ships its
        # own pydantic), and CDK orders a function's layers by construct path, hence the name.
        self.dependency_layer = lambda_.LayerVersion(
            self,
            "RuntimeDependencies",
            description="catalog-sync runtime dependencies (layers/requirements.txt)",
            compatible_runtimes=[lambda_.Runtime.PYTHON_3_12],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            code=lambda_.Code.from_asset(
                str(LAYERS_DIR),
                exclude=["build", "**/__pycache__"],
                bundling=cdk.BundlingOptions(
                    image=lambda_.Runtime.PYTHON_3_12.bundling_image,  # unused: the local build always runs
                    local=LocalLayerBuild("arm64"),
                    command=["false"],
                ),
            ),
        )
        diff_name = self.diff_name = f"{self.stack_name}-diff"
        pipeline_environment = {
            "CATALOG_SYNC_TABLE_NAME": self.table.table_name,
            "CATALOG_SYNC_BUCKET": self.bucket.bucket_name,
            "CATALOG_SYNC_QUEUE_URL": self.change_queue.queue_url,
            "CATALOG_SYNC_PRIORITY_QUEUE_URL": self.priority_queue.queue_url,
            "CATALOG_SYNC_MAX_MESSAGE_BYTES": str(config.queues.max_message_bytes),
            "CATALOG_SYNC_PINECONE_HOST": config.pinecone_host,
            "CATALOG_SYNC_PINECONE_SECRET": self.pinecone_secret.secret_arn,
            "CATALOG_SYNC_STATE_SHARDS": str(config.state_shards),
            "CATALOG_SYNC_CATALOGS_PREFIX": CATALOGS_PREFIX,
            "CATALOG_SYNC_CONFIGS_PREFIX": CONFIGS_PREFIX,
            "CATALOG_SYNC_PUSHES_PREFIX": PUSHES_PREFIX,
            "CATALOG_SYNC_DIFF_FUNCTION": diff_name,
        }
        if self.openai_secret is not None:
            pipeline_environment["CATALOG_SYNC_OPENAI_SECRET"] = self.openai_secret.secret_arn

        self.diff = self._function(
            "Diff",
            handler="handlers.diff.handler",
            memory_mb=config.functions.diff.memory_mb,
            timeout_seconds=config.functions.diff.timeout_seconds,
            ephemeral_storage_mb=config.functions.diff.ephemeral_storage_mb,
            environment=pipeline_environment,
        )
        self.diff.configure_async_invoke(
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
            on_failure=destinations.SqsDestination(self.diff_failures),
        )
        self.consumer = self._function(
            "Consumer",
            handler="handlers.consumer.handler",
            memory_mb=config.functions.consumer.memory_mb,
            timeout_seconds=config.functions.consumer.timeout_seconds,
            ephemeral_storage_mb=config.functions.consumer.ephemeral_storage_mb,
            # Each consumer's share of the rate limits, which it paces its requests to.
            environment={**pipeline_environment, **config.consumer_environment()},
        )
        settings = config.queues
        self.consumer_mappings = []
        for queue in (self.priority_queue, self.change_queue):
            source = event_sources.SqsEventSource(
                queue,
                batch_size=config.consumer_batch_size,
                max_batching_window=cdk.Duration.seconds(settings.batching_window_seconds),
                report_batch_item_failures=True,
                max_concurrency=config.limits.per_queue_concurrency(),
            )
            self.consumer.add_event_source(source)
            self.consumer_mappings.append(source)
        consumer_name = f"{self.stack_name}-consumer"
        health_settings = config.health_settings().model_dump_json()
        self.webhook_function = self._function(
            "Webhook",
            handler="handlers.webhook.handler",
            memory_mb=config.functions.webhook.memory_mb,
            timeout_seconds=config.functions.webhook.timeout_seconds,
            ephemeral_storage_mb=config.functions.webhook.ephemeral_storage_mb,
            environment={
                "CATALOG_SYNC_WEBHOOK_SECRET": self.webhook_secret.secret_arn,
                "CATALOG_SYNC_DIFF_FUNCTION": diff_name,
                "CATALOG_SYNC_CONSUMER_FUNCTION": consumer_name,
                "CATALOG_SYNC_TABLE_NAME": self.table.table_name,
                "CATALOG_SYNC_STATE_SHARDS": str(config.state_shards),
                "CATALOG_SYNC_BUCKET": self.bucket.bucket_name,
                "CATALOG_SYNC_CATALOGS_PREFIX": CATALOGS_PREFIX,
                "CATALOG_SYNC_CONFIGS_PREFIX": CONFIGS_PREFIX,
                "CATALOG_SYNC_PUSHES_PREFIX": PUSHES_PREFIX,
                "CATALOG_SYNC_SCHEDULE_RULE_PREFIX": config.schedule_rule_prefix,
                "CATALOG_SYNC_HEALTH": health_settings,
            },
        )
        self.health_function = self._function(
            "Health",
            handler="handlers.health.handler",
            memory_mb=config.functions.health.memory_mb,
            timeout_seconds=config.functions.health.timeout_seconds,
            ephemeral_storage_mb=config.functions.health.ephemeral_storage_mb,
            environment={**pipeline_environment, "CATALOG_SYNC_HEALTH": health_settings},
        )
        diff_arn = self.format_arn(
            service="lambda", resource="function", resource_name=diff_name, arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME
        )
        self._grant_pipeline(self.diff, diff_arn, writes=True)
        self._grant_pipeline(self.consumer, diff_arn, writes=False)
        self._grant_webhook(diff_arn)
        self._grant_health()

    def _grant_pipeline(self, function: lambda_.Function, diff_arn: str, *, writes: bool) -> None:
        """What the diff (writes=True) and the consumer need: their prefixes, the table, queues and secrets."""
        bucket = self.bucket
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
                    resources=[
                        bucket.arn_for_objects(f"{p}*") for p in (CLAIMS_PREFIX, RUNS_PREFIX, QUARANTINE_PREFIX)
                    ],
                )
            )
            for queue in (self.change_queue, self.priority_queue):
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
                resources=[self.table.table_arn],
            )
        )
        self.pinecone_secret.grant_read(function)
        if self.openai_secret is not None:
            self.openai_secret.grant_read(function)
        # The diff continues in a new invocation of itself near its timeout (by its invoked ARN, which may carry a
        # version or alias); consumers ask it for repairs.
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[diff_arn, f"{diff_arn}:*"])
        )

    def _grant_catalog_configs(self, function: lambda_.Function) -> None:
        """Reading the catalogs' configurations, found by listing `config/` (S3 answers 403 for a missing key)."""
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.bucket.arn_for_objects(f"{CONFIGS_PREFIX}*")])
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{CONFIGS_PREFIX}*"]}},
            )
        )

    def _grant_webhook(self, diff_arn: str) -> None:
        """Sync and push (via the diff), idempotency records, the catalogs' schedules, pausing consumption."""
        function = self.webhook_function
        self.webhook_secret.grant_read(function)
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[diff_arn, f"{diff_arn}:*"])
        )
        self._grant_catalog_configs(function)
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(f"{PUSHES_PREFIX}*")])
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
                resources=[self.table.table_arn],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["events:DescribeRule", "events:EnableRule", "events:DisableRule", "events:PutRule"],
                resources=[
                    self.format_arn(
                        service="events", resource="rule", resource_name=f"{self.config.schedule_rule_prefix}*"
                    )
                ],
            )
        )
        # Pausing and resuming consumption: the consumer's two event source mappings, nothing else.
        function.add_to_role_policy(iam.PolicyStatement(actions=["lambda:ListEventSourceMappings"], resources=["*"]))
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["lambda:UpdateEventSourceMapping"],
                resources=[mapping.event_source_mapping_arn for mapping in self.consumer_mappings],
            )
        )

    def _grant_health(self) -> None:
        """The health function reads the state and the catalogs' configurations; it writes nothing."""
        function = self.health_function
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
                resources=[self.table.table_arn],
            )
        )
        self._grant_catalog_configs(function)

    # ------------------------------------------------------------------ triggers

    def _triggers(self) -> None:
        target_options: dict[str, Any] = {
            "retry_attempts": 4,
            "max_event_age": cdk.Duration.hours(2),
            "dead_letter_queue": self.diff_failures,
        }
        events.Rule(
            self,
            "CatalogDropped",
            description="A catalog object created under the catalogs prefix: sync it",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [self.bucket.bucket_name]},
                    "object": {"key": [{"prefix": CATALOGS_PREFIX}]},
                },
            ),
            targets=[targets.LambdaFunction(self.diff, **target_options)],
        )
        events.Rule(
            self,
            "HealthSchedule",
            description="Score every catalog's health and publish it",
            schedule=events.Schedule.expression(self.config.health_schedule),
            targets=[targets.LambdaFunction(self.health_function, retry_attempts=0)],
        )
        for catalog in self.config.catalogs:
            if catalog.schedule is None:
                continue
            events.Rule(
                self,
                f"Schedule-{catalog.name}",
                rule_name=self.config.schedule_rule_name(catalog.name),
                description=f"Scheduled {catalog.mode} sync of catalog {catalog.name}",
                schedule=events.Schedule.expression(catalog.schedule),
                enabled=catalog.enabled,
                targets=[
                    targets.LambdaFunction(
                        self.diff,
                        event=events.RuleTargetInput.from_object(
                            {"trigger": "schedule", "catalog": catalog.name, "mode": catalog.mode.value}
                        ),
                        **target_options,
                    )
                ],
            )

    def _webhook(self) -> None:
        access_logs = logs.LogGroup(
            self,
            "WebhookAccessLogs",
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self._retain_logs(access_logs)
        self.api = apigw.HttpApi(
            self,
            "WebhookApi",
            description="catalog-sync webhook: signed sync requests",
            default_integration=integrations.HttpLambdaIntegration("Webhook", self.webhook_function),
            create_default_stage=False,
        )
        self.api_stage = apigw.HttpStage(
            self,
            "WebhookStage",
            http_api=self.api,
            auto_deploy=True,
            throttle=apigw.ThrottleSettings(rate_limit=20, burst_limit=40),
            access_log_settings=AccessLogs(
                destination=apigw.LogGroupLogDestination(access_logs),
                log_format=apigateway_v1.AccessLogFormat.custom(json.dumps(HTTP_API_ACCESS_LOG)),
            ),
        )

    # ------------------------------------------------------------------ alarms and dashboard

    def _metric(self, name: str, *, statistic: str = "Sum", minutes: int = 5, **dimensions: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=names.NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions or {"service": names.SERVICE},
            statistic=statistic,
            period=cdk.Duration.minutes(minutes),
        )

    def _alarm(self, alarm_id: str, description: str, **kwargs: Any) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(self, alarm_id, alarm_description=description, **kwargs)
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alert_topic))
        alarm.add_ok_action(cloudwatch_actions.SnsAction(self.alert_topic))
        self.alarms[alarm_id] = alarm
        return alarm

    def _alarms(self) -> None:
        thresholds = self.config.alarms
        minutes = thresholds.failure_rate_period_minutes
        self.failure_rate = cloudwatch.MathExpression(
            expression="IF(processed > 0, 100 * FILL(failed, 0) / processed, 0)",
            using_metrics={
                "processed": self._metric(names.MESSAGES_PROCESSED, minutes=minutes),
                "failed": self._metric(names.MESSAGES_FAILED, minutes=minutes),
            },
            label="Failed messages (%)",
            period=cdk.Duration.minutes(minutes),
        )
        for level, percent in (
            ("Warning", thresholds.failure_rate_warning_percent),
            ("Critical", thresholds.failure_rate_critical_percent),
        ):
            self._alarm(
                f"FailureRate{level}",
                f"{level.upper()}: more than {percent}% of the consumers' messages failed over {minutes} minutes",
                metric=self.failure_rate,
                threshold=percent,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for alarm_id, queue in (
            ("ChangeDeadLetters", self.change_dlq),
            ("PriorityDeadLetters", self.priority_dlq),
            ("DiffFailureDeadLetters", self.diff_failures),
        ):
            self._alarm(
                alarm_id,
                f"CRITICAL: messages in {alarm_id}: "
                + (
                    "diff invocations that failed after retries (the event is in the message)"
                    if queue is self.diff_failures
                    else "changes that kept failing (catalog-sync redrive puts them back once fixed)"
                ),
                metric=queue.metric_approximate_number_of_messages_visible(
                    period=cdk.Duration.minutes(1), statistic="Maximum"
                ),
                threshold=thresholds.dead_letters,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for alarm_id, queue in (("ChangeQueueAge", self.change_queue), ("PriorityQueueAge", self.priority_queue)):
            self._alarm(
                alarm_id,
                f"WARNING: the oldest message waits more than {thresholds.oldest_message_age_minutes} minutes",
                metric=queue.metric_approximate_age_of_oldest_message(
                    period=cdk.Duration.minutes(5), statistic="Maximum"
                ),
                threshold=thresholds.oldest_message_age_minutes * 60,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for catalog in (c for c in self.config.catalogs if c.stale_alarms):
            runs = self._metric(
                names.RUNS_SUCCEEDED, minutes=60, service=names.SERVICE, **{names.CATALOG_DIMENSION: catalog.name}
            )
            for level, hours in (
                ("Warning", thresholds.stale_warning_hours),
                ("Critical", thresholds.stale_critical_hours),
            ):
                # Every hour without a successful run is breaching (no data is the point), for `hours` hours.
                self._alarm(
                    f"Stale{level}-{catalog.name}",
                    f"{level.upper()}: no successful run of catalog {catalog.name} for {hours} hours",
                    metric=runs,
                    threshold=1,
                    evaluation_periods=hours,
                    datapoints_to_alarm=hours,
                    comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
                )
        self._alarm(
            "GuardTrips",
            "WARNING: the deletion guard held a catalog back (empty, truncated or wrong file?); nothing was changed",
            metric=self._metric(names.GUARD_TRIPS),
            threshold=thresholds.guard_trips,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        timeout_ms = self.config.functions.diff.timeout_seconds * 1000
        self._alarm(
            "DiffNearTimeout",
            f"WARNING: a diff ran longer than {thresholds.diff_duration_share:.0%} of its timeout "
            "(it checkpoints and continues, but the catalog may have outgrown the function)",
            metric=self.diff.metric_duration(period=cdk.Duration.minutes(5), statistic="Maximum"),
            threshold=thresholds.diff_duration_share * timeout_ms,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self._alarm(
            "DiffErrors",
            "CRITICAL: the diff function failed (Lambda retries it, then keeps the event in DiffFailures)",
            metric=self.diff.metric_errors(period=cdk.Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _dashboard(self) -> None:
        def graph(title: str, metrics: list[cloudwatch.IMetric], **kwargs: Any) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=metrics, width=12, height=6, **kwargs)

        cache_hits = self._metric(names.EMBEDDING_CACHE_HITS)
        embedded = self._metric(names.TEXTS_EMBEDDED)
        hit_rate = cloudwatch.MathExpression(
            expression="IF(hits + embedded > 0, 100 * hits / (hits + embedded), 0)",
            using_metrics={"hits": cache_hits, "embedded": embedded},
            label="Embedding cache hit rate (%)",
            period=cdk.Duration.minutes(5),
        )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{self.stack_name}-pipeline")
        self.dashboard.add_widgets(
            graph(
                "Changes by kind",
                [
                    self._metric(name)
                    for name in (
                        names.PRODUCTS_ADDED,
                        names.PRODUCTS_MODIFIED,
                        names.PRODUCTS_METADATA_ONLY,
                        names.PRODUCTS_DELETED,
                        names.INVALID_RECORDS,
                    )
                ],
                stacked=True,
            ),
            graph(
                "Products synced",
                [
                    self._metric(name)
                    for name in (names.VECTORS_UPSERTED, names.METADATA_UPDATED, names.VECTORS_DELETED)
                ],
                stacked=True,
            ),
        )
        self.dashboard.add_widgets(
            graph("Failures", [self._metric(names.MESSAGES_FAILED), self.failure_rate]),
            graph("Embedding cache", [hit_rate, embedded, cache_hits]),
        )
        self.dashboard.add_widgets(
            graph(
                "Run duration",
                [
                    self.diff.metric_duration(statistic="Maximum"),
                    self.consumer.metric_duration(statistic="Average"),
                ],
            ),
            graph(
                "Queue depth",
                [
                    queue.metric_approximate_number_of_messages_visible(statistic="Maximum")
                    for queue in (
                        self.priority_queue,
                        self.change_queue,
                        self.priority_dlq,
                        self.change_dlq,
                        self.diff_failures,
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Health score",
                [
                    self._metric(
                        names.HEALTH_SCORE,
                        statistic="Minimum",
                        minutes=60,
                        service=names.SERVICE,
                        **{names.CATALOG_DIMENSION: catalog.name},
                    )
                    for catalog in self.config.catalogs
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=4)
        )

    def _outputs(self) -> None:
        for name, value in (
            ("Bucket", self.bucket.bucket_name),
            ("StateTable", self.table.table_name),
            ("ChangeQueueUrl", self.change_queue.queue_url),
            ("PriorityQueueUrl", self.priority_queue.queue_url),
            ("ChangeDeadLetterQueueUrl", self.change_dlq.queue_url),
            ("PriorityDeadLetterQueueUrl", self.priority_dlq.queue_url),
            ("DiffFailuresQueueUrl", self.diff_failures.queue_url),
            ("WebhookUrl", self.api_stage.url),
            ("WebhookSecretArn", self.webhook_secret.secret_arn),
            ("PineconeSecretArn", self.pinecone_secret.secret_arn),
            ("AlertTopicArn", self.alert_topic.topic_arn),
        ):
            cdk.CfnOutput(self, f"{name}Output", value=value, export_name=f"{self.stack_name}-{name}")
        if self.openai_secret is not None:
            cdk.CfnOutput(self, "OpenAISecretArnOutput", value=self.openai_secret.secret_arn)

    # ------------------------------------------------------------------ cdk-nag

    def _acknowledge_findings(self) -> None:
        """The AwsSolutions findings this design accepts, each with its reason (cdk-nag checks the rest)."""

        def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
            cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))

        def arn(token: str) -> str:
            # How cdk-nag spells a resource in a finding: <LogicalId.Arn>
            resolved = self.resolve(token)
            logical_id, attribute = resolved["Fn::GetAtt"]
            return f"<{logical_id}.{attribute}>"

        def policy_of(function: lambda_.Function) -> IConstruct:
            return function.role.node.find_child("DefaultPolicy") if function.role else function

        bucket = arn(self.bucket.bucket_arn)
        functions = {
            "Diff": self.diff,
            "Consumer": self.consumer,
            "Webhook": self.webhook_function,
            "Health": self.health_function,
        }
        for name, function in functions.items():
            acknowledge(
                function,
                "L1",
                "Python 3.12 is the runtime the functions and their dependency layer are built and tested for; "
                "moving to a newer one is a deliberate upgrade, not a default",
            )
            acknowledge(
                policy_of(function),
                f"IAM5[Resource::{arn(self.log_groups[name].log_group_arn)}:log-stream:*]",
                "Lambda creates a new log stream per execution environment, in the function's own log group only",
            )
            acknowledge(
                policy_of(function),
                "IAM5[Resource::*]",
                "X-Ray tracing: xray:PutTraceSegments and PutTelemetryRecords support no resource-level permissions"
                + (
                    "; lambda:ListEventSourceMappings neither (updates are limited to the consumer's two mappings)"
                    if function is self.webhook_function
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
            (self.diff, list(prefixes)),
            (self.consumer, [CONFIGS_PREFIX, CLAIMS_PREFIX]),
            (self.webhook_function, [CONFIGS_PREFIX, PUSHES_PREFIX]),
            (self.health_function, [CONFIGS_PREFIX]),
        ):
            for prefix in used:
                acknowledge(
                    policy_of(function),
                    f"IAM5[Resource::{bucket}/{prefix}*]",
                    f"Objects under one prefix of the stack's own bucket: {prefixes[prefix]}",
                )
        qualified_diff = f"arn:<AWS::Partition>:lambda:<AWS::Region>:<AWS::AccountId>:function:{self.diff_name}:*"
        for function in (self.diff, self.consumer, self.webhook_function):
            acknowledge(
                policy_of(function),
                f"IAM5[Resource::{qualified_diff}]",
                "The diff function's own versions and aliases: it may be invoked (and re-invokes itself) by a "
                "qualified ARN",
            )
        rules = f"arn:<AWS::Partition>:events:<AWS::Region>:<AWS::AccountId>:rule/{self.config.schedule_rule_prefix}*"
        acknowledge(
            policy_of(self.webhook_function),
            f"IAM5[Resource::{rules}]",
            "The catalogs' schedule rules, which the webhook enables, disables or re-times: the stack's own names",
        )
        for secret, why in (
            (self.pinecone_secret, "a Pinecone API key is issued by Pinecone; rotate it there, then put the new value"),
            (self.openai_secret, "an OpenAI API key is issued by OpenAI; rotate it there, then put the new value"),
            (
                self.webhook_secret,
                "the webhook key is shared with the systems that sign requests; rotating it is coordinated with them",
            ),
        ):
            if secret is not None:
                acknowledge(secret, "SMG4", f"No automatic rotation: {why}")
        acknowledge(
            self.diff_failures,
            "SQS3",
            "This queue is itself the dead-letter destination of the diff's failed invocations and events",
        )
        acknowledge(
            self.api,
            "APIG4",
            "Webhook callers are third-party systems that cannot sign with SigV4: every route except /health and "
            "/openapi.json checks an HMAC-SHA256 signature with a key from Secrets Manager in the function",
        )
        notifications = self.node.try_find_child("BucketNotificationsHandler050a0587b7544547bf325f094a3db834")
        if notifications is not None:
            acknowledge(
                notifications,
                "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's own custom resource that turns on the bucket's EventBridge notifications, created by CDK",
            )
