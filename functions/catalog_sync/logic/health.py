"""A catalog's health: a score from 0 to 100 and the alerts behind it. Pure: counts and runs in, a report out.

The score weighs three components, each from 0 to 1 (default weights 50 / 30 / 20, normalised):

- coverage: the share of the catalog's products that the index holds at their desired version, deletions
  included: synced / (products + products still to delete). With nothing to index it is 1 once a run has
  succeeded, 0 before;
- freshness: the age of the last successful run: 1 up to `fresh_hours`, falling linearly to 0 at
  `stale_hours`; 0 when no run in the window succeeded;
- quality: 1 - max(invalid share of the last run that read the catalog, failure rate of the recent runs).
  The failure rate counts failed runs and stuck ones (in flight for more than `stuck_after_hours`) over the
  settled runs; runs held by the deletion guard and interrupted runs are neither successes nor failures (they
  raise their own alert while they are the last settled run). An interrupted run was stopped part way (Ctrl+C,
  or its process killed, and then marked by the next writer): what it left is pending and shows in coverage, and
  once a later run succeeds it is history. A run left `running` by a killed process counts as in flight until
  the next writer marks it interrupted (or as stuck, if none comes within `stuck_after_hours`).

Alerts, each at a level (info, warning, critical), with thresholds in `HealthSettings`:
- coverage below 99% / 95% (info only while a run is in flight: the index lags behind it for a while);
- last success older than 48 h / 72 h (the staleness alarms' defaults), or none at all (critical);
- invalid share above 1% (info) / 5% (warning); failure rate above 5% / 10%; pending changes (info);
- the last run held, failed or interrupted, stuck runs, and (where the caller knows it) an index whose vector
  count differs from what the state expects (warnings).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from catalog_sync.logic.runs import Outcome, newest_first, outcome, run_statistics
from catalog_sync.models.changes import RunRecord, RunStatus, StateCounts


class AlertLevel(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: AlertLevel
    code: str
    message: str


class HealthWeights(BaseModel):
    """Relative weights of the components; any non-negative numbers with a positive sum (normalised)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    coverage: float = Field(default=50.0, ge=0)
    freshness: float = Field(default=30.0, ge=0)
    quality: float = Field(default=20.0, ge=0)

    @model_validator(mode="after")
    def _positive_sum(self) -> HealthWeights:
        if self.coverage + self.freshness + self.quality <= 0:
            raise ValueError("the health weights must not all be zero")
        return self

    def normalised(self) -> tuple[float, float, float]:
        total = self.coverage + self.freshness + self.quality
        return self.coverage / total, self.freshness / total, self.quality / total


class HealthSettings(BaseModel):
    """Weights and thresholds. Shares and rates are fractions (0.05 is 5%); ages are hours."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: HealthWeights = Field(default_factory=HealthWeights)
    # Freshness: full marks up to fresh_hours after the last success, none from stale_hours on.
    fresh_hours: float = Field(default=24.0, ge=0)
    stale_hours: float = Field(default=72.0, gt=0)
    # Alerts when coverage is below these.
    coverage_warning: float = Field(default=0.99, ge=0, le=1)
    coverage_critical: float = Field(default=0.95, ge=0, le=1)
    # Alerts when the last success is older than these (the CloudWatch staleness alarms' defaults).
    stale_warning_hours: float = Field(default=48.0, gt=0)
    stale_critical_hours: float = Field(default=72.0, gt=0)
    # Alerts when the last run's invalid records are above these shares of its records.
    invalid_info: float = Field(default=0.01, ge=0, le=1)
    invalid_warning: float = Field(default=0.05, ge=0, le=1)
    # Alerts when the recent runs' failure rate is above these.
    failure_warning: float = Field(default=0.05, ge=0, le=1)
    failure_critical: float = Field(default=0.10, ge=0, le=1)
    # An info alert when more products than this are pending.
    pending_info: int = Field(default=0, ge=0)
    # A run still running or dispatched this long after it started counts as failed (stuck).
    stuck_after_hours: float = Field(default=6.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> HealthSettings:
        pairs = (
            (self.fresh_hours < self.stale_hours, "fresh_hours must be below stale_hours"),
            (self.coverage_critical <= self.coverage_warning, "coverage_critical must not be above coverage_warning"),
            (
                self.stale_warning_hours <= self.stale_critical_hours,
                "stale_critical_hours must not be below stale_warning_hours",
            ),
            (self.invalid_info <= self.invalid_warning, "invalid_warning must not be below invalid_info"),
            (self.failure_warning <= self.failure_critical, "failure_critical must not be below failure_warning"),
        )
        for holds, problem in pairs:
            if not holds:
                raise ValueError(problem)
        return self


class HealthComponents(BaseModel):
    coverage: float
    freshness: float
    quality: float


class HealthReport(BaseModel):
    score: float  # 0-100, one decimal
    components: HealthComponents
    alerts: list[Alert] = Field(default_factory=list)  # most severe first
    last_success_at: datetime | None = None
    hours_since_success: float | None = None
    invalid_share: float = 0.0
    failure_rate: float | None = None

    @property
    def level(self) -> AlertLevel | None:
        """The most severe alert's level; None without alerts."""
        return self.alerts[0].level if self.alerts else None

    @property
    def healthy(self) -> bool:
        """No warning and no critical alert (info alerts are news, not trouble)."""
        return all(alert.level is AlertLevel.INFO for alert in self.alerts)

    @property
    def grade(self) -> str:
        """good, fair or poor: the score (90 and 70 the bounds), worsened by a warning (fair) or critical alert."""
        if self.score < 70 or self.level is AlertLevel.CRITICAL:
            return "poor"
        if self.score < 90 or self.level is AlertLevel.WARNING:
            return "fair"
        return "good"


def coverage(counts: StateCounts, *, ever_succeeded: bool) -> float:
    expected = counts.products + counts.deleting
    if expected == 0:
        return 1.0 if ever_succeeded else 0.0
    return min(max(counts.synced / expected, 0.0), 1.0)


def freshness(hours_since_success: float | None, settings: HealthSettings) -> float:
    if hours_since_success is None:
        return 0.0
    if hours_since_success <= settings.fresh_hours:
        return 1.0
    if hours_since_success >= settings.stale_hours:
        return 0.0
    return 1.0 - (hours_since_success - settings.fresh_hours) / (settings.stale_hours - settings.fresh_hours)


def quality(invalid_share: float, failure_rate: float | None) -> float:
    return min(max(1.0 - max(invalid_share, failure_rate or 0.0), 0.0), 1.0)


def last_invalid_share(runs: Sequence[RunRecord]) -> float:
    """Invalid records over records read, in the newest run that read any."""
    for run in newest_first(runs):
        records = run.counts.get("records", 0)
        if records > 0:
            return min(run.counts.get("invalid", 0) / records, 1.0)
    return 0.0


def assess_health(
    counts: StateCounts,
    runs: Sequence[RunRecord],
    *,
    now: datetime,
    settings: HealthSettings,
    vectors_in_index: int | None = None,
) -> HealthReport:
    """The health of one catalog from its state counts and recent runs (any order)."""
    stuck_after = timedelta(hours=settings.stuck_after_hours)
    ordered = newest_first(runs)
    stats = run_statistics(ordered, now=now, stuck_after=stuck_after)
    successes = [run for run in ordered if run.status is RunStatus.SUCCEEDED]
    last_success_at = (successes[0].finished_at or successes[0].started_at) if successes else None
    hours = max((now - last_success_at).total_seconds() / 3600, 0.0) if last_success_at else None
    invalid_share = last_invalid_share(ordered)
    failure_rate = stats.failure_rate

    components = HealthComponents(
        coverage=coverage(counts, ever_succeeded=last_success_at is not None),
        freshness=freshness(hours, settings),
        quality=quality(invalid_share, failure_rate),
    )
    w_coverage, w_freshness, w_quality = settings.weights.normalised()
    score = 100 * (
        w_coverage * components.coverage + w_freshness * components.freshness + w_quality * components.quality
    )

    alerts: list[Alert] = []

    def alert(level: AlertLevel, code: str, message: str) -> None:
        alerts.append(Alert(level=level, code=code, message=message))

    expected = counts.products + counts.deleting
    missing = expected - counts.synced
    if expected and components.coverage < settings.coverage_warning:
        level = AlertLevel.CRITICAL if components.coverage < settings.coverage_critical else AlertLevel.WARNING
        limit = settings.coverage_critical if level is AlertLevel.CRITICAL else settings.coverage_warning
        message = (
            f"coverage {components.coverage:.1%} is below {limit:.0%}: {missing:,} of {expected:,} products are not "
            "in the index at their desired version"
        )
        if stats.in_flight:
            # A run is applying its changes right now: the index is expected to lag behind for a while.
            level, message = AlertLevel.INFO, f"{message} (a run is in flight)"
        alert(level, "coverage", message)
    if hours is None:
        alert(
            AlertLevel.CRITICAL,
            "never_succeeded",
            f"none of the last {len(ordered)} runs succeeded" if ordered else "the catalog was never synced",
        )
    elif hours > settings.stale_warning_hours:
        level = AlertLevel.CRITICAL if hours > settings.stale_critical_hours else AlertLevel.WARNING
        limit = settings.stale_critical_hours if level is AlertLevel.CRITICAL else settings.stale_warning_hours
        alert(level, "stale", f"the last successful run was {hours:.1f} h ago (more than {limit:g} h)")
    if invalid_share > settings.invalid_info:
        level = AlertLevel.WARNING if invalid_share > settings.invalid_warning else AlertLevel.INFO
        limit = settings.invalid_warning if level is AlertLevel.WARNING else settings.invalid_info
        alert(
            level,
            "invalid_records",
            f"the last run quarantined {invalid_share:.1%} of its records (above {limit:.0%})",
        )
    if failure_rate is not None and failure_rate > settings.failure_warning:
        level = AlertLevel.CRITICAL if failure_rate > settings.failure_critical else AlertLevel.WARNING
        limit = settings.failure_critical if level is AlertLevel.CRITICAL else settings.failure_warning
        settled = stats.succeeded + stats.failed + stats.stuck
        alert(
            level,
            "failure_rate",
            f"{stats.failed + stats.stuck} of the last {settled} settled runs failed ({failure_rate:.0%}, above "
            f"{limit:.0%})",
        )
    if stats.stuck:
        alert(
            AlertLevel.WARNING,
            "stuck_runs",
            f"{stats.stuck} run(s) started more than {settings.stuck_after_hours:g} h ago and never finished (a "
            "crash, or changes in a dead-letter queue)",
        )
    settled_runs = [
        run
        for run in ordered
        if outcome(run, now=now, stuck_after=stuck_after)
        in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.HELD, Outcome.INTERRUPTED)
    ]
    if settled_runs and settled_runs[0].status is RunStatus.HELD:
        alert(
            AlertLevel.WARNING,
            "held",
            f"the last run ({settled_runs[0].run_id}) was held back by the deletion guard: {settled_runs[0].message}",
        )
    elif settled_runs and settled_runs[0].status is RunStatus.FAILED:
        alert(
            AlertLevel.WARNING,
            "last_run_failed",
            f"the last run ({settled_runs[0].run_id}) failed: {settled_runs[0].message}",
        )
    elif settled_runs and settled_runs[0].status is RunStatus.INTERRUPTED:
        alert(
            AlertLevel.WARNING,
            "last_run_interrupted",
            f"the last run ({settled_runs[0].run_id}) was interrupted; a sync resumes it: {settled_runs[0].message}",
        )
    if counts.pending > settings.pending_info:
        alert(
            AlertLevel.INFO,
            "pending",
            f"{counts.pending:,} products are pending (not yet in the index at their desired version)",
        )
    if vectors_in_index is not None and vectors_in_index != counts.indexed:
        alert(
            AlertLevel.WARNING,
            "index_mismatch",
            f"the index holds {vectors_in_index:,} vectors but the state expects {counts.indexed:,}: run a full sync",
        )

    alerts.sort(key=lambda a: a.level.rank, reverse=True)
    return HealthReport(
        score=round(min(max(score, 0.0), 100.0), 1),
        components=components,
        alerts=alerts,
        last_success_at=last_success_at,
        hours_since_success=hours,
        invalid_share=invalid_share,
        failure_rate=failure_rate,
    )
