"""Packing changes into queue messages."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from catalog_sync.models.changes import Change


def split_by_priority(changes: Sequence[Change]) -> tuple[list[Change], list[Change]]:
    priority = [change for change in changes if change.priority]
    normal = [change for change in changes if not change.priority]
    return priority, normal


def batches(changes: Sequence[Change], size: int) -> Iterator[Sequence[Change]]:
    """Consecutive batches of at most `size` changes."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(changes), size):
        yield changes[start : start + size]
