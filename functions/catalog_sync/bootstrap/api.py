"""The webhook function's composition root: its settings, the signing key, and the adapters its routes call.

Each is made on first use (not at import) and kept by the warm function; `clear_caches` forgets them (tests
change the environment). A route that needs a setting the function was not given raises NotConfigured (500).

The signing key is read from Secrets Manager through powertools Parameters (cached for `secrets_max_age`
seconds): the secret's value, as stored, is the key (a SecretString as UTF-8 bytes, or a SecretBinary). The
status routes read the state table catalog by catalog, each with the shard count its state was written with.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import boto3

from catalog_sync.adapters.aws.catalog_configs import CatalogConfigs
from catalog_sync.adapters.aws.consumer_mappings import ConsumerMappings
from catalog_sync.adapters.aws.diff_invoker import DiffInvoker, Invoker
from catalog_sync.adapters.aws.dynamodb_state import DynamoStateStore, catalog_of_run, registered_catalogs
from catalog_sync.adapters.aws.idempotency import Idempotency
from catalog_sync.adapters.aws.pushes import ChangePusher
from catalog_sync.adapters.aws.schedules import ScheduleRules
from catalog_sync.adapters.aws.seen_nonces import SeenNonces
from catalog_sync.bootstrap.settings import PipelineSettings, required
from catalog_sync.models.changes import RunRecord
from catalog_sync.services.status import CatalogStatus, DeploymentHealth
from catalog_sync.services.status import catalog_status as compute_status
from catalog_sync.services.status import deployment_health as summarize_health

# Without these the webhook checks no signed request (answered as a request that could not be checked).
_GATE_REQUIRES = ("webhook_secret", "diff_function")


@cache
def settings() -> PipelineSettings:
    return PipelineSettings()  # from the environment


def gate_settings() -> PipelineSettings:
    """The settings, once those the gate needs are known to be given; else ValueError."""
    config = settings()
    missing = [name for name in _GATE_REQUIRES if not getattr(config, name)]
    if missing:
        raise ValueError(f"the webhook needs {', '.join(f'CATALOG_SYNC_{name.upper()}' for name in missing)}")
    return config


# ---------------------------------------------------------------- the gate: the signing key, the nonces seen


def signing_key() -> bytes:
    """The webhook's signing key, from Secrets Manager (cached by powertools for `secrets_max_age` seconds)."""
    from aws_lambda_powertools.utilities.parameters import get_secret

    config = settings()
    value = get_secret(required(config.webhook_secret, "webhook_secret"), max_age=config.secrets_max_age)
    key = value.encode() if isinstance(value, str) else bytes(value)
    if not key:
        raise ValueError("the webhook secret is empty")  # never sign or verify with an empty key
    return key


@cache
def seen_nonces() -> SeenNonces:
    """Raises NotConfigured without a state table."""
    return SeenNonces(required(settings().table_name, "table_name"))


# ---------------------------------------------------------------- the control routes


@cache
def invoker() -> DiffInvoker:
    return DiffInvoker(required(settings().diff_function, "diff_function"))


def _diff_invoker() -> Invoker:
    return invoker()  # looked up at each push (tests replace it)


@cache
def configs() -> CatalogConfigs:
    config = settings()
    return CatalogConfigs(
        boto3.client("s3"), bucket=required(config.bucket, "bucket"), configs_prefix=config.configs_prefix
    )


@cache
def pusher() -> ChangePusher:
    config = settings()
    catalog_configs = configs()
    return ChangePusher(
        s3=catalog_configs.s3,
        configs=catalog_configs,
        invoker=_diff_invoker,
        bucket=catalog_configs.bucket,
        catalogs_prefix=config.catalogs_prefix,
        pushes_prefix=config.pushes_prefix,
    )


@cache
def idempotency() -> Idempotency:
    config = settings()
    return Idempotency(
        required(config.table_name, "table_name"), expires_after_seconds=config.idempotency_expiry_seconds
    )


@cache
def schedules() -> ScheduleRules:
    return ScheduleRules(required(settings().schedule_rule_prefix, "schedule_rule_prefix"))


@cache
def consumer_mappings() -> ConsumerMappings:
    return ConsumerMappings(required(settings().consumer_function, "consumer_function"))


# ---------------------------------------------------------------- the status routes (and the run a sync begins)


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


def _table() -> str:
    return required(settings().table_name, "table_name")


def _store(catalog: str, shards: int) -> DynamoStateStore:
    return DynamoStateStore(_dynamodb(), table=_table(), catalog=catalog, shards=shards)


def _registered() -> dict[str, int]:
    return registered_catalogs(_dynamodb(), table=_table())


def begin_run(catalog: str, *, mode: str, source: str) -> str:
    """Begin a run of `catalog` now (the diff carries it on), so that the caller can answer with its id."""
    shards = _registered().get(catalog, settings().state_shards)
    return _store(catalog, shards).begin_run(mode=mode, source=source).run_id


def catalog_status(catalog: str, *, now: datetime) -> CatalogStatus | None:
    """The catalog's status, or None when it has no state here."""
    shards = _registered().get(catalog)
    if shards is None:
        return None
    return compute_status(_store(catalog, shards), catalog=catalog, now=now, settings=settings().health)


def catalog_runs(catalog: str, *, limit: int) -> list[RunRecord] | None:
    """The catalog's runs, newest first, or None when it has no state here."""
    shards = _registered().get(catalog)
    if shards is None:
        return None
    return _store(catalog, shards).runs(limit)


def find_run(run_id: str) -> RunRecord | None:
    catalog = catalog_of_run(_dynamodb(), table=_table(), run_id=run_id)
    if catalog is None:
        return None
    shards = _registered().get(catalog)
    return None if shards is None else _store(catalog, shards).find_run(run_id)


def deployment_health(*, now: datetime) -> DeploymentHealth:
    return summarize_health(
        compute_status(_store(catalog, shards), catalog=catalog, now=now, settings=settings().health)
        for catalog, shards in sorted(_registered().items())
    )


def clear_caches() -> None:
    """Forget the settings and the clients made so far (the environment changed)."""
    for made in (settings, seen_nonces, invoker, configs, pusher, idempotency, schedules, consumer_mappings, _dynamodb):
        clear = getattr(made, "cache_clear", None)  # a test may have replaced one
        if clear is not None:
            clear()
