"""What started a sync: the events the diff function accepts, parsed into one request shape.

- an S3 "Object Created" event delivered by EventBridge, for the function's own bucket;
- a classic S3 notification (several records; object keys URL-encoded), for the function's own bucket;
- a scheduled rule, whose input names the catalog and the mode: {"trigger": "schedule", "catalog": ..., "mode": ...};
- a direct invocation: {"catalog": ..., "key"?, "version_id"?, "mode"?, "force"?, "ids"?};
- a push: a direct invocation whose key is a pushed-changes object, `<pushes_prefix><catalog>/<request>.jsonl`,
  written by the webhook (POST /catalogs/{catalog}/changes): {"catalog", "key", "ids", "mode": "incremental"}.

Anything else (another S3 event, an event of another service or bucket, an HTTP request) is refused with a
BadTrigger that names what was received and what the function takes.

Catalog objects live under `<prefix><catalog>/` in the bucket; the key names the catalog. Only they start a sync
from S3 (EventBridge or a notification), and only they are ever "the newest object" of a catalog.

A push object holds the pushed upserts, and `ids` names every product the push changes: upserted (in the object)
and deleted (named, absent from the object). The diff reads only those ids, so a push never deletes a product it
does not name; and since every deletion is named explicitly, the deletion guard does not hold a push back (it is
for a truncated catalog file, which a push object written by the webhook is not).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.exceptions import InvalidModelTypeError
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel, S3Model
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalog_sync.adapters.aws.bucket_layout import CATALOGS_PREFIX, PUSHES_PREFIX
from catalog_sync.adapters.aws.events import aws_event, describe
from catalog_sync.models.requests import Continuation, SyncMode, SyncRequest, Trigger

DEFAULT_CATALOGS_PREFIX = CATALOGS_PREFIX
DEFAULT_PUSHES_PREFIX = PUSHES_PREFIX


class BadTrigger(ValueError):
    """The event is not one the diff function accepts; the message says why."""


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
    run_id: str | None = Field(default=None, min_length=1, max_length=80)


def check_prefixes(catalogs_prefix: str, pushes_prefix: str) -> None:
    """Catalog drops and push objects must live apart: a push object must never pass for a catalog drop."""
    for prefix in (catalogs_prefix, pushes_prefix):
        if not prefix.endswith("/") or prefix == "/":
            raise ValueError(f"prefix {prefix!r} must be a folder: non-empty, ending with '/'")
    if catalogs_prefix.startswith(pushes_prefix) or pushes_prefix.startswith(catalogs_prefix):
        raise ValueError(f"the catalogs prefix {catalogs_prefix!r} and the pushes prefix {pushes_prefix!r} overlap")


def catalog_for_key(key: str, prefix: str = DEFAULT_CATALOGS_PREFIX) -> str:
    """`catalogs/<catalog>/<file>` -> `<catalog>`."""
    if not key.startswith(prefix):
        raise BadTrigger(f"object {key!r} is not under {prefix!r}: no catalog owns it")
    catalog, _, rest = key[len(prefix) :].partition("/")
    if not catalog or not rest:
        raise BadTrigger(f"object {key!r} must be stored as {prefix}<catalog>/<file>")
    return catalog


def _push_request(direct: _DirectInput, pushes_prefix: str) -> SyncRequest:
    assert direct.key is not None
    if catalog_for_key(direct.key, pushes_prefix) != direct.catalog:
        raise BadTrigger(f"object {direct.key!r} does not belong to catalog {direct.catalog!r}")
    if not direct.ids:
        # Without ids, every product absent from the push object would be deleted.
        raise BadTrigger(f"a push ({direct.key!r}) must name the products it changes in ids")
    if direct.mode is not SyncMode.INCREMENTAL:
        raise BadTrigger(f"a push ({direct.key!r}) is incremental")
    return SyncRequest(
        trigger=Trigger.PUSH,
        catalog=direct.catalog,
        key=direct.key,
        version_id=direct.version_id,
        mode=SyncMode.INCREMENTAL,
        force=True,  # every deletion is named: the guard is for truncated catalogs
        ids=tuple(direct.ids),
    )


# What the diff function is built for, said in each rejection of something else.
ACCEPTS = (
    "the diff function takes S3 Object Created events (through EventBridge or as notifications) for its catalog "
    "bucket, schedules and direct invocations"
)
_CREATED_ONLY = "the diff syncs only object-created events (a deleted drop changes nothing)"


def _check_s3_records(event: dict[str, Any]) -> None:
    """Records of another service (an SQS batch sent here by mistake) are named as such, not parsed as S3's."""
    records = event["Records"]
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        raise BadTrigger("unrecognised event: Records must be a list of S3 notification records")
    if not records:
        raise BadTrigger("an S3 notification without records: nothing to sync")
    sources = {str(record.get("eventSource")) for record in records} - {"aws:s3"}
    if sources:
        raise BadTrigger(
            f"{describe(event)}: its records come from {', '.join(sorted(sources))}, not aws:s3; {ACCEPTS}"
        )


def _own_bucket(name: str, bucket: str | None, event: dict[str, Any]) -> None:
    if bucket is not None and name != bucket:
        raise BadTrigger(
            f"{describe(event)}: an event for bucket {name!r}, but this function's catalog bucket is {bucket!r}"
        )


def _from_eventbridge(event: dict[str, Any], prefix: str, bucket: str | None) -> list[SyncRequest]:
    source, detail_type = event.get("source"), event.get("detail-type")
    if source == "aws.s3" and detail_type == "Object Created":
        created = parse(event=event, model=S3EventNotificationEventBridgeModel)
        _own_bucket(created.detail.bucket.name, bucket, event)
        obj = created.detail.object
        return [
            SyncRequest(
                trigger=Trigger.S3_EVENTBRIDGE,
                catalog=catalog_for_key(obj.key, prefix),
                bucket=created.detail.bucket.name,
                key=obj.key,
                version_id=obj.version_id,
                sequencer=obj.sequencer,
            )
        ]
    if source == "aws.s3":
        raise BadTrigger(f"{describe(event)}: {_CREATED_ONLY}")
    if detail_type == "Scheduled Event":
        raise BadTrigger(
            f"{describe(event)}: a scheduled rule must pass "
            '{"trigger": "schedule", "catalog": ..., "mode": ...} as its input'
        )
    raise BadTrigger(f"{describe(event)}: not a trigger of the diff function; {ACCEPTS}")


def _from_notification(event: dict[str, Any], prefix: str, bucket: str | None) -> list[SyncRequest]:
    _check_s3_records(event)
    notification = parse(event=event, model=S3Model)
    for record in notification.Records:
        _own_bucket(record.s3.bucket.name, bucket, event)
    requests = []
    for record in notification.Records:
        s3_object = record.s3.object
        if not record.eventName.startswith("ObjectCreated:") or s3_object is None:
            continue  # beside a created one (S3 sends one record a notification): a deletion is no new catalog
        key = unquote_plus(s3_object.key)
        requests.append(
            SyncRequest(
                trigger=Trigger.S3_NOTIFICATION,
                catalog=catalog_for_key(key, prefix),
                bucket=record.s3.bucket.name,
                key=key,
                version_id=s3_object.versionId,
                sequencer=s3_object.sequencer,
            )
        )
    if not requests:
        raise BadTrigger(f"{describe(event)}: {_CREATED_ONLY}")
    return requests


def _describe(exc: ValidationError) -> str:
    """The first few problems, each with where it is: "detail.object.key: Field required"."""
    errors = exc.errors(include_url=False)
    described = "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'event'}: {error['msg']}" for error in errors[:3]
    )
    return described + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "")


def parse_trigger(
    event: Any,
    *,
    prefix: str = DEFAULT_CATALOGS_PREFIX,
    pushes_prefix: str = DEFAULT_PUSHES_PREFIX,
    bucket: str | None = None,
) -> list[SyncRequest]:
    """The sync requests an event asks for (an S3 notification may carry several objects).

    `bucket`: the function's catalog bucket; an S3 event for another bucket is refused (None: not checked).
    Anything else the function is not built for raises BadTrigger, saying what was received.
    """
    if not isinstance(event, dict):
        raise BadTrigger(f"expected a JSON object as the event, got {describe(event)}")
    try:
        if "source" in event and "detail-type" in event:
            return _from_eventbridge(event, prefix, bucket)
        if "Records" in event:
            return _from_notification(event, prefix, bucket)
        received = aws_event(event)
        if event.get("Event") == "s3:TestEvent":
            raise BadTrigger(f"{received}: S3 sends it when a notification is configured; there is nothing to sync")
        if received is not None:
            raise BadTrigger(f"{received}: not a trigger of the diff function; {ACCEPTS}")
        if event.get("trigger") == "schedule":
            schedule = _ScheduleInput.model_validate(event)
            return [SyncRequest(trigger=Trigger.SCHEDULE, catalog=schedule.catalog, mode=schedule.mode)]
        direct = _DirectInput.model_validate(event)
        if direct.key is not None and direct.key.startswith(pushes_prefix):
            return [_push_request(direct, pushes_prefix)]
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
                run_id=direct.run_id,
            )
        ]
    except ValidationError as exc:
        raise BadTrigger(f"unrecognised event: {_describe(exc)}") from None
    except InvalidModelTypeError as exc:
        raise BadTrigger(f"unrecognised event: {str(exc).splitlines()[0]}") from None


def parse_continuation(event: dict[str, Any]) -> Continuation:
    """The continuation a diff near its timeout handed this invocation ({"resume": {...}}); BadTrigger if malformed."""
    try:
        return Continuation.model_validate(event["resume"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'resume'}: {e['msg']}" for e in exc.errors())
        raise BadTrigger(f"not a continuation of a run (resume): {problems}") from exc
