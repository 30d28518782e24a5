"""A short schemathesis run over the webhook's HTTP API, served locally under moto (tests/harness/api_fuzz.py).

Per operation: up to 25 valid and 25 invalid requests, signed, each answer checked: no 5xx, a documented status,
content type and headers, the documented body schema, invalid input rejected. A longer run:
`python -m tests.harness.api_fuzz --examples 500`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.harness import api_fuzz

EXAMPLES = 25


def documented_operations() -> list[str]:
    """The operations of the OpenAPI document, without serving it: one test each."""
    from handlers import webhook

    return sorted(
        f"{method.upper()} {path}"
        for path, item in webhook._openapi_document()["paths"].items()
        for method in item
        if path != "/openapi.json"  # the document itself: schemathesis leaves it out
    )


@pytest.fixture(scope="module")
def api() -> Iterator[api_fuzz.LocalApi]:
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "CATALOG_SYNC_MAX_BODY_BYTES"):  # local_api sets the signature window
            patch.delenv(name, raising=False)
        with api_fuzz.local_api(patch.setenv, patch.setattr) as served:
            yield served


def test_every_documented_operation_is_fuzzed(api: api_fuzz.LocalApi):
    assert sorted(api_fuzz.label(operation) for operation in api_fuzz.operations(api.url)) == documented_operations()


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")
@pytest.mark.parametrize("operation", documented_operations())
def test_the_api_holds_to_its_schema(api: api_fuzz.LocalApi, operation: str):
    [outcome] = api_fuzz.fuzz(api, max_examples=EXAMPLES, seed=0, only=operation)
    assert outcome.failure is None, outcome.failure
    assert outcome.requests >= 1
    assert not [status for status in outcome.statuses if status >= 500]
    assert 401 in outcome.statuses  # some cases were sent unsigned (a negative case leaving a header out)
    if operation != "GET /runs/{run_id}":  # run ids end in a random token: generated ones are never found
        assert {200, 202} & set(outcome.statuses)  # and some reached the route and succeeded


def test_a_server_error_is_caught(api: api_fuzz.LocalApi, monkeypatch: pytest.MonkeyPatch):
    """The run can fail: a route that breaks is reported."""

    def broken(payload: object) -> None:
        raise RuntimeError("the diff function is gone")

    monkeypatch.setattr(api.recorder, "invoke", broken)
    [outcome] = api_fuzz.fuzz(api, max_examples=10, seed=0, only="POST /catalogs/{catalog}/sync")
    assert outcome.failure is not None and "Server error" in outcome.failure
    assert 500 in outcome.statuses


def test_a_replay_is_caught(api: api_fuzz.LocalApi):
    """A signer that reuses a nonce sends replays: every request after the first with that nonce is refused, and
    the run reports it. The nonce is this test's own, so each of hypothesis's calls (and their repeats, as it checks
    a failure) meets it already seen: the outcome does not depend on the clock or on the order of the tests."""
    nonce = f"reused-{uuid.uuid4().hex}"
    [outcome] = api_fuzz.fuzz(api, max_examples=10, seed=0, only="GET /health", nonce=lambda: nonce)
    assert outcome.failure is not None and "refused as a replay" in outcome.failure, outcome.failure
    assert "Flaky" not in outcome.failure
    assert outcome.statuses.get(200) == 1  # the first request with the nonce, and only it


def test_requests_with_the_same_body_in_the_same_second_are_not_replays(api: api_fuzz.LocalApi):
    """Every GET has an empty body, and a run sends many in one second: each has a nonce of its own."""
    [outcome] = api_fuzz.fuzz(api, max_examples=20, seed=0, only="GET /health")
    assert outcome.failure is None, outcome.failure  # a request refused as a replay fails the run
    assert outcome.statuses[200] >= 10  # the signed ones (the others leave a signature header out or spoil it)
