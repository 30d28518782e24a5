"""Logical ids that do not depend on how the stack groups its resources into constructs.

CloudFormation knows a resource by its logical id, which CDK derives from the construct path below the stack:
moving a resource into a construct would rename it, and a deployment would replace it (a new, empty table or
bucket). The constructs of this package are transparent instead: a resource inside one keeps the id it would
have as a direct child of the stack. Two resources that would collide fail synthesis (CDK refuses a duplicate
logical id), they are never merged.
"""

from __future__ import annotations

import hashlib
import re

import aws_cdk as cdk
from constructs import Construct

# CDK's own rules (aws-cdk-lib core/lib/private/uniqueid, `makeUniqueId`), which it keeps private: "Default" is
# left out of the path, "Resource" out of the readable part; the hash is of the whole path.
_HIDDEN = "Default"
_HIDDEN_FROM_HUMANS = "Resource"
_HASH_LENGTH = 8
_MAX_HUMAN_LENGTH = 240
_MAX_ID_LENGTH = 255


class TransparentConstruct(Construct):
    """Groups resources in the construct tree without taking part in their logical ids."""


def unique_id(components: list[str]) -> str:
    """The logical id CDK gives a resource at this path below its stack."""
    components = [c for c in components if c != _HIDDEN]
    if not components:
        raise ValueError("no path to name")
    if len(components) == 1 and len(readable := _alphanumeric(components[0])) <= _MAX_ID_LENGTH:
        return readable
    digest = hashlib.md5("/".join(components).encode(), usedforsecurity=False).hexdigest()
    human: list[str] = []
    for component in components:
        if not human or not human[-1].endswith(component):
            human.append(component)
    readable = "".join(_alphanumeric(c) for c in human if c != _HIDDEN_FROM_HUMANS)
    return readable[:_MAX_HUMAN_LENGTH] + digest[:_HASH_LENGTH].upper()


def transparent_logical_id(stack: cdk.Stack, element: cdk.CfnElement) -> str | None:
    """The element's logical id with the transparent constructs left out of its path; None if it is in none."""
    scopes = element.node.scopes
    below = scopes[scopes.index(stack) + 1 :]
    if not any(isinstance(scope, TransparentConstruct) for scope in below):
        return None
    return unique_id([scope.node.id for scope in below if not isinstance(scope, TransparentConstruct)])


def _alphanumeric(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", text)
