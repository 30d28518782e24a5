"""Health scoring and run statistics (pure), against hand-computed expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from catalog_sync.logic.health import (
    AlertLevel,
    HealthSettings,
    HealthWeights,
    assess_health,
    coverage,
    freshness,
    quality,
)
from catalog_sync.logic.runs import Outcome, duration_seconds, new_run_id, outcome, run_statistics
from catalog_sync.models.changes import RunRecord, RunStatus, StateCounts

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
SETTINGS = HealthSettings()
SEQ = iter(range(1, 1_000_000))


def run(
    status: RunStatus = RunStatus.SUCCEEDED,
    *,
    hours_ago: float = 1.0,
    seconds: float | None = 60.0,
    message: str | None = None,
    **counts: int,
) -> RunRecord:
    started = NOW - timedelta(hours=hours_ago)
    seq = next(SEQ)
    return RunRecord(
        run_id=new_run_id(started, seq, "abc123"),
        seq=seq,
        catalog="shop",
        mode="incremental",
        source="catalog.jsonl",
        status=status,
        started_at=started,
        finished_at=started + timedelta(seconds=seconds) if seconds is not None else None,
        counts=counts,
        message=message,
    )


def good_counts(products: int = 1000) -> StateCounts:
    return StateCounts(products=products, indexed=products, synced=products)


def codes(report: Any) -> dict[str, AlertLevel]:
    return {alert.code: alert.level for alert in report.alerts}


# ---------------------------------------------------------------- settings


def test_weights_are_normalised_and_validated():
    assert HealthWeights().normalised() == (0.5, 0.3, 0.2)
    assert HealthWeights(coverage=2, freshness=1, quality=1).normalised() == (0.5, 0.25, 0.25)
    assert HealthWeights(coverage=0, freshness=0, quality=3).normalised() == (0.0, 0.0, 1.0)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        HealthWeights(coverage=-1)
    with pytest.raises(ValidationError, match="must not all be zero"):
        HealthWeights(coverage=0, freshness=0, quality=0)


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"fresh_hours": 72, "stale_hours": 72}, "fresh_hours must be below stale_hours"),
        ({"coverage_warning": 0.9, "coverage_critical": 0.95}, "coverage_critical"),
        ({"stale_warning_hours": 80}, "stale_critical_hours"),
        ({"invalid_info": 0.1}, "invalid_warning"),
        ({"failure_warning": 0.2}, "failure_critical"),
        ({"surprise": 1}, "Extra inputs"),
    ],
)
def test_inconsistent_settings_are_refused(overrides: dict[str, Any], problem: str):
    with pytest.raises(ValidationError, match=problem):
        HealthSettings(**overrides)


# ---------------------------------------------------------------- components


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        (None, 0.0),  # no successful run
        (0.0, 1.0),
        (24.0, 1.0),  # the end of the fresh window: still full marks
        (36.0, 0.75),  # 1 - 12/48
        (48.0, 0.5),
        (71.0, 1 / 48),
        (72.0, 0.0),  # the stale limit
        (500.0, 0.0),
    ],
)
def test_freshness_falls_linearly_from_the_fresh_window_to_the_stale_limit(hours: float | None, expected: float):
    assert freshness(hours, SETTINGS) == pytest.approx(expected)


def test_coverage_counts_pending_deletions_as_missing():
    assert coverage(StateCounts(products=980, deleting=20, synced=950), ever_succeeded=True) == 0.95
    assert coverage(StateCounts(products=10, synced=10), ever_succeeded=True) == 1.0
    # Nothing to index: full coverage once a run succeeded, none before.
    assert coverage(StateCounts(), ever_succeeded=True) == 1.0
    assert coverage(StateCounts(), ever_succeeded=False) == 0.0


def test_quality_is_one_minus_the_worse_of_invalid_share_and_failure_rate():
    assert quality(0.0, None) == 1.0
    assert quality(0.02, 0.05) == pytest.approx(0.95)
    assert quality(0.3, 0.1) == pytest.approx(0.7)
    assert quality(1.0, 1.0) == 0.0


# ---------------------------------------------------------------- whole reports


def test_an_all_good_catalog_scores_100_without_alerts():
    runs = [run(hours_ago=h, records=1000, added=h) for h in (1, 5, 9, 13)]
    report = assess_health(good_counts(), runs, now=NOW, settings=SETTINGS)
    assert report.score == 100.0
    assert report.components.model_dump() == {"coverage": 1.0, "freshness": 1.0, "quality": 1.0}
    assert report.alerts == [] and report.healthy and report.level is None
    assert report.failure_rate == 0.0 and report.invalid_share == 0.0
    assert report.last_success_at == runs[0].finished_at
    assert report.hours_since_success == pytest.approx(1 - 60 / 3600)


def test_an_all_bad_catalog_scores_0_with_every_alert_most_severe_first():
    counts = StateCounts(products=1000, indexed=0, pending=1000, synced=0)
    runs = [run(RunStatus.FAILED, hours_ago=h, message="boom", records=100, invalid=60) for h in (1, 2, 3)]
    report = assess_health(counts, runs, now=NOW, settings=SETTINGS)
    assert report.score == 0.0
    assert report.components.model_dump() == {"coverage": 0.0, "freshness": 0.0, "quality": 0.0}
    assert codes(report) == {
        "coverage": AlertLevel.CRITICAL,
        "never_succeeded": AlertLevel.CRITICAL,
        "failure_rate": AlertLevel.CRITICAL,
        "invalid_records": AlertLevel.WARNING,
        "last_run_failed": AlertLevel.WARNING,
        "pending": AlertLevel.INFO,
    }
    levels = [alert.level.rank for alert in report.alerts]
    assert levels == sorted(levels, reverse=True)
    assert report.level is AlertLevel.CRITICAL and not report.healthy
    assert "boom" in next(a.message for a in report.alerts if a.code == "last_run_failed")
    assert "1,000 of 1,000 products" in next(a.message for a in report.alerts if a.code == "coverage")


def test_a_hand_computed_score():
    # coverage 950 / (980 + 20) = 0.95; last success 36 h ago: freshness 1 - 12/48 = 0.75;
    # 1 failure in 20 settled runs (0.05) and 2% invalid records: quality 1 - max(0.02, 0.05) = 0.95.
    # 50 * 0.95 + 30 * 0.75 + 20 * 0.95 = 47.5 + 22.5 + 19 = 89.0
    counts = StateCounts(products=980, indexed=990, pending=50, deleting=20, synced=950)
    runs = [run(hours_ago=36 + i, seconds=0, records=1000, invalid=20) for i in range(19)]
    runs.append(run(RunStatus.FAILED, hours_ago=100, message="x"))
    report = assess_health(counts, runs, now=NOW, settings=SETTINGS)
    assert report.components.coverage == pytest.approx(0.95)
    assert report.components.freshness == pytest.approx(0.75)
    assert report.components.quality == pytest.approx(0.95)
    assert report.score == 89.0
    # Coverage exactly at the critical threshold is a warning; a 5% failure rate is not above 5%.
    assert codes(report) == {
        "coverage": AlertLevel.WARNING,
        "invalid_records": AlertLevel.INFO,
        "pending": AlertLevel.INFO,
    }
    assert report.healthy is False


def test_weights_change_the_score():
    counts = StateCounts(products=100, synced=80)
    runs = [run(hours_ago=48, seconds=0)]  # freshness 0.5, quality 1
    assert assess_health(counts, runs, now=NOW, settings=SETTINGS).score == 50 * 0.8 + 30 * 0.5 + 20
    only_coverage = HealthSettings(weights=HealthWeights(coverage=1, freshness=0, quality=0))
    assert assess_health(counts, runs, now=NOW, settings=only_coverage).score == 80.0
    even = HealthSettings(weights=HealthWeights(coverage=1, freshness=1, quality=2))
    assert assess_health(counts, runs, now=NOW, settings=even).score == pytest.approx(100 * (0.2 + 0.125 + 0.5))


# ---------------------------------------------------------------- alert boundaries


@pytest.mark.parametrize(
    ("synced", "expected"),
    [(1000, None), (990, None), (989, AlertLevel.WARNING), (950, AlertLevel.WARNING), (949, AlertLevel.CRITICAL)],
)
def test_coverage_alert_thresholds(synced: int, expected: AlertLevel | None):
    report = assess_health(StateCounts(products=1000, synced=synced), [run()], now=NOW, settings=SETTINGS)
    assert codes(report).get("coverage") is expected


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        (47.9, None),
        (48.0, None),  # "older than 48 h": 48 h is not yet
        (48.01, AlertLevel.WARNING),
        (72.0, AlertLevel.WARNING),
        (72.01, AlertLevel.CRITICAL),
    ],
)
def test_staleness_alert_thresholds(hours: float, expected: AlertLevel | None):
    report = assess_health(good_counts(), [run(hours_ago=hours, seconds=0)], now=NOW, settings=SETTINGS)
    assert codes(report).get("stale") is expected


@pytest.mark.parametrize(
    ("invalid", "expected"),
    [(0, None), (10, None), (11, AlertLevel.INFO), (50, AlertLevel.INFO), (51, AlertLevel.WARNING)],
)
def test_invalid_share_alert_thresholds(invalid: int, expected: AlertLevel | None):
    report = assess_health(good_counts(), [run(records=1000, invalid=invalid)], now=NOW, settings=SETTINGS)
    assert codes(report).get("invalid_records") is expected
    assert report.invalid_share == invalid / 1000


def test_the_invalid_share_is_the_newest_run_that_read_records():
    runs = [run(hours_ago=1, message="unreadable"), run(hours_ago=2, records=200, invalid=20)]  # newest: no records
    report = assess_health(good_counts(), runs, now=NOW, settings=SETTINGS)
    assert report.invalid_share == 0.1
    assert report.components.quality == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("failed", "expected"),
    [(0, None), (1, None), (2, AlertLevel.WARNING), (3, AlertLevel.CRITICAL)],  # of 20: 0%, 5%, 10%, 15%
)
def test_failure_rate_alert_thresholds(failed: int, expected: AlertLevel | None):
    runs = [run(hours_ago=1 + i) for i in range(20 - failed)]
    runs += [run(RunStatus.FAILED, hours_ago=30 + i) for i in range(failed)]
    report = assess_health(good_counts(), runs, now=NOW, settings=SETTINGS)
    assert report.failure_rate == failed / 20
    assert codes(report).get("failure_rate") is expected


def test_pending_changes_are_news_not_trouble():
    counts = StateCounts(products=1000, indexed=1000, pending=3, synced=997)
    report = assess_health(counts, [run()], now=NOW, settings=SETTINGS)
    assert codes(report) == {"pending": AlertLevel.INFO}
    assert report.healthy
    assert "pending" not in codes(assess_health(counts, [run()], now=NOW, settings=HealthSettings(pending_info=3)))


def test_a_held_run_is_neither_success_nor_failure_but_warns():
    runs = [run(RunStatus.HELD, hours_ago=1, message="it would delete 90%"), run(hours_ago=2)]
    report = assess_health(good_counts(), runs, now=NOW, settings=SETTINGS)
    assert report.failure_rate == 0.0
    assert codes(report) == {"held": AlertLevel.WARNING}
    assert "it would delete 90%" in report.alerts[0].message


def test_runs_in_flight_and_stuck_runs():
    counts = StateCounts(products=1000, indexed=500, pending=500, synced=500)
    # Dispatched an hour ago: the consumers are at work. Coverage is low, but only news while that lasts.
    in_flight = [run(RunStatus.DISPATCHED, hours_ago=1, seconds=30), run(hours_ago=5)]
    report = assess_health(counts, in_flight, now=NOW, settings=SETTINGS)
    assert codes(report) == {"coverage": AlertLevel.INFO, "pending": AlertLevel.INFO}
    assert report.failure_rate == 0.0
    # Dispatched 7 hours ago and never completed: stuck, counted as a failure (1 of 2 settled runs).
    stuck = [run(RunStatus.DISPATCHED, hours_ago=7, seconds=30), run(hours_ago=8)]
    report = assess_health(counts, stuck, now=NOW, settings=SETTINGS)
    assert report.failure_rate == 0.5
    assert codes(report) == {
        "coverage": AlertLevel.CRITICAL,
        "failure_rate": AlertLevel.CRITICAL,
        "stuck_runs": AlertLevel.WARNING,
        "pending": AlertLevel.INFO,
    }


def test_an_interrupted_run_is_neither_success_nor_failure_and_warns_until_a_run_succeeds():
    # Killed 10 hours ago (and marked by the next writer): not stuck, not a failure, whatever its age.
    counts = StateCounts(products=1000, indexed=1000, pending=400, synced=600)
    interrupted = run(RunStatus.INTERRUPTED, hours_ago=10, seconds=None, message="interrupted: killed")
    report = assess_health(counts, [interrupted, run(hours_ago=11)], now=NOW, settings=SETTINGS)
    assert report.failure_rate == 0.0 and report.components.quality == 1.0
    assert codes(report) == {
        "coverage": AlertLevel.CRITICAL,  # what it left is pending: the index lags
        "last_run_interrupted": AlertLevel.WARNING,
        "pending": AlertLevel.INFO,
    }
    assert "interrupted: killed" in next(a.message for a in report.alerts if a.code == "last_run_interrupted")
    # Once a later run succeeded (and re-sent what it left), it is history.
    resumed = assess_health(good_counts(), [run(hours_ago=1), interrupted], now=NOW, settings=SETTINGS)
    assert resumed.alerts == [] and resumed.score == 100.0
    # The same run left `running` by a killed process, before any writer came to mark it: stuck, a failure.
    left = interrupted.model_copy(update={"status": RunStatus.RUNNING})
    stuck = assess_health(good_counts(), [run(hours_ago=1), left], now=NOW, settings=SETTINGS)
    assert stuck.failure_rate == 0.5 and "stuck_runs" in codes(stuck)


def test_an_index_that_disagrees_with_the_state_warns():
    report = assess_health(good_counts(10), [run()], now=NOW, settings=SETTINGS, vectors_in_index=12)
    assert codes(report) == {"index_mismatch": AlertLevel.WARNING}
    assert assess_health(good_counts(10), [run()], now=NOW, settings=SETTINGS, vectors_in_index=10).alerts == []


def test_a_catalog_never_synced():
    report = assess_health(StateCounts(), [], now=NOW, settings=SETTINGS)
    assert report.score == 20.0  # quality only: nothing known to be wrong, nothing known to be indexed
    assert codes(report) == {"never_succeeded": AlertLevel.CRITICAL}
    assert report.alerts[0].message == "the catalog was never synced"


# ---------------------------------------------------------------- run statistics


def test_run_statistics():
    runs = [
        run(hours_ago=1, seconds=10, added=5, applied_upserted=5, applied_embedded=2, applied_cache_hits=3),
        run(hours_ago=2, seconds=30, deleted=4, metadata_only=6, applied_deleted=4, applied_metadata_updated=6),
        run(RunStatus.FAILED, hours_ago=3, seconds=20, text_changed=7),
        run(RunStatus.HELD, hours_ago=4, seconds=0, deleted=900),
        run(RunStatus.DISPATCHED, hours_ago=0.5, seconds=5, added=1),  # in flight: no duration yet
        # Stopped part way: counted apart, its (partial) duration not averaged, what it applied counted.
        run(RunStatus.INTERRUPTED, hours_ago=3.5, seconds=99, added=8, applied_upserted=2),
    ]
    stats = run_statistics(runs, now=NOW, stuck_after=timedelta(hours=6))
    assert (stats.runs, stats.succeeded, stats.failed, stats.held, stats.in_flight, stats.stuck) == (6, 2, 1, 1, 1, 0)
    assert stats.interrupted == 1
    assert stats.success_rate == pytest.approx(2 / 3)
    assert stats.failure_rate == pytest.approx(1 / 3)
    assert stats.average_duration_s == pytest.approx((10 + 30 + 20 + 0) / 4)
    assert stats.changes == {"added": 14, "text_changed": 7, "metadata_only": 6, "deleted": 904}
    assert stats.products_synced == 17
    assert stats.window_hours == 4.0
    assert stats.products_synced_per_hour == 17 / 4
    assert (stats.texts_embedded, stats.cache_hits, stats.cache_hit_rate) == (2, 3, 0.6)


def test_run_statistics_of_nothing():
    stats = run_statistics([], now=NOW, stuck_after=timedelta(hours=6))
    assert stats.runs == 0 and stats.success_rate is None and stats.window_hours is None
    assert stats.cache_hit_rate is None and stats.average_duration_s is None and stats.failure_rate is None


def test_outcomes_and_durations():
    stuck_after = timedelta(hours=6)
    assert outcome(run(RunStatus.RUNNING, hours_ago=1), now=NOW, stuck_after=stuck_after) is Outcome.IN_FLIGHT
    assert outcome(run(RunStatus.RUNNING, hours_ago=6.01), now=NOW, stuck_after=stuck_after) is Outcome.STUCK
    assert outcome(run(RunStatus.DRY_RUN), now=NOW, stuck_after=stuck_after) is Outcome.NONE
    old_interrupted = run(RunStatus.INTERRUPTED, hours_ago=100, seconds=None)
    assert outcome(old_interrupted, now=NOW, stuck_after=stuck_after) is Outcome.INTERRUPTED
    assert duration_seconds(old_interrupted) is None  # killed: its end is not known
    assert duration_seconds(run(RunStatus.INTERRUPTED, seconds=12)) == 12  # Ctrl+C: it recorded its end
    assert duration_seconds(run(seconds=42.5)) == 42.5
    assert duration_seconds(run(RunStatus.RUNNING, seconds=3)) is None
    assert duration_seconds(run(seconds=None)) is None


def test_run_ids_order_by_time_and_differ_by_token():
    started = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert new_run_id(started, 7, "a1b2c3") == "20250102T030405Z-00007-a1b2c3"
    assert new_run_id(started, 7, "a1b2c3") < new_run_id(started + timedelta(seconds=1), 1, "000000")


def test_grades_follow_the_score_and_the_worst_alert():
    assert assess_health(good_counts(), [run()], now=NOW, settings=SETTINGS).grade == "good"
    counts = StateCounts(products=1000, indexed=1000, pending=2, synced=998)
    assert assess_health(counts, [run()], now=NOW, settings=SETTINGS).grade == "good"  # info only
    held = [run(RunStatus.HELD, hours_ago=1), run(hours_ago=2)]
    assert assess_health(good_counts(), held, now=NOW, settings=SETTINGS).grade == "fair"  # a warning
    failing = [run(hours_ago=1 + i) for i in range(5)] + [run(RunStatus.FAILED, hours_ago=10)]
    report = assess_health(good_counts(), failing, now=NOW, settings=SETTINGS)
    assert report.score > 90 and report.grade == "poor"  # a critical failure rate
    assert assess_health(good_counts(), [run(hours_ago=60)], now=NOW, settings=SETTINGS).grade == "fair"
