"""The HTTP API's contract: the events the webhook is built for, request bodies, answers and problems (pydantic).

The AWS adapters' own results (a schedule's state, a queue mapping's) are answered as they are: they are defined
with their adapters (catalog_sync.adapters.aws.schedules, .consumer_mappings).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from catalog_sync.adapters.aws.consumer_mappings import MappingState
from catalog_sync.adapters.aws.schedules import MAX_EXPRESSION_LENGTH, SCHEDULE_PATTERN
from catalog_sync.adapters.aws.triggers import BadTrigger, catalog_for_key, parse_trigger
from catalog_sync.logic.push import MAX_PUSH_CHANGES
from catalog_sync.logic.validation import MAX_ID_BYTES
from catalog_sync.models.changes import RunRecord
from catalog_sync.models.requests import SyncMode

# The names a catalog config accepts (catalog_sync.models.config.CatalogConfig.name): 1-63 characters, letters,
# digits, "_", "." and "-", starting with a letter or a digit (so never "." or "..").
CATALOG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
MAX_IDS = 1_000
MAX_ID_LENGTH = 256
MAX_KEY_LENGTH = 1_024  # S3's limit on an object key (and on a version id)


# ---------------------------------------------------------------- the events the function is built for


class _HttpContext(BaseModel):
    method: str
    path: str


class _RequestContext(BaseModel):
    requestId: str
    http: _HttpContext


class _HttpApiRequest(BaseModel):
    """What the webhook reads of an API Gateway HTTP API (payload format 2.0) event. Not powertools'
    APIGatewayProxyEventV2Model: that one also requires fields the webhook never reads (a user agent, the source
    IP's form), and limits the methods, so a real request could be refused as something else."""

    version: Literal["2.0"]
    rawPath: str
    rawQueryString: str
    headers: dict[str, str]
    requestContext: _RequestContext
    body: str | None = None
    isBase64Encoded: bool = False


class NotAnHttpApiRequest(ValueError):
    """The function was handed an event other than an API Gateway HTTP API (payload format 2.0) request."""


def check_http_api_event(event: object) -> None:
    """Raises NotAnHttpApiRequest unless `event` is an HTTP API payload-v2 request, as the routes need it."""
    try:
        _HttpApiRequest.model_validate(event)
    except ValidationError:
        raise NotAnHttpApiRequest("not an API Gateway HTTP API (payload format 2.0) request") from None


# ---------------------------------------------------------------- problems


class ProblemLocation(BaseModel):
    loc: list[str | int]
    reason: str | None = Field(
        default=None, description="Why, where the caller's data is at fault (an invalid pushed record, say)."
    )


class Problem(BaseModel):
    """An error, as application/problem+json (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[ProblemLocation] | None = Field(default=None, description="The invalid fields, by location.")


# ---------------------------------------------------------------- sync now

ProductId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]


class BadSyncRequest(ValueError):
    """The request is well-formed but asks for something the diff function would refuse."""

    def __init__(self, loc: tuple[str | int, ...], detail: str) -> None:
        super().__init__(detail)
        self.loc = loc
        self.detail = detail


class SyncNow(BaseModel):
    """The body of POST /catalogs/{catalog}/sync. Empty: an incremental sync of the newest object."""

    model_config = ConfigDict(extra="forbid")

    mode: SyncMode = SyncMode.INCREMENTAL
    force: bool = Field(
        default=False, strict=True, description="Sync even if the deletion guard would hold the run back."
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="The object to sync, under the catalog's prefix; unset: the newest object.",
    )
    version_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="A version of `key` (a rollback); unset: the latest version. Requires `key`.",
    )
    ids: list[ProductId] | None = Field(
        default=None, min_length=1, max_length=MAX_IDS, description="Only these products; unset: all."
    )

    @model_validator(mode="after")
    def _version_needs_key(self) -> SyncNow:
        if self.version_id is not None and self.key is None:
            # Without a key, the version would apply to whichever object is newest when the diff runs.
            raise ValueError("version_id requires key")
        return self

    def direct_invocation(self, catalog: str, *, prefix: str) -> dict[str, Any]:
        """The diff function's direct-invocation event for this request, checked with the diff function's parser.

        Raises BadSyncRequest when `key` is not an object of `catalog`.
        """
        payload: dict[str, Any] = {"catalog": catalog, "mode": self.mode.value, "force": self.force}
        if self.key is not None:
            try:
                owner = catalog_for_key(self.key, prefix)
            except BadTrigger:
                owner = None
            if owner != catalog:
                raise BadSyncRequest(("body", "key"), f"key must name an object under {prefix}{catalog}/")
            payload["key"] = self.key
        if self.version_id is not None:
            payload["version_id"] = self.version_id
        if self.ids is not None:
            payload["ids"] = list(self.ids)
        parse_trigger(payload, prefix=prefix)  # what the diff function will do with it; BadTrigger here is a bug
        return payload


class SyncAccepted(BaseModel):
    catalog: str
    accepted: Literal[True] = True
    request_id: str = Field(description="API Gateway's id of the request, for the logs.")
    run_id: str = Field(description="The run this sync is (GET /runs/{run_id} follows it).")


# ---------------------------------------------------------------- push changes


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


# ---------------------------------------------------------------- schedules, pause and resume


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


class Consumption(StrEnum):
    PAUSED = "paused"
    RUNNING = "running"


class ConsumptionState(BaseModel):
    catalog: str
    consumption: Consumption
    scope: Literal["all-catalogs"] = Field(
        default="all-catalogs",
        description="The queues and their consumers are shared: this applies to every catalog of the deployment.",
    )
    mappings: list[MappingState]


# ---------------------------------------------------------------- status


class RunList(BaseModel):
    catalog: str
    runs: list[RunRecord]  # newest first
