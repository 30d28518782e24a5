"""The deployed functions' settings: CATALOG_SYNC_* environment variables, set by the stack (infra/)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from catalog_sync.adapters.aws.bucket_layout import CONFIGS_PREFIX
from catalog_sync.adapters.aws.dynamodb_state import DEFAULT_SHARDS
from catalog_sync.adapters.aws.triggers import DEFAULT_CATALOGS_PREFIX, DEFAULT_PUSHES_PREFIX, check_prefixes
from catalog_sync.logic.health import HealthSettings
from catalog_sync.resilience.policy import AWS_MAX_ATTEMPTS, PINECONE_WRITE_RETRY


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_SYNC_", extra="ignore")

    table_name: str
    bucket: str
    queue_url: str
    priority_queue_url: str
    pinecone_host: str
    pinecone_secret: str  # Secrets Manager name or ARN of the Pinecone API key
    openai_secret: str | None = None  # the same, for OpenAI (only catalogs with the OpenAI embedder need it)
    catalogs_prefix: str = DEFAULT_CATALOGS_PREFIX
    configs_prefix: str = CONFIGS_PREFIX
    # Pushed changes (the webhook's POST /catalogs/{catalog}/changes) are read from here; never a catalog drop.
    pushes_prefix: str = DEFAULT_PUSHES_PREFIX
    # Unset: the queues' own MaximumMessageSize (the smaller of the two), read once.
    max_message_bytes: int | None = None
    state_shards: int = DEFAULT_SHARDS
    # Parallel requests to DynamoDB (shard queries, transactions).
    state_concurrency: int = 8
    secrets_max_age: int = 300
    # A diff stops dispatching and continues in a new invocation when less than this is left.
    time_margin_seconds: float = 60.0
    # Changes whose desired state is recorded and which are queued between two looks at the clock.
    dispatch_window: int = 5_000
    # The diff function, which consumers ask to re-sync products whose write a newer change overtook.
    diff_function: str | None = None
    # Health scoring's weights and thresholds (the health function), as JSON: CATALOG_SYNC_HEALTH='{"weights":
    # {"coverage": 60, "freshness": 20, "quality": 20}, "stale_warning_hours": 24}'.
    health: HealthSettings = Field(default_factory=HealthSettings)
    # This process's share of the services' rate limits (infra/config.py divides each limit among the consumers
    # that may run at once and sets these on the consumer). Every request attempt waits for room within them.
    # Unset: not paced (local runs, tests).
    pace_openai_requests_per_minute: float | None = Field(default=None, gt=0)
    pace_openai_tokens_per_minute: float | None = Field(default=None, gt=0)
    pace_pinecone_writes_per_second: float | None = Field(default=None, gt=0)
    pace_pinecone_upsert_bytes_per_second: float | None = Field(default=None, gt=0)
    # Attempts at a Pinecone write the SDK gave up on (PINECONE_WRITE_RETRY's, with its delays), and botocore's
    # attempts for the DynamoDB and SQS clients (resilience/policy.py says why these numbers).
    pinecone_write_attempts: int = Field(default=PINECONE_WRITE_RETRY.attempts, ge=1)
    aws_max_attempts: int = Field(default=AWS_MAX_ATTEMPTS, ge=1)

    @model_validator(mode="after")
    def _prefixes_apart(self) -> PipelineSettings:
        check_prefixes(self.catalogs_prefix, self.pushes_prefix)
        return self
