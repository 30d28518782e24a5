"""Pausing Python's cyclic garbage collector around passes over millions of objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic collector for the duration of a pass.

    A catalog's snapshot and seen-set hold millions of objects; each automatic full collection would walk
    them all, for nothing: these passes create no reference cycles, and reference counting frees what they
    drop. The collector's previous state is restored afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
