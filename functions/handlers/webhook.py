"""The webhook function: an API Gateway HTTP API (payload v2) in front of the pipeline.

- the control routes (handlers/routes/control.py), signed:
  - POST /catalogs/{catalog}/sync: queues a sync of the catalog now (an asynchronous invocation of the diff
    function, with its direct-invocation event) and answers 202;
  - POST /catalogs/{catalog}/changes: pushes product upserts and deletes, validated as catalog records, and
    answers 202 once they are queued for the diff;
  - PUT /catalogs/{catalog}/schedule: enables, disables or reschedules the catalog's scheduled sync;
  - POST /catalogs/{catalog}/pause and /resume: stops and restarts consumption (shared by all catalogs);
  sync and changes take an Idempotency-Key header (a retried request is done once);
- the status routes (handlers/routes/status.py), signed: GET /catalogs/{catalog}/status, GET
  /catalogs/{catalog}/runs, GET /runs/{run_id} and GET /health (every catalog's health score and alerts);
- GET /openapi.json (handlers/routes/openapi.py): public.

Every other request must be signed (catalog_sync.logic.signing, scheme v2: its method, path, query, timestamp,
nonce and raw body); the size limit and the signature are checked before anything else about the request is
answered, for the routes of every router included here (handlers/routes/gate.py). A signed request is accepted
once: its nonce is recorded in the state table (CATALOG_SYNC_TABLE_NAME) until its timestamp has left the window,
and the same nonce again is refused (401, a replay), whatever request carries it. A client's retry is therefore a
new request, signed again with a new nonce (with the same Idempotency-Key, for sync and changes to be done once).
Errors are application/problem+json (RFC 9457) and carry no internal detail.

An event that is not an HTTP API payload-v2 request (a REST API proxy event, an S3 notification, an EventBridge
event, ...) is rejected before routing: logged, counted (RejectedEvents), nothing read or changed, and answered
with a 400 problem in the proxy response shape (statusCode, headers, body), which a REST API would pass on.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.adapters.aws.events import describe
from handlers._shared import logger, metrics, rejected, tracer
from handlers.routes import control, errors, gate, openapi, status
from handlers.routes._common import PROBLEM_JSON
from handlers.routes.models import NotAnHttpApiRequest, Problem, check_http_api_event

app = APIGatewayHttpResolver(
    enable_validation=True, response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR
)
errors.install(app, gate.install(app))
# The gate applies to the routes of included routers as to the app's own.
app.include_router(control.router)
app.include_router(status.router)
_openapi_document = openapi.install(app)


def _rejected(event: Any) -> dict[str, Any]:
    """The answer to an event the function is not built for, in the proxy response shape (a 400 problem)."""
    received = describe(event)
    reason = "the webhook answers API Gateway HTTP API requests (payload format 2.0) only"
    if received.startswith("an API Gateway HTTP API request"):
        received = f"one without the fields it reads: {received}"
    rejected("webhook", reason, event)  # logged and counted (RejectedEvents)
    problem = Problem(
        title=HTTPStatus.BAD_REQUEST.phrase,
        status=HTTPStatus.BAD_REQUEST.value,
        detail=f"{reason}; received {received}",
    )
    return {
        "statusCode": HTTPStatus.BAD_REQUEST.value,
        "headers": {"Content-Type": PROBLEM_JSON},
        "body": problem.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        check_http_api_event(event)
    except NotAnHttpApiRequest:
        return _rejected(event)
    return app.resolve(event, context)
