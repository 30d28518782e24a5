"""The stateful resources keep their logical ids: CloudFormation replaces a resource whose id changes, which for
the table and the buckets means a new, empty one. Regrouping the stack's constructs must leave these alone."""

from __future__ import annotations

from typing import Any

STATEFUL = {
    "CatalogBucket5819BC2E": "AWS::S3::Bucket",
    "AccessLogs8B620ECA": "AWS::S3::Bucket",
    "StateTable9728C7E5": "AWS::DynamoDB::Table",
    "ChangeQueueC069E0C0": "AWS::SQS::Queue",
    "ChangeQueueDeadLetters40B8221B": "AWS::SQS::Queue",
    "PriorityQueue9B6D3F81": "AWS::SQS::Queue",
    "PriorityQueueDeadLetters26429E75": "AWS::SQS::Queue",
    "DiffFailures21C2F29D": "AWS::SQS::Queue",
}


def test_the_buckets_table_and_queues_keep_their_logical_ids(resources: dict[str, dict[str, Any]]):
    stateful = {name: r["Type"] for name, r in resources.items() if r["Type"] in set(STATEFUL.values())}
    assert stateful == STATEFUL


def test_transparent_constructs_name_like_cdk_itself(stack: Any):
    import aws_cdk as cdk
    from infra.components.naming import unique_id

    # CDK's public Names.unique_id is the same algorithm over the path below the app.
    for construct in stack.node.find_all():
        if construct is not stack and isinstance(construct, cdk.CfnElement):
            path = [scope.node.id for scope in construct.node.scopes[1:]]
            assert unique_id(path) == cdk.Names.unique_id(construct)
