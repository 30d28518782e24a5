"""The deployed pipeline's composition root: settings from the environment, secrets, catalog configs, the AWS,
Pinecone and OpenAI adapters (built by kind: bootstrap/registry.py), and the services the functions run
(catalog_sync.services.diff_runs, .consume).

Catalog configs live in the bucket at `<configs_prefix><catalog>.toml` (or `.yaml`); catalog drops under
`<catalogs_prefix><catalog>/`. API keys come from Secrets Manager through powertools Parameters (cached), never
from plain environment variables.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import boto3
import orjson

from catalog_sync.adapters.aws.catalog_configs import load_catalog_config
from catalog_sync.adapters.aws.dynamodb_cache import DynamoEmbeddingCache
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.aws.s3 import S3ChangeArchive, S3ClaimStore, S3DropStore, S3RunArtifacts
from catalog_sync.adapters.aws.sqs_queue import DEFAULT_MESSAGE_BYTES, SqsChangeSender
from catalog_sync.adapters.aws.stack import deployed_catalogs
from catalog_sync.bootstrap.registry import PIPELINE_EMBEDDERS, PIPELINE_INDEXES, PipelineContext
from catalog_sync.bootstrap.settings import PipelineSettings
from catalog_sync.models.config import CatalogConfig, IndexKind
from catalog_sync.ports import Embedder, VectorIndex
from catalog_sync.resilience.policy import botocore_retries
from catalog_sync.services.diff_runs import DiffRuns

CONFIG_CACHE_SECONDS = 300
INDEX_KIND = IndexKind.PINECONE


def get_secret(name: str, max_age: int) -> str:
    # powertools Parameters caches the value for max_age seconds across invocations of a warm function.
    from aws_lambda_powertools.utilities.parameters import get_secret as powertools_get_secret

    value = powertools_get_secret(name, max_age=max_age)
    return value if isinstance(value, str) else bytes(value).decode()


@dataclass
class Pipeline:
    """The parts of the deployed pipeline (catalog_sync.ports.PipelineParts), built once per warm function."""

    settings: PipelineSettings
    s3: Any = None
    sqs: Any = None
    dynamodb: Any = None
    _configs: dict[str, tuple[float, CatalogConfig]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        retries = botocore_retries(self.settings.aws_max_attempts)
        self.s3 = self.s3 or boto3.client("s3")
        self.sqs = self.sqs or boto3.client("sqs", config=retries)
        self.dynamodb = self.dynamodb or boto3.client("dynamodb", config=retries)

    # ------------------------------------------------------------ the services

    @property
    def runs(self) -> DiffRuns:
        """The diff function's service, and the consumer's repair requests (built when used: it keeps nothing)."""
        return DiffRuns(
            self,
            bucket=self.settings.bucket,
            pushes_prefix=self.settings.pushes_prefix,
            dispatch_window=self.settings.dispatch_window,
            diff_function=self.settings.diff_function,
        )

    # ------------------------------------------------------------ configuration

    def catalogs(self) -> list[str]:
        """The deployment's catalogs: those with state in the table and those with a config in the bucket."""
        return list(
            deployed_catalogs(
                self.dynamodb,
                self.s3,
                table=self.settings.table_name,
                bucket=self.settings.bucket,
                configs_prefix=self.settings.configs_prefix,
            )
        )

    def config(self, catalog: str) -> CatalogConfig:
        cached = self._configs.get(catalog)
        if cached is not None and time.monotonic() - cached[0] < CONFIG_CACHE_SECONDS:
            return cached[1]
        config = load_catalog_config(
            self.s3, bucket=self.settings.bucket, configs_prefix=self.settings.configs_prefix, catalog=catalog
        )
        self._configs[catalog] = (time.monotonic(), config)
        return config

    # ------------------------------------------------------------ the parts

    def _context(self, config: CatalogConfig) -> PipelineContext:
        max_age = self.settings.secrets_max_age
        return PipelineContext(config=config, settings=self.settings, secret=lambda name: get_secret(name, max_age))

    def embedder(self, config: CatalogConfig) -> Embedder:
        return PIPELINE_EMBEDDERS.build(config.embedder.kind, self._context(config), catalog=config.name)

    def index(self, config: CatalogConfig) -> VectorIndex:
        return PIPELINE_INDEXES.build(INDEX_KIND, self._context(config), catalog=config.name)

    def state(self, config: CatalogConfig) -> DynamoStateStore:
        return DynamoStateStore(
            self.dynamodb,
            table=self.settings.table_name,
            catalog=config.name,
            shards=self.settings.state_shards,
            concurrency=self.settings.state_concurrency,
        )

    def cache(self) -> DynamoEmbeddingCache:
        return DynamoEmbeddingCache(self.dynamodb, table=self.settings.table_name)

    def claims(self) -> S3ClaimStore:
        return S3ClaimStore(self.s3, bucket=self.settings.bucket)

    def drops(self) -> S3DropStore:
        return S3DropStore(self.s3, bucket=self.settings.bucket, catalogs_prefix=self.settings.catalogs_prefix)

    def archive(self) -> S3ChangeArchive:
        return S3ChangeArchive(self.s3, bucket=self.settings.bucket)

    def artifacts(self, config: CatalogConfig) -> S3RunArtifacts:
        return S3RunArtifacts(self.s3, bucket=self.settings.bucket, catalog=config.name)

    def sender(self, config: CatalogConfig, run_id: str) -> SqsChangeSender:
        return SqsChangeSender(
            self.sqs,
            queue_url=self.settings.queue_url,
            priority_queue_url=self.settings.priority_queue_url,
            run_id=run_id,
            max_message_bytes=self.max_message_bytes(),
            claims=self.claims(),
            catalog=config.name,
        )

    def max_message_bytes(self) -> int:
        if self.settings.max_message_bytes is None:
            sizes = [
                int(
                    self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["MaximumMessageSize"])[
                        "Attributes"
                    ].get("MaximumMessageSize", DEFAULT_MESSAGE_BYTES)
                )
                for url in (self.settings.queue_url, self.settings.priority_queue_url)
            ]
            self.settings.max_message_bytes = min(sizes)
        return self.settings.max_message_bytes

    def invoke_self(self, function_arn: str, payload: dict[str, Any]) -> None:
        """Continue in a new invocation of the diff function (asynchronous: this one returns at once)."""
        boto3.client("lambda").invoke(FunctionName=function_arn, InvocationType="Event", Payload=orjson.dumps(payload))
