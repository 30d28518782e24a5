"""Idempotent requests, keyed by the caller's Idempotency-Key header, with powertools Idempotency on DynamoDB.

A request that carries a key is done once: a retry with the same key (and the same request) gets the first
answer, stored for `expires_after_seconds`; the same key with another request is refused (KeyReused), and so is
a retry while the first is still being handled (KeyInProgress). A request without a key is simply done. A request
that fails (an exception) stores nothing: its retry is done afresh.

Records live in the state table (string `pk` and `sk`; `expires_at` is its TTL attribute): `pk` is
`idempotency#<function name>`, `sk` is `webhook.<operation>#<hash of the key>`. Each operation has its own
powertools persistence layer: an instance keeps the first configuration it was used with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from catalog_sync.adapters.aws.dynamodb_state.keys import EXPIRY_ATTRIBUTE, PARTITION_KEY, SORT_KEY

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Visible ASCII, as a header carries it unchanged (a UUID, a ULID, a structured-field string...).
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]{1,255}$"
DEFAULT_EXPIRY_SECONDS = 3_600

Answer = dict[str, Any]


class KeyReused(Exception):
    """The Idempotency-Key was used before with a different request."""


class KeyInProgress(Exception):
    """A request with this Idempotency-Key is being handled now."""


def _do(request: Mapping[str, Any], work: Callable[[], Answer]) -> Answer:
    return work()


class Idempotency:
    def __init__(
        self, table_name: str, *, expires_after_seconds: int = DEFAULT_EXPIRY_SECONDS, client: Any = None
    ) -> None:
        self.table_name = table_name
        self.expires_after_seconds = expires_after_seconds
        self._client = client
        self._operations: dict[str, tuple[Callable[..., Answer], IdempotencyConfig]] = {}

    def _operation(self, name: str) -> tuple[Callable[..., Answer], IdempotencyConfig]:
        if name not in self._operations:
            store = DynamoDBPersistenceLayer(
                table_name=self.table_name,
                key_attr=PARTITION_KEY,
                sort_key_attr=SORT_KEY,
                expiry_attr=EXPIRY_ATTRIBUTE,
                boto3_client=self._client,
            )
            config = IdempotencyConfig(
                event_key_jmespath="key",
                payload_validation_jmespath="request",
                expires_after_seconds=self.expires_after_seconds,
            )
            function = idempotent_function(
                _do,
                data_keyword_argument="request",
                persistence_store=store,
                config=config,
                key_prefix=f"webhook.{name}",
            )
            self._operations[name] = (function, config)
        return self._operations[name]

    def run(
        self,
        operation: str,
        key: str | None,
        request: Mapping[str, Any],
        work: Callable[[], Answer],
        *,
        context: LambdaContext | None = None,
    ) -> Answer:
        """`work()`'s answer, done once per `key` within the expiry; `request` (JSON) must be the same each time.

        `context` lets a request in progress expire with the invocation handling it, should that one die: a retry
        then proceeds instead of waiting for the whole expiry.
        """
        if key is None:
            return work()
        function, config = self._operation(operation)
        if context is not None:
            config.register_lambda_context(context)
        try:
            return function(request={"key": key, "request": dict(request)}, work=work)
        except IdempotencyValidationError:
            raise KeyReused(f"{IDEMPOTENCY_HEADER} was used before with a different request") from None
        except IdempotencyAlreadyInProgressError:
            raise KeyInProgress(f"a request with this {IDEMPOTENCY_HEADER} is in progress") from None
