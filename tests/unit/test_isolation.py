"""Finding the refused items of a batch by halving it (logic/isolation.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from catalog_sync.logic.isolation import send_isolating


class Refused(Exception):
    pass


class Target:
    """Refuses any request that holds a bad item, as Pinecone refuses a whole upsert for one vector."""

    def __init__(self, bad: set[int], *, down: bool = False) -> None:
        self.bad = bad
        self.down = down
        self.written: list[int] = []
        self.calls = 0

    def send(self, part: Sequence[int]) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("lost")
        found = self.bad.intersection(part)
        if found:
            raise Refused(f"bad {sorted(found)}")
        self.written += part


def reason(exc: Exception) -> str | None:
    return str(exc) if isinstance(exc, Refused) else None


def test_one_bad_item_among_a_thousand_is_found_and_the_rest_written() -> None:
    target = Target({417})
    outcome = send_isolating(list(range(1000)), target.send, refusal=reason)
    assert outcome.refused == [(417, "bad [417]")]
    assert sorted(target.written) == [i for i in range(1000) if i != 417]
    # 1 + 2 per halving, 10 halvings.
    assert target.calls == outcome.requests == 21


def test_several_bad_items_and_a_batch_of_one() -> None:
    target = Target({0, 5, 6, 9})
    outcome = send_isolating(list(range(10)), target.send, refusal=reason)
    assert sorted(item for item, _ in outcome.refused) == [0, 5, 6, 9]
    assert sorted(target.written) == [1, 2, 3, 4, 7, 8]
    lone = Target({3})
    assert send_isolating([3], lone.send, refusal=reason).refused == [(3, "bad [3]")] and lone.calls == 1


def test_nothing_refused_costs_one_request() -> None:
    target = Target(set())
    assert send_isolating(list(range(50)), target.send, refusal=reason).refused == []
    assert target.calls == 1 and send_isolating([], target.send, refusal=reason).requests == 0


def test_an_error_that_is_not_a_refusal_is_raised() -> None:
    with pytest.raises(ConnectionError):
        send_isolating(list(range(8)), Target(set(), down=True).send, refusal=reason)


def test_the_search_is_bounded() -> None:
    target = Target(set(range(1000)))  # everything refused (say, a dimension the index does not have)
    outcome = send_isolating(list(range(1000)), target.send, refusal=reason, budget=10)
    assert target.calls == 11  # the first request and 10 more
    assert sorted(item for item, _ in outcome.refused) == list(range(1000))
    assert any("not told apart" in why for _, why in outcome.refused)
