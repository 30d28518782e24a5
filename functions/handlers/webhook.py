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
- GET /openapi.json: public.

Every other request must be signed (catalog_sync.logic.signing, scheme v2: its method, path, query, timestamp,
nonce and raw body); the size limit and the signature are checked before anything else about the request is
answered, for the routes of every router included here. A signed request is accepted once: once its signature
verifies, its nonce is recorded in the state table (CATALOG_SYNC_TABLE_NAME) until its timestamp has left the
window, and the same nonce again is refused (401, a replay), whatever request carries it. A client's retry is
therefore a new request, signed again with a new nonce (with the same Idempotency-Key, for sync and changes to be
done once). Without the state table every signed request is refused (500: the function is not configured), never
accepted unchecked. Errors are application/problem+json (RFC 9457) and carry no internal detail.

An event that is not an HTTP API payload-v2 request (a REST API proxy event, an S3 notification, an EventBridge
event, ...) is rejected before routing: logged, counted (RejectedEvents), nothing read or changed, and answered
with a 400 problem in the proxy response shape (statusCode, headers, body), which a REST API would pass on.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.adapters.aws import webhook as wiring
from catalog_sync.adapters.aws.events import describe
from catalog_sync.logic.signing import (
    CANONICAL_PREFIX,
    NONCE_HEADER,
    NONCE_MAX_LENGTH,
    NONCE_MIN_LENGTH,
    SCHEME,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    verify,
)
from handlers._shared import logger, metrics, rejected, tracer
from handlers.routes import control, status
from handlers.routes._common import PROBLEM_JSON, Location, ProblemError, at, problem

API_VERSION = "2"  # 2: requests are signed with the v2 scheme
# Answered to anyone: the API's description. (Unknown paths are not public: they answer 404 only
# to signed requests, 401 to the rest, as a protected route would.)
PUBLIC_ROUTES = frozenset({("GET", "/openapi.json")})
_CHECKED = "_webhook_request_checked"  # in app.context (cleared after each request): the gate was passed
_SIGNATURE_DESCRIPTION = (
    f"{SCHEME}=<hex HMAC-SHA256(key, canonical request)>, several comma-separated while a key rotates (v1= is no "
    "longer accepted). The canonical request is these lines joined by \\n, as UTF-8: "
    f"`{CANONICAL_PREFIX}`, the method (upper case), the path (percent-decoded, as API Gateway passes it on), the "
    "query string exactly as sent (without `?`; empty when none), the timestamp, the nonce, and the lower-case hex "
    "SHA-256 of the raw body (of no bytes when there is none)."
)

app = APIGatewayHttpResolver(
    enable_validation=True, response_validation_error_http_code=HTTPStatus.INTERNAL_SERVER_ERROR
)


def _problem(
    status: HTTPStatus,
    detail: str,
    *,
    errors: list[Location] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    return problem(status, detail, errors=at(*errors) if errors is not None else None, headers=headers)


# ---------------------------------------------------------------- the gate: size, then signature


def _raw_body() -> bytes:
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body, validate=True) if event.is_base64_encoded else body.encode()


def _check() -> Response[str] | None:
    """Public routes read no body and need no configuration: they are answered as they are."""
    route = app.context.get("_route")
    if route is not None and (route.method, route.path) in PUBLIC_ROUTES:
        return None
    settings = wiring.settings()
    try:
        body = _raw_body()
    except (binascii.Error, ValueError):
        return _problem(HTTPStatus.BAD_REQUEST, "the body is marked base64-encoded but is not valid base64")
    if len(body) > settings.max_body_bytes:
        return _problem(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body must be at most {settings.max_body_bytes} bytes"
        )
    event = app.current_event
    headers = event.headers
    seen = wiring.seen_nonces()  # NotConfigured without the state table: refused, not accepted unchecked
    try:
        verified = verify(
            wiring.signing_key(),
            method=event.request_context.http.method,
            path=event.raw_path,
            query=event.raw_query_string,
            body=body,
            timestamp_header=headers.get(TIMESTAMP_HEADER),
            nonce_header=headers.get(NONCE_HEADER),
            signature_header=headers.get(SIGNATURE_HEADER),
            now=time.time(),
            tolerance_seconds=settings.signature_tolerance_seconds,
        )
    except SignatureError as exc:
        return _unauthenticated("bad signature", exc.reason.value, exc.description)
    # Kept until the timestamp has left the window: after that the request is refused as expired anyway.
    expires_at = verified.timestamp + settings.signature_tolerance_seconds + wiring.SEEN_NONCE_MARGIN_SECONDS
    try:
        seen.record(verified.nonce, expires_at=expires_at)
    except wiring.Replayed:
        return _unauthenticated("replayed", "replay", "the request was already received (replay)")
    return None


def _unauthenticated(why: str, reason: str, detail: str) -> Response[str]:
    logger.warning(
        f"request refused: {why}",
        extra={
            "reason": reason,
            "request_id": app.current_event.request_context.request_id,
            "source_ip": app.current_event.request_context.http.source_ip,
        },
    )
    metrics.add_metric(name="UnauthenticatedRequests", unit=MetricUnit.Count, value=1)
    return _problem(HTTPStatus.UNAUTHORIZED, detail, headers={"WWW-Authenticate": "CatalogSync-HMAC-SHA256"})


def _gate() -> Response[str] | None:
    """None when the request may be answered (size within limits; signed, unless the route is public), else the
    answer. Checked once per request; never raises."""
    if app.context.get(_CHECKED):
        return None
    try:
        refusal = _check()
    except wiring.NotConfigured as exc:
        logger.error("the webhook is missing a setting", extra={"error": str(exc)})  # the setting's name, no value
        metrics.add_metric(name="WebhookErrors", unit=MetricUnit.Count, value=1)
        return _problem(HTTPStatus.INTERNAL_SERVER_ERROR, "the webhook is not configured")
    except Exception:
        logger.exception("could not check the request")  # nothing on this path puts the key in an exception
        return _problem(HTTPStatus.INTERNAL_SERVER_ERROR, "the request could not be checked")
    if refusal is None:
        app.context[_CHECKED] = True
    return refusal


def _gated(answer: Callable[[Any], Response[str]]) -> Callable[[Any], Response[str]]:
    """An exception handler that answers only requests that passed the gate.

    powertools validates a request before any middleware runs: without this, an unsigned request would learn
    whether its body is valid (422) before it is told it is not signed (401).
    """

    def handle(exc: Any) -> Response[str]:
        return _gate() or answer(exc)

    handle.__name__ = answer.__name__
    return handle


def _authenticate(router: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    return _gate() or next_middleware(router)


app.use(middlewares=[_authenticate])


# ---------------------------------------------------------------- errors, as application/problem+json


def _locations(errors: Any) -> list[tuple[str | int, ...]]:
    return list(dict.fromkeys(tuple(error["loc"]) for error in errors))  # unique, in order; no messages or inputs


def _invalid_request(exc: RequestValidationError) -> Response[str]:
    return _problem(HTTPStatus.UNPROCESSABLE_ENTITY, "the request is not valid", errors=_locations(exc.errors()))


def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[str]:
    return _problem(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be application/json")


def _problem_error(exc: ProblemError) -> Response[str]:
    return problem(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


def _not_found(exc: NotFoundError) -> Response[str]:
    return _problem(HTTPStatus.NOT_FOUND, "no such route")


def _service_error(exc: ServiceError) -> Response[str]:
    status = HTTPStatus(exc.status_code)
    return _problem(status, status.description)


def _unexpected(exc: Exception) -> Response[str]:
    if isinstance(exc, UnicodeDecodeError):  # powertools decodes the body as UTF-8 before it parses the JSON
        return _problem(HTTPStatus.UNPROCESSABLE_ENTITY, "the request is not valid", errors=[("body",)])
    if isinstance(exc, RecursionError) and "decoding a JSON" in str(exc):
        # The standard library's JSON parser, which powertools uses, recurses once per level of nesting.
        return _problem(HTTPStatus.UNPROCESSABLE_ENTITY, "the body is nested too deeply", errors=[("body",)])
    if isinstance(exc, ResponseValidationError):
        logger.error("response failed its own schema", extra={"errors": _locations(exc.errors())})
    else:
        logger.exception("unexpected error")
    metrics.add_metric(name="WebhookErrors", unit=MetricUnit.Count, value=1)
    return _problem(HTTPStatus.INTERNAL_SERVER_ERROR, "an internal error occurred")


for _exc_class, _answer in (
    (RequestValidationError, _invalid_request),
    (RequestUnsupportedContentType, _unsupported_content_type),
    (ProblemError, _problem_error),
    (NotFoundError, _not_found),
    (ServiceError, _service_error),
    (Exception, _unexpected),
):
    app.exception_handler(_exc_class)(_gated(_answer))


# ---------------------------------------------------------------- routes

# The gate above (app.use) applies to the routes of included routers as to the app's own.
app.include_router(control.router)
app.include_router(status.router)


def _problems_only(document: dict[str, Any]) -> dict[str, Any]:
    """powertools documents its own error shapes (422 and 500 as application/json); this API answers problems.

    It also documents an optional parameter as "a string or null": a header or a query parameter is a string or
    absent (a client would send "null").
    """
    problem = {"content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for path_item in document["paths"].values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                options = parameter["schema"].get("anyOf")
                if not parameter.get("required") and options and {"type": "null"} in options and len(options) == 2:
                    [kept] = [option for option in options if option != {"type": "null"}]
                    parameter["schema"] = {**{k: v for k, v in parameter["schema"].items() if k != "anyOf"}, **kept}
            responses = operation["responses"]
            responses[str(HTTPStatus.INTERNAL_SERVER_ERROR.value)] = {
                "description": HTTPStatus.INTERNAL_SERVER_ERROR.phrase,
                **problem,
            }
            unprocessable = str(HTTPStatus.UNPROCESSABLE_ENTITY.value)
            if "application/json" in responses.get(unprocessable, {}).get("content", {}):
                if "parameters" in operation or "requestBody" in operation:
                    responses[unprocessable] = {"description": HTTPStatus.UNPROCESSABLE_ENTITY.phrase, **problem}
                else:
                    del responses[unprocessable]  # nothing to validate
    paths = json.dumps(document["paths"])
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ResponseValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in paths:
            schemas.pop(name, None)
    return document


@cache
def _openapi_document() -> dict[str, Any]:
    document = app.get_openapi_json_schema(
        title="catalog-sync",
        version=API_VERSION,
        description=(
            "Control catalog syncs: sync now, push product changes, schedules, pause and resume. Signed requests: "
            "see the `timestamp`, `nonce` and `signature` security schemes (all three are required)."
        ),
        security_schemes={
            "timestamp": APIKey(
                in_=APIKeyIn.header,
                name=TIMESTAMP_HEADER,
                description="Unix seconds; accepted within 5 minutes of the server's clock, either way.",
            ),
            "nonce": APIKey(
                in_=APIKeyIn.header,
                name=NONCE_HEADER,
                description=(
                    f"{NONCE_MIN_LENGTH} to {NONCE_MAX_LENGTH} characters of A-Z a-z 0-9 _ -, new for every "
                    "request: a nonce is accepted once (a second request with it is refused as a replay)."
                ),
            ),
            "signature": APIKey(in_=APIKeyIn.header, name=SIGNATURE_HEADER, description=_SIGNATURE_DESCRIPTION),
        },
    )
    return _problems_only(json.loads(document))


@app.get("/openapi.json", summary="This API's OpenAPI document", tags=["meta"])
def openapi_document() -> dict[str, Any]:
    return _openapi_document()


def _rejected(event: Any) -> dict[str, Any]:
    """The answer to an event the function is not built for, in the proxy response shape (a 400 problem)."""
    received = describe(event)
    reason = "the webhook answers API Gateway HTTP API requests (payload format 2.0) only"
    if received.startswith("an API Gateway HTTP API request"):
        received = f"one without the fields it reads: {received}"
    rejected("webhook", reason, event)  # logged and counted (RejectedEvents)
    problem = wiring.Problem(
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
        wiring.check_http_api_event(event)
    except wiring.NotAnHttpApiRequest:
        return _rejected(event)
    return app.resolve(event, context)
