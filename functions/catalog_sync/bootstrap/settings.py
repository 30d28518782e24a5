"""The deployed functions' settings: CATALOG_SYNC_* environment variables, set by the stack (infra/).

One model for every function. Each function is given the variables it reads (infra/components/functions.py), so
a setting only some functions need is optional here and required where it is used (`required`): the pipeline's
functions refuse to start without theirs (bootstrap/aws.py), the webhook refuses the request that needs one.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from catalog_sync.adapters.aws.bucket_layout import CONFIGS_PREFIX
from catalog_sync.adapters.aws.dynamodb_state import DEFAULT_SHARDS
from catalog_sync.adapters.aws.triggers import DEFAULT_CATALOGS_PREFIX, DEFAULT_PUSHES_PREFIX, check_prefixes
from catalog_sync.logic.health import HealthSettings
from catalog_sync.logic.signing import DEFAULT_TOLERANCE_SECONDS
from catalog_sync.resilience.policy import AWS_MAX_ATTEMPTS, PINECONE_WRITE_RETRY


class NotConfigured(RuntimeError):
    """A function needs a setting it was not given."""


def required(value: str | None, name: str) -> str:
    if not value:
        raise NotConfigured(f"CATALOG_SYNC_{name.upper()} is not set")
    return value


class PipelineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_SYNC_", extra="ignore")

    # ------------------------------------------------------------ every function's resources
    # The state table: the pipeline's state; the webhook's Idempotency-Key records and the nonces seen (without it
    # every signed request is refused, since a replay could not be told apart).
    table_name: str | None = None
    # Catalog drops and configs are read from it; pushed changes written to it.
    bucket: str | None = None
    catalogs_prefix: str = DEFAULT_CATALOGS_PREFIX
    configs_prefix: str = CONFIGS_PREFIX
    # Pushed changes (the webhook's POST /catalogs/{catalog}/changes) are read from here; never a catalog drop.
    pushes_prefix: str = DEFAULT_PUSHES_PREFIX
    # A catalog's state is written over this many shards (the webhook reads it with the count it was written with).
    state_shards: int = DEFAULT_SHARDS
    secrets_max_age: int = Field(default=300, ge=0)
    # The diff function: consumers ask it to re-sync products whose write a newer change overtook; the webhook
    # queues syncs and pushes with it.
    diff_function: str | None = None
    # Health scoring's weights and thresholds (the health function, the webhook's status routes), as JSON:
    # CATALOG_SYNC_HEALTH='{"weights": {"coverage": 60, "freshness": 20, "quality": 20}, "stale_warning_hours": 24}'.
    health: HealthSettings = Field(default_factory=HealthSettings)

    # ------------------------------------------------------------ the diff, consumer and health functions
    queue_url: str | None = None
    priority_queue_url: str | None = None
    pinecone_host: str | None = None
    pinecone_secret: str | None = None  # Secrets Manager name or ARN of the Pinecone API key
    openai_secret: str | None = None  # the same, for OpenAI (only catalogs with the OpenAI embedder need it)
    # Unset: the queues' own MaximumMessageSize (the smaller of the two), read once.
    max_message_bytes: int | None = None
    # Parallel requests to DynamoDB (shard queries, transactions).
    state_concurrency: int = 8
    # A diff stops dispatching and continues in a new invocation when less than this is left.
    time_margin_seconds: float = 60.0
    # Changes whose desired state is recorded and which are queued between two looks at the clock.
    dispatch_window: int = 5_000
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

    # ------------------------------------------------------------ the webhook function
    webhook_secret: str | None = Field(default=None, min_length=1)  # Secrets Manager name or ARN of the signing key
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    signature_tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, gt=0)
    idempotency_expiry_seconds: int = Field(default=3_600, gt=0)
    # The control routes; unset, a route that needs one answers 500.
    schedule_rule_prefix: str | None = None  # a catalog's schedule rule is named <prefix><catalog>
    consumer_function: str | None = None  # its event source mappings are paused and resumed

    @model_validator(mode="after")
    def _prefixes_apart(self) -> PipelineSettings:
        check_prefixes(self.catalogs_prefix, self.pushes_prefix)
        return self
