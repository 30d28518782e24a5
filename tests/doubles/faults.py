"""Fault injection for the convergence suite: throttled AWS calls, crashed invocations, a count of what was done.

AWS throttling is answered before moto sees the request (botocore's before-send hook, registered first), with
the error each service really returns, so that the SDK's own retry policy is what must absorb it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse


class LambdaCrash(BaseException):
    """The function's process dies (out of memory, a timeout, a host failure): no response, nothing acknowledged.

    A BaseException, as a crash is not an error the handler's code could catch and report.
    """


@dataclass
class FaultLog:
    """What was injected, by kind, and how many examples ended converged despite it."""

    injected: Counter[str] = field(default_factory=Counter)
    converged: int = 0
    failed: int = 0
    survived: Counter[str] = field(default_factory=Counter)

    # An example's faults are added when it ends: one hypothesis discards part way (its draws ran out) counts
    # neither way.
    def example_converged(self, injected: Counter[str]) -> None:
        self.converged += 1
        self.injected.update(injected)
        self.survived.update(injected)

    def example_failed(self, injected: Counter[str]) -> None:
        self.failed += 1
        self.injected.update(injected)

    def report(self) -> str:
        width = max((len(kind) for kind in self.injected), default=10)
        lines = [f"examples converged: {self.converged:,}, failed: {self.failed:,}"]
        lines.append(f"{'fault':<{width}}  {'injected':>9}  {'survived':>9}")
        for kind in sorted(self.injected):
            lines.append(f"{kind:<{width}}  {self.injected[kind]:>9,}  {self.survived[kind]:>9,}")
        lines.append(f"{'total':<{width}}  {sum(self.injected.values()):>9,}  {sum(self.survived.values()):>9,}")
        return "\n".join(lines)


# The throttling answer of each service, as the real service sends it (status, headers, body).
_THROTTLING: dict[str, tuple[int, dict[str, str], bytes]] = {
    "dynamodb": (
        400,
        {"Content-Type": "application/x-amz-json-1.0"},
        b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
        b'"message":"Rate of requests exceeds the allowed throughput."}',
    ),
    # SQS speaks JSON with query-compatible error codes: the header carries the code botocore retries on.
    "sqs": (
        403,
        {"Content-Type": "application/x-amz-json-1.0", "x-amzn-query-error": "RequestThrottled;Sender"},
        b'{"__type":"com.amazonaws.sqs#RequestThrottled","message":"Request is throttled."}',
    ),
}


class Throttler:
    """Answers the next `armed` calls of one AWS client with the service's throttling error."""

    def __init__(self, client: Any, service: str, on_throttle: Callable[[str], None]) -> None:
        self.service = service
        self.armed = 0
        self._on_throttle = on_throttle
        client.meta.events.register_first(f"before-send.{client.meta.service_model.service_id.hyphenize()}", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        if self.armed <= 0:
            return None
        self.armed -= 1
        self._on_throttle(f"{self.service} throttled")
        status, headers, body = _THROTTLING[self.service]
        return AWSResponse(request.url, status, headers, MockRawResponse(body))
