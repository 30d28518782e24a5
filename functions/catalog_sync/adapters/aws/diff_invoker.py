"""The asynchronous hand-off to the diff function: a direct invocation, queued by Lambda ("Event")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import boto3
import orjson

# The largest payload Lambda accepts for an asynchronous ("Event") invocation.
MAX_EVENT_PAYLOAD_BYTES = 256 * 1024


class Invoker(Protocol):
    def invoke(self, payload: Mapping[str, Any]) -> None: ...


class PayloadTooLarge(ValueError):
    """The invocation would exceed what Lambda accepts for an asynchronous invocation."""


class InvokeFailed(RuntimeError):
    """Lambda did not queue the asynchronous invocation."""


class DiffInvoker:
    """Queues a direct invocation of the diff function (asynchronous: Lambda answers once it is queued)."""

    def __init__(self, function: str, client: Any = None) -> None:
        self.function = function
        self.client = client if client is not None else boto3.client("lambda")

    def invoke(self, payload: Mapping[str, Any]) -> None:
        data = orjson.dumps(payload)
        if len(data) > MAX_EVENT_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"{len(data)} bytes, at most {MAX_EVENT_PAYLOAD_BYTES}")
        response = self.client.invoke(FunctionName=self.function, InvocationType="Event", Payload=data)
        if response.get("StatusCode") != 202:
            raise InvokeFailed(f"Lambda answered {response.get('StatusCode')} to an asynchronous invocation")
