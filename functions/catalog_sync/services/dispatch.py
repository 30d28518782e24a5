"""Resumable dispatch: record each change's desired state and queue it, a window at a time, priority lane first.

The changes of a run are archived first (S3 in the pipeline), so that a dispatch stopped by the clock (a
Lambda near its timeout) continues in another invocation from its checkpoint: after the last window sent,
with the message numbering where it stopped, so a resumed run sends nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import islice
from typing import Protocol

from pydantic import BaseModel, Field

from catalog_sync.logic.packing import batches, chunked
from catalog_sync.models.changes import Change
from catalog_sync.ports import ChangeArchive, ChangeSender, StateStore

LANES = ("p", "n")  # priority first


class SequencedSender(ChangeSender, Protocol):
    """A sender whose message numbering can be carried across invocations."""

    next_sequence: dict[str, int]


class DispatchProgress(BaseModel):
    run_id: str
    archive_key: str
    lane: str = "p"
    done_in_lane: int = 0
    messages: int = 0
    changes: int = 0  # dispatched so far
    next_sequence: dict[str, int] = Field(default_factory=lambda: {"p": 1, "n": 1})
    finished: bool = False
    # A newer catalog run began: this one stopped dispatching (the rest is that run's to decide).
    superseded: bool = False
    # When the catalog object this run reads was last modified (epoch seconds); None: not a catalog drop.
    source_modified: float | None = None


class Dispatcher:
    def __init__(
        self,
        *,
        state: StateStore,
        sender: SequencedSender,
        archive: ChangeArchive,
        batch_size: int = 500,
        window: int = 5_000,
        superseded: Callable[[], bool] | None = None,
        resync: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.state = state
        self.sender = sender
        self.archive = archive
        self.batch_size = batch_size
        self.window = window
        # Whether a run of a newer catalog object has begun, and how to re-sync products from that object.
        self.superseded = superseded
        self.resync = resync

    def start(self, run_id: str, changes: Iterable[Change], *, out_of_time: Callable[[], bool]) -> DispatchProgress:
        progress = DispatchProgress(run_id=run_id, archive_key=self.archive.put(run_id, changes))
        return self.resume(progress, out_of_time=out_of_time)

    def resume(self, progress: DispatchProgress, *, out_of_time: Callable[[], bool]) -> DispatchProgress:
        """Carry on from `progress` until done or out of time; returns where it got to."""
        self.sender.next_sequence = dict(progress.next_sequence)
        for lane in LANES[LANES.index(progress.lane) :]:
            priority = lane == "p"
            in_lane = (c for c in self.archive.read(progress.archive_key) if c.priority is priority)
            skip = progress.done_in_lane if lane == progress.lane else 0
            for window in chunked(islice(in_lane, skip, None), self.window):
                if out_of_time():
                    return progress
                if self._overtaken():
                    return self._stop(progress, [])
                # The desired state first: a consumer applies a change only while it is the desired one.
                self.state.record_desired(window, [])
                progress.messages += self.sender.send(batches(window, self.batch_size), priority=priority)
                progress.done_in_lane += len(window)
                progress.changes += len(window)
                progress.next_sequence = dict(self.sender.next_sequence)
                if self._overtaken():
                    # The newer run may have read the state before this window was recorded, and so kept these
                    # products at this (older) catalog's version: they are re-synced from the newer object.
                    return self._stop(progress, [change.product_id for change in window])
            progress.lane, progress.done_in_lane = "n", 0
        progress.finished = True
        return progress

    def _overtaken(self) -> bool:
        return self.superseded is not None and self.superseded()

    def _stop(self, progress: DispatchProgress, resync: list[str]) -> DispatchProgress:
        """A newer catalog run began: dispatch no more. The newer run diffed against the state this one left, so
        what this run did not record is the newer run's to decide."""
        if resync and self.resync is not None:
            self.resync(resync)
        progress.superseded = progress.finished = True
        return progress
