"""The nonces of the signed requests the webhook received, in the state table, so that each is accepted once."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.exceptions import ClientError

from catalog_sync.adapters.aws.dynamodb_state.keys import nonce_key
from catalog_sync.logic.signing import Replayed


class SeenNonces:
    """The nonces of the signed requests received, in the state table (pk `NONCE#<nonce>`, sk `seen`), each kept
    until `expires_at` (the table's TTL attribute). Recording one a second time raises Replayed: one conditional
    write, so that two instances receiving the same request at once accept it once."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client("dynamodb")
        return self._client

    def record(self, nonce: str, *, expires_at: int) -> None:
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item={**nonce_key(nonce), "expires_at": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                raise Replayed("the request was already received") from None
            raise
