"""The sync service: diff a catalog, hold back what the guard rejects, dispatch and apply the changes.

It knows nothing of where the state, queue, index or embedder live; the same code runs on the embedded
default and (through other adapters) on AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Sized
from datetime import UTC, datetime

from catalog_sync.formats.catalog import open_catalog
from catalog_sync.formats.records import CatalogFormatError
from catalog_sync.logic.diff import CatalogDiff, DiffResult
from catalog_sync.logic.guard import GuardDecision, check_deletions
from catalog_sync.logic.packing import batches, chunked
from catalog_sync.logic.spool import Spool
from catalog_sync.models.changes import Change, QuarantinedRecord, RunRecord, RunStatus
from catalog_sync.models.config import CatalogConfig
from catalog_sync.models.index import IndexEmbedder, IndexSettings
from catalog_sync.ports import (
    CatalogSource,
    ChangeQueue,
    ChangeSender,
    Embedder,
    EmbeddingCache,
    RunArtifacts,
    StateStore,
    VectorIndex,
)
from catalog_sync.services.apply import ApplyStats, ChangeApplier, rejection_summary
from catalog_sync.services.dispatch import Dispatcher
from catalog_sync.services.sync_report import SUPERSEDED_MESSAGE, BadCatalog, ProgressCallback, SyncReport

# Changes whose desired state is recorded per transaction, and changes queued before the queue is drained.
DESIRED_CHUNK = 10_000
DISPATCH_WINDOW = 20_000


class SyncService:
    def __init__(
        self,
        *,
        config: CatalogConfig,
        state: StateStore,
        index: VectorIndex,
        embedder: Embedder,
        queue: ChangeSender,
        artifacts: RunArtifacts,
        cache: EmbeddingCache,
        batch_size: int = 500,
        notes: list[str] | None = None,
        spool_limit: int = 20_000,
        apply_changes: bool = True,
        on_run_started: Callable[[RunRecord], None] | None = None,
        dispatcher: Dispatcher | None = None,
        out_of_time: Callable[[], bool] = lambda: False,
    ) -> None:
        """`apply_changes=False` makes a dispatcher (the diff function): it records and queues the changes, and
        consumers elsewhere apply them. Otherwise the same process drains its own queue."""
        if apply_changes and not isinstance(queue, ChangeQueue):
            raise TypeError("applying changes in process needs a queue this process can receive from")
        self.apply_changes = apply_changes
        self.on_run_started = on_run_started
        # A dispatcher makes dispatch resumable (archive, windows, checkpoint); out_of_time says when to stop.
        self.dispatcher = dispatcher
        self.out_of_time = out_of_time
        self.config = config
        self.state = state
        self.index = index
        self.embedder = embedder
        self.queue = queue
        self.artifacts = artifacts
        self.batch_size = batch_size
        # Changes and quarantined records kept in memory per diff; beyond this they go to a temporary file.
        self.spool_limit = spool_limit
        self.notes = list(notes or [])
        self.differ = CatalogDiff(config, model_id=embedder.model_id)
        self.applier = ChangeApplier(state=state, index=index, embedder=embedder, cache=cache)
        self.run_completed = False  # set by each run: whether finishing it completed it
        # The run in progress (or the last one) and its report, filled in as it goes: what an interrupted run did.
        self.last_run: RunRecord | None = None
        self.report: SyncReport | None = None
        self._pending_before_apply: int | None = None

    def _diff(
        self,
        source: CatalogSource,
        *,
        full: bool,
        only_ids: Collection[str] | None,
        version: int,
        progress: ProgressCallback | None,
    ) -> DiffResult:
        snapshot = self.state.snapshot()
        index_ids = self.index.ids() if full else None
        try:
            with source.open() as raw:
                stream = open_catalog(
                    raw,
                    source.name,
                    csv_delimiter=self.config.csv.delimiter,
                    id_field=self.config.id_field,
                    records=self.config.source.records,
                )
                spools = DiffResult(
                    changes=Spool(Change, memory_limit=self.spool_limit),
                    quarantined=Spool(QuarantinedRecord, memory_limit=self.spool_limit),
                )
                return self.differ.run(
                    stream,
                    snapshot,
                    result=spools,
                    full=full,
                    only_ids=only_ids,
                    index_ids=index_ids,
                    version=version,
                    on_record=(lambda n: progress("diff", n, None)) if progress else None,
                )
        except CatalogFormatError as exc:
            raise BadCatalog(str(exc)) from exc
        except OSError as exc:
            raise BadCatalog(f"{source.name}: cannot read: {exc.strerror or exc}") from exc

    def plan(
        self,
        source: CatalogSource,
        *,
        full: bool = False,
        only_ids: Collection[str] | None = None,
        force: bool = False,
        progress: ProgressCallback | None = None,
    ) -> SyncReport:
        """Dry run: what a sync would change, and whether the guard would hold it. Changes nothing."""
        started = time.perf_counter()
        result = self._diff(source, full=full, only_ids=only_ids, version=0, progress=progress)
        report = self._report(source, result, force=force, run=None)
        report.timings["diff_s"] = time.perf_counter() - started
        return report

    def _report(self, source: CatalogSource, result: DiffResult, *, force: bool, run: RunRecord | None) -> SyncReport:
        return SyncReport(
            catalog=self.config.name,
            source=source.name,
            embedder=self.embedder.model_id,
            diff=result,
            guard=self._guard(result, force),
            run=run,
            notes=[*self.notes, *result.reasons],
            dry_run=run is None,
        )

    def _tracked(self) -> int:
        """The products the state tracks: indexed, on their way to the index, or on their way out of it.

        A run's deletions are drawn from these, so its share never passes 100%: deleting products whose adds (or
        deletions) are still queued is not wiping the index. One pass over the state.
        """
        counts = self.state.counts()
        return max(counts.indexed, counts.products + counts.deleting)

    def _guard(self, result: DiffResult, force: bool) -> GuardDecision:
        return check_deletions(
            deletions=result.counts.deleted,
            indexed=max(self.index.count(), self._tracked()),
            records=result.counts.records,
            settings=self.config.guard,
            force=force,
        )

    def sync(
        self,
        source: CatalogSource,
        *,
        full: bool = False,
        force: bool = False,
        only_ids: Collection[str] | None = None,
        progress: ProgressCallback | None = None,
        run: RunRecord | None = None,
    ) -> SyncReport:
        """`run`: one the caller began (still running), carried on here instead of a new one."""
        mode = "full" if full else ("ids" if only_ids is not None else "incremental")
        if run is None or run.status is not RunStatus.RUNNING:
            run = self.state.begin_run(mode=mode, source=source.name)
        else:
            run.mode, run.source = mode, source.name
        self.last_run, self.report, self._pending_before_apply = run, None, None
        if self.on_run_started is not None:
            self.on_run_started(run)
        self.run_completed = False
        try:
            report = self._sync(run, source, full=full, force=force, only_ids=only_ids, progress=progress)
        except KeyboardInterrupt:
            if run.status is RunStatus.RUNNING:
                self._interrupted(run)
            raise
        except BaseException as exc:
            # Whatever stopped the run (a bug), its row must not stay "running"; what was recorded as desired but
            # not committed is re-sent by the next sync.
            if run.status is RunStatus.RUNNING:
                run.status, run.message = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
                self._finish(run, run.counts, run.timings)
            raise
        report.run_completed = self.run_completed
        return report

    def _sync(
        self,
        run: RunRecord,
        source: CatalogSource,
        *,
        full: bool,
        force: bool,
        only_ids: Collection[str] | None,
        progress: ProgressCallback | None,
    ) -> SyncReport:
        clock = time.perf_counter()
        try:
            result = self._diff(source, full=full, only_ids=only_ids, version=run.seq, progress=progress)
        except BadCatalog as exc:
            run.status, run.message = RunStatus.FAILED, str(exc)
            self._finish(run, {}, {"diff_s": time.perf_counter() - clock})
            raise
        report = self._report(source, result, force=force, run=run)
        self.report = report
        timings = report.timings
        timings["diff_s"] = time.perf_counter() - clock
        if result.quarantined:
            report.quarantine_location = self.artifacts.write_quarantine(run.run_id, result.quarantined)
        counts = result.counts.model_dump()
        # The same dicts as the run's: an interrupted run is recorded with what it had counted so far.
        run.counts, run.timings = counts, timings
        # Products re-sent because an earlier run's change was never committed: with the kinds above, they
        # add up to the changes dispatched.
        counts["resent"] = result.resent
        if report.guard.held:
            run.status, run.message = RunStatus.HELD, report.guard.reason
            self._finish(run, counts, timings)
            return report

        if self.dispatcher is not None:
            # Resumable dispatch: desired state and messages go together, window by window.
            clock = time.perf_counter()
            self.state.record_desired([], result.fingerprint_updates)
            report.dispatch = self.dispatcher.start(run.run_id, result.changes, out_of_time=self.out_of_time)
            counts["dispatched_changes"] = report.dispatch.changes if report.dispatch.finished else len(result.changes)
            if report.dispatch.superseded:
                run.message = SUPERSEDED_MESSAGE
                counts["undispatched_changes"] = len(result.changes) - report.dispatch.changes
            timings["dispatch_s"] = time.perf_counter() - clock
            if report.dispatch.finished:
                counts["dispatched_messages"] = report.dispatch.messages
                run.status = RunStatus.DISPATCHED
            else:
                run.message = "dispatch continues in another invocation"
            self._finish(run, counts, timings)
            return report

        clock = time.perf_counter()
        # Every change's desired state is recorded before any is applied: a consumer applies a change only if
        # it is still the desired one. Chunked transactions keep memory flat; a crash part way leaves products
        # pending, and the next sync re-sends them.
        for chunk in chunked(result.changes, DESIRED_CHUNK):
            self.state.record_desired(chunk, [])
            self.artifacts.append_change_log(run.run_id, chunk)
        self.state.record_desired([], result.fingerprint_updates)
        timings["record_s"] = time.perf_counter() - clock

        if not self.apply_changes:
            clock = time.perf_counter()
            counts["dispatched_changes"] = len(result.changes)
            counts["dispatched_messages"] = self.dispatch(result.changes)
            timings["dispatch_s"] = time.perf_counter() - clock
            run.status = RunStatus.DISPATCHED
            self._finish(run, counts, timings)
            return report

        clock = time.perf_counter()
        # Every change is pending now; those committed by an interrupted run are the difference (its own counts
        # miss a batch cut short between its commit and its return).
        self._pending_before_apply = self.state.pending_count()
        self._unsettle_if_another_embedder(result)
        errors = self.dispatch_and_apply(result.changes, report.applied, progress=progress)
        timings["apply_s"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if self.index.maintain():
            timings["maintain_s"] = time.perf_counter() - clock
        report.pending_after = self.state.pending_count()
        if errors:
            report.error = (
                f"{report.applied.failed:,} changes could not be applied ({errors[0]}); they stay pending and the "
                "next sync re-sends them"
            )
            run.status, run.message = RunStatus.FAILED, report.error
        else:
            run.status = RunStatus.SUCCEEDED
            if report.applied.rejected:
                run.message = rejection_summary(report.applied.rejected)
        if not errors and only_ids is None and report.pending_after == 0:
            # Only now is the whole index built with this model and template (not after --ids or a failure).
            self.state.record_index_settings(
                IndexSettings(
                    embedding_model=self.embedder.model_id,
                    text_template=self.config.text.fingerprint(),
                    embedder=IndexEmbedder.of(self.config.embedder, dimension=self.embedder.dimension),
                )
            )
        counts.update({f"applied_{name}": value for name, value in report.applied.as_dict().items()})
        counts["pending_after"] = report.pending_after
        self._finish(run, counts, timings)
        return report

    def _unsettle_if_another_embedder(self, result: DiffResult) -> None:
        """This run writes another embedder's vectors: until a run completes the index holds two embedders'."""
        recorded = self.state.index_settings()
        if recorded and recorded.settled and recorded.embedding_model != self.embedder.model_id and result.changes:
            self.state.record_index_settings(recorded.model_copy(update={"settled": False}))

    def dispatch(self, changes: Iterable[Change]) -> int:
        """Queue the changes, priority lane first, a window at a time; returns the messages sent."""
        if iter(changes) is changes:
            changes = list(changes)
        sent = 0
        for priority in (True, False):
            for window in chunked((c for c in changes if c.priority is priority), DISPATCH_WINDOW):
                sent += self.queue.send(batches(window, self.batch_size), priority=priority)
        return sent

    def dispatch_and_apply(
        self, changes: Iterable[Change], stats: ApplyStats, *, progress: ProgressCallback | None = None
    ) -> list[str]:
        """Queue the changes, priority ones first, and consume the queue, a window at a time.

        The changes are read twice (one pass per lane): a one-shot iterator is materialised first.
        """
        if iter(changes) is changes:
            changes = list(changes)
        total = len(changes) if isinstance(changes, Sized) else None
        errors: list[str] = []
        done = [0]
        for priority in (True, False):
            window: list[Change] = []
            for change in changes:
                if change.priority is not priority:
                    continue
                window.append(change)
                if len(window) >= DISPATCH_WINDOW:
                    self.queue.send(batches(window, self.batch_size), priority=priority)
                    errors += self.drain(stats, done=done, total=total, progress=progress)
                    window = []
            self.queue.send(batches(window, self.batch_size), priority=priority)
            errors += self.drain(stats, done=done, total=total, progress=progress)
        return errors

    def drain(
        self,
        stats: ApplyStats,
        *,
        done: list[int] | None = None,
        total: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        """Consume the queue until it is empty; a batch that fails is retried once, then left pending."""
        errors: list[str] = []
        done = done if done is not None else [0]
        assert isinstance(self.queue, ChangeQueue)  # checked at construction
        while (batch := self.queue.receive()) is not None:
            for attempt in (1, 2):
                try:
                    stats.add(self.applier.apply(batch))
                    break
                except Exception as exc:  # a failed batch must not stop the others
                    if attempt == 2:
                        stats.failed += len(batch)
                        errors.append(f"{type(exc).__name__}: {exc}")
            done[0] += len(batch)
            if progress:
                progress("apply", done[0], total)
        return errors

    def _interrupted(self, run: RunRecord) -> None:
        """Record a run stopped by Ctrl+C at once, with what it applied; the rest is left to the next sync."""
        report = self.report
        applied = report.applied if report is not None else ApplyStats()
        counts = {**run.counts, **{f"applied_{name}": value for name, value in applied.as_dict().items()}}
        pending = counts["pending_after"] = self.state.pending_count()
        if self._pending_before_apply is not None:
            counts["applied_committed"] = max(self._pending_before_apply - pending, 0)
        if report is None:
            what = " while reading the catalog: nothing was applied"
        else:
            total = len(report.diff.changes) if isinstance(report.diff.changes, Sized) else 0
            done = counts["applied_committed"]
            what = (
                f": {done:,} of {total:,} changes were applied; the other {max(total - done, 0):,} are left to the "
                "next sync, which resumes where this one stopped"
            )
        run.status, run.message = RunStatus.INTERRUPTED, f"interrupted by Ctrl+C{what}"
        self._finish(run, counts, run.timings)

    def _finish(self, run: RunRecord, counts: dict[str, int], timings: dict[str, float]) -> None:
        run.finished_at = datetime.now(UTC)
        run.counts = counts
        run.timings = {name: round(value, 4) for name, value in timings.items()}
        self.run_completed = self.state.finish_run(run)
