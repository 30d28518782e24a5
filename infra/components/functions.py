"""The diff, consumer, webhook and health functions, the layers they run with, and the consumer's event source
mappings. Each function has its own role and log group; what else it may do is granted in grants.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import jsii
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.bucket_layout import CATALOGS_PREFIX, CONFIGS_PREFIX, PUSHES_PREFIX
from infra.components.naming import TransparentConstruct
from infra.components.queues import Queues
from infra.components.secrets import Secrets
from infra.components.storage import Storage
from infra.config import FunctionSize, StackConfig

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
LAYERS_DIR = ROOT / "layers"
# What the functions' asset leaves out: caches, and the local embedder's model (never used on Lambda).
FUNCTION_EXCLUDES = ["**/__pycache__", "**/*.pyc", "*.egg-info", "catalog_sync/adapters/embedders/static_minilm"]


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


def retain_logs(log_group: logs.LogGroup, days: int) -> None:
    # The days are validated against what CloudWatch Logs accepts (config.py); jsii's enum has no numbers.
    resource = log_group.node.default_child
    assert isinstance(resource, logs.CfnLogGroup)
    resource.retention_in_days = days


class Functions(TransparentConstruct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        storage: Storage,
        queues: Queues,
        secrets: Secrets,
    ) -> None:
        super().__init__(scope, construct_id)
        # Created in the stack itself, not in this construct: CDK derives names of other resources from these
        # ones' paths (event source mappings, rule permissions), which naming.py cannot make transparent.
        self.home = cdk.Stack.of(self)
        self.config = config
        self.log_groups: dict[str, logs.LogGroup] = {}
        stack = cdk.Stack.of(self)
        self.powertools_layer = lambda_.LayerVersion.from_layer_version_arn(
            self.home,
            "PowertoolsLayer",
            ssm.StringParameter.value_for_string_parameter(
                self, f"/aws/service/powertools/python/arm64/python3.12/{config.powertools_version}"
            ),
        )
        # Layers unpack in order, later ones over earlier ones: ours must come after Powertools (which ships its
        # own pydantic), and CDK orders a function's layers by construct path, hence the name.
        self.dependency_layer = lambda_.LayerVersion(
            self.home,
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
        diff_name = self.diff_name = f"{stack.stack_name}-diff"
        pipeline_environment = {
            "CATALOG_SYNC_TABLE_NAME": storage.table.table_name,
            "CATALOG_SYNC_BUCKET": storage.bucket.bucket_name,
            "CATALOG_SYNC_QUEUE_URL": queues.change_queue.queue_url,
            "CATALOG_SYNC_PRIORITY_QUEUE_URL": queues.priority_queue.queue_url,
            "CATALOG_SYNC_MAX_MESSAGE_BYTES": str(config.queues.max_message_bytes),
            "CATALOG_SYNC_PINECONE_HOST": config.pinecone_host,
            "CATALOG_SYNC_PINECONE_SECRET": secrets.pinecone.secret_arn,
            "CATALOG_SYNC_STATE_SHARDS": str(config.state_shards),
            "CATALOG_SYNC_CATALOGS_PREFIX": CATALOGS_PREFIX,
            "CATALOG_SYNC_CONFIGS_PREFIX": CONFIGS_PREFIX,
            "CATALOG_SYNC_PUSHES_PREFIX": PUSHES_PREFIX,
            "CATALOG_SYNC_DIFF_FUNCTION": diff_name,
        }
        if secrets.openai is not None:
            pipeline_environment["CATALOG_SYNC_OPENAI_SECRET"] = secrets.openai.secret_arn

        self.diff = self._function(
            "Diff", handler="handlers.diff.handler", size=config.functions.diff, environment=pipeline_environment
        )
        self.diff.configure_async_invoke(
            retry_attempts=2,
            max_event_age=cdk.Duration.hours(6),
            on_failure=destinations.SqsDestination(queues.diff_failures),
        )
        self.consumer = self._function(
            "Consumer",
            handler="handlers.consumer.handler",
            size=config.functions.consumer,
            # Each consumer's share of the rate limits, which it paces its requests to.
            environment={**pipeline_environment, **config.consumer_environment()},
        )
        self.consumer_mappings = []
        for queue in (queues.priority_queue, queues.change_queue):
            source = event_sources.SqsEventSource(
                queue,
                batch_size=config.consumer_batch_size,
                max_batching_window=cdk.Duration.seconds(config.queues.batching_window_seconds),
                report_batch_item_failures=True,
                max_concurrency=config.limits.per_queue_concurrency(),
            )
            self.consumer.add_event_source(source)
            self.consumer_mappings.append(source)
        health_settings = config.health_settings().model_dump_json()
        self.webhook = self._function(
            "Webhook",
            handler="handlers.webhook.handler",
            size=config.functions.webhook,
            environment={
                "CATALOG_SYNC_WEBHOOK_SECRET": secrets.webhook.secret_arn,
                "CATALOG_SYNC_DIFF_FUNCTION": diff_name,
                "CATALOG_SYNC_CONSUMER_FUNCTION": f"{stack.stack_name}-consumer",
                "CATALOG_SYNC_TABLE_NAME": storage.table.table_name,
                "CATALOG_SYNC_STATE_SHARDS": str(config.state_shards),
                "CATALOG_SYNC_BUCKET": storage.bucket.bucket_name,
                "CATALOG_SYNC_CATALOGS_PREFIX": CATALOGS_PREFIX,
                "CATALOG_SYNC_CONFIGS_PREFIX": CONFIGS_PREFIX,
                "CATALOG_SYNC_PUSHES_PREFIX": PUSHES_PREFIX,
                "CATALOG_SYNC_SCHEDULE_RULE_PREFIX": config.schedule_rule_prefix,
                "CATALOG_SYNC_HEALTH": health_settings,
            },
        )
        self.health = self._function(
            "Health",
            handler="handlers.health.handler",
            size=config.functions.health,
            environment={**pipeline_environment, "CATALOG_SYNC_HEALTH": health_settings},
        )

    def by_name(self) -> dict[str, lambda_.Function]:
        return {"Diff": self.diff, "Consumer": self.consumer, "Webhook": self.webhook, "Health": self.health}

    def _function(
        self, name: str, *, handler: str, size: FunctionSize, environment: dict[str, str]
    ) -> lambda_.Function:
        log_group = logs.LogGroup(self.home, f"{name}Logs", removal_policy=cdk.RemovalPolicy.DESTROY)
        retain_logs(log_group, self.config.functions.log_retention_days)
        self.log_groups[name] = log_group
        # An explicit role instead of the AWS managed basic-execution policy: logs only to its own group.
        role = iam.Role(
            self.home,
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
            self.home,
            name,
            function_name=f"{cdk.Stack.of(self).stack_name}-{name.lower()}",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=lambda_.Code.from_asset(str(FUNCTIONS_DIR), exclude=FUNCTION_EXCLUDES),
            layers=[self.powertools_layer, self.dependency_layer],
            memory_size=size.memory_mb,
            timeout=cdk.Duration.seconds(size.timeout_seconds),
            ephemeral_storage_size=cdk.Size.mebibytes(size.ephemeral_storage_mb),
            role=role,
            log_group=log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "POWERTOOLS_SERVICE_NAME": names.SERVICE,
                "POWERTOOLS_METRICS_NAMESPACE": names.NAMESPACE,
                **environment,
            },
        )
