"""The embedded default's change queue: in process, priority batches first."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from catalog_sync.models.changes import Change


class InProcessChangeQueue:
    def __init__(self) -> None:
        self._priority: deque[Sequence[Change]] = deque()
        self._normal: deque[Sequence[Change]] = deque()
        self.sent_batches = 0

    def send(self, batches: Iterable[Sequence[Change]], *, priority: bool) -> int:
        target = self._priority if priority else self._normal
        count = 0
        for batch in batches:
            if batch:
                target.append(batch)
                count += 1
        self.sent_batches += count
        return count

    def receive(self) -> Sequence[Change] | None:
        if self._priority:
            return self._priority.popleft()
        if self._normal:
            return self._normal.popleft()
        return None

    def __len__(self) -> int:
        return len(self._priority) + len(self._normal)
