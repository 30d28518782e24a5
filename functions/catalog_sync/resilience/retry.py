"""Bounded retries with exponential backoff, with or without jitter (the numbers are in `policy`)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Up to `attempts` attempts; before retry n (0-based) a delay of min(max_delay, base_delay x 2^n), of which a
    random half is jitter ("equal jitter": never less than half the backoff, so retries stay spread out). Without
    `jitter` the delay is the backoff itself."""

    attempts: int = 12
    base_delay: float = 0.25
    max_delay: float = 4.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(f"not a usable retry policy: {self}")

    def backoff(self, retry: int) -> float:
        return float(min(self.max_delay, self.base_delay * 2.0**retry))

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        backoff = self.backoff(retry)
        if not self.jitter:
            return backoff
        return backoff * (0.5 + 0.5 * (rng or random).random())

    @property
    def max_total_delay(self) -> float:
        """The longest all the delays of one call can add up to (its attempts' own time apart)."""
        return sum(self.backoff(retry) for retry in range(self.attempts - 1))


def call_with_retries(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    retryable: Callable[[BaseException], bool],
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[BaseException, int], None] | None = None,
) -> T:
    """`call()`, again after a delay while it raises an error `retryable` accepts, at most `policy.attempts`
    times in all; the last error is raised."""
    for retry in range(policy.attempts):
        try:
            return call()
        except Exception as exc:
            if retry == policy.attempts - 1 or not retryable(exc):
                raise
            if on_retry is not None:
                on_retry(exc, retry)
            sleep(policy.delay(retry))
    raise AssertionError("unreachable")  # pragma: no cover
