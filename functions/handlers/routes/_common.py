"""What the routes share: problem+json answers, and their OpenAPI descriptions."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import Response
from pydantic import BaseModel

from catalog_sync.logic.signing import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from handlers.routes.models import Problem, ProblemLocation

PROBLEM_JSON = "application/problem+json"
# The security requirement of a signed route (the schemes are declared with the OpenAPI document).
SIGNED: list[dict[str, list[str]]] = [{"timestamp": [], "nonce": [], "signature": []}]
SIGNING = (
    f"Signed: {TIMESTAMP_HEADER}, {NONCE_HEADER} and {SIGNATURE_HEADER} (v2: HMAC-SHA256 over the method, path, "
    "query, timestamp, nonce and the SHA-256 of the raw body; see the `signature` security scheme)."
)

Location = tuple[str | int, ...]


def at(*locations: Location) -> list[ProblemLocation]:
    """Problem locations without reasons (the request's own validation: it says where, not what was sent)."""
    return [ProblemLocation(loc=list(loc)) for loc in locations]


class ProblemError(Exception):
    """A request that gets an error answer."""

    def __init__(
        self,
        status: HTTPStatus,
        detail: str,
        errors: list[ProblemLocation] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers


def problem(
    status: HTTPStatus,
    detail: str,
    *,
    errors: list[ProblemLocation] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    """An application/problem+json answer (RFC 9457)."""
    body = Problem(title=status.phrase, status=status.value, detail=detail, errors=errors)
    return Response(
        status_code=status.value,
        content_type=PROBLEM_JSON,
        body=body.model_dump_json(exclude_none=True),
        headers=headers,
    )


def responses(success: HTTPStatus, model: type[BaseModel], description: str, *problems: HTTPStatus) -> dict[int, Any]:
    """A route's documented answers: `model` on success, a Problem for each of `problems` (401 always: signed)."""
    documented: dict[int, Any] = {
        success.value: {"description": description, "content": {"application/json": {"model": model}}}
    }
    for status in sorted({HTTPStatus.UNAUTHORIZED, *problems}):
        documented[status.value] = {"description": status.phrase, "content": {PROBLEM_JSON: {"model": Problem}}}
    return documented
