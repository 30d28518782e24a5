"""What a deployment is made of: catalogs and their schedules, function sizes, queue settings, rate limits and
alarm thresholds. Read from a TOML file (`infra/stack.toml` unless `-c config=PATH` says otherwise) and
validated here, before anything is synthesised.
"""

from __future__ import annotations

import math
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog_sync.adapters.embedders.openai import REQUESTS_PER_TOKEN_WINDOW
from catalog_sync.logic.health import HealthSettings

# The Lambda event source mapping's own bounds for SQS.
MIN_CONSUMER_CONCURRENCY = 2
MAX_CONSUMER_CONCURRENCY = 1000
MAX_LAMBDA_TIMEOUT_SECONDS = 900
# SQS: a queue's visibility timeout should be at least six times the function's timeout (AWS's advice for
# event source mappings), so a message is not handed to a second consumer while the first still works on it.
VISIBILITY_TIMEOUT_FACTOR = 6
MAX_RULE_NAME = 64
# Lambda's ephemeral storage (/tmp), in MB: the default, and the most it may be given.
MIN_EPHEMERAL_MB = 512
MAX_EPHEMERAL_MB = 10_240
# Pinecone's largest write request (an upsert of 2 MB), and the embedding models' longest input in tokens: each
# consumer's share of the limits must carry one such request (the OpenAI adapter packs its requests to
# 1/REQUESTS_PER_TOKEN_WINDOW of its token share, so that several fit a minute).
PINECONE_MAX_REQUEST_BYTES = 2_000_000
OPENAI_MAX_INPUT_TOKENS = 8_192

LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)
_SCHEDULE = re.compile(r"^(cron\(\S+( \S+){5}\)|rate\(\d+ (minute|minutes|hour|hours|day|days)\))$")
# As the catalog configuration and the webhook accept them.
CatalogName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SyncMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


class CatalogSchedule(_Strict):
    """A catalog the stack knows; with a schedule, an EventBridge rule syncs it on that schedule."""

    name: CatalogName
    schedule: str | None = None  # cron(...) or rate(...), EventBridge syntax
    mode: SyncMode = SyncMode.INCREMENTAL
    enabled: bool = True
    # Alarm when the catalog has had no successful run (from any trigger) for the staleness thresholds.
    stale_alarms: bool = True

    @model_validator(mode="after")
    def _schedule_syntax(self) -> Self:
        if self.schedule is not None and not _SCHEDULE.match(self.schedule):
            raise ValueError(f"catalog {self.name!r}: {self.schedule!r} is not a cron(...) or rate(...) expression")
        return self


class FunctionSize(_Strict):
    memory_mb: int = Field(ge=128, le=10_240)
    timeout_seconds: int = Field(ge=1, le=MAX_LAMBDA_TIMEOUT_SECONDS)
    # /tmp, which Lambda offers from 512 MB (its default) to 10 GB.
    ephemeral_storage_mb: int = Field(default=MIN_EPHEMERAL_MB, ge=MIN_EPHEMERAL_MB, le=MAX_EPHEMERAL_MB)


class Functions(_Strict):
    # The diff streams the catalog and loads a catalog's state: memory grows with the catalog (about 1 GB
    # for a million products); 1,769 MB is one full vCPU. It spools a run's changes to /tmp and archives them
    # there before the upload: about 1.6 GB for a million changes (bench/load_bench.py).
    diff: FunctionSize = FunctionSize(memory_mb=1769, timeout_seconds=900, ephemeral_storage_mb=4096)
    # A consumer's batch is sized to its timeout (StackConfig.consumer_batch_size): a long timeout lets a paced
    # consumer take several messages an invocation.
    consumer: FunctionSize = FunctionSize(memory_mb=1024, timeout_seconds=900)
    # Up to API Gateway's 30 s: the status routes read a catalog's whole state (seconds per 100k products).
    webhook: FunctionSize = FunctionSize(memory_mb=1024, timeout_seconds=29)
    health: FunctionSize = FunctionSize(memory_mb=512, timeout_seconds=300)
    log_retention_days: int = 30

    @model_validator(mode="after")
    def _retention_offered(self) -> Self:
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            offered = ", ".join(map(str, LOG_RETENTION_DAYS))
            raise ValueError(f"log_retention_days must be one CloudWatch Logs offers: {offered}")
        return self


class Queues(_Strict):
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    # Changes are packed into messages up to this size (SQS allows up to 1 MiB).
    max_message_bytes: int = Field(default=1_048_576, ge=1024, le=1_048_576)
    retention_days: int = Field(default=14, ge=1, le=14)
    batch_size: int = Field(default=10, ge=1, le=10_000)
    batching_window_seconds: int = Field(default=5, ge=0, le=300)

    @model_validator(mode="after")
    def _window_for_big_batches(self) -> Self:
        if self.batch_size > 10 and self.batching_window_seconds == 0:
            raise ValueError("an SQS batch size over 10 needs a batching window of at least 1 second")
        return self


class RateLimits(_Strict):
    """The services' rate limits, and how the consumers keep within them.

    Every consumer paces its own requests (catalog_sync/resilience/pacing.py) to an equal share of each limit: the
    limit divided by the consumers that may run at once, both queues' mappings together (one function serves
    both, and either lane may embed or write). Every attempt waits for room, retries included, so the consumers
    together never send more than a limit, whatever the latency or the throttling. The concurrency then only
    divides the limits: more consumers do not send faster, each gets a smaller share and takes longer over a
    message. Hence Lambda's minimum, 2 per mapping, unless `max_concurrency` says otherwise (as long as each
    share still carries the largest request).
    """

    openai_requests_per_minute: int = Field(default=3_000, ge=1)
    openai_tokens_per_minute: int = Field(default=1_000_000, ge=1)
    # Per namespace: write requests (upsert, update and delete are paced together), and upserted megabytes.
    pinecone_write_requests_per_second: float = Field(default=100.0, gt=0)
    pinecone_upsert_megabytes_per_second: float = Field(default=50.0, gt=0)
    # Set to override the default (per queue).
    max_concurrency: int | None = Field(default=None, ge=MIN_CONSUMER_CONCURRENCY, le=MAX_CONSUMER_CONCURRENCY)
    # The most one message asks of the services, per KiB of message (bench/load_bench.py on catalog_gen's
    # products: a full 1 MiB message holds about 2,900 metadata changes, one update request each, or about 450k
    # tokens of text to embed). They size the consumer's batch to its timeout.
    writes_per_message_kib: float = Field(default=3.5, gt=0)
    tokens_per_message_kib: float = Field(default=512.0, gt=0)
    # The share of the consumer's timeout a batch may take at the paced rates; the rest absorbs throttling (a
    # retry waits for room like any request), a window already full when the invocation starts, and latency.
    paced_share_of_timeout: float = Field(default=0.5, gt=0, le=1)

    @model_validator(mode="after")
    def _shares_carry_a_request(self) -> Self:
        shares = self.consumer_shares()
        smallest = {
            "openai_requests_per_minute": 1.0,
            "openai_tokens_per_minute": float(OPENAI_MAX_INPUT_TOKENS * REQUESTS_PER_TOKEN_WINDOW),
            "pinecone_writes_per_second": 1.0,
            "pinecone_upsert_bytes_per_second": float(PINECONE_MAX_REQUEST_BYTES),
        }
        for name, least in smallest.items():
            if shares[name] < least:
                raise ValueError(
                    f"with {self.consumers()} consumers each gets {shares[name]:,.3f} of {name}, less than the "
                    f"{least:,.0f} one request may need: lower limits.max_concurrency"
                )
        return self

    def per_queue_concurrency(self) -> int:
        """The event source mappings' maximum concurrency, for each of the two queues."""
        return self.max_concurrency if self.max_concurrency is not None else MIN_CONSUMER_CONCURRENCY

    def consumers(self) -> int:
        """Consumers that may run at once, both queues together: each limit is divided among them."""
        return 2 * self.per_queue_concurrency()

    def consumer_shares(self) -> dict[str, float]:
        """Each consumer's share of each limit (rounded down to a thousandth), as PipelineSettings names them."""
        n = self.consumers()

        def share(limit: float) -> float:
            return math.floor(limit / n * 1000) / 1000

        return {
            "openai_requests_per_minute": share(self.openai_requests_per_minute),
            "openai_tokens_per_minute": share(self.openai_tokens_per_minute),
            "pinecone_writes_per_second": share(self.pinecone_write_requests_per_second),
            "pinecone_upsert_bytes_per_second": share(self.pinecone_upsert_megabytes_per_second * 1_000_000),
        }

    def message_seconds(self, message_bytes: int) -> float:
        """How long one full message takes a consumer at its paced share of the limits (its busiest limit)."""
        shares = self.consumer_shares()
        kib = message_bytes / 1024
        return max(
            kib * self.tokens_per_message_kib / (shares["openai_tokens_per_minute"] / 60),
            kib * self.writes_per_message_kib / shares["pinecone_writes_per_second"],
        )


class Alarms(_Strict):
    # Share of the consumers' messages that failed, in percent, over `failure_rate_period_minutes`.
    failure_rate_warning_percent: float = Field(default=5.0, gt=0, le=100)
    failure_rate_critical_percent: float = Field(default=10.0, gt=0, le=100)
    failure_rate_period_minutes: int = Field(default=15, ge=1, le=1440)
    # Any message in a dead-letter queue.
    dead_letters: int = Field(default=1, ge=1)
    oldest_message_age_minutes: int = Field(default=60, ge=1)
    # No successful run of a catalog for this long.
    stale_warning_hours: int = Field(default=48, ge=1, le=168)
    stale_critical_hours: int = Field(default=72, ge=1, le=168)
    guard_trips: int = Field(default=1, ge=1)
    # The diff's longest invocation, as a share of its timeout.
    diff_duration_share: float = Field(default=0.8, gt=0, lt=1)
    alert_emails: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.failure_rate_critical_percent < self.failure_rate_warning_percent:
            raise ValueError("the critical failure rate must not be below the warning one")
        if self.stale_critical_hours < self.stale_warning_hours:
            raise ValueError("the critical staleness must not be below the warning one")
        return self


class StackConfig(_Strict):
    # Functions are named <stack>-consumer: Lambda allows 64 characters.
    stack_name: str = Field(default="CatalogSync", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,54}$")
    # The Pinecone index's data-plane host (https://<index>-<project>.svc.<region>.pinecone.io).
    pinecone_host: str = Field(pattern=r"^https://\S+$")
    # Whether any catalog embeds with OpenAI (creates its secret and lets the functions read it).
    openai: bool = True
    # The AWS-published Powertools layer, by the version the tests run with (resolved through SSM at deploy).
    powertools_version: str = "3.37.0"
    state_shards: int = Field(default=16, ge=1, le=256)
    # How often the health function scores every catalog (and publishes HealthScore). Each pass reads every
    # product item of every catalog (about 62,500 read units at 1M products): hourly by default.
    health_schedule: str = "rate(1 hour)"
    # Health score weights and thresholds; the staleness and failure-rate thresholds come from [alarms].
    health: HealthSettings = HealthSettings()
    catalogs: list[CatalogSchedule] = Field(default_factory=list)
    functions: Functions = Functions()
    queues: Queues = Queues()
    limits: RateLimits = RateLimits()
    alarms: Alarms = Alarms()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [c.name for c in self.catalogs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"catalogs listed twice: {', '.join(duplicates)}")
        if self.consumer_batch_size < 1:
            seconds = self.limits.message_seconds(self.queues.max_message_bytes)
            share = self.limits.paced_share_of_timeout
            timeout = self.functions.consumer.timeout_seconds
            raise ValueError(
                f"a full message of {self.queues.max_message_bytes:,} bytes takes a consumer about {seconds:,.0f} s "
                f"at its share of the rate limits, more than {share:.0%} of its {timeout} s timeout: raise "
                f"[functions] consumer's timeout_seconds (to at least {math.ceil(seconds / share)}) or lower "
                "[queues] max_message_bytes"
            )
        if not _SCHEDULE.match(self.health_schedule):
            raise ValueError(f"health_schedule {self.health_schedule!r} is not a cron(...) or rate(...) expression")
        for catalog in self.catalogs:
            if catalog.schedule is not None and len(self.schedule_rule_name(catalog.name)) > MAX_RULE_NAME:
                raise ValueError(
                    f"the schedule rule {self.schedule_rule_name(catalog.name)!r} is longer than EventBridge's "
                    f"{MAX_RULE_NAME} characters: shorten the stack or catalog name"
                )
        return self

    def health_settings(self) -> HealthSettings:
        """[health] with the alarms' staleness and failure-rate thresholds, so that both tell the same story."""
        alarms = self.alarms
        return self.health.model_copy(
            update={
                "stale_warning_hours": float(alarms.stale_warning_hours),
                "stale_critical_hours": float(alarms.stale_critical_hours),
                "failure_warning": alarms.failure_rate_warning_percent / 100,
                "failure_critical": alarms.failure_rate_critical_percent / 100,
            }
        )

    def schedule_rule_name(self, catalog: str) -> str:
        """The catalog's schedule rule: named, so that the webhook can enable, disable or change it."""
        return f"{self.schedule_rule_prefix}{catalog}"

    @property
    def schedule_rule_prefix(self) -> str:
        return f"{self.stack_name}-schedule-"

    @property
    def consumer_batch_size(self) -> int:
        """Messages per consumer invocation: as many full messages as the consumer gets through at its paced share
        of the limits in `limits.paced_share_of_timeout` of its timeout, at most `queues.batch_size`."""
        seconds = self.limits.message_seconds(self.queues.max_message_bytes)
        budget = self.functions.consumer.timeout_seconds * self.limits.paced_share_of_timeout
        return min(self.queues.batch_size, math.floor(budget / seconds))

    def consumer_environment(self) -> dict[str, str]:
        """The consumer's share of each limit, as the environment variables PipelineSettings reads."""
        return {
            f"CATALOG_SYNC_PACE_{name.upper()}": repr(value) for name, value in self.limits.consumer_shares().items()
        }

    @property
    def visibility_timeout_seconds(self) -> int:
        # Six times the consumer's timeout, plus the batching window the messages may wait in.
        return VISIBILITY_TIMEOUT_FACTOR * self.functions.consumer.timeout_seconds + self.queues.batching_window_seconds


class InfraConfigError(ValueError):
    """The stack configuration cannot be read; the message names the file and the problem."""


def load_stack_config(path: Path) -> StackConfig:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InfraConfigError(f"{path}: {exc}") from exc
    try:
        return StackConfig.model_validate(data)
    except ValueError as exc:
        raise InfraConfigError(f"{path}: {exc}") from exc
