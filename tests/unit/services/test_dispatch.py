"""Resumable dispatch: desired state and messages a window at a time, priority lane first, carried on from where
it stopped without sending anything twice."""

from __future__ import annotations

from collections.abc import Callable

from catalog_sync.logic.packing import PackedMessage, unpack_envelope
from catalog_sync.services.dispatch import Dispatcher
from tests.doubles.memory import MemoryChangeArchive, MemoryClaimStore, MemoryRunSender
from tests.doubles.memory_state import MemoryStateStore
from tests.unit.services.conftest import delete, upsert

RUN = "20260101T000000Z-00001-abcdef"
CHANGES = [upsert("A", 1, "a"), delete("Z", 1), upsert("B", 1, "b"), upsert("C", 1, "c"), delete("Y", 1)]


def dispatcher(
    state: MemoryStateStore,
    queued: list[PackedMessage],
    *,
    superseded: Callable[[], bool] | None = None,
    resync: Callable[[list[str]], None] | None = None,
) -> Dispatcher:
    """Windows of two changes; `queued` receives the messages."""
    sender = MemoryRunSender(queued, MemoryClaimStore(), run_id=RUN, catalog="shop")
    return Dispatcher(
        state=state,
        sender=sender,
        archive=MemoryChangeArchive(),
        batch_size=1,
        window=2,
        superseded=superseded,
        resync=resync,
    )


def ids_of(queued: list[PackedMessage]) -> list[str]:
    return [c.product_id for message in queued for c in unpack_envelope(message.body).changes]


def after(calls: int) -> Callable[[], bool]:
    """Out of time from the `calls`-th check on."""
    seen = [0]

    def out_of_time() -> bool:
        seen[0] += 1
        return seen[0] > calls

    return out_of_time


def test_every_change_is_recorded_and_sent_priority_first():
    state, queued = MemoryStateStore(), []
    progress = dispatcher(state, queued).start(RUN, CHANGES, out_of_time=lambda: False)
    assert progress.finished and not progress.superseded
    # One message per window here (the messages' size allows it): the priority window, then two normal ones.
    assert (progress.changes, progress.messages) == (5, 3)
    assert ids_of(queued) == ["Z", "Y", "A", "B", "C"]
    assert state.desired_versions(["A", "B", "C", "Y", "Z"]) == dict.fromkeys("ABCYZ", 1)
    assert [m.message_id for m in queued] == [f"{RUN}-p-000001", f"{RUN}-n-000001", f"{RUN}-n-000002"]


def test_a_dispatch_out_of_time_resumes_where_it_stopped():
    state, queued = MemoryStateStore(), []
    first = dispatcher(state, queued)
    progress = first.start(RUN, CHANGES, out_of_time=after(2))
    assert not progress.finished and progress.changes == 4  # the priority window, then one normal window
    assert state.desired_versions(["C"]) == {}  # not recorded before it is sent
    # Another invocation: a new sender and dispatcher over the same archive, from the saved progress.
    second = dispatcher(state, queued)
    second.archive = first.archive
    done = second.resume(progress.model_copy(), out_of_time=lambda: False)
    assert done.finished and done.changes == 5
    assert ids_of(queued) == ["Z", "Y", "A", "B", "C"]
    message_ids = [m.message_id for m in queued]
    assert message_ids == [f"{RUN}-p-000001", f"{RUN}-n-000001", f"{RUN}-n-000002"]  # the numbering carried on


def test_a_superseded_dispatch_stops_and_resyncs_the_window_the_newer_run_may_have_missed():
    state, queued, resynced = MemoryStateStore(), [], []
    newer = after(1)  # a newer run begins once the first window is sent
    progress = dispatcher(state, queued, superseded=newer, resync=resynced.extend).start(
        RUN, CHANGES, out_of_time=lambda: False
    )
    assert progress.superseded and progress.finished and progress.changes == 2
    assert sorted(resynced) == ["Y", "Z"] and ids_of(queued) == ["Z", "Y"]
    assert state.desired_versions(["A"]) == {}
