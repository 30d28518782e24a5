"""What starts the functions on a clock or an event: a catalog dropped into the bucket, each catalog's schedule,
and the health function's schedule."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from constructs import Construct

from catalog_sync.adapters.aws.bucket_layout import CATALOGS_PREFIX
from infra.components.functions import Functions
from infra.components.naming import TransparentConstruct
from infra.components.queues import Queues
from infra.components.storage import Storage
from infra.config import StackConfig


class Triggers(TransparentConstruct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        storage: Storage,
        queues: Queues,
        functions: Functions,
    ) -> None:
        super().__init__(scope, construct_id)
        # Created in the stack itself, not in this construct: CDK derives names of other resources from these
        # ones' paths (event source mappings, rule permissions), which naming.py cannot make transparent.
        self.home = cdk.Stack.of(self)
        target_options: dict[str, Any] = {
            "retry_attempts": 4,
            "max_event_age": cdk.Duration.hours(2),
            "dead_letter_queue": queues.diff_failures,
        }
        events.Rule(
            self.home,
            "CatalogDropped",
            description="A catalog object created under the catalogs prefix: sync it",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [storage.bucket.bucket_name]},
                    "object": {"key": [{"prefix": CATALOGS_PREFIX}]},
                },
            ),
            targets=[targets.LambdaFunction(functions.diff, **target_options)],
        )
        events.Rule(
            self.home,
            "HealthSchedule",
            description="Score every catalog's health and publish it",
            schedule=events.Schedule.expression(config.health_schedule),
            targets=[targets.LambdaFunction(functions.health, retry_attempts=0)],
        )
        for catalog in config.catalogs:
            if catalog.schedule is None:
                continue
            events.Rule(
                self.home,
                f"Schedule-{catalog.name}",
                rule_name=config.schedule_rule_name(catalog.name),
                description=f"Scheduled {catalog.mode} sync of catalog {catalog.name}",
                schedule=events.Schedule.expression(catalog.schedule),
                enabled=catalog.enabled,
                targets=[
                    targets.LambdaFunction(
                        functions.diff,
                        event=events.RuleTargetInput.from_object(
                            {"trigger": "schedule", "catalog": catalog.name, "mode": catalog.mode.value}
                        ),
                        **target_options,
                    )
                ],
            )
