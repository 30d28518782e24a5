"""Wiring of the webhook function: settings from the environment, the signing key, the HTTP contract, and the
asynchronous hand-off to the diff function. (The control routes' contract and AWS calls: adapters/aws/control.py.)

The signing key is read from Secrets Manager through powertools Parameters (cached for `secrets_max_age`
seconds): the secret's value, as stored, is the key (a SecretString as UTF-8 bytes, or a SecretBinary). The
nonces of the signed requests received are kept in the state table (SeenNonces), so that each is accepted once.
Clients are made on first use, not at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

import boto3
import orjson
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from catalog_sync.adapters.aws.bucket_layout import CONFIGS_PREFIX
from catalog_sync.adapters.aws.dynamodb_state.keys import nonce_key
from catalog_sync.adapters.aws.triggers import (
    DEFAULT_CATALOGS_PREFIX,
    DEFAULT_PUSHES_PREFIX,
    BadTrigger,
    catalog_for_key,
    check_prefixes,
    parse_trigger,
)
from catalog_sync.logic.signing import DEFAULT_TOLERANCE_SECONDS
from catalog_sync.models.requests import SyncMode

# The names a catalog config accepts (catalog_sync.models.config.CatalogConfig.name): 1-63 characters, letters,
# digits, "_", "." and "-", starting with a letter or a digit (so never "." or "..").
CATALOG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
MAX_IDS = 1_000
MAX_ID_LENGTH = 256
MAX_KEY_LENGTH = 1_024  # S3's limit on an object key (and on a version id)
# The largest payload Lambda accepts for an asynchronous ("Event") invocation.
MAX_EVENT_PAYLOAD_BYTES = 256 * 1024
# A seen nonce is kept this long after its request's timestamp leaves the window: the function's instances' clocks
# and DynamoDB's (which deletes an item by TTL only after its expires_at, often much later) may differ a little.
SEEN_NONCE_MARGIN_SECONDS = 60


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_SYNC_", extra="ignore")

    webhook_secret: str = Field(min_length=1)  # Secrets Manager name or ARN of the signing key
    diff_function: str = Field(min_length=1)  # name or ARN of the diff function
    max_body_bytes: int = Field(default=256 * 1024, gt=0)
    signature_tolerance_seconds: int = Field(default=DEFAULT_TOLERANCE_SECONDS, gt=0)
    secrets_max_age: int = Field(default=300, ge=0)
    catalogs_prefix: str = DEFAULT_CATALOGS_PREFIX  # the diff function's own setting: where a catalog's objects live
    # The control routes (catalog_sync.adapters.aws.control). Unset, a route that needs one answers 500.
    bucket: str | None = None  # catalog configs are read from it, pushed changes written to it
    configs_prefix: str = CONFIGS_PREFIX
    pushes_prefix: str = DEFAULT_PUSHES_PREFIX  # the diff function's own setting too
    # The state table, which keeps the Idempotency-Key records and the nonces seen. Required: unset, every
    # signed request is refused (500), since a replay could not be told apart.
    table_name: str | None = None
    idempotency_expiry_seconds: int = Field(default=3_600, gt=0)
    schedule_rule_prefix: str | None = None  # a catalog's schedule rule is named <prefix><catalog>
    consumer_function: str | None = None  # its event source mappings are paused and resumed

    @model_validator(mode="after")
    def _prefixes_apart(self) -> WebhookSettings:
        check_prefixes(self.catalogs_prefix, self.pushes_prefix)
        return self


# ---------------------------------------------------------------- the HTTP contract


ProductId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]


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


class BadSyncRequest(ValueError):
    """The request is well-formed but asks for something the diff function would refuse."""

    def __init__(self, loc: tuple[str | int, ...], detail: str) -> None:
        super().__init__(detail)
        self.loc = loc
        self.detail = detail


# ---------------------------------------------------------------- AWS


class PayloadTooLarge(ValueError):
    """The invocation would exceed what Lambda accepts for an asynchronous invocation."""


class NotConfigured(RuntimeError):
    """A route needs a setting the function was not given."""


def required(value: str | None, name: str) -> str:
    if not value:
        raise NotConfigured(f"CATALOG_SYNC_{name.upper()} is not set")
    return value


class InvokeFailed(RuntimeError):
    """Lambda did not queue the asynchronous invocation."""


class DiffInvoker:
    """Queues a direct invocation of the diff function (asynchronous: Lambda answers once it is queued)."""

    def __init__(self, function: str, client: Any = None) -> None:
        self.function = function
        self.client = client if client is not None else boto3.client("lambda")

    def invoke(self, payload: Mapping[str, Any]) -> None:
        data = orjson.dumps(payload)
        if len(data) > MAX_EVENT_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"{len(data)} bytes, at most {MAX_EVENT_PAYLOAD_BYTES}")
        response = self.client.invoke(FunctionName=self.function, InvocationType="Event", Payload=data)
        if response.get("StatusCode") != 202:
            raise InvokeFailed(f"Lambda answered {response.get('StatusCode')} to an asynchronous invocation")


class Replayed(Exception):
    """The request's nonce was seen before: the request was already received."""


class SeenNonces:
    """The nonces of the signed requests received, in the state table (pk `NONCE#<nonce>`, sk `seen`), each kept
    until `expires_at` (the table's TTL attribute). Recording one a second time raises Replayed: one conditional
    write, so that two instances receiving the same request at once accept it once."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("dynamodb")
        return self._client

    def record(self, nonce: str, *, expires_at: int) -> None:
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={**nonce_key(nonce), "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise Replayed("the request was already received") from None
            raise


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


@cache
def settings() -> WebhookSettings:
    return WebhookSettings()  # from the environment


@cache
def invoker() -> DiffInvoker:
    return DiffInvoker(settings().diff_function)


@cache
def seen_nonces() -> SeenNonces:
    """Raises NotConfigured without a state table."""
    return SeenNonces(required(settings().table_name, "table_name"))


def signing_key() -> bytes:
    """The webhook's signing key, from Secrets Manager (cached by powertools for `secrets_max_age` seconds)."""
    from aws_lambda_powertools.utilities.parameters import get_secret

    config = settings()
    value = get_secret(config.webhook_secret, max_age=config.secrets_max_age)
    key = value.encode() if isinstance(value, str) else bytes(value)
    if not key:
        raise ValueError("the webhook secret is empty")  # never sign or verify with an empty key
    return key
