"""The webhook's gate: the size limit, then the signature, checked before anything else about a request is answered.

A signed request is accepted once (catalog_sync.services.signed_requests): its nonce is recorded in the state
table, and the same nonce again is refused (401, a replay). Without the state table every signed request is refused
(500: the function is not configured), never accepted unchecked.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.metrics import MetricUnit

from catalog_sync.adapters.aws import observability as names
from catalog_sync.bootstrap import api
from catalog_sync.bootstrap.settings import NotConfigured
from catalog_sync.logic.signing import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Replayed, SignatureError
from catalog_sync.services.signed_requests import accept_once
from handlers._shared import logger, metrics
from handlers.routes._common import problem

# Answered to anyone: the API's description. (Unknown paths are not public: they answer 404 only
# to signed requests, 401 to the rest, as a protected route would.)
PUBLIC_ROUTES = frozenset({("GET", "/openapi.json")})
_CHECKED = "_webhook_request_checked"  # in app.context (cleared after each request): the gate was passed

Gate = Callable[[], Response[str] | None]


def install(app: APIGatewayHttpResolver) -> Gate:
    """Puts the gate in front of `app`'s routes (and those of the routers it includes); the gate, for the
    exception handlers (`gated`)."""

    def raw_body() -> bytes:
        event = app.current_event
        body = event.body or ""
        return base64.b64decode(body, validate=True) if event.is_base64_encoded else body.encode()

    def unauthenticated(why: str, reason: str, detail: str) -> Response[str]:
        context = app.current_event.request_context
        logger.warning(
            f"request refused: {why}",
            extra={"reason": reason, "request_id": context.request_id, "source_ip": context.http.source_ip},
        )
        metrics.add_metric(name=names.UNAUTHENTICATED_REQUESTS, unit=MetricUnit.Count, value=1)
        return problem(HTTPStatus.UNAUTHORIZED, detail, headers={"WWW-Authenticate": "CatalogSync-HMAC-SHA256"})

    def check() -> Response[str] | None:
        """Public routes read no body and need no configuration: they are answered as they are."""
        route = app.context.get("_route")
        if route is not None and (route.method, route.path) in PUBLIC_ROUTES:
            return None
        settings = api.gate_settings()
        try:
            body = raw_body()
        except (binascii.Error, ValueError):
            return problem(HTTPStatus.BAD_REQUEST, "the body is marked base64-encoded but is not valid base64")
        if len(body) > settings.max_body_bytes:
            return problem(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body must be at most {settings.max_body_bytes} bytes"
            )
        event = app.current_event
        headers = event.headers
        seen = api.seen_nonces()  # NotConfigured without the state table: refused, not accepted unchecked
        try:
            accept_once(
                seen,
                api.signing_key(),
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
            return unauthenticated("bad signature", exc.reason.value, exc.description)
        except Replayed:
            return unauthenticated("replayed", "replay", "the request was already received (replay)")
        return None

    def gate() -> Response[str] | None:
        """None when the request may be answered (size within limits; signed, unless the route is public), else
        the answer. Checked once per request; never raises."""
        if app.context.get(_CHECKED):
            return None
        try:
            refusal = check()
        except NotConfigured as exc:
            logger.error("the webhook is missing a setting", extra={"error": str(exc)})  # its name, no value
            metrics.add_metric(name=names.WEBHOOK_ERRORS, unit=MetricUnit.Count, value=1)
            return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "the webhook is not configured")
        except Exception:
            logger.exception("could not check the request")  # nothing on this path puts the key in an exception
            return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "the request could not be checked")
        if refusal is None:
            app.context[_CHECKED] = True
        return refusal

    def authenticate(router: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
        return gate() or next_middleware(router)

    app.use(middlewares=[authenticate])
    return gate


def gated(gate: Gate, answer: Callable[[Any], Response[str]]) -> Callable[[Any], Response[str]]:
    """An exception handler that answers only requests that passed the gate.

    powertools validates a request before any middleware runs: without this, an unsigned request would learn
    whether its body is valid (422) before it is told it is not signed (401).
    """

    def handle(exc: Any) -> Response[str]:
        return gate() or answer(exc)

    handle.__name__ = answer.__name__
    return handle
