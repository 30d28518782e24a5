"""The consumer function: SQS batches of packed changes -> embeddings (cache first) -> Pinecone -> commits.

Partial batch responses: a message that fails is reported and comes back; after maxReceiveCount it goes to
the dead-letter queue. The others are acknowledged.

An event that is not an SQS batch (an EventBridge event, an S3 notification, an HTTP request, a schedule) is
rejected before any record is handled: logged, counted (RejectedEvents), answered {"status": "rejected"}, nothing
changed. An SQS batch is always handed to the batch processor, so that a bad message fails alone (and
dead-letters) rather than being acknowledged with the batch.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.events import describe
from catalog_sync.services.consume import apply_message
from handlers._metrics import applied_counts, publish
from handlers._shared import logger, metrics, pipeline, rejected, run_succeeded, tracer

processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    source = record.raw_event.get("eventSource")
    if source != "aws:sqs" or not isinstance(record.raw_event.get("body"), str):
        # A miswired trigger (an S3 notification, say) or a mangled record: name it rather than fail on a key.
        body = "present" if "body" in record.raw_event else "missing"
        raise ValueError(f"not an SQS message (eventSource {source!r}, body {body})")
    applied = apply_message(pipeline(), pipeline().runs, record.body)
    stats = applied.stats
    if applied.run_completed:
        run_succeeded(applied.catalog)
    if stats.repairs:
        logger.warning(
            "writes overtaken by newer changes",
            extra={
                "catalog": applied.catalog,
                "products": stats.repairs[:20],
                "re_sync_requested": applied.repair_requested,
            },
        )
    if stats.rejected:
        # Refused for their content: retrying the message would not help. Pending, with the reasons (`status`).
        logger.warning(
            "products refused by the index",
            extra={"catalog": applied.catalog, "rejected": [r.model_dump(mode="json") for r in stats.rejected[:20]]},
        )
    publish(metrics, applied_counts(stats))
    logger.info("message applied", extra={"catalog": applied.catalog, "run": applied.run_id, **stats.as_dict()})


def _not_an_sqs_batch(event: Any) -> str | None:
    """Why `event` is not what the SQS event source mapping sends (a list of aws:sqs records), or None."""
    records = event.get("Records") if isinstance(event, dict) else None
    if (
        isinstance(records, list)
        and records
        and all(isinstance(record, dict) and record.get("eventSource") == "aws:sqs" for record in records)
    ):
        return None
    return f"{describe(event)}: the consumer takes SQS batches of change messages (from the changes queues)"


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reason = _not_an_sqs_batch(event)
    if reason is not None:
        # Answered, not raised: an asynchronous invocation that raised would be retried, then sent to the failure
        # queue. No batchItemFailures: this is no batch of the queue's.
        rejected("consumer", reason, event)
        return {"status": "rejected", "error": reason}
    response = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    # The failure-rate alarms divide the one by the other.
    failed = len(response.get("batchItemFailures", []))
    publish(metrics, {names.MESSAGES_PROCESSED: len(event.get("Records", [])), names.MESSAGES_FAILED: failed})
    return dict(response)
