"""The AWS resources the tests create under moto: the state table (its schema as the stack declares it), the
catalog bucket, the region; and the recorded AWS event payloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parent.parent / "data" / "events"
REGION = "us-east-1"
BUCKET = "catalog-bucket"
TABLE = "catalog-sync"


def create_table(client: Any) -> None:
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
