"""Fault injection for the convergence suite: throttled AWS calls, crashed invocations, a count of what was done.

AWS throttling is answered before moto sees the request (botocore's before-send hook, registered first), with
the error each service really returns, so that the SDK's own retry policy is what must absorb it.
"""

from __future__ import annotations

import threading
from collections import Counter
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
    """The examples run and the faults delivered in them, by kind.

    A fault counts where it was delivered: an HTTP double's answer written, a throttling error handed to botocore,
    a crash raised. One queued that never met a request is not counted. An example hypothesis abandoned part way
    (its draws ran out) is not an example run: neither it nor its faults count.
    """

    delivered: Counter[str] = field(default_factory=Counter)
    converged: int = 0
    abandoned: int = 0
    failures: set[str] = field(default_factory=set)  # what each failing example drew (hypothesis replays them)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def examples(self) -> int:
        return self.converged + self.failed

    def example_ended(self, *, converged: bool, faults: Counter[str], draws: str = "") -> None:
        """`draws`: what a failing example drew; hypothesis runs a failing example again to report it, and a
        replay is not another example."""
        if converged:
            self.converged += 1
        elif draws in self.failures:
            return
        else:
            self.failures.add(draws)
        self.delivered.update(faults)

    def example_abandoned(self) -> None:
        self.abandoned += 1

    def report(self) -> str:
        width = max((len(kind) for kind in self.delivered), default=10)
        lines = [
            f"examples run: {self.examples:,} (converged {self.converged:,}, failed {self.failed:,}); "
            f"abandoned by hypothesis part way, not counted: {self.abandoned:,}",
            f"{'fault delivered':<{width}}  {'count':>9}",
        ]
        for kind in sorted(self.delivered):
            lines.append(f"{kind:<{width}}  {self.delivered[kind]:>9,}")
        lines.append(f"{'total':<{width}}  {sum(self.delivered.values()):>9,}")
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
    """Answers the next `armed` calls of one AWS client with the service's throttling error; `delivered` counts
    the errors handed to botocore (a request that actually got one)."""

    def __init__(self, client: Any, service: str) -> None:
        self.service = service
        self.armed = 0
        self.delivered = 0
        self._lock = threading.Lock()  # the clients' calls may come from several threads
        client.meta.events.register_first(f"before-send.{client.meta.service_model.service_id.hyphenize()}", self)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        with self._lock:
            if self.armed <= 0:
                return None
            self.armed -= 1
            self.delivered += 1
        status, headers, body = _THROTTLING[self.service]
        return AWSResponse(request.url, status, headers, MockRawResponse(body))
