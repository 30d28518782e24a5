"""The webhook's OpenAPI document (GET /openapi.json, public): powertools' own, made to describe what this API
answers (problems) and its signing scheme."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from catalog_sync.logic.signing import (
    CANONICAL_PREFIX,
    NONCE_HEADER,
    NONCE_MAX_LENGTH,
    NONCE_MIN_LENGTH,
    SCHEME,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)
from handlers.routes._common import PROBLEM_JSON

API_VERSION = "2"  # 2: requests are signed with the v2 scheme
_SIGNATURE_DESCRIPTION = (
    f"{SCHEME}=<hex HMAC-SHA256(key, canonical request)>, several comma-separated while a key rotates (v1= is no "
    "longer accepted). The canonical request is these lines joined by \\n, as UTF-8: "
    f"`{CANONICAL_PREFIX}`, the method (upper case), the path (percent-decoded, as API Gateway passes it on), the "
    "query string exactly as sent (without `?`; empty when none), the timestamp, the nonce, and the lower-case hex "
    "SHA-256 of the raw body (of no bytes when there is none)."
)


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


def install(app: APIGatewayHttpResolver) -> Callable[[], dict[str, Any]]:
    """Adds GET /openapi.json to `app` (once its routes are in); the document, built once."""

    @cache
    def document() -> dict[str, Any]:
        schema = app.get_openapi_json_schema(
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
        return _problems_only(json.loads(schema))

    @app.get("/openapi.json", summary="This API's OpenAPI document", tags=["meta"])
    def openapi_document() -> dict[str, Any]:
        return document()

    return document
