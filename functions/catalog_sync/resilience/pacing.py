"""Client-side pacing: keep what a process sends to a service within its share of the service's rate limits.

A `Pacer` holds one or more named rates ("at most `amount` over any `seconds`", e.g. 3,000 requests and
1,000,000 tokens a minute) and a log of what it let through. `acquire({"requests": 1, "tokens": 900})` blocks
until every rate named has room for the cost over the sliding window that ends now, then records it, all
under one lock, so that threads sharing a pacer (a pool of request threads) stay within the rates together.
A sliding log, not a token bucket: the bound holds over every window, as the services count, and a request
never has to wait longer than the oldest entry in its way takes to age out.

Pacers are meant to be shared by everything in a process that sends to the same limit: `shared_pacer` keeps
one per key (a service and what its limit is counted on: a namespace, a model).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass

# A wait is never shorter than this: sleeping to the exact instant may find the entry not yet aged out.
_MIN_WAIT = 1e-6


@dataclass(frozen=True)
class Rate:
    """At most `amount` (requests, tokens, bytes) over any `seconds`."""

    amount: float
    seconds: float

    def __post_init__(self) -> None:
        if not (self.amount > 0 and self.seconds > 0):
            raise ValueError(f"a rate needs a positive amount and window, not {self.amount} over {self.seconds} s")


class PacingTimeout(RuntimeError):
    """Room for a request did not come within the time its caller allowed."""


class _Window:
    __slots__ = ("entries", "rate", "total")

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.entries: deque[tuple[float, float]] = deque()
        self.total = 0.0

    def expire(self, now: float) -> None:
        entries = self.entries
        horizon = now - self.rate.seconds
        while entries and entries[0][0] <= horizon:
            self.total -= entries.popleft()[1]
        if not entries:
            self.total = 0.0  # no drift from float sums

    def wait(self, now: float, cost: float) -> float:
        """Seconds until `cost` more fits the window ending then (0: it fits now). `expire` first."""
        excess = self.total + cost - self.rate.amount
        if excess <= 0:
            return 0.0
        freed = 0.0
        for when, amount in self.entries:
            freed += amount
            if freed >= excess:
                return max(when + self.rate.seconds - now, _MIN_WAIT)
        return max(self.entries[-1][0] + self.rate.seconds - now, _MIN_WAIT)


class Pacer:
    """Sliding-window limits on what passes through it; thread-safe.

    `clock` and `sleep` are injectable (a virtual clock in tests and in the load model). With `start_full`,
    every window starts as if it had just been used to its limit: a new process cannot add to what the one it
    replaces (a Lambda environment restarted after a timeout) sent within the window.
    """

    def __init__(
        self,
        rates: Mapping[str, Rate | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        start_full: bool = False,
    ) -> None:
        """`rates` by name; None: not limited."""
        self.rates = {name: rate for name, rate in rates.items() if rate is not None}
        if not self.rates:
            raise ValueError("a pacer needs at least one rate")
        self._windows = {name: _Window(rate) for name, rate in self.rates.items()}
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds callers spent waiting, in all
        self.taken = dict.fromkeys(self.rates, 0.0)  # what it let through, in all, per rate
        if start_full:
            now = clock()
            for window in self._windows.values():
                window.entries.append((now, window.rate.amount))
                window.total = window.rate.amount

    def capacity(self, name: str) -> float | None:
        """The most one window of that rate holds (None: not limited here)."""
        rate = self.rates.get(name)
        return rate.amount if rate is not None else None

    def _check(self, costs: Mapping[str, float]) -> None:
        for name, cost in costs.items():
            rate = self.rates.get(name)
            if cost < 0:
                raise ValueError(f"negative cost {cost} for {name!r}")
            if rate is not None and cost > rate.amount:
                raise ValueError(
                    f"a cost of {cost:,.0f} {name} can never fit {rate.amount:,.0f} per {rate.seconds:g} s"
                )

    def try_take(self, costs: Mapping[str, float]) -> float:
        """Take room for `costs` if every rate has it now, and return 0; otherwise take nothing and return how
        long until it may (another caller may take it first: try again then). Names without a rate are free."""
        self._check(costs)
        with self._lock:
            now = self._clock()
            wait = 0.0
            for name, cost in costs.items():
                window = self._windows.get(name)
                if window is not None:
                    window.expire(now)
                    wait = max(wait, window.wait(now, cost))
            if wait > 0:
                return wait
            for name, cost in costs.items():
                window = self._windows.get(name)
                if window is not None and cost > 0:
                    window.entries.append((now, cost))
                    window.total += cost
                    self.taken[name] += cost
            return 0.0

    def acquire(self, costs: Mapping[str, float], *, max_wait: float | None = None) -> float:
        """Block until `costs` fit every rate, and take them; returns the seconds waited. Raises PacingTimeout
        (having taken nothing) when that would take longer than `max_wait` seconds."""
        waited = 0.0
        while True:
            wait = self.try_take(costs)
            if wait <= 0:
                return waited
            if max_wait is not None and waited + wait > max_wait:
                raise PacingTimeout(f"no room for {dict(costs)} within {max_wait:g} s")
            self._sleep(wait)
            waited += wait
            with self._lock:
                self.waited += wait


_shared: dict[Hashable, Pacer] = {}
_shared_lock = threading.Lock()


def shared_pacer(key: Hashable, rates: Mapping[str, Rate | None], *, start_full: bool = False) -> Pacer | None:
    """The process's pacer for `key` (made on first use; made anew when the rates change). Rates that are None
    are not limited; None when none is."""
    limited = {name: rate for name, rate in rates.items() if rate is not None}
    if not limited:
        return None
    with _shared_lock:
        pacer = _shared.get(key)
        if pacer is None or pacer.rates != limited:
            pacer = _shared[key] = Pacer(limited, start_full=start_full)
        return pacer
