"""The diff function: a catalog drop, a schedule, a direct call or a push -> diff -> changes queued (both lanes).

An event it is not built for is answered {"status": "rejected"} (logged and counted), not raised: Lambda would
retry an asynchronous invocation, then send it to the failure queue.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.triggers import BadTrigger, parse_continuation, parse_trigger
from catalog_sync.services.diff_runs import NothingToResume
from handlers._metrics import diff_counts, publish
from handlers._shared import logger, metrics, pipeline, rejected, run_succeeded, tracer


def _rejected(reason: str, event: Any) -> dict[str, Any]:
    rejected("diff", reason, event)
    return {"status": "rejected", "error": reason, "runs": []}


def _resume(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        continuation = parse_continuation(event)
    except BadTrigger as exc:
        return _rejected(str(exc), event)
    margin_ms = pipeline().settings.time_margin_seconds * 1000
    try:
        resumed = pipeline().runs.resume(
            continuation,
            out_of_time=lambda: context.get_remaining_time_in_millis() < margin_ms,
            function_arn=context.invoked_function_arn,
        )
    except NothingToResume as exc:
        return _rejected(str(exc), event)
    progress = resumed.progress
    if resumed.completed:
        run_succeeded(continuation.catalog)
    logger.info(
        "dispatch resumed",
        extra={**continuation.model_dump(), "finished": progress.finished, "messages": progress.messages},
    )
    return {
        "status": "ok",
        "resumed": continuation.run_id,
        "finished": progress.finished,
        "superseded": progress.superseded,
    }


def _sync(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = pipeline().settings
    margin_ms = settings.time_margin_seconds * 1000
    try:
        requests = parse_trigger(
            event, prefix=settings.catalogs_prefix, pushes_prefix=settings.pushes_prefix, bucket=settings.bucket
        )
    except BadTrigger as exc:
        return _rejected(str(exc), event)
    runs = []
    for request in requests:
        logger.info(
            "sync requested", extra={"trigger": request.trigger, "catalog": request.catalog, "key": request.key}
        )
        outcome = pipeline().runs.attempt(
            request,
            out_of_time=lambda: context.get_remaining_time_in_millis() < margin_ms,
            function_arn=context.invoked_function_arn,
        )
        summary = outcome.summary()
        if outcome.status == "superseded":  # not an error: a newer drop was synced first
            logger.info("drop superseded", extra={"catalog": request.catalog, "reason": outcome.reason})
        elif outcome.status == "bad_input" or outcome.report is None:
            logger.error("bad input", extra={"catalog": request.catalog, "error": outcome.reason})
            publish(metrics, {names.BAD_INPUT: 1})
        else:
            publish(metrics, diff_counts(outcome.report))
            if outcome.report.run_completed:
                run_succeeded(request.catalog)
            logger.info("diff done", extra=summary)
        runs.append(summary)
    return {"status": "ok", "runs": runs}


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and "resume" in event:
        return _resume(event, context)
    return _sync(event, context)
