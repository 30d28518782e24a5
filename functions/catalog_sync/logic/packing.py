"""Packing changes into queue messages."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from catalog_sync.models.changes import Change

T = TypeVar("T")


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items from any iterable (a spool, say)."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def batches(changes: Sequence[Change], size: int) -> Iterator[Sequence[Change]]:
    """Consecutive batches of at most `size` changes."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    for start in range(0, len(changes), size):
        yield changes[start : start + size]
