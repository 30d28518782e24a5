"""Finding the items a target refuses within a batch, so that one bad item never holds back the others.

A target that refuses a whole request for the content of one of its items (Pinecone answers 400 for the
request, not per vector) is asked again with each half, down to single items. Errors that are not about the
content (throttling, a server error, a lost connection) are raised as they are: the batch then fails and is
retried whole, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

# Extra requests one batch may cost to isolate what was refused: a single bad item among 1,000 costs 20
# (2 per halving), 8 bad items about 120.
DEFAULT_BUDGET = 128


@dataclass
class Isolated(Generic[T]):
    refused: list[tuple[T, str]] = field(default_factory=list)
    requests: int = 0


def send_isolating(
    items: Sequence[T],
    send: Callable[[Sequence[T]], None],
    *,
    refusal: Callable[[Exception], str | None],
    budget: int = DEFAULT_BUDGET,
) -> Isolated[T]:
    """Send `items` in one call; if the target refuses it for its content (`refusal` gives a reason, None for
    any other error, which is raised), send each half, and so on down to single items.

    Returns the refused items with the target's reasons; every other item was sent successfully. Past `budget`
    extra calls, the items of a refused part not yet split are all reported refused (with the reason, saying
    so): they stay pending, and the next sync sends them again.
    """
    outcome: Isolated[T] = Isolated()
    if not items:
        return outcome
    parts: list[Sequence[T]] = [items]
    extra = 0
    while parts:
        part = parts.pop()
        outcome.requests += 1
        try:
            send(part)
        except Exception as exc:
            reason = refusal(exc)
            if reason is None:
                raise
            if len(part) == 1:
                outcome.refused.append((part[0], reason))
            elif extra + 2 > budget:
                note = f"{reason} (refused with {len(part) - 1:,} other items, which were not told apart)"
                outcome.refused.extend((item, note) for item in part)
            else:
                middle = len(part) // 2
                parts += [part[middle:], part[:middle]]  # the first half next
                extra += 2
    return outcome
