"""Fuzz the webhook's HTTP API with schemathesis, served locally under moto.

    python -m tests.harness.api_fuzz --examples 500 [--seed 1] [--operation "POST /catalogs/{catalog}/changes"]

A small HTTP server on 127.0.0.1 turns each request into an API Gateway HTTP API (payload v2) event, from the
recorded sample tests/data/events/apigateway-http-api-proxy.json, calls handlers.webhook.handler and writes its
answer back. AWS is moto, with what the control routes use (tests/doubles/control_world.py: the signing key, the
bucket and a catalog's config, the state table, a schedule rule, the consumer's queue mappings); the diff function
is not invoked, its invocations are recorded. Every request is signed with the test key (scheme v2) over its
method, path and query and the bytes sent, each as a new request with a nonce of its own: the webhook accepts a
nonce once. A signed request refused as a replay fails the run.

For each operation of the API's own OpenAPI document, schemathesis generates requests (valid ones, and invalid ones
for the operations that take input) and checks each answer: no 5xx, a documented status, content type and headers,
a body that matches the documented schema, and invalid input rejected. Exit status 1 if any check failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, redirect_stdout
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "functions") not in sys.path:
    sys.path.insert(0, str(ROOT / "functions"))  # the Lambda handlers live beside the package

EVENT = ROOT / "tests" / "data" / "events" / "apigateway-http-api-proxy.json"
DEFAULT_EXAMPLES = 25
KNOWN_CATALOG = "shop"  # the catalog tests/doubles/control_world.py configures
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
REPLAY_DETAIL = "(replay)"  # in the webhook's answer to a replayed request


# ---------------------------------------------------------------- HTTP -> API Gateway HTTP API events


def to_event(method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> dict[str, Any]:
    """The payload-v2 event API Gateway's HTTP API would hand the function for this request ($default route)."""
    event: dict[str, Any] = json.loads(EVENT.read_text())
    url = urlsplit(target)
    event["routeKey"] = event["requestContext"]["routeKey"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = unquote(url.path)  # HTTP APIs decode the path
    event["rawQueryString"] = url.query
    event.pop("queryStringParameters", None)
    if url.query:
        params: dict[str, list[str]] = {}
        for pair in url.query.split("&"):
            name, _, value = pair.partition("=")
            params.setdefault(name, []).append(value)
        event["queryStringParameters"] = {name: ",".join(values) for name, values in params.items()}
    event.pop("pathParameters", None)
    event["requestContext"]["http"]["method"] = method
    # HTTP APIs lower-case header names, join repeated headers with commas and pass cookies apart.
    joined: dict[str, list[str]] = {}
    cookies: list[str] = []
    for name, value in headers:
        if name.lower() == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            joined.setdefault(name.lower(), []).append(value)
    event["headers"] = {name: ",".join(values) for name, values in joined.items()}
    if cookies:
        event["cookies"] = cookies
    else:
        event.pop("cookies", None)
    event["requestContext"]["http"]["userAgent"] = event["headers"].get("user-agent", "")
    event["requestContext"]["requestId"] = base64.b64encode(uuid.uuid4().bytes[:12]).decode()
    event["requestContext"]["timeEpoch"] = int(time.time() * 1000)
    if not body:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    else:
        try:
            event["body"], event["isBase64Encoded"] = body.decode(), False
        except UnicodeDecodeError:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    return event


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class _Exchange(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    handler: Handler  # set on the subclass made per server
    # One request at a time through the handler, as one Lambda instance takes them (connections are served apart:
    # a client keeping one open must not hold up another).
    turn = threading.Lock()

    def _serve(self) -> None:
        from tests.doubles.lambda_context import Context

        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        event = to_event(self.command, self.path, list(self.headers.items()), body)
        with self.turn:
            answer = type(self).handler(event, Context(aws_request_id=str(uuid.uuid4())))
        raw = answer.get("body") or ""
        data = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
        self.send_response(int(answer["statusCode"]))
        for name, value in (answer.get("headers") or {}).items():
            self.send_header(name, str(value))
        for cookie in answer.get("cookies") or []:
            self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet


@contextmanager
def serve(handler: Handler) -> Iterator[str]:
    """Serve `handler` on 127.0.0.1 (a free port), one request at a time, as a Lambda would; yields the base URL."""
    exchange = type("Exchange", (_Exchange,), {"handler": staticmethod(handler), "turn": threading.Lock()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), exchange)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="webhook-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# ---------------------------------------------------------------- the API under moto


@dataclass
class LocalApi:
    url: str
    key: bytes
    world: Any  # tests.doubles.control_world.ControlWorld
    recorder: Any  # tests.doubles.http_api.Recorder


@contextmanager
def local_api(setenv: Callable[[str, str], None], setattr_: Callable[[Any, str, Any], None]) -> Iterator[LocalApi]:
    """The webhook under moto, served locally. `setenv` and `setattr_` change the environment and replace the diff
    invoker (a pytest monkeypatch's, or ones that restore nothing in a script that exits)."""
    from moto import mock_aws

    for name, value in FAKE_AWS.items():
        setenv(name, value)
    with ExitStack() as stack:
        stack.enter_context(mock_aws())
        from aws_lambda_powertools.utilities import parameters

        from catalog_sync.bootstrap import api
        from catalog_sync.logic.signing import DEFAULT_TOLERANCE_SECONDS

        # The default window (every request is signed as it is sent), whatever the environment says.
        setenv("CATALOG_SYNC_SIGNATURE_TOLERANCE_SECONDS", str(DEFAULT_TOLERANCE_SECONDS))
        from handlers import webhook
        from tests.doubles.control_world import build_control_world
        from tests.doubles.http_api import Recorder

        world = build_control_world(setenv)
        parameters.clear_caches()
        api.clear_caches()
        recorder = Recorder()
        setattr_(api, "invoker", lambda: recorder)
        url = stack.enter_context(serve(webhook.handler))
        yield LocalApi(url=url, key=world.key, world=world, recorder=recorder)
        api.clear_caches()  # its clients belong to this moto world


# ---------------------------------------------------------------- schemathesis


Nonces = Callable[[], str]


def signed_session(key: bytes, nonce: Nonces | None = None) -> Any:
    """A requests session that signs each request as it is sent: its method, path, query and body bytes, now, with
    a new nonce (from `nonce` if given: a signer that reuses nonces, say)."""
    import requests

    from catalog_sync.logic.signing import NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, signature_headers

    class Sign(requests.auth.AuthBase):
        """The signature headers a case carries (schemathesis fills them with placeholders) get real values (each
        case is a new request, not a replay); a case without all three (a negative case leaving one out) is sent as
        it is, to be refused."""

        def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
            if not all(name in request.headers for name in (TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)):
                return request
            body = request.body or b""
            raw = body.encode() if isinstance(body, str) else bytes(body)
            url = urlsplit(request.url or "")
            method = request.method or "GET"
            signed = signature_headers(
                key, method, url.path, url.query, raw, int(time.time()), nonce() if nonce else None
            )
            request.headers.update(signed)
            return request

    session = requests.Session()
    session.auth = Sign()
    return session


def checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        negative_data_rejection,
    ]


def operations(url: str) -> list[Any]:
    """The API's operations, from the OpenAPI document it serves."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    # Invalid input may also be refused as too large (a body over the limit): the routes document 413.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return [result.ok() for result in schema.get_all_operations()]


def label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


@dataclass
class Outcome:
    operation: str
    requests: int
    statuses: dict[int, int]
    failure: str | None = None


def strategy(operation: Any, mode: Any) -> Any:
    """Cases as generated, and as many for the catalog the world knows (a random name is mostly an unknown one)."""
    from hypothesis import strategies

    generated = operation.as_strategy(generation_mode=mode)
    if "catalog" not in {parameter.name for parameter in operation.iter_parameters()}:
        return generated
    known = operation.as_strategy(generation_mode=mode, path_parameters={"catalog": KNOWN_CATALOG})
    return strategies.one_of(generated, known)


def fuzz_operation(
    api: LocalApi, operation: Any, *, max_examples: int, seed: int | None = None, nonce: Nonces | None = None
) -> Outcome:
    """Generate requests for one operation, positive then negative (when it takes input), and check each answer."""
    import hypothesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    session = signed_session(api.key, nonce)
    outcome = Outcome(label(operation), 0, {})
    takes_input = bool(operation.body) or any(True for _ in operation.iter_parameters())
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if takes_input else [GenerationMode.POSITIVE]
    selected = checks()
    for mode in modes:

        @settings(max_examples=max_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=strategy(operation, mode))
        def run(case: Any) -> None:
            response = case.call(base_url=api.url, session=session)
            outcome.requests += 1
            outcome.statuses[response.status_code] = outcome.statuses.get(response.status_code, 0) + 1
            if response.status_code == 401 and REPLAY_DETAIL in response.text:
                raise AssertionError("a generated request was refused as a replay: it must be signed anew")
            case.validate_response(response, checks=selected)

        if seed is not None:
            run = hypothesis.seed(seed)(run)
        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # a failed check (hypothesis re-raises it after shrinking)
            outcome.failure = f"{mode.value}: {type(exc).__name__}: {exc}"
            break
    return outcome


def fuzz(
    api: LocalApi,
    *,
    max_examples: int,
    seed: int | None = None,
    only: str | None = None,
    nonce: Nonces | None = None,
) -> list[Outcome]:
    outcomes = []
    for operation in operations(api.url):
        if only is None or label(operation) == only:
            outcomes.append(fuzz_operation(api, operation, max_examples=max_examples, seed=seed, nonce=nonce))
    return outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.api_fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=None, help="the same requests each run")
    parser.add_argument("--operation", default=None, help='only this one, e.g. "POST /catalogs/{catalog}/changes"')
    args = parser.parse_args(argv)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "CRITICAL")  # refusals are logged as warnings: thousands of lines
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    warnings.filterwarnings("ignore", "No application metrics to publish")  # a refusal publishes none
    started = time.monotonic()
    # The function's metrics (EMF lines) go to stdout, as in Lambda: not to this report.
    with open(os.devnull, "w") as sink, redirect_stdout(sink), local_api(os.environ.__setitem__, setattr) as api:
        outcomes = fuzz(api, max_examples=args.examples, seed=args.seed, only=args.operation)
    failed = [outcome for outcome in outcomes if outcome.failure]
    for outcome in outcomes:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(outcome.statuses.items()))
        mark = "FAIL" if outcome.failure else "ok"
        print(f"{mark:4} {outcome.operation:40} {outcome.requests:5} requests ({statuses})")
        if outcome.failure:
            print(f"     {outcome.failure}")
    if not outcomes:
        print(f"no operation {args.operation!r}", file=sys.stderr)
        return 2
    requests = sum(outcome.requests for outcome in outcomes)
    print(f"{len(outcomes)} operations, {requests} requests in {time.monotonic() - started:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
