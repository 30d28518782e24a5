"""A stand-in for the LambdaContext the runtime passes a handler: the attributes powertools and handlers read."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Context:
    function_name: str = "catalog-sync-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:catalog-sync-test"
    aws_request_id: str = "req-1"
    remaining_millis: int = 600_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@dataclass
class ShortContext(Context):
    """A context whose clock runs out after a few looks, as a Lambda near its timeout would."""

    looks_left: int = 2

    def get_remaining_time_in_millis(self) -> int:
        self.looks_left -= 1
        return 600_000 if self.looks_left >= 0 else 1_000
