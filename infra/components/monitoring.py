"""The alert topic, the alarms that notify it (failure rates, dead letters, old messages, stale catalogs, guard
trips, a diff near its timeout) and the pipeline's dashboard."""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from catalog_sync.adapters.aws import observability as names
from infra.components.functions import Functions
from infra.components.naming import TransparentConstruct
from infra.components.queues import Queues
from infra.config import StackConfig


class Monitoring(TransparentConstruct):
    def __init__(
        self, scope: Construct, construct_id: str, *, config: StackConfig, queues: Queues, functions: Functions
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.queues = queues
        self.functions = functions
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.alert_topic = sns.Topic(self, "Alerts", display_name="catalog-sync alerts", enforce_ssl=True)
        for email in config.alarms.alert_emails:
            self.alert_topic.add_subscription(subscriptions.EmailSubscription(email))
        self._alarms()
        self._dashboard()

    def _metric(self, name: str, *, statistic: str = "Sum", minutes: int = 5, **dimensions: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=names.NAMESPACE,
            metric_name=name,
            dimensions_map=dimensions or {"service": names.SERVICE},
            statistic=statistic,
            period=cdk.Duration.minutes(minutes),
        )

    def _alarm(self, alarm_id: str, description: str, **kwargs: Any) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(self, alarm_id, alarm_description=description, **kwargs)
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alert_topic))
        alarm.add_ok_action(cloudwatch_actions.SnsAction(self.alert_topic))
        self.alarms[alarm_id] = alarm
        return alarm

    def _alarms(self) -> None:
        thresholds = self.config.alarms
        minutes = thresholds.failure_rate_period_minutes
        self.failure_rate = cloudwatch.MathExpression(
            expression="IF(processed > 0, 100 * FILL(failed, 0) / processed, 0)",
            using_metrics={
                "processed": self._metric(names.MESSAGES_PROCESSED, minutes=minutes),
                "failed": self._metric(names.MESSAGES_FAILED, minutes=minutes),
            },
            label="Failed messages (%)",
            period=cdk.Duration.minutes(minutes),
        )
        for level, percent in (
            ("Warning", thresholds.failure_rate_warning_percent),
            ("Critical", thresholds.failure_rate_critical_percent),
        ):
            self._alarm(
                f"FailureRate{level}",
                f"{level.upper()}: more than {percent}% of the consumers' messages failed over {minutes} minutes",
                metric=self.failure_rate,
                threshold=percent,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for alarm_id, queue in (
            ("ChangeDeadLetters", self.queues.change_dlq),
            ("PriorityDeadLetters", self.queues.priority_dlq),
            ("DiffFailureDeadLetters", self.queues.diff_failures),
        ):
            self._alarm(
                alarm_id,
                f"CRITICAL: messages in {alarm_id}: "
                + (
                    "diff invocations that failed after retries (the event is in the message)"
                    if queue is self.queues.diff_failures
                    else "changes that kept failing (catalog-sync redrive puts them back once fixed)"
                ),
                metric=queue.metric_approximate_number_of_messages_visible(
                    period=cdk.Duration.minutes(1), statistic="Maximum"
                ),
                threshold=thresholds.dead_letters,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for alarm_id, queue in (
            ("ChangeQueueAge", self.queues.change_queue),
            ("PriorityQueueAge", self.queues.priority_queue),
        ):
            self._alarm(
                alarm_id,
                f"WARNING: the oldest message waits more than {thresholds.oldest_message_age_minutes} minutes",
                metric=queue.metric_approximate_age_of_oldest_message(
                    period=cdk.Duration.minutes(5), statistic="Maximum"
                ),
                threshold=thresholds.oldest_message_age_minutes * 60,
                evaluation_periods=3,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for catalog in (c for c in self.config.catalogs if c.stale_alarms):
            runs = self._metric(
                names.RUNS_SUCCEEDED, minutes=60, service=names.SERVICE, **{names.CATALOG_DIMENSION: catalog.name}
            )
            for level, hours in (
                ("Warning", thresholds.stale_warning_hours),
                ("Critical", thresholds.stale_critical_hours),
            ):
                # Every hour without a successful run is breaching (no data is the point), for `hours` hours.
                self._alarm(
                    f"Stale{level}-{catalog.name}",
                    f"{level.upper()}: no successful run of catalog {catalog.name} for {hours} hours",
                    metric=runs,
                    threshold=1,
                    evaluation_periods=hours,
                    datapoints_to_alarm=hours,
                    comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
                )
        self._alarm(
            "GuardTrips",
            "WARNING: the deletion guard held a catalog back (empty, truncated or wrong file?); nothing was changed",
            metric=self._metric(names.GUARD_TRIPS),
            threshold=thresholds.guard_trips,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        timeout_ms = self.config.functions.diff.timeout_seconds * 1000
        self._alarm(
            "DiffNearTimeout",
            f"WARNING: a diff ran longer than {thresholds.diff_duration_share:.0%} of its timeout "
            "(it checkpoints and continues, but the catalog may have outgrown the function)",
            metric=self.functions.diff.metric_duration(period=cdk.Duration.minutes(5), statistic="Maximum"),
            threshold=thresholds.diff_duration_share * timeout_ms,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self._alarm(
            "DiffErrors",
            "CRITICAL: the diff function failed (Lambda retries it, then keeps the event in DiffFailures)",
            metric=self.functions.diff.metric_errors(period=cdk.Duration.minutes(5), statistic="Sum"),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )

    def _dashboard(self) -> None:
        def graph(title: str, metrics: list[cloudwatch.IMetric], **kwargs: Any) -> cloudwatch.GraphWidget:
            return cloudwatch.GraphWidget(title=title, left=metrics, width=12, height=6, **kwargs)

        cache_hits = self._metric(names.EMBEDDING_CACHE_HITS)
        embedded = self._metric(names.TEXTS_EMBEDDED)
        hit_rate = cloudwatch.MathExpression(
            expression="IF(hits + embedded > 0, 100 * hits / (hits + embedded), 0)",
            using_metrics={"hits": cache_hits, "embedded": embedded},
            label="Embedding cache hit rate (%)",
            period=cdk.Duration.minutes(5),
        )
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=f"{cdk.Stack.of(self).stack_name}-pipeline"
        )
        self.dashboard.add_widgets(
            graph(
                "Changes by kind",
                [
                    self._metric(name)
                    for name in (
                        names.PRODUCTS_ADDED,
                        names.PRODUCTS_MODIFIED,
                        names.PRODUCTS_METADATA_ONLY,
                        names.PRODUCTS_DELETED,
                        names.INVALID_RECORDS,
                    )
                ],
                stacked=True,
            ),
            graph(
                "Products synced",
                [
                    self._metric(name)
                    for name in (names.VECTORS_UPSERTED, names.METADATA_UPDATED, names.VECTORS_DELETED)
                ],
                stacked=True,
            ),
        )
        self.dashboard.add_widgets(
            graph("Failures", [self._metric(names.MESSAGES_FAILED), self.failure_rate]),
            graph("Embedding cache", [hit_rate, embedded, cache_hits]),
        )
        self.dashboard.add_widgets(
            graph(
                "Run duration",
                [
                    self.functions.diff.metric_duration(statistic="Maximum"),
                    self.functions.consumer.metric_duration(statistic="Average"),
                ],
            ),
            graph(
                "Queue depth",
                [
                    queue.metric_approximate_number_of_messages_visible(statistic="Maximum")
                    for queue in (
                        self.queues.priority_queue,
                        self.queues.change_queue,
                        self.queues.priority_dlq,
                        self.queues.change_dlq,
                        self.queues.diff_failures,
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Health score",
                [
                    self._metric(
                        names.HEALTH_SCORE,
                        statistic="Minimum",
                        minutes=60,
                        service=names.SERVICE,
                        **{names.CATALOG_DIMENSION: catalog.name},
                    )
                    for catalog in self.config.catalogs
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
            )
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=4)
        )
