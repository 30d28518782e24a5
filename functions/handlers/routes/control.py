"""The control routes: sync now, push changes, schedules, pause and resume. All signed (the webhook's gate).

Thin: each parses its request, calls catalog_sync (the adapters bootstrap/api.py makes, logic/push.py) and maps
the outcome; errors become application/problem+json through the exception handlers at the end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

from catalog_sync.adapters.aws import observability as names
from catalog_sync.adapters.aws.catalog_configs import CatalogNotFound
from catalog_sync.adapters.aws.consumer_mappings import MappingBusy, NoMappings
from catalog_sync.adapters.aws.diff_invoker import PayloadTooLarge
from catalog_sync.adapters.aws.idempotency import (
    IDEMPOTENCY_HEADER,
    IDEMPOTENCY_KEY_PATTERN,
    KeyInProgress,
    KeyReused,
)
from catalog_sync.adapters.aws.schedules import BadSchedule, NoSchedule, ScheduleState
from catalog_sync.bootstrap import api
from catalog_sync.bootstrap.settings import NotConfigured
from catalog_sync.logic.push import MAX_PUSH_CHANGES, PushRejected, check_nesting
from catalog_sync.models.config import ConfigError
from handlers._shared import logger, metrics
from handlers.routes._common import SIGNED, SIGNING, at, problem, responses
from handlers.routes.models import (
    CATALOG_PATTERN,
    BadSyncRequest,
    Consumption,
    ConsumptionState,
    ProblemLocation,
    PushAccepted,
    PushChanges,
    ScheduleUpdate,
    SyncAccepted,
    SyncNow,
)

router = Router()  # type: ignore[no-untyped-call]  # powertools leaves its __init__ unannotated

CatalogName = Annotated[str, Path(pattern=CATALOG_PATTERN, description="The catalog's name.")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_HEADER,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=(
            "Makes a retry safe: a request whose key was used within the last hour (the default expiry) is not done "
            "again but gets the first answer; the same key with another request is refused (422)."
        ),
    ),
]
SHARED = (
    "The queues and the consumers are shared by every catalog of the deployment: pausing stops consumption for "
    "all of them, not just this one. Queued changes wait in the queues (up to the queues' retention period)."
)


def _request_id() -> str:
    return cast(APIGatewayProxyEventV2, router.current_event).request_context.request_id


def _once(
    operation: str, key: str | None, request: Mapping[str, Any], work: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """`work()`'s answer; with an Idempotency-Key, done once per key (the state table keeps the answer)."""
    if key is None:
        return work()
    return api.idempotency().run(operation, key, request, work, context=router.lambda_context)


# ---------------------------------------------------------------- sync now


@router.post(
    "/catalogs/<catalog>/sync",
    status_code=HTTPStatus.ACCEPTED,
    summary="Sync a catalog now",
    description=(
        "Begins a run of the catalog and queues its sync (the diff function, invoked asynchronously, carries the "
        f"run on); answers at once with the run's id. 404 for a catalog without a configuration. {SIGNING}"
    ),
    responses=responses(
        HTTPStatus.ACCEPTED,
        SyncAccepted,
        "The sync is queued.",
        HTTPStatus.NOT_FOUND,
        HTTPStatus.CONFLICT,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    ),
    security=SIGNED,
    tags=["sync"],
)
def sync_now(
    catalog: CatalogName,
    body: Annotated[SyncNow | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> SyncAccepted:
    request = body or SyncNow()
    request_id = _request_id()

    def work() -> dict[str, Any]:
        payload = request.direct_invocation(catalog, prefix=api.settings().catalogs_prefix)
        api.configs().get(catalog)  # CatalogNotFound (404) before a run is begun for it
        # The run begins here, so that the answer can name it; the diff carries it on.
        mode = "ids" if request.ids is not None else request.mode.value
        run_id = api.begin_run(catalog, mode=mode, source=f"webhook request {request_id}")
        payload["run_id"] = run_id
        api.invoker().invoke(payload)
        logger.info(
            "sync queued",
            extra={
                "catalog": catalog,
                "mode": request.mode.value,
                "force": request.force,
                "key": request.key,
                "version_id": request.version_id,
                "ids": len(request.ids) if request.ids is not None else None,
                "request_id": request_id,
                "run_id": run_id,
            },
        )
        metrics.add_metric(name="SyncRequestsQueued", unit=MetricUnit.Count, value=1)
        return SyncAccepted(catalog=catalog, request_id=request_id, run_id=run_id).model_dump(mode="json")

    answer = _once("sync", idempotency_key, {"catalog": catalog, "body": request.model_dump(mode="json")}, work)
    return SyncAccepted.model_validate(answer)


# ---------------------------------------------------------------- push changes


@router.post(
    "/catalogs/<catalog>/changes",
    status_code=HTTPStatus.ACCEPTED,
    summary="Push product changes",
    description=(
        "Upserts and deletes products now, without a catalog drop. Each upsert is a record as in the catalog "
        "and is validated exactly as catalog records are (the catalog's config: id field, required fields, types, "
        "text and metadata limits). If any change is invalid, nothing is applied and the answer lists every "
        "invalid change with its reason; an id both upserted and deleted, or given twice, is invalid. Valid "
        "changes go through the same diff as a drop: deletions and price, availability or stock changes are "
        "applied first, unchanged products are skipped, and no other product is touched. The deletion guard does "
        "not apply: each deletion is named. A later catalog drop still decides: a pushed product missing from it "
        f"is deleted then. At most {MAX_PUSH_CHANGES:,} changes per request. {SIGNING}"
    ),
    responses=responses(
        HTTPStatus.ACCEPTED,
        PushAccepted,
        "The changes are valid and queued.",
        HTTPStatus.NOT_FOUND,
        HTTPStatus.CONFLICT,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    ),
    security=SIGNED,
    tags=["changes"],
)
def push_changes(
    catalog: CatalogName,
    body: Annotated[PushChanges, Body()],
    idempotency_key: IdempotencyKey = None,
) -> PushAccepted:
    request_id = _request_id()
    check_nesting(body.upserts)  # before the body is dumped for its Idempotency-Key, which could not

    def work() -> dict[str, Any]:
        pushed, key = api.pusher().push(catalog, body.upserts, body.deletes, request_id=request_id)
        logger.info(
            "changes pushed",
            extra={
                "catalog": catalog,
                "key": key,
                "upserts": len(pushed.upserted),
                "deletes": len(pushed.deleted),
                "request_id": request_id,
            },
        )
        metrics.add_metric(name="PushesQueued", unit=MetricUnit.Count, value=1)
        return PushAccepted(
            catalog=catalog, request_id=request_id, upserts=len(pushed.upserted), deletes=len(pushed.deleted)
        ).model_dump(mode="json")

    answer = _once("changes", idempotency_key, {"catalog": catalog, "body": body.model_dump(mode="json")}, work)
    return PushAccepted.model_validate(answer)


# ---------------------------------------------------------------- schedule


@router.put(
    "/catalogs/<catalog>/schedule",
    summary="Enable, disable or reschedule a catalog's scheduled sync",
    description=(
        "Changes the catalog's EventBridge schedule rule: `enabled` turns it on or off, `expression` sets when it "
        "runs (`rate(...)` or `cron(...)`, in UTC); what the rule runs is kept. Answers with the rule as it is "
        "now. A catalog without a schedule in the deployment has no rule (404). The next deployment keeps the "
        f"change unless the catalog's schedule in the stack's config changed. {SIGNING}"
    ),
    responses=responses(
        HTTPStatus.OK,
        ScheduleState,
        "The schedule as it is now.",
        HTTPStatus.NOT_FOUND,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        HTTPStatus.UNPROCESSABLE_ENTITY,
    ),
    security=SIGNED,
    tags=["schedule"],
)
def update_schedule(catalog: CatalogName, body: Annotated[ScheduleUpdate, Body()]) -> ScheduleState:
    state = api.schedules().update(catalog, enabled=body.enabled, expression=body.expression)
    logger.info(
        "schedule updated",
        extra={"catalog": catalog, "rule": state.rule, "enabled": state.enabled, "expression": state.expression},
    )
    return state


# ---------------------------------------------------------------- pause and resume


def _consumption(catalog: str, consumption: Consumption) -> ConsumptionState:
    if not api.configs().exists(catalog):
        raise CatalogNotFound(f"no catalog {catalog!r}")
    mappings = api.consumer_mappings().set_enabled(consumption is Consumption.RUNNING)
    logger.warning(
        f"consumption {consumption.value}",
        extra={"catalog": catalog, "scope": "all-catalogs", "mappings": [m.model_dump() for m in mappings]},
    )
    return ConsumptionState(catalog=catalog, consumption=consumption, mappings=mappings)


_CONSUMPTION_RESPONSES = (HTTPStatus.NOT_FOUND, HTTPStatus.CONFLICT, HTTPStatus.UNPROCESSABLE_ENTITY)


@router.post(
    "/catalogs/<catalog>/pause",
    summary="Pause consumption (every catalog's)",
    description=(
        "Stops the consumers: the consumer function's queue mappings are disabled, so changes are queued but not "
        f"applied until a resume. {SHARED} {SIGNING}"
    ),
    responses=responses(HTTPStatus.OK, ConsumptionState, "Consumption is paused.", *_CONSUMPTION_RESPONSES),
    security=SIGNED,
    tags=["consumption"],
)
def pause(catalog: CatalogName) -> ConsumptionState:
    return _consumption(catalog, Consumption.PAUSED)


@router.post(
    "/catalogs/<catalog>/resume",
    summary="Resume consumption (every catalog's)",
    description=(
        "Starts the consumers again: the consumer function's queue mappings are enabled, and what was queued "
        f"meanwhile is applied. {SHARED} {SIGNING}"
    ),
    responses=responses(HTTPStatus.OK, ConsumptionState, "Consumption is running.", *_CONSUMPTION_RESPONSES),
    security=SIGNED,
    tags=["consumption"],
)
def resume(catalog: CatalogName) -> ConsumptionState:
    return _consumption(catalog, Consumption.RUNNING)


# ---------------------------------------------------------------- errors (raised only past the gate)


def _bad_sync_request(exc: BadSyncRequest) -> Response[str]:
    return problem(HTTPStatus.UNPROCESSABLE_ENTITY, exc.detail, errors=at(exc.loc))


def _payload_too_large(exc: PayloadTooLarge) -> Response[str]:
    return problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the request is too large to queue")


def _no_catalog(exc: CatalogNotFound) -> Response[str]:
    return problem(HTTPStatus.NOT_FOUND, "no such catalog")


def _bad_config(exc: ConfigError) -> Response[str]:
    logger.error("the catalog's config cannot be loaded", extra={"error": str(exc)})
    metrics.add_metric(name=names.WEBHOOK_ERRORS, unit=MetricUnit.Count, value=1)
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "the catalog's configuration cannot be loaded")


def _push_rejected(exc: PushRejected) -> Response[str]:
    return problem(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        f"{len(exc.problems)} of the changes are invalid; nothing was applied",
        errors=[ProblemLocation(loc=list(p.loc), reason=p.reason) for p in exc.problems],
    )


def _key_reused(exc: KeyReused) -> Response[str]:
    return problem(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc), errors=at(("header", IDEMPOTENCY_HEADER.lower())))


def _key_in_progress(exc: KeyInProgress) -> Response[str]:
    return problem(HTTPStatus.CONFLICT, str(exc), headers={"Retry-After": "1"})


def _no_schedule(exc: NoSchedule) -> Response[str]:
    return problem(HTTPStatus.NOT_FOUND, "the catalog has no schedule")


def _bad_schedule(exc: BadSchedule) -> Response[str]:
    return problem(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc), errors=at(("body", "expression")))


def _mapping_busy(exc: MappingBusy) -> Response[str]:
    return problem(
        HTTPStatus.CONFLICT, "a queue mapping is being changed; try again shortly", headers={"Retry-After": "5"}
    )


def _no_mappings(exc: NoMappings) -> Response[str]:
    logger.error("nothing to pause or resume", extra={"error": str(exc)})
    metrics.add_metric(name=names.WEBHOOK_ERRORS, unit=MetricUnit.Count, value=1)
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "the consumer function has no queue mappings")


def _not_configured(exc: NotConfigured) -> Response[str]:
    logger.error("the webhook is missing a setting", extra={"error": str(exc)})
    metrics.add_metric(name=names.WEBHOOK_ERRORS, unit=MetricUnit.Count, value=1)
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "an internal error occurred")


for _exc_class, _answer in (
    (BadSyncRequest, _bad_sync_request),
    (PayloadTooLarge, _payload_too_large),
    (CatalogNotFound, _no_catalog),
    (ConfigError, _bad_config),
    (PushRejected, _push_rejected),
    (KeyReused, _key_reused),
    (KeyInProgress, _key_in_progress),
    (NoSchedule, _no_schedule),
    (BadSchedule, _bad_schedule),
    (MappingBusy, _mapping_busy),
    (NoMappings, _no_mappings),
    (NotConfigured, _not_configured),
):
    router.exception_handler(_exc_class)(_answer)
