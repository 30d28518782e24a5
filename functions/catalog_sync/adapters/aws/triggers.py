"""What started a sync: the events the diff function accepts, parsed into one request shape.

- an S3 "Object Created" event delivered by EventBridge;
- a classic S3 notification (several records; object keys URL-encoded);
- a scheduled rule, whose input names the catalog and the mode: {"trigger": "schedule", "catalog": ..., "mode": ...};
- a direct invocation: {"catalog": ..., "key"?, "version_id"?, "mode"?, "force"?, "ids"?}.

Catalog objects live under `<prefix><catalog>/` in the bucket; the key names the catalog.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, S3Model
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_CATALOGS_PREFIX = "catalogs/"


class Trigger(StrEnum):
    S3_EVENTBRIDGE = "s3-eventbridge"
    S3_NOTIFICATION = "s3-notification"
    SCHEDULE = "schedule"
    DIRECT = "direct"


class SyncMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


class BadTrigger(ValueError):
    """The event is not one the diff function accepts; the message says why."""


class SyncRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    trigger: Trigger
    catalog: str
    bucket: str | None = None
    key: str | None = None  # None: the newest object under the catalog's prefix
    version_id: str | None = None  # None: the latest version
    mode: SyncMode = SyncMode.INCREMENTAL
    force: bool = False
    ids: tuple[str, ...] | None = None


class _ScheduleInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: str = Field(pattern="^schedule$")
    catalog: str = Field(min_length=1)
    mode: SyncMode = SyncMode.INCREMENTAL


class _DirectInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    catalog: str = Field(min_length=1)
    key: str | None = None
    version_id: str | None = None
    mode: SyncMode = SyncMode.INCREMENTAL
    force: bool = False
    ids: list[str] | None = None


def catalog_for_key(key: str, prefix: str = DEFAULT_CATALOGS_PREFIX) -> str:
    """`catalogs/<catalog>/<file>` -> `<catalog>`."""
    if not key.startswith(prefix):
        raise BadTrigger(f"object {key!r} is not under {prefix!r}: no catalog owns it")
    catalog, _, rest = key[len(prefix) :].partition("/")
    if not catalog or not rest:
        raise BadTrigger(f"object {key!r} must be stored as {prefix}<catalog>/<file>")
    return catalog


def parse_trigger(event: Any, *, prefix: str = DEFAULT_CATALOGS_PREFIX) -> list[SyncRequest]:
    """The sync requests an event asks for (an S3 notification may carry several objects)."""
    if not isinstance(event, dict):
        raise BadTrigger(f"expected a JSON object as the event, got {type(event).__name__}")
    try:
        if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
            created = parse(event=event, model=S3EventNotificationEventBridgeModel)
            obj = created.detail.object
            return [
                SyncRequest(
                    trigger=Trigger.S3_EVENTBRIDGE,
                    catalog=catalog_for_key(obj.key, prefix),
                    bucket=created.detail.bucket.name,
                    key=obj.key,
                    version_id=obj.version_id,
                )
            ]
        if "Records" in event:
            notification = parse(event=event, model=S3Model)
            requests = []
            for record in notification.Records:
                s3_object = record.s3.object
                if not record.eventName.startswith("ObjectCreated:") or s3_object is None:
                    continue  # a deletion of a drop is not a new catalog
                key = unquote_plus(s3_object.key)
                requests.append(
                    SyncRequest(
                        trigger=Trigger.S3_NOTIFICATION,
                        catalog=catalog_for_key(key, prefix),
                        bucket=record.s3.bucket.name,
                        key=key,
                        version_id=s3_object.versionId,
                    )
                )
            return requests
        if event.get("detail-type") == "Scheduled Event":
            raise BadTrigger(
                'a scheduled rule must pass {"trigger": "schedule", "catalog": ..., "mode": ...} as its input'
            )
        if event.get("trigger") == "schedule":
            schedule = _ScheduleInput.model_validate(event)
            return [SyncRequest(trigger=Trigger.SCHEDULE, catalog=schedule.catalog, mode=schedule.mode)]
        direct = _DirectInput.model_validate(event)
        if direct.key is not None and catalog_for_key(direct.key, prefix) != direct.catalog:
            raise BadTrigger(f"object {direct.key!r} does not belong to catalog {direct.catalog!r}")
        return [
            SyncRequest(
                trigger=Trigger.DIRECT,
                catalog=direct.catalog,
                key=direct.key,
                version_id=direct.version_id,
                mode=direct.mode,
                force=direct.force,
                ids=tuple(direct.ids) if direct.ids is not None else None,
            )
        ]
    except ValidationError as exc:
        raise BadTrigger(f"unrecognised event: {exc.errors(include_url=False)[0]['msg']}") from None
    except InvalidModelTypeError as exc:
        raise BadTrigger(f"unrecognised event: {str(exc).splitlines()[0]}") from None
