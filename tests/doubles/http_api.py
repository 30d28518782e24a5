"""The webhook as API Gateway's HTTP API calls it: signed payload-v2 events, built from the recorded sample
(tests/data/events/apigateway-http-api-proxy.json), handed to the real handler.

moto would need Docker to run an invoked function, so the diff function's invoker is replaced by a Recorder that
keeps what would have been sent.

The webhook accepts a signed request once (a replay is refused): each event signed here is a new request, with a
nonce of its own (unless the test gives one), as a client's retry would be. Sending the same event twice is a
replay.

As API Gateway's HTTP API does, the event's rawPath is the request's path percent-decoded (the path is signed so),
and its rawQueryString the query string exactly as sent.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import pytest

from catalog_sync.bootstrap import api
from catalog_sync.logic.signing import signature_headers
from tests.doubles.lambda_context import Context

EVENT = Path(__file__).resolve().parent.parent / "data" / "events" / "apigateway-http-api-proxy.json"
REQUEST_ID = "JKJaXmPLvHcESHA="

Answer = tuple[int, dict[str, Any], dict[str, Any]]


@dataclass
class Recorder:
    """Stands in for the diff function's invoker: what would have been sent."""

    payloads: list[dict[str, Any]] = field(default_factory=list)

    def invoke(self, payload: Mapping[str, Any]) -> None:
        self.payloads.append(dict(payload))


def use_recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Forget the webhook's settings and clients (the environment changed) and record its diff invocations."""
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    api.clear_caches()  # not the invoker when a recorder replaced it already
    recorder = Recorder()
    monkeypatch.setattr(api, "invoker", lambda: recorder)
    return recorder


def event(
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    query: str = "",
    key: bytes | None = None,
    timestamp: int | None = None,
    nonce: str | None = None,
    base64_body: bool = False,
    headers: Mapping[str, str] | None = None,
    request_id: str = REQUEST_ID,
) -> dict[str, Any]:
    """An HTTP API event for `method` `path`?`query`, signed with `key` if given (over the request as the sender
    sends it; at `timestamp`, else now; with `nonce`, else a new one)."""
    payload = copy.deepcopy(json.loads(EVENT.read_text()))
    payload["routeKey"] = payload["requestContext"]["routeKey"] = "$default"
    payload["rawPath"] = payload["requestContext"]["http"]["path"] = unquote(path)
    payload["rawQueryString"] = query
    payload.pop("queryStringParameters", None)
    if query:
        params: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params.setdefault(name, []).append(value)
        payload["queryStringParameters"] = {name: ",".join(values) for name, values in params.items()}
    payload.pop("pathParameters", None)
    payload.pop("cookies", None)
    payload["requestContext"]["http"]["method"] = method
    payload["requestContext"]["requestId"] = request_id
    sent: dict[str, str] = {"content-type": "application/json", "user-agent": "catalog-sync-tests"}
    if key is not None:
        when = int(time.time()) if timestamp is None else timestamp
        signed = signature_headers(key, method, path, query, body or b"", when, nonce)
        sent.update({name.lower(): value for name, value in signed.items()})  # HTTP APIs lower-case names
    sent.update({name.lower(): value for name, value in (headers or {}).items()})
    payload["headers"] = sent
    if body is None:
        payload.pop("body", None)
        payload["isBase64Encoded"] = False
    elif base64_body:
        payload["body"] = base64.b64encode(body).decode()
        payload["isBase64Encoded"] = True
    else:
        payload["body"] = body.decode()
        payload["isBase64Encoded"] = False
    return payload


def respond(request: dict[str, Any]) -> dict[str, Any]:
    """The handler's raw answer to an event."""
    from handlers import webhook

    return webhook.handler(request, Context())


def call(request: dict[str, Any]) -> Answer:
    response = respond(request)
    headers = {name.lower(): value for name, value in response["headers"].items()}
    return response["statusCode"], headers, json.loads(response["body"]) if response["body"] else {}


def assert_problem(response: Answer, status: int, *, detail: str | None = None) -> dict[str, Any]:
    code, headers, body = response
    assert code == status, body
    assert headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status
    assert body["type"] == "about:blank"
    if detail is not None:
        assert detail in body["detail"]
    return body
