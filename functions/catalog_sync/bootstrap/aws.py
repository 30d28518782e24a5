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

from catalog_sync.adapters.aws.catalog_configs import load_catalog_config
from catalog_sync.adapters.aws.diff_invoker import DiffInvoker
from catalog_sync.adapters.aws.dynamodb_cache import DynamoEmbeddingCache
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore
from catalog_sync.adapters.aws.s3 import S3ChangeArchive, S3ClaimStore, S3DropStore, S3RunArtifacts
from catalog_sync.adapters.aws.sqs_queue import DEFAULT_MESSAGE_BYTES, SqsChangeSender
from catalog_sync.adapters.aws.stack import deployed_catalogs
from catalog_sync.bootstrap.registry import PIPELINE_EMBEDDERS, PIPELINE_INDEXES, PipelineContext
from catalog_sync.bootstrap.settings import PipelineSettings, required
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
    lambda_client: Any = None
    _configs: dict[str, tuple[float, CatalogConfig]] = field(default_factory=dict)
    # The resources every part needs: without one the function refuses to start (NotConfigured).
    table_name: str = field(init=False)
    bucket: str = field(init=False)
    queue_url: str = field(init=False)
    priority_queue_url: str = field(init=False)
    pinecone_host: str = field(init=False)
    pinecone_secret: str = field(init=False)

    def __post_init__(self) -> None:
        self.table_name = required(self.settings.table_name, "table_name")
        self.bucket = required(self.settings.bucket, "bucket")
        self.queue_url = required(self.settings.queue_url, "queue_url")
        self.priority_queue_url = required(self.settings.priority_queue_url, "priority_queue_url")
        self.pinecone_host = required(self.settings.pinecone_host, "pinecone_host")
        self.pinecone_secret = required(self.settings.pinecone_secret, "pinecone_secret")
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
            bucket=self.bucket,
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
                table=self.table_name,
                bucket=self.bucket,
                configs_prefix=self.settings.configs_prefix,
            )
        )

    def config(self, catalog: str) -> CatalogConfig:
        cached = self._configs.get(catalog)
        if cached is not None and time.monotonic() - cached[0] < CONFIG_CACHE_SECONDS:
            return cached[1]
        config = load_catalog_config(
            self.s3, bucket=self.bucket, configs_prefix=self.settings.configs_prefix, catalog=catalog
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
            table=self.table_name,
            catalog=config.name,
            shards=self.settings.state_shards,
            concurrency=self.settings.state_concurrency,
        )

    def cache(self) -> DynamoEmbeddingCache:
        return DynamoEmbeddingCache(self.dynamodb, table=self.table_name)

    def claims(self) -> S3ClaimStore:
        return S3ClaimStore(self.s3, bucket=self.bucket)

    def drops(self) -> S3DropStore:
        return S3DropStore(self.s3, bucket=self.bucket, catalogs_prefix=self.settings.catalogs_prefix)

    def archive(self) -> S3ChangeArchive:
        return S3ChangeArchive(self.s3, bucket=self.bucket)

    def artifacts(self, config: CatalogConfig) -> S3RunArtifacts:
        return S3RunArtifacts(self.s3, bucket=self.bucket, catalog=config.name)

    def sender(self, config: CatalogConfig, run_id: str) -> SqsChangeSender:
        return SqsChangeSender(
            self.sqs,
            queue_url=self.queue_url,
            priority_queue_url=self.priority_queue_url,
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
                for url in (self.queue_url, self.priority_queue_url)
            ]
            self.settings.max_message_bytes = min(sizes)
        return self.settings.max_message_bytes

    def invoke_self(self, function_arn: str, payload: dict[str, Any]) -> None:
        """Continue in a new invocation of the diff function (asynchronous: this one returns at once); raises if
        Lambda did not queue it, so that the run is retried rather than left half dispatched."""
        if self.lambda_client is None:
            self.lambda_client = boto3.client("lambda")
        DiffInvoker(function_arn, self.lambda_client).invoke(payload)
