"""Wiring of the AWS pipeline: settings from the environment, secrets, catalog configs, and the services the
two functions run (the diff dispatches; the consumer applies).

Catalog configs live in the bucket at `<configs_prefix><catalog>.toml` (or `.yaml`); catalog drops under
`<catalogs_prefix><catalog>/`. API keys come from Secrets Manager through powertools Parameters (cached), never
from plain environment variables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import orjson
from botocore.exceptions import ClientError
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from catalog_sync.adapters.aws.catalog_configs import load_catalog_config
from catalog_sync.adapters.aws.dynamodb_cache import DynamoEmbeddingCache
from catalog_sync.adapters.aws.dynamodb_state import DEFAULT_SHARDS, DynamoStateStore
from catalog_sync.adapters.aws.s3 import S3CatalogSource, S3ChangeArchive, S3ClaimStore
from catalog_sync.adapters.aws.sqs_queue import DEFAULT_MESSAGE_BYTES, SqsChangeSender
from catalog_sync.adapters.aws.stack import deployed_catalogs
from catalog_sync.adapters.aws.triggers import (
    DEFAULT_CATALOGS_PREFIX,
    DEFAULT_PUSHES_PREFIX,
    SyncMode,
    SyncRequest,
    Trigger,
    check_prefixes,
)
from catalog_sync.adapters.embedders.hashing import HashingEmbedder
from catalog_sync.adapters.embedders.openai import OpenAIEmbedder
from catalog_sync.adapters.pinecone.index import PineconeVectorIndex
from catalog_sync.logic.drops import DropClaim, newest_listed
from catalog_sync.logic.drops import superseded as drop_superseded
from catalog_sync.logic.health import HealthSettings
from catalog_sync.models.changes import QuarantinedRecord, RunRecord, RunStatus
from catalog_sync.models.config import CatalogConfig, ConfigError, EmbedderKind
from catalog_sync.ports import Embedder
from catalog_sync.resilience.policy import AWS_MAX_ATTEMPTS, PINECONE_WRITE_RETRY, botocore_retries
from catalog_sync.services.apply import ChangeApplier
from catalog_sync.services.dispatch import Dispatcher, DispatchProgress
from catalog_sync.services.sync import SUPERSEDED_MESSAGE, SyncReport, SyncService

CONFIG_CACHE_SECONDS = 300
# Runs that read a catalog drop: they claim it as the newest object, and an older drop is not synced after it.
_DROP_TRIGGERS = {Trigger.S3_EVENTBRIDGE, Trigger.S3_NOTIFICATION, Trigger.SCHEDULE}
# The checkpoint's field holding the drop its run claimed, beside the dispatch's progress.
_CHECKPOINT_CLAIM = "source_claim"


class SupersededDrop(Exception):
    """A catalog drop older than one a run already read: syncing it would undo the newer catalog."""


# The runs a repair looks through for the pushes that set products' desired state.
REPAIR_LOOKBACK_RUNS = 50


def repair_sources(
    runs: Sequence[RunRecord],
    desired_versions: Mapping[str, int],
    product_ids: Sequence[str],
    *,
    bucket: str,
    pushes_prefix: str,
) -> dict[str | None, list[str]]:
    """The object to re-read each product from, to put its desired state back: key -> products (None: the newest).

    A product's desired version is the sequence number of the run that recorded it. If that run read a push object,
    the product is re-read from that push: it names the product. Otherwise (None) from the newest catalog object
    a run has read, as it is when the re-sync runs: a repair waiting in Lambda's queue must not bring back an
    object that a newer drop replaced meanwhile. A push object is never re-read for a product it does not name:
    absent from it, the product would be deleted. A product without a desired state (its deletion was committed)
    has nothing to put back and is left out: re-read from a catalog object, a product a push deleted would come
    back.
    """
    prefix = f"s3://{bucket}/"
    keys = {run.seq: run.source[len(prefix) :] for run in runs if run.source.startswith(prefix)}
    sources: dict[str | None, list[str]] = {}
    for product_id in product_ids:
        if product_id not in desired_versions:
            continue
        pushed = keys.get(desired_versions[product_id])
        key = pushed if pushed is not None and pushed.startswith(pushes_prefix) else None
        sources.setdefault(key, []).append(product_id)
    return sources


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
    configs_prefix: str = "config/"
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


def get_secret(name: str, max_age: int) -> str:
    # powertools Parameters caches the value for max_age seconds across invocations of a warm function.
    from aws_lambda_powertools.utilities.parameters import get_secret as powertools_get_secret

    value = powertools_get_secret(name, max_age=max_age)
    return value if isinstance(value, str) else bytes(value).decode()


class S3RunArtifacts:
    """Quarantined records of a run, as JSON Lines in the bucket; change logs go to the logs (structured)."""

    def __init__(self, s3: Any, *, bucket: str, catalog: str) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.catalog = catalog

    def write_quarantine(self, run_id: str, records: Any) -> str:
        import orjson

        body = b"".join(
            orjson.dumps({"run": run_id, **QuarantinedRecord.model_validate(r).model_dump()}, default=str) + b"\n"
            for r in records
        )
        key = f"quarantine/{self.catalog}/{run_id}.jsonl"
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        return f"s3://{self.bucket}/{key}"

    def append_change_log(self, run_id: str, changes: Any) -> None:
        return None  # the run's counts are in the state table; per-change history is the queue's job here


@dataclass
class Pipeline:
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

    def embedder(self, config: CatalogConfig) -> Embedder:
        from catalog_sync.adapters.embedders.openai import openai_rates
        from catalog_sync.resilience.pacing import shared_pacer

        settings = config.embedder
        if settings.kind is EmbedderKind.OPENAI:
            if not self.settings.openai_secret:
                raise ConfigError(f"catalog {config.name!r} embeds with OpenAI but no OpenAI secret is configured")
            # The limits are per model: one pacer per model in the process, whichever catalogs embed with it.
            pacer = shared_pacer(
                ("openai", settings.openai_base_url, settings.openai_model),
                openai_rates(
                    self.settings.pace_openai_requests_per_minute, self.settings.pace_openai_tokens_per_minute
                ),
                start_full=True,
            )
            return OpenAIEmbedder(
                model=settings.openai_model,
                dimensions=settings.openai_dimensions,
                base_url=settings.openai_base_url,
                api_key=get_secret(self.settings.openai_secret, self.settings.secrets_max_age),
                pacer=pacer,
            )
        if settings.kind is EmbedderKind.HASHING:
            return HashingEmbedder(settings.hashing_dimensions)  # tests only: not semantic
        raise ConfigError(f"catalog {config.name!r}: the {settings.kind} embedder does not run in the AWS pipeline")

    def index(self, config: CatalogConfig) -> PineconeVectorIndex:
        from dataclasses import replace

        from catalog_sync.adapters.pinecone.index import pinecone_rates
        from catalog_sync.resilience.pacing import shared_pacer

        settings = self.settings
        # The limits are per namespace: one pacer per namespace in the process, shared by every index instance
        # and every update thread. A new process starts with its windows full (see Pacer).
        pacer = shared_pacer(
            ("pinecone", settings.pinecone_host, config.index_namespace),
            pinecone_rates(settings.pace_pinecone_writes_per_second, settings.pace_pinecone_upsert_bytes_per_second),
            start_full=True,
        )
        return PineconeVectorIndex(
            host=settings.pinecone_host,
            namespace=config.index_namespace,
            metadata_fields=list(config.metadata),
            api_key=get_secret(settings.pinecone_secret, settings.secrets_max_age),
            pacer=pacer,
            retry=replace(PINECONE_WRITE_RETRY, attempts=settings.pinecone_write_attempts),
        )

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

    # ------------------------------------------------------------ the diff function

    def newest_drop(self, catalog: str) -> str:
        """The newest object under the catalog's prefix, by the order claims follow (catalog_sync.logic.drops)."""
        prefix = f"{self.settings.catalogs_prefix}{catalog}/"
        listed = [
            (obj["Key"], obj["LastModified"].timestamp())
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.settings.bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        newest = newest_listed(listed)
        if newest is None:
            raise ConfigError(f"no catalog object under s3://{self.settings.bucket}/{prefix}")
        return newest

    def archive(self) -> S3ChangeArchive:
        return S3ChangeArchive(self.s3, bucket=self.settings.bucket)

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

    def _claim_drop(self, state: DynamoStateStore, request: SyncRequest, key: str) -> DropClaim | None:
        """For a catalog drop (an S3 event, or the newest object): the claim recorded for it as the newest object
        read. Raises SupersededDrop when a run already read a newer object (catalog_sync.logic.drops)."""
        reads_newest = request.key is None and request.trigger is Trigger.DIRECT
        if request.ids is not None or not (request.trigger in _DROP_TRIGGERS or reads_newest):
            return None  # a targeted re-sync, a push, or an object asked for by name (a rollback)
        bucket = request.bucket or self.settings.bucket
        head: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if request.version_id:
            head["VersionId"] = request.version_id
        try:
            response = self.s3.head_object(**head)
        except ClientError:
            return None  # unreadable: the diff reports it as bad input when it opens the object
        claim = DropClaim(
            key=key,
            modified=response["LastModified"].timestamp(),
            version_id=request.version_id or response.get("VersionId"),
            # Only an S3 event carries one; a listed object (a schedule) falls back to LastModified.
            sequencer=request.sequencer,
        )
        if not state.claim_source(
            modified=claim.modified, key=key, version_id=claim.version_id, sequencer=claim.sequencer
        ):
            newest = state.newest_claim()
            raise SupersededDrop(
                f"s3://{bucket}/{key} was superseded: a run already read a newer object"
                + (f" ({newest.key})" if newest else "")
            )
        return claim

    def _dispatcher(
        self,
        state: DynamoStateStore,
        sender: SqsChangeSender,
        catalog: str,
        claim: DropClaim | None,
        arn: str | None,
        *,
        modified: float | None = None,
    ) -> Dispatcher:
        """`claim`: the drop this run claimed (None: not a catalog drop). `modified`: a checkpoint's from before
        claims were kept in checkpoints (only a later second supersedes it)."""

        def superseded() -> bool:
            if claim is not None:
                return drop_superseded(claim, state.newest_claim())
            if modified is not None:
                newest = state.newest_source()
                return newest is not None and newest[0] > modified
            return False  # not a catalog drop (a re-sync of some products, a push, a rollback)

        def resync(product_ids: list[str]) -> None:
            # From the newest catalog object a run has read, when the re-sync runs (see repair_sources).
            function = self.settings.diff_function or arn
            if function is not None:
                # Forced: the deletions it makes are those the newer catalog's run already made (guard passed).
                self.invoke_self(function, {"catalog": catalog, "ids": product_ids, "force": True})

        return Dispatcher(
            state=state,
            sender=sender,
            archive=self.archive(),
            window=self.settings.dispatch_window,
            superseded=superseded,
            resync=resync,
        )

    def _save_checkpoint(self, progress: DispatchProgress, claim: DropClaim | None) -> None:
        """The dispatch's progress, and the drop its run claimed (a continuation must know when it is overtaken)."""
        checkpoint = progress.model_dump(mode="json")
        if claim is not None:
            checkpoint[_CHECKPOINT_CLAIM] = claim.model_dump(mode="json")
        self.archive().save_checkpoint(progress.run_id, orjson.dumps(checkpoint))

    def _load_checkpoint(self, run_id: str) -> tuple[DispatchProgress, DropClaim | None]:
        checkpoint = orjson.loads(self.archive().load_checkpoint(run_id))
        claim = checkpoint.pop(_CHECKPOINT_CLAIM, None)
        return DispatchProgress.model_validate(checkpoint), (
            DropClaim.model_validate(claim) if claim is not None else None
        )

    def run_diff(
        self,
        request: SyncRequest,
        *,
        out_of_time: Callable[[], bool] = lambda: False,
        function_arn: str | None = None,
    ) -> SyncReport:
        """`function_arn`: the diff function's own, to re-sync products a newer drop overtook (see Dispatcher)."""
        config = self.config(request.catalog)
        state = self.state(config)
        key, version_id = request.key, request.version_id
        newest = state.newest_source() if key is None and request.ids is not None else None
        if newest is not None:  # a re-sync of some products: from the newest catalog object a run has read
            key, version_id = newest[1], newest[2]
        key = key or self.newest_drop(request.catalog)
        source = S3CatalogSource(self.s3, bucket=request.bucket or self.settings.bucket, key=key, version_id=version_id)
        claim = self._claim_drop(state, request, key)
        embedder = self.embedder(config)
        # The run id names the messages; the run itself is numbered by the state store.
        sender = self.sender(config, run_id="pending")
        dispatcher = self._dispatcher(state, sender, config.name, claim, function_arn)
        service = SyncService(
            config=config,
            state=state,
            index=self.index(config),
            embedder=embedder,
            queue=sender,
            artifacts=S3RunArtifacts(self.s3, bucket=self.settings.bucket, catalog=config.name),
            cache=self.cache(),
            apply_changes=False,
            on_run_started=lambda run: setattr(sender, "run_id", run.run_id),
            dispatcher=dispatcher,
            out_of_time=out_of_time,
        )
        # A run the webhook began (it answered with its id) is carried on, unless a retry finds it settled.
        begun = state.find_run(request.run_id) if request.run_id else None
        report = service.sync(
            source, full=request.mode is SyncMode.FULL, force=request.force, only_ids=request.ids, run=begun
        )
        if claim is not None and report.guard.held:
            # A held drop changes nothing: it supersedes no older drop, and repairs do not re-read it.
            state.withdraw_claim(claim)
        if report.dispatch is not None and not report.dispatch.finished:
            report.dispatch.source_modified = claim.modified if claim is not None else None
            self._save_checkpoint(report.dispatch, claim)
        return report

    def resume_dispatch(
        self,
        catalog: str,
        run_id: str,
        *,
        out_of_time: Callable[[], bool] = lambda: False,
        function_arn: str | None = None,
    ) -> tuple[DispatchProgress, bool]:
        """Continue a dispatch that ran out of time, from its checkpoint; also whether that completed the run."""
        config = self.config(catalog)
        state = self.state(config)
        progress, claim = self._load_checkpoint(run_id)
        sender = self.sender(config, run_id)
        dispatcher = self._dispatcher(
            state, sender, config.name, claim, function_arn, modified=None if claim else progress.source_modified
        )
        progress = dispatcher.resume(progress, out_of_time=out_of_time)
        if not progress.finished:
            self._save_checkpoint(progress, claim)
            return progress, False
        run = state.get_run(run_id)
        run.status = RunStatus.DISPATCHED
        run.message = SUPERSEDED_MESSAGE if progress.superseded else None
        if progress.superseded:
            run.counts["undispatched_changes"] = run.counts.get("dispatched_changes", 0) - progress.changes
        run.counts["dispatched_messages"] = progress.messages
        run.counts["dispatched_changes"] = progress.changes
        return progress, state.finish_run(run)

    def invoke_self(self, function_arn: str, payload: dict[str, Any]) -> None:
        """Continue in a new invocation of the same function (asynchronous: this one returns at once)."""
        import orjson

        boto3.client("lambda").invoke(FunctionName=function_arn, InvocationType="Event", Payload=orjson.dumps(payload))

    def request_repair(self, catalog: str, product_ids: list[str]) -> bool:
        """Ask the diff function to re-sync some products now; False when there is none to ask (or nothing to do).

        Each product is re-read from the object its desired state came from (see `repair_sources`).
        """
        if not self.settings.diff_function:
            return False
        state = self.state(self.config(catalog))
        sources = repair_sources(
            state.runs(REPAIR_LOOKBACK_RUNS),
            state.desired_versions(product_ids),
            product_ids,
            bucket=self.settings.bucket,
            pushes_prefix=self.settings.pushes_prefix,
        )
        for key, ids in sources.items():
            # Forced: it puts back what a catalog run the guard let through recorded, deletions included.
            request: dict[str, Any] = {"catalog": catalog, "ids": ids, "force": True}
            if key is not None:
                request["key"] = key
            self.invoke_self(self.settings.diff_function, request)
        return bool(sources)

    # ------------------------------------------------------------ the consumer function

    def applier(self, catalog: str) -> ChangeApplier:
        config = self.config(catalog)
        return ChangeApplier(
            state=self.state(config), index=self.index(config), embedder=self.embedder(config), cache=self.cache()
        )
