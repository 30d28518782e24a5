"""A clock that only moves when slept on: pacing and retries are tested without waiting."""

from __future__ import annotations


class FakeClock:
    """Called, it tells the time (seconds from 0); `sleep` moves it on at once, and keeps each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
