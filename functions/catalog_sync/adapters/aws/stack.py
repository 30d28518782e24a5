"""A deployment seen from outside: a stack's outputs (CloudFormation) and its catalogs (state table and bucket).

The CDK app names its outputs `<Name>Output` (infra/stack.py `_outputs`): the state table is `StateTableOutput`
and the bucket `BucketOutput`. A deployment's catalogs are those with state in the table (every catalog that
began a run registers itself there) and those with a config in the bucket (`config/<catalog>.toml`, not run yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from catalog_sync.adapters.aws.bucket_layout import CONFIGS_PREFIX
from catalog_sync.adapters.aws.catalog_configs import CONFIG_SUFFIXES
from catalog_sync.adapters.aws.dynamodb_state import registered_catalogs

STATE_TABLE_OUTPUT = "StateTableOutput"
BUCKET_OUTPUT = "BucketOutput"


class DeploymentError(RuntimeError):
    """The stack cannot be found or lacks an output this needs."""


@dataclass(frozen=True)
class Deployment:
    stack: str
    table: str
    bucket: str
    outputs: dict[str, str] = field(default_factory=dict)


def stack_outputs(cloudformation: Any, stack: str) -> dict[str, str]:
    """A stack's outputs by OutputKey (DescribeStacks)."""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except Exception as exc:
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        if code == "ValidationError":  # how CloudFormation says the stack does not exist
            raise DeploymentError(f"no stack {stack!r} in this account and region") from exc
        raise
    if not stacks:
        raise DeploymentError(f"no stack {stack!r} in this account and region")
    return {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}


def deployment(cloudformation: Any, stack: str) -> Deployment:
    outputs = stack_outputs(cloudformation, stack)
    missing = [key for key in (STATE_TABLE_OUTPUT, BUCKET_OUTPUT) if key not in outputs]
    if missing:
        raise DeploymentError(f"stack {stack!r} has no output {', '.join(missing)}: is it a catalog-sync stack?")
    return Deployment(stack=stack, table=outputs[STATE_TABLE_OUTPUT], bucket=outputs[BUCKET_OUTPUT], outputs=outputs)


def configured_catalogs(s3: Any, *, bucket: str, prefix: str = CONFIGS_PREFIX) -> list[str]:
    """The catalogs with a config in the bucket: `<prefix><catalog>.toml` (or .yaml, .yml)."""
    names: set[str] = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix) :]
            for suffix in CONFIG_SUFFIXES:
                if name.endswith(suffix) and "/" not in name and len(name) > len(suffix):
                    names.add(name[: -len(suffix)])
    return sorted(names)


def deployed_catalogs(
    dynamodb: Any, s3: Any | None, *, table: str, bucket: str | None, configs_prefix: str = CONFIGS_PREFIX
) -> dict[str, int | None]:
    """Every catalog of a deployment, by name, with the shard count its state was written with (None: no state yet).

    Without `s3` (or a bucket), only the catalogs with state."""
    catalogs: dict[str, int | None] = dict(registered_catalogs(dynamodb, table=table))
    if s3 is not None and bucket:
        for name in configured_catalogs(s3, bucket=bucket, prefix=configs_prefix):
            catalogs.setdefault(name, None)
    return dict(sorted(catalogs.items()))
