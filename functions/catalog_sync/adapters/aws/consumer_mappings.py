"""Pausing and resuming consumption: the consumer function's event source mappings, disabled or enabled.

They are shared by every catalog: pausing stops consumption for all of them. Queued changes wait in the queues
(within their retention period).
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from catalog_sync.adapters.aws.schedules import error_code


class MappingState(BaseModel):
    uuid: str
    queue: str = Field(description="The queue's ARN.")
    state: str = Field(description="The mapping's state (Enabling and Disabling take a few seconds).")


class MappingBusy(RuntimeError):
    """A mapping is being created, updated or deleted: it cannot be changed now."""


class NoMappings(RuntimeError):
    """The consumer function has no event source mapping: nothing consumes the queues."""


# Mappings already where a pause (or a resume) takes them.
_SETTLED = {False: {"Disabled", "Disabling"}, True: {"Enabled", "Enabling"}}


class ConsumerMappings:
    """The consumer function's event source mappings (its queues)."""

    def __init__(self, function: str, client: Any = None) -> None:
        self.function = function
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("lambda")
        return self._client

    def mappings(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in self.client.get_paginator("list_event_source_mappings").paginate(FunctionName=self.function):
            found.extend(page.get("EventSourceMappings", []))
        return found

    def set_enabled(self, enabled: bool) -> list[MappingState]:
        """Enable (resume) or disable (pause) every mapping; their states afterwards."""
        mappings = self.mappings()
        if not mappings:
            raise NoMappings(f"function {self.function!r} has no event source mapping")
        states = []
        for mapping in mappings:
            state = str(mapping.get("State", ""))
            if state not in _SETTLED[enabled]:
                try:
                    state = str(self.client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=enabled)["State"])
                except ClientError as exc:
                    if error_code(exc) == "ResourceInUseException":
                        raise MappingBusy(f"mapping {mapping['UUID']} is being changed; try again shortly") from None
                    raise
            states.append(MappingState(uuid=mapping["UUID"], queue=mapping.get("EventSourceArn", ""), state=state))
        return states
