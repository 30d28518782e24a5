"""The control side of the HTTP API, on AWS: pushed changes, schedules, and pausing consumption.

- pushed changes (POST /catalogs/{catalog}/changes): validated with the catalog's config from the bucket
  (catalog_sync.logic.push), written to `<pushes_prefix><catalog>/<request>.jsonl` and handed to the diff function
  as a push (catalog_sync.adapters.aws.triggers): the diff does the rest exactly as for a catalog drop;
- schedules (PUT /catalogs/{catalog}/schedule): the catalog's EventBridge rule, named `<rule prefix><catalog>`,
  enabled, disabled or given a new expression (its targets are kept);
- pause and resume (POST /catalogs/{catalog}/pause, /resume): the consumer function's event source mappings,
  disabled or enabled. They are shared by every catalog: pausing stops consumption for all of them. Queued
  changes wait in the queues (within their retention period).

Clients are passed in or made on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, Protocol

import orjson
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from catalog_sync.adapters.aws import webhook as wiring
from catalog_sync.adapters.aws.catalog_configs import CatalogConfigs
from catalog_sync.adapters.aws.idempotency import Idempotency
from catalog_sync.adapters.aws.triggers import parse_trigger
from catalog_sync.adapters.aws.webhook import MAX_EVENT_PAYLOAD_BYTES, PayloadTooLarge, required
from catalog_sync.logic.push import MAX_PUSH_CHANGES, PreparedPush, prepare_push
from catalog_sync.logic.validation import MAX_ID_BYTES

# EventBridge: a rule name is 1-64 of these; an expression at most 256 characters.
_RULE_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
MAX_EXPRESSION_LENGTH = 256
# The two forms EventBridge schedules take; EventBridge checks the fields themselves.
SCHEDULE_PATTERN = (
    r"^(rate\((1 (minute|hour|day)|([2-9]|[1-9][0-9]{1,5}) (minutes|hours|days))\)"
    r"|cron\([^ ()]+( [^ ()]+){5}\))$"
)


class Invoker(Protocol):
    def invoke(self, payload: Mapping[str, Any]) -> None: ...


# ---------------------------------------------------------------- the HTTP contract


def _without_nulls(schema: dict[str, Any]) -> None:
    """Optional fields that may be left out but not sent as null: their schemas without the null alternative."""
    for prop in schema.get("properties", {}).values():
        options = prop.pop("anyOf", None)
        if options is not None:
            [kept] = [option for option in options if option.get("type") != "null"]
            prop.update(kept)
            prop.pop("default", None)


def _some_fields_without_nulls(schema: dict[str, Any]) -> None:
    _without_nulls(schema)
    schema["minProperties"] = 1


class _NoNulls(BaseModel):
    """A body whose optional fields are left out, never null."""

    @model_validator(mode="after")
    def _no_nulls(self) -> _NoNulls:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"leave out rather than send null: {', '.join(nulls)}")
        return self


PushedId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_BYTES)]


class PushChanges(BaseModel):
    """The body of POST /catalogs/{catalog}/changes: at least one change, at most 1,000 in all."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["upserts"], "properties": {"upserts": {"minItems": 1}}},
                {"required": ["deletes"], "properties": {"deletes": {"minItems": 1}}},
            ]
        },
    )

    upserts: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MAX_PUSH_CHANGES,
        description=(
            "Products to add or replace, as records of the catalog (its id field, text and metadata fields): "
            "validated exactly as catalog records are."
        ),
    )
    deletes: list[PushedId] = Field(
        default_factory=list,
        max_length=MAX_PUSH_CHANGES,
        description="Ids of products to delete.",
    )

    @model_validator(mode="after")
    def _some_changes(self) -> PushChanges:
        total = len(self.upserts) + len(self.deletes)
        if total == 0:
            raise ValueError("a push must upsert or delete at least one product")
        if total > MAX_PUSH_CHANGES:
            raise ValueError(f"a push changes at most {MAX_PUSH_CHANGES} products")
        return self


class PushAccepted(BaseModel):
    catalog: str
    accepted: Literal[True] = True
    request_id: str = Field(description="API Gateway's id of the request, for the logs; it names the push object.")
    upserts: int = Field(description="Upserts queued (the diff skips those that change nothing).")
    deletes: int = Field(description="Deletes queued (an id the catalog does not have changes nothing).")


class ScheduleUpdate(_NoNulls):
    """The body of PUT /catalogs/{catalog}/schedule: what to change (at least one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_some_fields_without_nulls,
    )

    enabled: bool | None = Field(default=None, strict=True, description="Run on the schedule (true) or not (false).")
    expression: str | None = Field(
        default=None,
        max_length=MAX_EXPRESSION_LENGTH,
        pattern=SCHEDULE_PATTERN,
        description="An EventBridge schedule expression: `rate(...)` or `cron(...)`.",
        examples=["rate(6 hours)", "cron(0 3 * * ? *)"],
    )

    @model_validator(mode="after")
    def _something(self) -> ScheduleUpdate:
        if self.enabled is None and self.expression is None:
            raise ValueError("give enabled, expression or both")
        return self


class ScheduleState(BaseModel):
    catalog: str
    rule: str = Field(description="The EventBridge rule.")
    enabled: bool
    expression: str


class Consumption(StrEnum):
    PAUSED = "paused"
    RUNNING = "running"


class MappingState(BaseModel):
    uuid: str
    queue: str = Field(description="The queue's ARN.")
    state: str = Field(description="The mapping's state (Enabling and Disabling take a few seconds).")


class ConsumptionState(BaseModel):
    catalog: str
    consumption: Consumption
    scope: Literal["all-catalogs"] = Field(
        default="all-catalogs",
        description="The queues and their consumers are shared: this applies to every catalog of the deployment.",
    )
    mappings: list[MappingState]


# ---------------------------------------------------------------- pushed changes


def push_key(pushes_prefix: str, catalog: str, request_id: str, suffix: str) -> str:
    """The object a push is written to; the request id is made safe for a key (base64 may hold "/" and "+")."""
    safe = re.sub(r"[^A-Za-z0-9_.=-]", "-", request_id.replace("/", "_").replace("+", "-"))
    return f"{pushes_prefix}{catalog}/{safe}{suffix}"


class ChangePusher:
    """Validates a push, writes its object and queues the diff of exactly the products it names."""

    def __init__(
        self,
        *,
        s3: Any,
        configs: CatalogConfigs,
        invoker: Callable[[], Invoker],
        bucket: str,
        catalogs_prefix: str,
        pushes_prefix: str,
    ) -> None:
        self._s3 = s3
        self.configs = configs
        self._invoker = invoker
        self.bucket = bucket
        self.catalogs_prefix = catalogs_prefix
        self.pushes_prefix = pushes_prefix

    def push(self, catalog: str, changes: PushChanges, *, request_id: str) -> tuple[PreparedPush, str]:
        """The push as written and its key. Raises CatalogNotFound, PushRejected (nothing written) or
        PayloadTooLarge."""
        config = self.configs.get(catalog)
        prepared = prepare_push(config, changes.upserts, changes.deletes)
        key = push_key(self.pushes_prefix, catalog, request_id, prepared.suffix)
        payload = {"catalog": catalog, "key": key, "ids": prepared.ids, "mode": "incremental"}
        # What the diff function will make of it (a BadTrigger here is a bug, not the caller's).
        parse_trigger(payload, prefix=self.catalogs_prefix, pushes_prefix=self.pushes_prefix)
        size = len(orjson.dumps(payload))
        if size > MAX_EVENT_PAYLOAD_BYTES:  # checked before anything is written
            raise PayloadTooLarge(f"{size} bytes, at most {MAX_EVENT_PAYLOAD_BYTES}")
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=prepared.body, ContentType=prepared.content_type)
        self._invoker().invoke(payload)
        return prepared, key


# ---------------------------------------------------------------- schedules


class NoSchedule(LookupError):
    """The catalog has no schedule rule."""


class BadSchedule(ValueError):
    """EventBridge refused the expression."""


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class ScheduleRules:
    """The catalogs' EventBridge schedule rules, named `<prefix><catalog>`."""

    def __init__(self, prefix: str, client: Any = None) -> None:
        self.prefix = prefix
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("events")
        return self._client

    def rule_name(self, catalog: str) -> str:
        return f"{self.prefix}{catalog}"

    def _describe(self, catalog: str) -> dict[str, Any]:
        name = self.rule_name(catalog)
        if _RULE_NAME.fullmatch(name) is None:
            raise NoSchedule(f"no schedule rule for catalog {catalog!r}")  # no rule can have this name
        try:
            rule: dict[str, Any] = self.client.describe_rule(Name=name)
        except ClientError as exc:
            if _error_code(exc) == "ResourceNotFoundException":
                raise NoSchedule(f"no schedule rule for catalog {catalog!r}") from None
            raise
        if not rule.get("ScheduleExpression"):
            raise NoSchedule(f"rule {name!r} is not a schedule")
        return rule

    def state(self, catalog: str) -> ScheduleState:
        return self._state(catalog, self._describe(catalog))

    def _state(self, catalog: str, rule: Mapping[str, Any]) -> ScheduleState:
        return ScheduleState(
            catalog=catalog,
            rule=str(rule["Name"]),
            enabled=rule.get("State") == "ENABLED",
            expression=str(rule["ScheduleExpression"]),
        )

    def update(self, catalog: str, *, enabled: bool | None = None, expression: str | None = None) -> ScheduleState:
        """Enable or disable the rule, or change its expression; the rule's state afterwards."""
        rule = self._describe(catalog)
        name = str(rule["Name"])
        currently = rule.get("State") == "ENABLED"
        wanted = currently if enabled is None else enabled
        if expression is not None and expression != rule["ScheduleExpression"]:
            # PutRule replaces the whole rule: what it is not given is cleared, so the rest is given back as it
            # was. Targets are not part of a rule and are kept.
            kept = {field: rule[field] for field in ("Description", "RoleArn", "EventBusName") if rule.get(field)}
            try:
                self.client.put_rule(
                    Name=name, ScheduleExpression=expression, State="ENABLED" if wanted else "DISABLED", **kept
                )
            except ClientError as exc:
                if _error_code(exc) == "ValidationException":
                    raise BadSchedule("EventBridge refused the schedule expression") from None
                raise
        elif wanted != currently:
            (self.client.enable_rule if wanted else self.client.disable_rule)(Name=name)
        else:
            return self._state(catalog, rule)  # nothing to change
        return self.state(catalog)


# ---------------------------------------------------------------- pausing consumption


class MappingBusy(RuntimeError):
    """A mapping is being created, updated or deleted: it cannot be changed now."""


class NoMappings(RuntimeError):
    """The consumer function has no event source mapping: nothing consumes the queues."""


# Mappings already where a pause (or a resume) takes them.
_SETTLED = {False: {"Disabled", "Disabling"}, True: {"Enabled", "Enabling"}}


class ConsumerMappings:
    """The consumer function's event source mappings (its queues)."""

    def __init__(self, function: str, client: Any = None) -> None:
        self.function = function
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("lambda")
        return self._client

    def mappings(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_event_source_mappings").paginate(FunctionName=self.function):
            found.extend(page.get("EventSourceMappings", []))
        return found

    def set_enabled(self, enabled: bool) -> list[MappingState]:
        """Enable (resume) or disable (pause) every mapping; their states afterwards."""
        mappings = self.mappings()
        if not mappings:
            raise NoMappings(f"function {self.function!r} has no event source mapping")
        states = []
        for mapping in mappings:
            state = str(mapping.get("State", ""))
            if state not in _SETTLED[enabled]:
                try:
                    state = str(self.client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)["State"])
                except ClientError as exc:
                    if _error_code(exc) == "ResourceInUseException":
                        raise MappingBusy(f"mapping {mapping['UUID']} is being changed; try again shortly") from None
                    raise
            states.append(MappingState(uuid=mapping["UUID"], queue=mapping.get("EventSourceArn", ""), state=state))
        return states


# ---------------------------------------------------------------- wiring: made on first use, from the settings


@cache
def configs() -> CatalogConfigs:
    import boto3

    settings = wiring.settings()
    return CatalogConfigs(
        boto3.client("s3"), bucket=required(settings.bucket, "bucket"), configs_prefix=settings.configs_prefix
    )


def _diff_invoker() -> Invoker:
    return wiring.invoker()  # looked up at each push (tests replace it)


@cache
def pusher() -> ChangePusher:
    settings = wiring.settings()
    catalog_configs = configs()
    return ChangePusher(
        s3=catalog_configs.s3,
        configs=catalog_configs,
        invoker=_diff_invoker,
        bucket=catalog_configs.bucket,
        catalogs_prefix=settings.catalogs_prefix,
        pushes_prefix=settings.pushes_prefix,
    )


@cache
def idempotency() -> Idempotency:
    settings = wiring.settings()
    return Idempotency(
        required(settings.table_name, "table_name"), expires_after_seconds=settings.idempotency_expiry_seconds
    )


@cache
def schedules() -> ScheduleRules:
    return ScheduleRules(required(wiring.settings().schedule_rule_prefix, "schedule_rule_prefix"))


@cache
def consumer_mappings() -> ConsumerMappings:
    return ConsumerMappings(required(wiring.settings().consumer_function, "consumer_function"))


def clear_caches() -> None:
    """Forget the clients and settings made so far (tests change the environment)."""
    for made in (configs, pusher, idempotency, schedules, consumer_mappings):
        clear = getattr(made, "cache_clear", None)  # a test may have replaced one
        if clear is not None:
            clear()
