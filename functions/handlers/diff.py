"""The diff function: a catalog drop, a schedule, a direct call or a push -> diff -> changes queued (both lanes)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.triggers import BadTrigger, parse_trigger
from catalog_sync.models.config import ConfigError
from catalog_sync.services.drops import SupersededDrop
from catalog_sync.services.sync import BadCatalog, SyncReport
from handlers._shared import logger, metrics, pipeline, rejected, run_succeeded, tracer


def _summary(report: SyncReport) -> dict[str, Any]:
    counts = report.diff.counts
    return {
        "catalog": report.catalog,
        "run_id": report.run.run_id if report.run else None,
        "status": report.run.status.value if report.run else "planned",
        "held": report.guard.held,
        "reason": report.guard.reason,
        "counts": counts.model_dump(),
        "quarantine": report.quarantine_location,
    }


def _out_of_time(context: LambdaContext) -> Callable[[], bool]:
    margin_ms = pipeline().settings.time_margin_seconds * 1000
    return lambda: context.get_remaining_time_in_millis() < margin_ms


class Continuation(BaseModel):
    """What a diff near its timeout hands the next invocation: {"resume": {"catalog": ..., "run_id": ...}}."""

    model_config = ConfigDict(extra="forbid")

    catalog: str = Field(min_length=1)
    run_id: str = Field(min_length=1)


def _rejected(reason: str, event: Any) -> dict[str, Any]:
    # Answered, not raised: Lambda would retry an asynchronous invocation, then send it to the failure queue.
    rejected("diff", reason, event)
    return {"status": "rejected", "error": reason, "runs": []}


def _resume(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        continuation = Continuation.model_validate(event["resume"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'resume'}: {e['msg']}" for e in exc.errors())
        return _rejected(f"not a continuation of a run (resume): {problems}", event)
    if not pipeline().runs.has_checkpoint(continuation.run_id):
        return _rejected(f"run {continuation.run_id!r} has no checkpoint to resume from", event)
    resume = continuation.model_dump()
    progress, completed = pipeline().runs.resume(
        continuation.catalog,
        continuation.run_id,
        out_of_time=_out_of_time(context),
        function_arn=context.invoked_function_arn,
    )
    if completed:
        run_succeeded(resume["catalog"])
    logger.info("dispatch resumed", extra={**resume, "finished": progress.finished, "messages": progress.messages})
    return {
        "status": "ok",
        "resumed": resume["run_id"],
        "finished": progress.finished,
        "superseded": progress.superseded,
    }


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and "resume" in event:
        return _resume(event, context)
    try:
        settings = pipeline().settings
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
        try:
            report = pipeline().runs.run(
                request, out_of_time=_out_of_time(context), function_arn=context.invoked_function_arn
            )
        except SupersededDrop as exc:
            # Not an error: a newer drop was synced first (its event came earlier, or this one is a retry).
            logger.info("drop superseded", extra={"catalog": request.catalog, "reason": str(exc)})
            runs.append({"catalog": request.catalog, "status": "superseded", "reason": str(exc)})
            continue
        except (BadCatalog, ConfigError) as exc:
            logger.error("bad input", extra={"catalog": request.catalog, "error": str(exc)})
            metrics.add_metric(name=names.BAD_INPUT, unit=MetricUnit.Count, value=1)
            runs.append({"catalog": request.catalog, "status": "bad_input", "error": str(exc)})
            continue
        summary = _summary(report)
        if report.dispatch is not None and not report.dispatch.finished:
            summary["status"] = "continuing"  # near the timeout: a new invocation goes on from the checkpoint
        counts = report.diff.counts
        for name, value in (
            (names.PRODUCTS_ADDED, counts.added),
            (names.PRODUCTS_MODIFIED, counts.text_changed),
            (names.PRODUCTS_METADATA_ONLY, counts.metadata_only),
            (names.PRODUCTS_DELETED, counts.deleted),
            (names.INVALID_RECORDS, counts.invalid),
            (names.GUARD_TRIPS, int(report.guard.held)),
        ):
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        if report.run_completed:
            run_succeeded(request.catalog)
        logger.info("diff done", extra=summary)
        runs.append(summary)
    return {"status": "ok", "runs": runs}
