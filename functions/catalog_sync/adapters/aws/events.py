"""What an event is, named for a rejection: "an SQS batch of 1 message from catalog-sync", "an EventBridge 'EC2
Instance State-change Notification' event from aws.ec2".

The functions parse the events they accept with powertools' parser models. One they do not accept may be of any
shape, malformed too, so it is recognised here by the few fields that set each AWS event shape apart, and named
with what it carries (the service, the S3 event and object, the method and path).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_plus

_LIMIT = 200  # characters of any one value quoted in a description


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _LIMIT else text[:_LIMIT] + "..."


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _last_part(arn: Any) -> str | None:
    return arn.rsplit(":", 1)[-1].rsplit("/", 1)[-1] if isinstance(arn, str) and arn else None


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), (str, "string"), (int, "number"), (float, "number"), (list, "array")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def _s3_object(bucket: Any, key: Any) -> str:
    return f"s3://{_text(bucket)}/{_text(key)}"


def _records(event: dict[str, Any], records: list[Any]) -> str:
    sources = sorted(
        {str(r.get("eventSource", r.get("EventSource"))) if isinstance(r, dict) else _json_type(r) for r in records}
    )
    if sources == ["aws:s3"]:
        names = sorted({str(r.get("eventName")) for r in records})
        if len(records) == 1:
            s3 = records[0].get("s3") if isinstance(records[0].get("s3"), dict) else {}
            bucket = s3.get("bucket", {}).get("name") if isinstance(s3.get("bucket"), dict) else None
            key = s3.get("object", {}).get("key") if isinstance(s3.get("object"), dict) else None
            where = f" for {_s3_object(bucket, unquote_plus(key))}" if isinstance(key, str) else ""
            return f"an S3 {_text(names[0])} notification{where}"
        return f"an S3 notification of {len(records)} records ({', '.join(_text(name) for name in names)})"
    if sources == ["aws:sqs"]:
        queue = _last_part(records[0].get("eventSourceARN"))
        return f"an SQS batch of {_plural(len(records), 'message')}" + (f" from {queue}" if queue else "")
    if sources == ["aws:dynamodb"]:
        return f"a DynamoDB stream batch of {_plural(len(records), 'record')}"
    return f"a batch of {_plural(len(records), 'record')} from {', '.join(_text(s) for s in sources)}"


def _eventbridge(event: dict[str, Any]) -> str:
    source, detail_type, detail = event.get("source"), event.get("detail-type"), event.get("detail")
    if source == "aws.s3" and isinstance(detail, dict):
        bucket = detail.get("bucket", {}).get("name") if isinstance(detail.get("bucket"), dict) else None
        key = detail.get("object", {}).get("key") if isinstance(detail.get("object"), dict) else None
        where = f" for {_s3_object(bucket, key)}" if key is not None else ""
        return f"an S3 {_text(detail_type)!r} event (EventBridge){where}"
    if detail_type == "Scheduled Event":
        resources = event.get("resources")
        rule = _last_part(resources[0]) if isinstance(resources, list) and resources else None
        return f"a scheduled event from {_text(source)}" + (f" (rule {rule})" if rule else "")
    return f"an EventBridge {_text(detail_type)!r} event from {_text(source)}"


def _http(event: dict[str, Any]) -> str | None:
    context = event.get("requestContext")
    context = context if isinstance(context, dict) else {}
    if "elb" in context:
        return f"an Application Load Balancer request ({_text(event.get('httpMethod'))} {_text(event.get('path'))})"
    http = context.get("http")
    if event.get("version") == "2.0" or isinstance(http, dict):
        http = http if isinstance(http, dict) else {}
        method, path = http.get("method"), event.get("rawPath", http.get("path"))
        return f"an API Gateway HTTP API request ({_text(method)} {_text(path)})"
    if "httpMethod" in event:
        return f"an API Gateway REST API request ({_text(event.get('httpMethod'))} {_text(event.get('path'))})"
    if context:
        return "an API Gateway request"
    return None


def aws_event(event: Any) -> str | None:
    """The AWS service event `event` is, named; None when it is not shaped as one (a plain JSON object)."""
    if not isinstance(event, dict):
        return None
    records = event.get("Records")
    if isinstance(records, list) and records:
        return _records(event, records)
    if "source" in event and "detail-type" in event:
        return _eventbridge(event)
    if event.get("Event") == "s3:TestEvent":
        return f"an S3 test event (s3:TestEvent) for bucket {_text(event.get('Bucket'))}"
    return _http(event)


def describe(event: Any) -> str:
    """What `event` is, for a message naming what was received."""
    known = aws_event(event)
    if known is not None:
        return known
    if not isinstance(event, dict):
        return f"a JSON {_json_type(event)}"
    if not event:
        return "an empty event"
    names = sorted(map(str, event))
    shown = ", ".join(_text(name) for name in names[:8]) + (", ..." if len(names) > 8 else "")
    return f"an event with the fields {shown}"
