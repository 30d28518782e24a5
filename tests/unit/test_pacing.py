"""Client-side pacing (resilience/pacing.py) on a fake clock, and bounded retries (resilience/retry.py)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence

import pytest

from catalog_sync.resilience.pacing import Pacer, PacingTimeout, Rate, shared_pacer
from catalog_sync.resilience.retry import RetryPolicy, call_with_retries
from tests.doubles.clock import FakeClock


def paced(rates: dict[str, Rate], clock: FakeClock, **kwargs: bool) -> Pacer:
    return Pacer(rates, clock=clock, sleep=clock.sleep, **kwargs)


def window_peak(events: Sequence[tuple[float, float]], seconds: float) -> float:
    """The largest total of the events over any window (t - seconds, t]: the bound the services enforce."""
    return max((sum(a for u, a in events if t - seconds < u <= t) for t, _ in events), default=0.0)


def test_the_window_check_catches_an_excess():
    # 11 events within one second against a limit of 10: the check used below must see it.
    assert window_peak([(i * 0.09, 1.0) for i in range(11)], 1.0) == 11
    assert window_peak([(0.0, 1.0), (1.0, 1.0)], 1.0) == 1  # (0, 1] does not hold 0.0


def test_a_burst_is_spread_over_windows_without_exceeding_the_rate_or_idling():
    clock = FakeClock()
    pacer = paced({"writes": Rate(10, 1.0)}, clock)
    sent = []
    for _ in range(35):
        pacer.acquire({"writes": 1})
        sent.append((clock.now, 1.0))
    assert window_peak(sent, 1.0) <= 10
    # Ten at once, then ten as soon as each window lets them: the 35th goes at 3 s, not later.
    assert sent[9][0] == 0.0 and sent[10][0] == pytest.approx(1.0) and sent[19][0] < 1.5
    assert sent[-1][0] == pytest.approx(3.0, abs=1e-3)
    assert pacer.waited == pytest.approx(sum(clock.sleeps))


def test_weighted_costs_over_several_rates_are_taken_together():
    clock = FakeClock()
    pacer = paced({"requests": Rate(3, 60.0), "tokens": Rate(100, 60.0)}, clock)
    assert pacer.try_take({"requests": 1, "tokens": 60}) == 0.0
    # The tokens have no room: nothing is taken, not even the request, and the wait is until the first ages out.
    assert pacer.try_take({"requests": 1, "tokens": 60}) == pytest.approx(60.0)
    assert pacer.try_take({"requests": 1, "tokens": 40}) == 0.0
    clock.now = 10.0
    assert pacer.try_take({"requests": 1, "tokens": 0}) == 0.0
    assert pacer.try_take({"requests": 1, "tokens": 0}) == pytest.approx(50.0)  # 3 requests a minute
    clock.now = 30.0
    # Both rates free up when the first two requests age out at 60 s.
    assert pacer.acquire({"requests": 1, "tokens": 60}) == pytest.approx(30.0)
    assert clock.now == pytest.approx(60.0)
    # A cost the pacer does not limit is free; one that can never fit is refused at once.
    assert pacer.try_take({"other": 1e9, "tokens": 0, "requests": 0}) == 0.0
    with pytest.raises(ValueError, match="can never fit"):
        pacer.acquire({"tokens": 101})


def test_randomised_costs_stay_within_every_window():
    rng = random.Random(5)
    clock = FakeClock()
    pacer = paced({"requests": Rate(50, 60.0), "tokens": Rate(10_000, 60.0)}, clock)
    requests, tokens = [], []
    for _ in range(400):
        clock.now += rng.choice([0.0, 0.0, 0.01, 0.5, 3.0])
        cost = rng.randint(1, 2_500)
        pacer.acquire({"requests": 1, "tokens": cost})
        requests.append((clock.now, 1.0))
        tokens.append((clock.now, float(cost)))
    assert window_peak(requests, 60.0) <= 50
    assert window_peak(tokens, 60.0) <= 10_000
    # And close to the rate: the tokens bind, a window is never left more than a request short.
    elapsed_windows = clock.now / 60.0
    assert sum(t for _, t in tokens) >= (elapsed_windows - 1) * (10_000 - 2_500)


def test_a_wait_longer_than_allowed_raises_and_takes_nothing():
    clock = FakeClock()
    pacer = paced({"writes": Rate(2, 1.0)}, clock)
    pacer.acquire({"writes": 2})
    with pytest.raises(PacingTimeout):
        pacer.acquire({"writes": 1}, max_wait=0.5)
    assert clock.now == 0.0
    assert pacer.acquire({"writes": 1}, max_wait=1.0) == pytest.approx(1.0)


def test_a_pacer_started_full_waits_a_window_first():
    clock = FakeClock()
    clock.now = 100.0
    pacer = paced({"tokens": Rate(1_000, 60.0)}, clock, start_full=True)
    assert pacer.acquire({"tokens": 1}) == pytest.approx(60.0)


def test_threads_sharing_a_pacer_stay_within_the_rate_together():
    # Each grant's time is the clock reading the pacer took it at (under its lock): a thread's last reading before
    # acquire returns. Stamping the time after acquire instead would let a thread descheduled in between (a busy
    # machine) shift its grant into the next window, and the check below would fail for no fault of the pacer.
    readings = threading.local()

    def clock() -> float:
        readings.last = time.monotonic()
        return readings.last

    pacer = Pacer({"writes": Rate(20, 0.25)}, clock=clock)
    sent: list[tuple[float, float]] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            pacer.acquire({"writes": 1})
            with lock:
                sent.append((readings.last, 1.0))

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 80 writes at 20 a quarter second: at least 3 windows after the first.
    assert time.monotonic() - started >= 0.75
    assert len(sent) == 80
    assert window_peak(sent, 0.25) <= 20


def test_shared_pacers_are_one_per_key_and_follow_their_rates():
    rates = {"writes": Rate(5, 1.0), "bytes": None}
    first = shared_pacer(("test", "a"), rates)
    assert first is not None and first is shared_pacer(("test", "a"), rates)
    assert shared_pacer(("test", "b"), rates) is not first
    assert first.capacity("writes") == 5 and first.capacity("bytes") is None
    changed = shared_pacer(("test", "a"), {"writes": Rate(6, 1.0)})
    assert changed is not first and changed is not None and changed.capacity("writes") == 6
    assert shared_pacer(("test", "c"), {"writes": None}) is None
    with pytest.raises(ValueError, match="positive"):
        Rate(0, 1.0)


# ---------------------------------------------------------------------------------------------------- retries


class Flaky(Exception):
    pass


def test_retries_until_success_with_growing_jittered_delays():
    policy = RetryPolicy(attempts=6, base_delay=0.25, max_delay=1.0)
    sleeps: list[float] = []
    calls = []

    def call() -> str:
        calls.append(1)
        if len(calls) < 5:
            raise Flaky
        return "ok"

    assert call_with_retries(call, policy=policy, retryable=lambda e: isinstance(e, Flaky), sleep=sleeps.append) == "ok"
    assert len(calls) == 5
    for retry, delay in enumerate(sleeps):
        assert policy.backoff(retry) / 2 <= delay <= policy.backoff(retry)
    assert [policy.backoff(r) for r in range(4)] == [0.25, 0.5, 1.0, 1.0]
    assert policy.max_total_delay == 0.25 + 0.5 + 1.0 + 1.0 + 1.0


def test_retries_are_bounded_and_other_errors_are_not_retried():
    policy = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0)
    calls = []

    def always() -> None:
        calls.append(1)
        raise Flaky

    with pytest.raises(Flaky):
        call_with_retries(always, policy=policy, retryable=lambda e: isinstance(e, Flaky), sleep=lambda s: None)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(Flaky):
        call_with_retries(always, policy=policy, retryable=lambda e: False, sleep=lambda s: None)
    assert len(calls) == 1
