"""The transaction double keeps moto's semantics: all or nothing, with a reason per cancelled item."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from tests.doubles import moto_transactions
from tests.doubles.aws_resources import TABLE, create_table


@pytest.fixture
def dynamodb(aws_credentials: None):
    moto_transactions.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client)
        client.put_item(TableName=TABLE, Item={"pk": {"S": "p"}, "sk": {"S": "a"}, "v": {"N": "1"}})
        yield client


def items(client) -> dict[str, str]:
    return {i["sk"]["S"]: i["v"]["N"] for i in client.scan(TableName=TABLE)["Items"]}


def operations(condition_on_c: str) -> list[dict]:
    return [
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "p"}, "sk": {"S": "a"}},
                "UpdateExpression": "SET v = :v",
                "ExpressionAttributeValues": {":v": {"N": "2"}},
            }
        },
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "p"}, "sk": {"S": "b"}, "v": {"N": "1"}}}},
        {
            "Update": {
                "TableName": TABLE,
                "Key": {"pk": {"S": "p"}, "sk": {"S": "c"}},
                "UpdateExpression": "SET v = :v",
                "ConditionExpression": condition_on_c,
                "ExpressionAttributeValues": {":v": {"N": "1"}},
            }
        },
    ]


def test_a_cancelled_transaction_changes_nothing_and_says_which_item_failed(dynamodb):
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as raised:
        dynamodb.transact_write_items(TransactItems=operations("attribute_exists(pk)"))
    reasons = [r["Code"] for r in raised.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "ConditionalCheckFailed"]
    assert items(dynamodb) == {"a": "1"}  # the update of a undone, the put of b undone


def test_a_transaction_whose_conditions_hold_applies_every_item(dynamodb):
    dynamodb.transact_write_items(TransactItems=operations("attribute_not_exists(pk)"))
    assert items(dynamodb) == {"a": "2", "b": "1", "c": "1"}
