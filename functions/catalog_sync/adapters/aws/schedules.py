"""The catalogs' EventBridge schedule rules, named `<rule prefix><catalog>`: enabled, disabled or given a new
expression (their targets are kept)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

# EventBridge: a rule name is 1-64 of these; an expression at most 256 characters.
_RULE_NAME = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
MAX_EXPRESSION_LENGTH = 256
# The two forms EventBridge schedules take; EventBridge checks the fields themselves.
SCHEDULE_PATTERN = (
    r"^(rate\((1 (minute|hour|day)|([2-9]|[1-9][0-9]{1,5}) (minutes|hours|days))\)"
    r"|cron\([^ ()]+( [^ ()]+){5}\))$"
)


class ScheduleState(BaseModel):
    catalog: str
    rule: str = Field(description="The EventBridge rule.")
    enabled: bool
    expression: str


class NoSchedule(LookupError):
    """The catalog has no schedule rule."""


class BadSchedule(ValueError):
    """EventBridge refused the expression."""


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class ScheduleRules:
    """The catalogs' EventBridge schedule rules, named `<prefix><catalog>`."""

    def __init__(self, prefix: str, client: Any = None) -> None:
        self.prefix = prefix
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("events")
        return self._client

    def rule_name(self, catalog: str) -> str:
        return f"{self.prefix}{catalog}"

    def _describe(self, catalog: str) -> dict[str, Any]:
        name = self.rule_name(catalog)
        if _RULE_NAME.fullmatch(name) is None:
            raise NoSchedule(f"no schedule rule for catalog {catalog!r}")  # no rule can have this name
        try:
            rule: dict[str, Any] = self.client.describe_rule(Name=name)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                raise NoSchedule(f"no schedule rule for catalog {catalog!r}") from None
            raise
        if not rule.get("ScheduleExpression"):
            raise NoSchedule(f"rule {name!r} is not a schedule")
        return rule

    def state(self, catalog: str) -> ScheduleState:
        return self._state(catalog, self._describe(catalog))

    def _state(self, catalog: str, rule: Mapping[str, Any]) -> ScheduleState:
        return ScheduleState(
            catalog=catalog,
            rule=str(rule["Name"]),
            enabled=rule.get("State") == "ENABLED",
            expression=str(rule["ScheduleExpression"]),
        )

    def update(self, catalog: str, *, enabled: bool | None = None, expression: str | None = None) -> ScheduleState:
        """Enable or disable the rule, or change its expression; the rule's state afterwards."""
        rule = self._describe(catalog)
        name = str(rule["Name"])
        currently = rule.get("State") == "ENABLED"
        wanted = currently if enabled is None else enabled
        if expression is not None and expression != rule["ScheduleExpression"]:
            # PutRule replaces the whole rule: what it is not given is cleared, so the rest is given back as it
            # was. Targets are not part of a rule and are kept.
            kept = {field: rule[field] for field in ("Description", "RoleArn", "EventBusName") if rule.get(field)}
            try:
                self.client.put_rule(
                    Name=name, ScheduleExpression=expression, State="ENABLED" if wanted else "DISABLED", **kept
                )
            except ClientError as exc:
                if error_code(exc) == "ValidationException":
                    raise BadSchedule("EventBridge refused the schedule expression") from None
                raise
        elif wanted != currently:
            (self.client.enable_rule if wanted else self.client.disable_rule)(Name=name)
        else:
            return self._state(catalog, rule)  # nothing to change
        return self.state(catalog)
