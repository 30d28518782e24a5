"""The webhook's answers to the errors of every route, as application/problem+json; past the gate only."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
    ResponseValidationError,
)
from aws_lambda_powertools.metrics import MetricUnit

from catalog_sync.adapters.aws import observability as names
from handlers._shared import logger, metrics
from handlers.routes._common import ProblemError, at, problem
from handlers.routes.gate import Gate, gated


def locations(errors: Any) -> list[tuple[str | int, ...]]:
    return list(dict.fromkeys(tuple(error["loc"]) for error in errors))  # unique, in order; no messages or inputs


def _invalid_request(exc: RequestValidationError) -> Response[str]:
    return problem(HTTPStatus.UNPROCESSABLE_ENTITY, "the request is not valid", errors=at(*locations(exc.errors())))


def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[str]:
    return problem(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "the body must be application/json")


def _problem_error(exc: ProblemError) -> Response[str]:
    return problem(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


def _not_found(exc: NotFoundError) -> Response[str]:
    return problem(HTTPStatus.NOT_FOUND, "no such route")


def _service_error(exc: ServiceError) -> Response[str]:
    status = HTTPStatus(exc.status_code)
    return problem(status, status.description)


def _unexpected(exc: Exception) -> Response[str]:
    if isinstance(exc, UnicodeDecodeError):  # powertools decodes the body as UTF-8 before it parses the JSON
        return problem(HTTPStatus.UNPROCESSABLE_ENTITY, "the request is not valid", errors=at(("body",)))
    if isinstance(exc, RecursionError) and "decoding a JSON" in str(exc):
        # The standard library's JSON parser, which powertools uses, recurses once per level of nesting.
        return problem(HTTPStatus.UNPROCESSABLE_ENTITY, "the body is nested too deeply", errors=at(("body",)))
    if isinstance(exc, ResponseValidationError):
        logger.error("response failed its own schema", extra={"errors": locations(exc.errors())})
    else:
        logger.exception("unexpected error")
    metrics.add_metric(name=names.WEBHOOK_ERRORS, unit=MetricUnit.Count, value=1)
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "an internal error occurred")


def install(app: APIGatewayHttpResolver, gate: Gate) -> None:
    for exc_class, answer in (
        (RequestValidationError, _invalid_request),
        (RequestUnsupportedContentType, _unsupported_content_type),
        (ProblemError, _problem_error),
        (NotFoundError, _not_found),
        (ServiceError, _service_error),
        (Exception, _unexpected),
    ):
        app.exception_handler(exc_class)(gated(gate, answer))
